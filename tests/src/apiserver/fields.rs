//! Server-side apply: field sets with list and map semantics from the
//! schema, managers identified by (manager, operation, subresource), the
//! merge of an applied configuration, conflicts, removal of fields an
//! applier stops applying, and `metadata.managedFields` in the `FieldsV1`
//! encoding (`f:`, `k:`, `v:`, `i:` and `.`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::schema::{ListType, Schema};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pe {
    /// An object field.
    Field(String),
    /// A map-list item, by its key fields (canonical JSON object).
    Key(String),
    /// A set item (canonical JSON).
    Value(String),
    /// A list item by position (atomic lists never get here).
    Index(usize),
}

impl Pe {
    fn encode(&self) -> String {
        match self {
            Pe::Field(f) => format!("f:{f}"),
            Pe::Key(k) => format!("k:{k}"),
            Pe::Value(v) => format!("v:{v}"),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<Pe> {
        let (p, rest) = s.split_at_checked(2)?;
        Some(match p {
            "f:" => Pe::Field(rest.to_owned()),
            "k:" => Pe::Key(rest.to_owned()),
            "v:" => Pe::Value(rest.to_owned()),
            "i:" => Pe::Index(rest.parse().ok()?),
            _ => return None,
        })
    }

    /// As conflict messages show it: `.name`, `[name="c"]`, `[="x"]`, `[0]`.
    fn show(&self) -> String {
        match self {
            Pe::Field(f) => format!(".{f}"),
            Pe::Key(k) => {
                let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", parts.join(","))
            }
            Pe::Value(v) => format!("[={v}]"),
            Pe::Index(i) => format!("[{i}]"),
        }
    }
}

/// A path from the object's root.
pub type Path = Vec<Pe>;

/// Show a path as kube-apiserver does in conflicts (`.spec.containers[name="c"].image`).
pub fn show_path(p: &[Pe]) -> String {
    p.iter().map(Pe::show).collect()
}

/// A set of field paths, as a tree: `members` are owned leaves (or owned
/// list items), `children` the sub-trees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<Pe>,
    children: BTreeMap<Pe, FieldSet>,
}

impl FieldSet {
    /// Whether it holds no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// Add a path.
    pub fn insert(&mut self, path: &[Pe]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether a path is in the set.
    pub fn contains(&self, path: &[Pe]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// Every path.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for m in &self.members {
            prefix.push(m.clone());
            out.push(prefix.clone());
            prefix.pop();
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The paths of `self` that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::default();
        for p in self.paths() {
            if !other.contains(&p) {
                out.insert(&p);
            }
        }
        out
    }

    /// Remove every path of `other`.
    pub fn remove_all(&mut self, other: &FieldSet) {
        *self = self.difference(other);
    }

    /// Keep only the paths `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&[Pe]) -> bool) {
        let mut out = FieldSet::default();
        for p in self.paths() {
            if keep(&p) {
                out.insert(&p);
            }
        }
        *self = out;
    }

    /// The `FieldsV1` JSON.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let keys: BTreeSet<&Pe> = self.members.iter().chain(self.children.keys()).collect();
        for pe in keys {
            let mut inner = match self.children.get(pe) {
                Some(c) if !c.is_empty() => c.to_json(),
                _ => Value::Object(Map::new()),
            };
            if self.members.contains(pe) && self.children.get(pe).is_some_and(|c| !c.is_empty()) {
                inner[".".to_string()] = json!({});
            }
            m.insert(pe.encode(), inner);
        }
        Value::Object(m)
    }

    /// Read `FieldsV1` JSON back.
    pub fn from_json(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Some(m) = v.as_object() {
            for (k, inner) in m {
                let Some(pe) = Pe::decode(k) else { continue };
                let inner_map = inner.as_object();
                let has_children = inner_map.is_some_and(|im| im.keys().any(|k| k != "."));
                if !has_children || inner_map.is_some_and(|im| im.contains_key(".")) {
                    set.members.insert(pe.clone());
                }
                if has_children {
                    set.children.insert(pe, FieldSet::from_json(inner));
                }
            }
        }
        set
    }
}

