//! Strategic merge patch for the built-in kinds: lists the schema marks as
//! map lists merge by their key (`containers` by `name`, `ownerReferences`
//! by `uid`, ...), sets merge by value (`finalizers`), other lists are
//! replaced; and the directives `$patch` (`replace`, `delete`, `merge`),
//! `$setElementOrder/<field>`, `$retainKeys` and
//! `$deleteFromPrimitiveList/<field>` that `kubectl apply`, `edit`, `label`
//! and `annotate` send.

use serde_json::{Map, Value};

use super::schema::{ListType, Schema};

/// Apply a strategic merge patch to `orig`.
pub fn apply(orig: &mut Value, patch: &Value, schema: Option<&Schema>) -> Result<(), String> {
    match patch {
        Value::Object(p) => {
            if !orig.is_object() {
                *orig = Value::Object(Map::new());
            }
            merge_map(orig, p, schema)
        }
        other => {
            *orig = other.clone();
            Ok(())
        }
    }
}

fn merge_map(orig: &mut Value, p: &Map<String, Value>, s: Option<&Schema>) -> Result<(), String> {
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = p.clone();
            replaced.remove("$patch");
            *orig = Value::Object(strip_directives(&replaced));
            return Ok(());
        }
        Some("delete") => {
            *orig = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("Unknown patch type: {other}")),
    }
    let o = orig.as_object_mut().expect("an object");
    if let Some(keep) = p.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        o.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, pv) in p {
        if k.starts_with('$') {
            continue;
        }
        let child = s.and_then(|s| s.field(k));
        if pv.is_null() {
            o.remove(k);
            continue;
        }
        match (o.get_mut(k), pv) {
            (Some(ov @ Value::Object(_)), Value::Object(pm)) if !child.is_some_and(|c| c.atomic_map) => {
                merge_map(ov, pm, child)?;
                if ov.is_null() {
                    o.remove(k);
                }
            }
            (Some(Value::Array(ol)), Value::Array(pl))
                if child.is_some_and(|c| c.list_type != ListType::Atomic) =>
            {
                merge_list(ol, pl, child.expect("checked"))?;
            }
            _ => {
                let mut v = pv.clone();
                if let Value::Object(m) = &v {
                    v = Value::Object(strip_directives(m));
                }
                if let Value::Array(items) = &mut v {
                    items.retain(|x| x.get("$patch").is_none());
                }
                o.insert(k.clone(), v);
            }
        }
    }
    // Directives naming sibling fields.
    for (k, pv) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let gone: Vec<&Value> = pv.as_array().map(|a| a.iter().collect()).unwrap_or_default();
            if let Some(Value::Array(items)) = o.get_mut(field) {
                items.retain(|x| !gone.contains(&x));
            }
        }
    }
    for (k, pv) in p {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            let keys = s.and_then(|s| s.field(field)).map(|c| c.list_type.clone()).unwrap_or_default();
            if let (Some(Value::Array(items)), Some(order)) = (o.get_mut(field), pv.as_array()) {
                reorder(items, order, &keys);
            }
        }
    }
    Ok(())
}

fn strip_directives(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| {
            let v = match v {
                Value::Object(inner) => Value::Object(strip_directives(inner)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn merge_list(orig: &mut Vec<Value>, patch: &[Value], s: &Schema) -> Result<(), String> {
    if patch.iter().any(|x| x.get("$patch").and_then(Value::as_str) == Some("replace")) {
        *orig = patch.iter().filter(|x| x.get("$patch").is_none()).cloned().collect();
        return Ok(());
    }
    match &s.list_type {
        ListType::Set => {
            for x in patch {
                if !orig.contains(x) {
                    orig.push(x.clone());
                }
            }
        }
        ListType::Map(keys) => {
            let merge_key = keys.first().cloned().unwrap_or_default();
            let item_schema = s.items.as_deref();
            for x in patch {
                let key = x.get(&merge_key).cloned();
                let pos = key.as_ref().and_then(|k| orig.iter().position(|y| y.get(&merge_key) == Some(k)));
                let directive = x.get("$patch").and_then(Value::as_str);
                match (pos, directive) {
                    (Some(i), Some("delete")) => {
                        orig.remove(i);
                    }
                    (None, Some("delete")) => {}
                    (Some(i), _) => {
                        let pm = x.as_object().cloned().unwrap_or_default();
                        merge_map(&mut orig[i], &pm, item_schema)?;
                    }
                    (None, _) => {
                        let mut new = x.clone();
                        if let Value::Object(m) = &new {
                            new = Value::Object(strip_directives(m));
                        }
                        orig.push(new);
                    }
                }
            }
        }
        ListType::Atomic => *orig = patch.to_vec(),
    }
    Ok(())
}

/// `$setElementOrder`: the listed items first, in that order; the rest
/// after, as they were.
fn reorder(items: &mut Vec<Value>, order: &[Value], lt: &ListType) {
    let matches = |item: &Value, o: &Value| match lt {
        ListType::Map(keys) => keys.iter().filter(|k| o.get(*k).is_some()).all(|k| item.get(k) == o.get(k)),
        _ => item == o,
    };
    let mut rest = std::mem::take(items);
    for o in order {
        if let Some(i) = rest.iter().position(|x| matches(x, o)) {
            items.push(rest.remove(i));
        }
    }
    items.extend(rest);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod_schema() -> Schema {
        Schema::parse(&json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {
                "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "spec": {"type": "object", "properties": {
                "containers": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}, "image": {"type": "string"},
                        "args": {"type": "array", "items": {"type": "string"}}}}}}}}}))
    }

    #[test]
    fn merges_by_key_and_honours_directives() {
        let s = pod_schema();
        let mut pod = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x/a"]},
            "spec": {"containers": [{"name": "app", "image": "v1", "args": ["-x"]}, {"name": "side", "image": "s1"}]}});
        let patch = json!({
            "metadata": {"labels": {"b": null, "c": "3"}, "finalizers": ["x/b"]},
            "spec": {
                "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
                "containers": [{"name": "app", "image": "v2"}, {"name": "side", "$patch": "delete"}, {"name": "new", "image": "n"}]
            }
        });
        apply(&mut pod, &patch, Some(&s)).unwrap();
        assert_eq!(pod["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        assert_eq!(pod["metadata"]["finalizers"], json!(["x/a", "x/b"]));
        let names: Vec<&str> = pod["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["app", "new"]);
        assert_eq!(pod["spec"]["containers"][0]["image"], "v2");
        assert_eq!(pod["spec"]["containers"][0]["args"], json!(["-x"]), "merged, not replaced");
        apply(&mut pod, &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x/a"]}}), Some(&s))
            .unwrap();
        assert_eq!(pod["metadata"]["finalizers"], json!(["x/b"]));
        apply(&mut pod, &json!({"spec": {"$retainKeys": ["containers"], "containers": [{"$patch": "replace"}, {"name": "only", "image": "o"}]}}), Some(&s)).unwrap();
        assert_eq!(pod["spec"]["containers"], json!([{"name": "only", "image": "o"}]));
    }
}
