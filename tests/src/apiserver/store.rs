//! The object store: every object with its resourceVersion, field managers
//! and the change history that watches replay.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::patch::{self, FieldPath};
use super::resources::{self, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};

/// How many changes are kept for watches resuming from a resourceVersion.
const HISTORY: usize = 10_000;

/// An API error, rendered as a `metav1.Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `BadRequest`, `Gone`, ...
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into() }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    fn not_found(t: &ResourceType, name: &str) -> Self {
        ApiError::new(404, "NotFound", format!("{} \"{name}\" not found", t.qualified()))
    }

    fn conflict(t: &ResourceType, name: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                t.qualified()
            ),
        )
    }

    /// The `metav1.Status` body.
    pub fn status(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        })
    }
}

/// Result alias.
pub type ApiResult<T> = Result<T, ApiError>;

/// Identity of a stored object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace (`""` when cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// A stored object and who manages which of its fields.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The object.
    pub obj: Value,
    /// Field manager → the leaf fields it set.
    pub managers: BTreeMap<String, BTreeSet<FieldPath>>,
}

/// Kind of a change, as in watch events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

/// One change of one object.
#[derive(Debug, Clone)]
pub struct Change {
    /// resourceVersion after the change.
    pub rv: u64,
    /// Which object.
    pub key: ObjKey,
    /// What happened.
    pub kind: ChangeKind,
    /// The object after (or, for deletions, as it was last).
    pub object: Value,
    /// The object before (modifications only).
    pub old: Option<Value>,
}

/// How a write was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// The main resource endpoint.
    Main,
    /// The `/status` subresource.
    Status,
}

/// Patch flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json` (and strategic merge, treated alike).
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/apply-patch+yaml`.
    Apply {
        /// `force=true`.
        force: bool,
    },
}

/// The store.
#[derive(Debug)]
pub struct Store {
    rv: u64,
    types: Vec<ResourceType>,
    objects: BTreeMap<ObjKey, Stored>,
    history: VecDeque<Arc<Change>>,
    /// Changes after this resourceVersion are all in `history`.
    oldest: u64,
    tx: broadcast::Sender<Arc<Change>>,
}

fn now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    rfc3339(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDThh:mm:ssZ`.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

fn uid() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut b = [0u8; 5];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect()
}

/// The object without metadata and status: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    v
}

impl Default for Store {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(4096);
        let mut s = Store {
            rv: 1,
            types: resources::builtins(),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            oldest: 1,
            tx,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let t = s.type_of("", "v1", "namespaces").expect("builtin");
            s.create(&t, "", json!({"metadata": {"name": ns}}), "kube-apiserver").expect("fresh store");
        }
        s
    }
}