/// Canonical JSON text (sorted keys: serde_json maps are ordered).
fn canonical(v: &Value) -> String {
    v.to_string()
}

/// Fields identifying an object, owned by nobody.
fn is_identity(path: &[Pe]) -> bool {
    let f = |i: usize| match path.get(i) {
        Some(Pe::Field(f)) => Some(f.as_str()),
        _ => None,
    };
    super::meta::is_identity(f(0), f(1))
}

/// The field set of a value: every leaf, every set item, every map-list
/// item (with its fields), every atomic list or map as one leaf.
pub fn set_of(v: &Value, schema: Option<&Schema>) -> FieldSet {
    let mut set = FieldSet::default();
    add_fields(v, schema, &mut Vec::new(), &mut set);
    set.retain(|p| !is_identity(p));
    set
}

fn add_fields(v: &Value, s: Option<&Schema>, path: &mut Path, set: &mut FieldSet) {
    match v {
        Value::Object(m) if !s.is_some_and(|s| s.atomic_map) => {
            if m.is_empty() && !path.is_empty() {
                set.insert(path);
                return;
            }
            for (k, x) in m {
                path.push(Pe::Field(k.clone()));
                add_fields(x, s.and_then(|s| s.field(k)), path, set);
                path.pop();
            }
        }
        Value::Array(items) => {
            let lt = s.map(|s| s.list_type.clone()).unwrap_or_default();
            let item_schema = s.and_then(|s| s.items.as_deref());
            match lt {
                ListType::Atomic => set.insert(path),
                ListType::Set => {
                    if items.is_empty() {
                        set.insert(path);
                    }
                    for x in items {
                        path.push(Pe::Value(canonical(x)));
                        set.insert(path);
                        path.pop();
                    }
                }
                ListType::Map(keys) => {
                    if items.is_empty() {
                        set.insert(path);
                    }
                    for x in items {
                        path.push(Pe::Key(item_key(x, &keys)));
                        set.insert(path);
                        add_fields(x, item_schema, path, set);
                        path.pop();
                    }
                }
            }
        }
        _ => set.insert(path),
    }
}

/// The key of a map-list item: its key fields as canonical JSON.
fn item_key(item: &Value, keys: &[String]) -> String {
    let m: Map<String, Value> =
        keys.iter().filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone()))).collect();
    canonical(&Value::Object(m))
}

