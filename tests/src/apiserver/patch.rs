//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and the
//! field sets behind server-side apply.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A field path: object keys from the root (lists are atomic leaves).
pub type FieldPath = Vec<String>;

/// RFC 7386: objects merge recursively, `null` deletes, the rest replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn pointer_parts(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path.strip_prefix('/').ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn parent_mut<'a>(doc: &'a mut Value, parts: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for p in &parts[..parts.len().saturating_sub(1)] {
        cur = match cur {
            Value::Object(m) => {
                m.get_mut(p).ok_or_else(|| format!("path /{} does not exist", parts.join("/")))?
            }
            Value::Array(a) => {
                let i: usize = p.parse().map_err(|_| format!("invalid array index {p:?}"))?;
                a.get_mut(i).ok_or_else(|| format!("array index {i} out of range"))?
            }
            _ => return Err(format!("path /{} does not exist", parts.join("/"))),
        };
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let parts = pointer_parts(path)?;
    let Some(last) = parts.last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, &parts)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse().map_err(|_| format!("invalid index {last:?}"))?
            };
            if i > a.len() {
                return Err(format!("array index {i} out of range"));
            }
            a.insert(i, value);
        }
        _ => return Err(format!("cannot add at {path}")),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let parts = pointer_parts(path)?;
    let last = parts.last().ok_or("cannot remove the root")?;
    match parent_mut(doc, &parts)? {
        Value::Object(m) => m.remove(last).ok_or_else(|| format!("path {path} does not exist")),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("invalid index {last:?}"))?;
            if i >= a.len() {
                return Err(format!("array index {i} out of range"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("path {path} does not exist")),
    }
}

/// RFC 6902: `add`, `remove`, `replace`, `move`, `copy`, `test`.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch is an array of operations")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("operation without path")?;
        match op["op"].as_str() {
            Some("add") => add(doc, path, op["value"].clone())?,
            Some("remove") => {
                remove(doc, path)?;
            }
            Some("replace") => {
                remove(doc, path)?;
                add(doc, path, op["value"].clone())?;
            }
            Some("move") => {
                let from = op["from"].as_str().ok_or("move without from")?;
                let v = remove(doc, from)?;
                add(doc, path, v)?;
            }
            Some("copy") => {
                let from = op["from"].as_str().ok_or("copy without from")?;
                let v = doc.pointer(from).cloned().ok_or_else(|| format!("path {from} does not exist"))?;
                add(doc, path, v)?;
            }
            Some("test") => {
                // As in Kubernetes (evanphx/json-patch): testing a missing
                // path against null succeeds.
                let missing_is_null = op["value"].is_null() && doc.pointer(path).is_none();
                if !missing_is_null && doc.pointer(path) != Some(&op["value"]) {
                    return Err(format!("test operation failed at {path}"));
                }
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
    }
    Ok(())
}

/// Paths that identify an object rather than being fields of it.
fn is_identity(path: &[String]) -> bool {
    super::meta::is_identity(path.first().map(String::as_str), path.get(1).map(String::as_str))
}

/// The leaf field paths of a value (non-empty objects are descended into).
pub fn leaves(v: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    prefix.push(k.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ if !prefix.is_empty() => {
                out.insert(prefix.clone());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out.retain(|p| !is_identity(p));
    out
}

/// The value at a path.
pub fn get<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

/// Remove the value at a path, then parents left empty (up to, not
/// including, the first level).
pub fn remove_path(v: &mut Value, path: &[String]) {
    fn go(v: &mut Value, path: &[String]) -> bool {
        let Some((first, rest)) = path.split_first() else { return false };
        let Some(m) = v.as_object_mut() else { return false };
        if rest.is_empty() {
            m.remove(first);
        } else if let Some(child) = m.get_mut(first)
            && go(child, rest)
        {
            m.remove(first);
        }
        m.is_empty()
    }
    go(v, path);
}

/// Deep merge for apply: objects merge, everything else replaces.
pub fn apply_merge(target: &mut Value, config: &Value) {
    match (target, config) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => apply_merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, c) => *t = c.clone(),
    }
}

/// Leaf paths whose values differ between two objects (present in either).
pub fn changed_paths(old: &Value, new: &Value) -> BTreeSet<FieldPath> {
    let mut all = leaves(old);
    all.extend(leaves(new));
    all.into_iter().filter(|p| get(old, p) != get(new, p)).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_rfc7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn json_patch_rfc6902() {
        let mut doc = json!({"metadata": {"labels": {"a/b": "1"}}, "list": [1, 2]});
        json_patch(
            &mut doc,
            &json!([
                {"op": "add", "path": "/list/-", "value": 3},
                {"op": "replace", "path": "/metadata/labels/a~1b", "value": "2"},
                {"op": "copy", "from": "/list/0", "path": "/first"},
                {"op": "test", "path": "/first", "value": 1},
                {"op": "remove", "path": "/list/0"},
            ]),
        )
        .unwrap();
        assert_eq!(doc, json!({"metadata": {"labels": {"a/b": "2"}}, "list": [2, 3], "first": 1}));
        assert!(json_patch(&mut doc, &json!([{"op": "test", "path": "/first", "value": 2}])).is_err());
        json_patch(&mut doc, &json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]))
            .unwrap();
    }

    #[test]
    fn leaves_and_removal() {
        let v = json!({"apiVersion": "v1", "metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v"}, "l": [1]});
        let l: Vec<String> = leaves(&v).into_iter().map(|p| p.join(".")).collect();
        assert_eq!(l, vec!["data.k", "l", "metadata.labels.a"]);
        let mut v = v;
        remove_path(&mut v, &["data".into(), "k".into()]);
        assert!(v.get("data").is_none(), "empty parents go too");
    }
}