impl Store {
    /// The types served.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// A type by group, version and plural (or short name / singular).
    pub fn type_of(&self, group: &str, version: &str, resource: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| {
                t.group == group
                    && t.version == version
                    && (t.plural == resource
                        || t.singular == resource
                        || t.short_names.iter().any(|s| s == resource))
            })
            .cloned()
    }

    /// Subscribe to changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Drop the change history: watches from any earlier resourceVersion get
    /// 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest = self.rv;
    }

    fn key(t: &ResourceType, ns: &str, name: &str) -> ObjKey {
        ObjKey {
            group: t.group.clone(),
            plural: t.plural.clone(),
            namespace: ns.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The object as served for type `t` (apiVersion and kind set).
    fn present(t: &ResourceType, obj: &Value) -> Value {
        let mut v = obj.clone();
        if let Some(m) = v.as_object_mut() {
            m.insert("apiVersion".into(), Value::String(t.api_version()));
            m.insert("kind".into(), Value::String(t.kind.clone()));
        }
        v
    }

    fn record(&mut self, key: ObjKey, kind: ChangeKind, object: Value, old: Option<Value>) -> Arc<Change> {
        let change = Arc::new(Change { rv: self.rv, key, kind, object, old });
        self.history.push_back(change.clone());
        if self.history.len() > HISTORY
            && let Some(dropped) = self.history.pop_front()
        {
            self.oldest = dropped.rv;
        }
        let _ = self.tx.send(change.clone());
        change
    }

    fn check_namespace(&self, t: &ResourceType, ns: &str) -> ApiResult<()> {
        if !t.namespaced {
            return Ok(());
        }
        let key = ObjKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: ns.into(),
        };
        match self.objects.get(&key) {
            None => Err(ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))),
            Some(s) if s.obj["metadata"]["deletionTimestamp"].is_string() => Err(ApiError::new(
                403,
                "Forbidden",
                format!("unable to create new content in namespace {ns} because it is being terminated"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Get one object.
    pub fn get(&self, t: &ResourceType, ns: &str, name: &str) -> ApiResult<Value> {
        self.objects
            .get(&Self::key(t, ns, name))
            .map(|s| Self::present(t, &s.obj))
            .ok_or_else(|| ApiError::not_found(t, name))
    }

    /// List objects (all namespaces when `ns` is `None`), sorted by
    /// namespace and name, with the current resourceVersion.
    pub fn list(
        &self,
        t: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Value>, u64) {
        let items = self
            .objects
            .iter()
            .filter(|(k, _)| {
                k.group == t.group && k.plural == t.plural && ns.is_none_or(|n| k.namespace == n)
            })
            .filter(|(_, s)| labels.matches(&s.obj) && fields.matches(&s.obj))
            .map(|(_, s)| Self::present(t, &s.obj))
            .collect();
        (items, self.rv)
    }

    /// Changes after `rv` (for watches), or `Gone` if they are no longer
    /// known.
    pub fn changes_since(&self, rv: u64) -> ApiResult<Vec<Arc<Change>>> {
        if rv < self.oldest {
            return Err(ApiError::new(
                410,
                "Expired",
                format!("too old resource version: {rv} ({})", self.oldest),
            ));
        }
        Ok(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// Stored objects carry no apiVersion/kind: they are added when served,
    /// for the version asked for.
    fn strip_type(obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
    }

    /// Normalise a Secret: `stringData` merged into `data` (base64).
    fn normalise(t: &ResourceType, obj: &mut Value) -> ApiResult<()> {
        if t.group.is_empty() && t.plural == "secrets" {
            let string_data = obj.as_object_mut().and_then(|m| m.remove("stringData"));
            if let Some(Value::Object(sd)) = string_data {
                let mut data: Map<String, Value> =
                    obj.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
                for (k, v) in sd {
                    data.insert(k, Value::String(STANDARD.encode(v.as_str().unwrap_or_default())));
                }
                obj["data"] = Value::Object(data);
            }
            if let Some(data) = obj["data"].as_object() {
                for (k, v) in data {
                    if v.as_str().is_none_or(|s| STANDARD.decode(s).is_err()) {
                        return Err(ApiError::new(
                            400,
                            "BadRequest",
                            format!(
                                "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data for key {k:?}"
                            ),
                        ));
                    }
                }
            }
            if obj.get("type").is_none() {
                obj["type"] = json!("Opaque");
            }
        }
        Ok(())
    }

    /// Create an object.
    pub fn create(&mut self, t: &ResourceType, ns: &str, mut obj: Value, manager: &str) -> ApiResult<Value> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body is not an object"));
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let meta = &obj["metadata"];
        let name = match (meta["name"].as_str(), meta["generateName"].as_str()) {
            (Some(n), _) if !n.is_empty() => n.to_owned(),
            (_, Some(g)) if !g.is_empty() => format!("{g}{}", random_suffix()),
            _ => {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
        };
        if let Some(body_ns) = meta["namespace"].as_str()
            && t.namespaced
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        self.check_namespace(t, ns)?;
        let key = Self::key(t, if t.namespaced { ns } else { "" }, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", t.qualified()),
            ));
        }
        Self::normalise(t, &mut obj)?;
        Self::strip_type(&mut obj);
        if t.status && !t.is_crd() && t.plural != "namespaces" {
            obj.as_object_mut().expect("object").remove("status");
        }
        self.rv += 1;
        {
            let m = obj["metadata"].as_object_mut().expect("object");
            m.insert("name".into(), json!(name));
            if t.namespaced {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            m.insert("uid".into(), json!(uid()));
            m.insert("resourceVersion".into(), json!(self.rv.to_string()));
            m.insert("creationTimestamp".into(), json!(now()));
            m.remove("deletionTimestamp");
            m.remove("managedFields");
            if t.generation {
                m.insert("generation".into(), json!(1));
            }
        }
        if t.plural == "namespaces" && t.group.is_empty() {
            obj["status"] = json!({"phase": "Active"});
        }
        if t.is_crd() {
            self.register_crd(&mut obj);
        }
        let mut managers = BTreeMap::new();
        managers.insert(manager.to_owned(), patch::leaves(&obj));
        self.objects.insert(key.clone(), Stored { obj: obj.clone(), managers });
        self.record(key, ChangeKind::Added, obj.clone(), None);
        Ok(Self::present(t, &obj))
    }

    fn register_crd(&mut self, crd: &mut Value) {
        let new_types = resources::from_crd(crd);
        if let Some(first) = new_types.first() {
            let (g, p) = first.storage_key();
            self.types.retain(|t| !(t.group == g && t.plural == p));
        }
        self.types.extend(new_types);
        let names = crd["spec"]["names"].clone();
        crd["status"] = json!({
            "acceptedNames": names,
            "storedVersions": crd["spec"]["versions"].as_array().map(|vs| vs.iter().filter(|v| v["storage"].as_bool() == Some(true)).map(|v| v["name"].clone()).collect::<Vec<_>>()).unwrap_or_default(),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now()},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now()},
            ],
        });
    }

    /// Write a new version of an existing object (the common end of update,
    /// patch and apply). `new` is the full desired object.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        t: &ResourceType,
        key: ObjKey,
        mut new: Value,
        sub: Sub,
        manager: &str,
        apply_paths: Option<BTreeSet<FieldPath>>,
    ) -> ApiResult<Value> {
        let stored = self.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(t, &key.name))?;
        let old = stored.obj;
        if let Some(rv) = new["metadata"]["resourceVersion"].as_str()
            && !rv.is_empty()
            && Some(rv) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(t, &key.name));
        }
        Self::normalise(t, &mut new)?;
        Self::strip_type(&mut new);
        // Status subresource split.
        if t.status {
            match sub {
                Sub::Main => match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        new.as_object_mut().map(|m| m.remove("status"));
                    }
                },
                Sub::Status => {
                    let status = new.get("status").cloned();
                    new = old.clone();
                    match status {
                        Some(s) => new["status"] = s,
                        None => {
                            new.as_object_mut().map(|m| m.remove("status"));
                        }
                    }
                }
            }
        }
        // Fields nobody may change this way.
        {
            let m = new["metadata"]
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
            for k in ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "generation"] {
                match old["metadata"].get(k) {
                    Some(v) => m.insert(k.into(), v.clone()),
                    None => m.remove(k),
                };
            }
            m.insert("resourceVersion".into(), old["metadata"]["resourceVersion"].clone());
            m.remove("managedFields");
        }
        if t.generation && spec_part(&new) != spec_part(&old) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            new["metadata"]["generation"] = json!(g);
        }
        if t.is_crd() {
            self.register_crd(&mut new);
        }
        // Field ownership.
        let mut managers = stored.managers;
        match apply_paths {
            Some(paths) => {
                for (m, owned) in managers.iter_mut() {
                    if m != manager {
                        owned.retain(|p| !paths.contains(p) || patch::get(&old, p) == patch::get(&new, p));
                    }
                }
                managers.insert(manager.to_owned(), paths);
            }
            None => {
                let changed = patch::changed_paths(&old, &new);
                for (m, owned) in managers.iter_mut() {
                    if m != manager {
                        owned.retain(|p| !changed.contains(p));
                    }
                }
                let mine = managers.entry(manager.to_owned()).or_default();
                mine.extend(changed.into_iter().filter(|p| patch::get(&new, p).is_some()));
            }
        }
        // Nobody owns a field that no longer exists.
        for owned in managers.values_mut() {
            owned.retain(|p| patch::get(&new, p).is_some());
        }
        managers.retain(|_, owned| !owned.is_empty());
        if new == old {
            // A no-op write changes nothing, not even the resourceVersion.
            if let Some(s) = self.objects.get_mut(&key) {
                s.managers = managers;
            }
            return Ok(Self::present(t, &old));
        }
        // The last finalizer gone from an object being deleted: it goes.
        let finalizers_empty = new["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
        if new["metadata"]["deletionTimestamp"].is_string() && finalizers_empty {
            self.objects.insert(key.clone(), Stored { obj: new, managers });
            return self.remove(t, &key);
        }
        self.rv += 1;
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key.clone(), Stored { obj: new.clone(), managers });
        self.record(key, ChangeKind::Modified, new.clone(), Some(old));
        Ok(Self::present(t, &new))
    }

    /// Replace an object (PUT).
    pub fn update(
        &mut self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        obj: Value,
        sub: Sub,
        manager: &str,
    ) -> ApiResult<Value> {
        if obj["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request("the name of the object does not match the name on the URL"));
        }
        self.write(t, Self::key(t, ns, name), obj, sub, manager, None)
    }

    /// Patch an object; an apply patch creates it when absent.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        kind: PatchType,
        body: &Value,
        sub: Sub,
        manager: &str,
    ) -> ApiResult<Value> {
        let key = Self::key(t, ns, name);
        let Some(current) = self.objects.get(&key).cloned() else {
            return match kind {
                PatchType::Apply { .. } if sub == Sub::Main => {
                    let mut obj = body.clone();
                    obj["metadata"]["name"] = json!(name);
                    self.create(t, ns, obj, manager)
                }
                _ => Err(ApiError::not_found(t, name)),
            };
        };
        let mut new = current.obj.clone();
        match kind {
            PatchType::Merge => {
                patch::merge_patch(&mut new, body);
                self.write(t, key, new, sub, manager, None)
            }
            PatchType::Json => {
                patch::json_patch(&mut new, body).map_err(|e| ApiError::new(422, "Invalid", e))?;
                self.write(t, key, new, sub, manager, None)
            }
            PatchType::Apply { force } => {
                let mut config = body.clone();
                if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
                    return Err(ApiError::bad_request(
                        "the name of the object does not match the name on the URL",
                    ));
                }
                // Status belongs to its subresource.
                if t.status
                    && let Some(m) = config.as_object_mut()
                {
                    match sub {
                        Sub::Main => {
                            m.remove("status");
                        }
                        Sub::Status => m.retain(|k, _| {
                            matches!(k.as_str(), "status" | "apiVersion" | "kind" | "metadata")
                        }),
                    }
                }
                let paths = patch::leaves(&config);
                // Conflicts with other managers.
                let conflicts: Vec<String> = current
                    .managers
                    .iter()
                    .filter(|(m, _)| m.as_str() != manager)
                    .flat_map(|(m, owned)| {
                        let (cur, cfg) = (&current.obj, &config);
                        owned
                            .iter()
                            .filter(|p| paths.contains(*p) && patch::get(cur, p) != patch::get(cfg, p))
                            .map(move |p| format!("conflict with \"{m}\": .{}", p.join(".")))
                    })
                    .collect();
                if !conflicts.is_empty() && !force {
                    return Err(ApiError::new(
                        409,
                        "Conflict",
                        format!(
                            "Apply failed with {} conflict(s): {}",
                            conflicts.len(),
                            conflicts.join(", ")
                        ),
                    ));
                }
                // Fields this manager stops applying are removed (unless someone else owns them).
                if let Some(before) = current.managers.get(manager) {
                    for p in before.difference(&paths) {
                        let shared = current.managers.iter().any(|(m, o)| m != manager && o.contains(p));
                        if !shared {
                            patch::remove_path(&mut new, p);
                        }
                    }
                }
                // (A resourceVersion in the body is a precondition, checked by `write`.)
                patch::apply_merge(&mut new, &config);
                self.write(t, key, new, sub, manager, Some(paths))
            }
        }
    }

    /// Delete an object: with finalizers it only gets a deletionTimestamp.
    pub fn delete(&mut self, t: &ResourceType, ns: &str, name: &str, orphan: bool) -> ApiResult<Value> {
        let key = Self::key(t, ns, name);
        let stored = self.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(t, name))?;
        let mut obj = stored.obj;
        let has_finalizers = obj["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        let is_namespace = t.group.is_empty() && t.plural == "namespaces";
        if has_finalizers || is_namespace {
            if obj["metadata"]["deletionTimestamp"].is_null() {
                let old = obj.clone();
                self.rv += 1;
                obj["metadata"]["deletionTimestamp"] = json!(now());
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                if is_namespace {
                    obj["status"]["phase"] = json!("Terminating");
                }
                self.objects.get_mut(&key).expect("present").obj = obj.clone();
                self.record(key.clone(), ChangeKind::Modified, obj.clone(), Some(old));
            }
            if is_namespace {
                self.empty_namespace(name)?;
                // Emptying it may already have removed it.
                if !self.objects.contains_key(&key) {
                    return Ok(Self::present(t, &obj));
                }
                if !has_finalizers && !self.objects.keys().any(|k| k.namespace == name) {
                    return self.remove(t, &key);
                }
            }
            return Ok(Self::present(t, &obj));
        }
        if orphan {
            self.orphan_dependents(obj["metadata"]["uid"].as_str().unwrap_or_default());
        }
        self.remove(t, &key)
    }

    /// Remove an object for good, then its dependents and, for a CRD, its
    /// custom resources.
    fn remove(&mut self, t: &ResourceType, key: &ObjKey) -> ApiResult<Value> {
        let stored = self.objects.remove(key).ok_or_else(|| ApiError::not_found(t, &key.name))?;
        self.rv += 1;
        let mut obj = stored.obj;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(key.clone(), ChangeKind::Deleted, obj.clone(), None);
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
        self.collect_garbage(&uid);
        if t.is_crd() {
            let group = obj["spec"]["group"].as_str().unwrap_or_default().to_owned();
            let plural = obj["spec"]["names"]["plural"].as_str().unwrap_or_default().to_owned();
            let crs: Vec<ObjKey> =
                self.objects.keys().filter(|k| k.group == group && k.plural == plural).cloned().collect();
            for k in crs {
                if let Some(ct) = self.types.iter().find(|x| x.group == group && x.plural == plural).cloned()
                {
                    let _ = self.remove(&ct, &k);
                }
            }
            self.types.retain(|x| !(x.group == group && x.plural == plural));
        }
        // A terminating namespace goes once it is empty.
        if !key.namespace.is_empty() && !self.objects.keys().any(|k| k.namespace == key.namespace) {
            let ns_key = ObjKey {
                group: String::new(),
                plural: "namespaces".into(),
                namespace: String::new(),
                name: key.namespace.clone(),
            };
            if self.objects.get(&ns_key).is_some_and(|s| s.obj["metadata"]["deletionTimestamp"].is_string()) {
                let nst = self.type_of("", "v1", "namespaces").expect("builtin");
                let _ = self.remove(&nst, &ns_key);
            }
        }
        Ok(Self::present(t, &obj))
    }

    fn type_for_key(&self, key: &ObjKey) -> Option<ResourceType> {
        self.types.iter().find(|t| t.group == key.group && t.plural == key.plural).cloned()
    }

    /// Delete every object in a namespace (finalizers respected).
    fn empty_namespace(&mut self, ns: &str) -> ApiResult<()> {
        let keys: Vec<ObjKey> = self.objects.keys().filter(|k| k.namespace == ns).cloned().collect();
        for k in keys {
            if let Some(t) = self.type_for_key(&k)
                && self.objects.contains_key(&k)
            {
                let _ = self.delete(&t, &k.namespace, &k.name, false);
            }
        }
        Ok(())
    }

    /// Background cascading deletion of objects owned by `uid`.
    fn collect_garbage(&mut self, uid: &str) {
        if uid.is_empty() {
            return;
        }
        let dependents: Vec<ObjKey> = self
            .objects
            .iter()
            .filter(|(_, s)| {
                s.obj["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in dependents {
            if let Some(t) = self.type_for_key(&k) {
                let _ = self.delete(&t, &k.namespace, &k.name, false);
            }
        }
    }

    /// Orphan deletion: dependents lose their owner reference.
    fn orphan_dependents(&mut self, uid: &str) {
        let keys: Vec<ObjKey> = self.objects.keys().cloned().collect();
        for k in keys {
            let refs = self.objects[&k].obj["metadata"]["ownerReferences"].as_array().cloned();
            if let Some(refs) = refs
                && refs.iter().any(|r| r["uid"].as_str() == Some(uid))
                && let Some(t) = self.type_for_key(&k)
            {
                let mut obj = self.objects[&k].obj.clone();
                obj["metadata"]["ownerReferences"] =
                    Value::Array(refs.into_iter().filter(|r| r["uid"].as_str() != Some(uid)).collect());
                let _ = self.write(&t, k, obj, Sub::Main, "garbage-collector", None);
            }
        }
    }

    /// Every object, for dumps.
    pub fn dump(&self) -> Vec<Value> {
        self.objects
            .iter()
            .map(|(k, s)| {
                let mut v = s.obj.clone();
                if let Some(t) = self.type_for_key(k) {
                    v = Self::present(&t, &v);
                }
                v
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(s: &Store) -> ResourceType {
        s.type_of("", "v1", "secrets").unwrap()
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_424_759), "2026-11-23T09:05:59Z");
    }

    #[test]
    fn create_update_conflict_and_noop() {
        let mut s = Store::default();
        let t = secrets(&s);
        let created = s
            .create(&t, "default", json!({"metadata": {"name": "a"}, "stringData": {"k": "v"}}), "m")
            .unwrap();
        assert_eq!(created["data"]["k"], "dg==");
        assert!(created.get("stringData").is_none());
        let rv = created["metadata"]["resourceVersion"].clone();
        assert_eq!(s.create(&t, "default", json!({"metadata": {"name": "a"}}), "m").unwrap_err().code, 409);
        let mut stale = created.clone();
        stale["metadata"]["resourceVersion"] = json!("1");
        assert_eq!(s.update(&t, "default", "a", stale, Sub::Main, "m").unwrap_err().reason, "Conflict");
        let same = s.update(&t, "default", "a", created.clone(), Sub::Main, "m").unwrap();
        assert_eq!(same["metadata"]["resourceVersion"], rv, "no-op keeps the resourceVersion");
        assert_eq!(s.create(&t, "nowhere", json!({"metadata": {"name": "a"}}), "m").unwrap_err().code, 404);
    }

    #[test]
    fn apply_removes_fields_the_manager_stopped_applying_and_detects_conflicts() {
        let mut s = Store::default();
        let t = s.type_of("", "v1", "configmaps").unwrap();
        let apply = |s: &mut Store, body: Value, m: &str, force: bool| {
            s.patch(&t, "default", "c", PatchType::Apply { force }, &body, Sub::Main, m)
        };
        apply(
            &mut s,
            json!({"metadata": {"name": "c", "labels": {"x": "1"}}, "data": {"a": "1", "b": "2"}}),
            "op",
            false,
        )
        .unwrap();
        let v = apply(&mut s, json!({"metadata": {"name": "c"}, "data": {"a": "1"}}), "op", false).unwrap();
        assert_eq!(v["data"], json!({"a": "1"}));
        assert!(v["metadata"].get("labels").is_none());
        let err = apply(&mut s, json!({"metadata": {"name": "c"}, "data": {"a": "2"}}), "other", false)
            .unwrap_err();
        assert_eq!(err.code, 409);
        let v = apply(&mut s, json!({"metadata": {"name": "c"}, "data": {"a": "2"}}), "other", true).unwrap();
        assert_eq!(v["data"]["a"], "2");
        // A field removed by a non-apply write belongs to nobody: applying it again does not conflict.
        s.patch(&t, "default", "c", PatchType::Merge, &json!({"data": {"a": null}}), Sub::Main, "other")
            .unwrap();
        apply(&mut s, json!({"metadata": {"name": "c"}, "data": {"a": "3"}}), "third", false).unwrap();
    }

    #[test]
    fn finalizers_and_garbage_collection() {
        let mut s = Store::default();
        let t = secrets(&s);
        let owner = s
            .create(&t, "default", json!({"metadata": {"name": "owner", "finalizers": ["x/y"]}}), "m")
            .unwrap();
        let uid = owner["metadata"]["uid"].as_str().unwrap().to_owned();
        s.create(&t, "default", json!({"metadata": {"name": "dep", "ownerReferences": [{"uid": uid, "name": "owner", "kind": "Secret", "apiVersion": "v1"}]}}), "m").unwrap();
        let deleting = s.delete(&t, "default", "owner", false).unwrap();
        assert!(deleting["metadata"]["deletionTimestamp"].is_string());
        assert!(s.get(&t, "default", "dep").is_ok());
        s.patch(
            &t,
            "default",
            "owner",
            PatchType::Merge,
            &json!({"metadata": {"finalizers": null}}),
            Sub::Main,
            "m",
        )
        .unwrap();
        assert_eq!(s.get(&t, "default", "owner").unwrap_err().code, 404);
        assert_eq!(s.get(&t, "default", "dep").unwrap_err().code, 404, "dependent collected");
    }
}