/// The value at a path (`None` if absent).
pub fn value_at<'a>(v: &'a Value, path: &[Pe]) -> Option<&'a Value> {
    let mut cur = v;
    for pe in path {
        cur = match (pe, cur) {
            (Pe::Field(f), Value::Object(m)) => m.get(f)?,
            (Pe::Key(k), Value::Array(items)) => {
                let want: Map<String, Value> = serde_json::from_str(k).ok()?;
                items.iter().find(|x| want.iter().all(|(wk, wv)| x.get(wk) == Some(wv)))?
            }
            (Pe::Value(val), Value::Array(items)) => {
                let want: Value = serde_json::from_str(val).ok()?;
                items.iter().find(|x| **x == want)?
            }
            (Pe::Index(i), Value::Array(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Remove the value at a path (an object field, a set item or a map-list item).
pub fn remove_at(v: &mut Value, path: &[Pe]) {
    let Some((last, parent_path)) = path.split_last() else { return };
    let Some(parent) = value_at_mut(v, parent_path) else { return };
    match (last, parent) {
        (Pe::Field(f), Value::Object(m)) => {
            m.remove(f);
        }
        (Pe::Key(k), Value::Array(items)) => {
            if let Ok(want) = serde_json::from_str::<Map<String, Value>>(k) {
                items.retain(|x| !want.iter().all(|(wk, wv)| x.get(wk) == Some(wv)));
            }
        }
        (Pe::Value(val), Value::Array(items)) => {
            if let Ok(want) = serde_json::from_str::<Value>(val) {
                items.retain(|x| *x != want);
            }
        }
        (Pe::Index(i), Value::Array(items)) if *i < items.len() => {
            items.remove(*i);
        }
        _ => {}
    }
}

fn value_at_mut<'a>(v: &'a mut Value, path: &[Pe]) -> Option<&'a mut Value> {
    let mut cur = v;
    for pe in path {
        cur = match (pe, cur) {
            (Pe::Field(f), Value::Object(m)) => m.get_mut(f)?,
            (Pe::Key(k), Value::Array(items)) => {
                let want: Map<String, Value> = serde_json::from_str(k).ok()?;
                items.iter_mut().find(|x| want.iter().all(|(wk, wv)| x.get(wk) == Some(wv)))?
            }
            (Pe::Value(val), Value::Array(items)) => {
                let want: Value = serde_json::from_str(val).ok()?;
                items.iter_mut().find(|x| **x == want)?
            }
            (Pe::Index(i), Value::Array(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Merge an applied configuration into the live object: objects merge by
/// field, map lists by key, sets by value; atomic lists and scalars are
/// replaced.
pub fn merge(live: &mut Value, config: &Value, s: Option<&Schema>) {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) if !s.is_some_and(|s| s.atomic_map) => {
            for (k, cv) in c {
                let child = s.and_then(|s| s.field(k));
                match l.get_mut(k) {
                    Some(lv) if !cv.is_null() => merge(lv, cv, child),
                    _ => {
                        l.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(c)) => match s.map(|s| s.list_type.clone()).unwrap_or_default() {
            ListType::Atomic => *l = c.clone(),
            ListType::Set => {
                for x in c {
                    if !l.contains(x) {
                        l.push(x.clone());
                    }
                }
            }
            ListType::Map(keys) => {
                let item_schema = s.and_then(|s| s.items.as_deref());
                for x in c {
                    let key = item_key(x, &keys);
                    match l.iter_mut().find(|y| item_key(y, &keys) == key) {
                        Some(y) => merge(y, x, item_schema),
                        None => l.push(x.clone()),
                    }
                }
            }
        },
        (live, config) => *live = config.clone(),
    }
}

/// Who manages fields: `(manager, operation, subresource)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ManagerId {
    /// The field manager's name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: &'static str,
    /// `""` or `status`.
    pub subresource: String,
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Managed {
    /// Who.
    pub id: ManagerId,
    /// The apiVersion of the request that set them.
    pub api_version: String,
    /// When.
    pub time: String,
    /// Which fields.
    pub fields: FieldSet,
}

/// Read `metadata.managedFields`.
pub fn read_managed(obj: &Value) -> Vec<Managed> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| Managed {
                    id: ManagerId {
                        manager: e["manager"].as_str().unwrap_or_default().to_owned(),
                        operation: if e["operation"].as_str() == Some("Apply") { "Apply" } else { "Update" },
                        subresource: e["subresource"].as_str().unwrap_or_default().to_owned(),
                    },
                    api_version: e["apiVersion"].as_str().unwrap_or_default().to_owned(),
                    time: e["time"].as_str().unwrap_or_default().to_owned(),
                    fields: FieldSet::from_json(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Write `metadata.managedFields` (an empty list removes the field).
pub fn write_managed(obj: &mut Value, managed: &[Managed]) {
    let entries: Vec<Value> = managed
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut e = json!({
                "manager": m.id.manager, "operation": m.id.operation, "apiVersion": m.api_version,
                "time": m.time, "fieldsType": "FieldsV1", "fieldsV1": m.fields.to_json(),
            });
            if !m.id.subresource.is_empty() {
                e["subresource"] = json!(m.id.subresource);
            }
            e
        })
        .collect();
    if let Some(meta) = obj["metadata"].as_object_mut() {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

/// A conflict: another manager owns a field the applier sets to another value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager.
    pub manager: ManagerId,
    /// Its apiVersion.
    pub api_version: String,
    /// The field.
    pub path: Path,
}

/// The outcome of an apply.
pub type ApplyResult = Result<Value, Vec<Conflict>>;

/// Server-side apply of `config` by `id` onto `live` (with its managers):
/// conflicts unless `force`, merge, removal of fields `id` stopped applying
/// (unless someone else owns them), and the new ownership.
pub fn apply(
    live: &Value,
    config: &Value,
    schema: Option<&Schema>,
    id: &ManagerId,
    managed: &mut Vec<Managed>,
    force: bool,
) -> ApplyResult {
    let applied = set_of(config, schema);
    let mut conflicts = Vec::new();
    for m in managed.iter().filter(|m| &m.id != id) {
        for p in m.fields.paths() {
            // A list item itself is only present or absent: values are
            // compared at its fields.
            let item = matches!(p.last(), Some(Pe::Key(_) | Pe::Value(_)));
            if applied.contains(&p) && !item && value_at(live, &p) != value_at(config, &p) {
                conflicts.push(Conflict {
                    manager: m.id.clone(),
                    api_version: m.api_version.clone(),
                    path: p,
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut merged = live.clone();
    merge(&mut merged, config, schema);
    if let Some(before) = managed.iter().find(|m| &m.id == id) {
        let dropped = before.fields.difference(&applied);
        for p in dropped.paths() {
            let shared = managed.iter().any(|m| &m.id != id && m.fields.contains(&p));
            if !shared {
                remove_at(&mut merged, &p);
            }
        }
    }
    if force {
        for m in managed.iter_mut().filter(|m| &m.id != id) {
            let mut lost = FieldSet::default();
            for c in conflicts.iter().filter(|c| c.manager == m.id) {
                lost.insert(&c.path);
            }
            m.fields.remove_all(&lost);
        }
    }
    upsert(managed, id, applied, true);
    prune_ownership(managed, &merged, schema);
    Ok(merged)
}

/// Ownership after a non-apply write by `id`: it owns what it changed;
/// others lose those fields; fields that are gone are owned by nobody.
pub fn update(old: &Value, new: &Value, schema: Option<&Schema>, id: &ManagerId, managed: &mut Vec<Managed>) {
    let old_set = set_of(old, schema);
    let new_set = set_of(new, schema);
    let mut changed = FieldSet::default();
    for p in new_set.paths() {
        if !old_set.contains(&p) || value_at(old, &p) != value_at(new, &p) {
            changed.insert(&p);
        }
    }
    for m in managed.iter_mut().filter(|m| &m.id != id) {
        m.fields.remove_all(&changed);
    }
    let mut mine = managed.iter().find(|m| &m.id == id).map(|m| m.fields.clone()).unwrap_or_default();
    for p in changed.paths() {
        mine.insert(&p);
    }
    upsert(managed, id, mine, false);
    prune_ownership(managed, new, schema);
}

fn upsert(managed: &mut Vec<Managed>, id: &ManagerId, fields: FieldSet, _apply: bool) {
    match managed.iter_mut().find(|m| &m.id == id) {
        Some(m) => m.fields = fields,
        None => {
            managed.push(Managed { id: id.clone(), api_version: String::new(), time: String::new(), fields })
        }
    }
}

/// Nobody owns a field that is not there any more; empty entries go.
fn prune_ownership(managed: &mut Vec<Managed>, obj: &Value, schema: Option<&Schema>) {
    let present = set_of(obj, schema);
    for m in managed.iter_mut() {
        m.fields.retain(|p| present.contains(p));
    }
    managed.retain(|m| !m.fields.is_empty());
}

/// The conflict error's message, as kube-apiserver words it.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let who = |c: &Conflict| {
        let sub = if c.manager.subresource.is_empty() {
            String::new()
        } else {
            format!(" with subresource \"{}\"", c.manager.subresource)
        };
        format!("\"{}\"{sub} using {}", c.manager.manager, c.api_version)
    };
    if let [one] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", who(one), show_path(&one.path));
    }
    let mut by_manager: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in conflicts {
        by_manager.entry(who(c)).or_default().push(show_path(&c.path));
    }
    let parts: Vec<String> = by_manager
        .iter()
        .map(|(w, paths)| {
            let lines: Vec<String> = paths.iter().map(|p| format!("- {p}")).collect();
            format!("conflicts with {w}:\n{}", lines.join("\n"))
        })
        .collect();
    format!("Apply failed with {} conflicts: {}", conflicts.len(), parts.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::parse(&json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {
                "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}
            }},
            "spec": {"type": "object", "properties": {
                "containers": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}, "image": {"type": "string"}}}},
                "args": {"type": "array", "items": {"type": "string"}}
            }}
        }}))
    }

    fn id(m: &str, op: &'static str) -> ManagerId {
        ManagerId { manager: m.into(), operation: op, subresource: String::new() }
    }

    #[test]
    fn fields_v1_round_trips() {
        let s = schema();
        let v = json!({"metadata": {"name": "x", "finalizers": ["a/b"], "labels": {"l": "1"}}, "spec": {"containers": [{"name": "c", "image": "i"}], "args": ["x"]}});
        let set = set_of(&v, Some(&s));
        let j = set.to_json();
        assert_eq!(
            j,
            json!({"f:metadata": {"f:finalizers": {"v:\"a/b\"": {}}, "f:labels": {"f:l": {}}},
                   "f:spec": {"f:args": {}, "f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
        assert_eq!(FieldSet::from_json(&j), set);
    }

    #[test]
    fn apply_merges_by_key_conflicts_and_removes_what_it_stopped_applying() {
        let s = schema();
        let mut managed = Vec::new();
        let live = json!({"metadata": {"name": "x"}});
        let cfg = json!({"spec": {"containers": [{"name": "a", "image": "1"}], "args": ["p"]}, "metadata": {"finalizers": ["x/y"]}});
        let v = apply(&live, &cfg, Some(&s), &id("op", "Apply"), &mut managed, false).unwrap();
        // Another manager adds a container and a finalizer: merged, not replaced.
        let cfg2 = json!({"spec": {"containers": [{"name": "b", "image": "2"}]}, "metadata": {"finalizers": ["z/w"]}});
        let v = apply(&v, &cfg2, Some(&s), &id("other", "Apply"), &mut managed, false).unwrap();
        assert_eq!(v["spec"]["containers"].as_array().unwrap().len(), 2);
        assert_eq!(v["metadata"]["finalizers"], json!(["x/y", "z/w"]));
        // Conflicting value without force.
        let bad = json!({"spec": {"containers": [{"name": "a", "image": "9"}]}});
        let err = apply(&v, &bad, Some(&s), &id("other", "Apply"), &mut managed, false).unwrap_err();
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"op\" using : .spec.containers[name=\"a\"].image"
        );
        // op stops applying its finalizer and args: removed; b stays (other's).
        let cfg3 = json!({"spec": {"containers": [{"name": "a", "image": "1"}]}});
        let v = apply(&v, &cfg3, Some(&s), &id("op", "Apply"), &mut managed, false).unwrap();
        assert_eq!(v["metadata"]["finalizers"], json!(["z/w"]));
        assert!(v["spec"].get("args").is_none());
        assert_eq!(v["spec"]["containers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn an_update_and_an_apply_by_one_name_are_two_owners() {
        let s = schema();
        let mut managed = Vec::new();
        let v = apply(
            &json!({}),
            &json!({"spec": {"args": ["a"]}}),
            Some(&s),
            &id("m", "Apply"),
            &mut managed,
            false,
        )
        .unwrap();
        let mut new = v.clone();
        new["metadata"] = json!({"labels": {"x": "1"}});
        update(&v, &new, Some(&s), &id("m", "Update"), &mut managed);
        assert_eq!(managed.len(), 2);
        assert!(managed.iter().any(|m| m.id.operation == "Update"
            && m.fields.contains(&[
                Pe::Field("metadata".into()),
                Pe::Field("labels".into()),
                Pe::Field("x".into())
            ])));
    }
}
