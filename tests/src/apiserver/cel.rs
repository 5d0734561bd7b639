//! `x-kubernetes-validations`: CEL rules evaluated with the `cel` crate, at
//! the schema node that declares them, with `self` bound to the value there
//! and, for transition rules, `oldSelf` to the old object's value at the same
//! place (properties and map-list items are correlated; a transition rule is
//! skipped where there is no old value, as Kubernetes does).

use std::collections::HashMap;
use std::sync::Arc;

use cel::{Context, Program, Value as Cel};
use serde_json::Value;

use super::errors::{FieldError, json_type};
use super::schema::{ListType, Rule, Schema};

/// A JSON value as CEL sees it, typed by its schema (integers are `int`).
pub fn to_cel(v: &Value, s: Option<&Schema>) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => {
            let wants_float = s.and_then(|s| s.type_.as_deref()) == Some("number");
            match (n.as_i64(), wants_float) {
                (Some(i), false) => Cel::Int(i),
                _ => Cel::Float(n.as_f64().unwrap_or_default()),
            }
        }
        Value::String(t) => Cel::String(Arc::new(t.clone())),
        Value::Array(items) => {
            let item = s.and_then(|s| s.items.as_deref());
            Cel::List(Arc::new(items.iter().map(|x| to_cel(x, item)).collect()))
        }
        Value::Object(m) => {
            let map: HashMap<String, Cel> =
                m.iter().map(|(k, x)| (k.clone(), to_cel(x, s.and_then(|s| s.field(k))))).collect();
            map.into()
        }
    }
}

/// The root object as rules see it: `metadata` holds only `name` and
/// `generateName`.
fn root_view(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(meta) = obj.get("metadata") {
        let mut m = serde_json::Map::new();
        for k in ["name", "generateName"] {
            if let Some(x) = meta.get(k) {
                m.insert(k.into(), x.clone());
            }
        }
        v["metadata"] = Value::Object(m);
    }
    v
}

/// Evaluate every rule of `schema` over `obj` (and `old`, on update).
pub fn validate(obj: &Value, old: Option<&Value>, schema: &Schema) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let view = root_view(obj);
    let old_view = old.map(root_view);
    walk(&view, old_view.as_ref(), schema, "", &mut errs);
    errs
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn walk(v: &Value, old: Option<&Value>, s: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    if v.is_null() {
        return;
    }
    for rule in &s.rules {
        if rule.is_transition() && old.is_none() {
            continue;
        }
        if let Some(e) = check(rule, v, old, s, path) {
            errs.push(e);
        }
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if let Some(child) = s.properties.get(k).or(s.additional.as_deref()) {
                    let old_x = old.and_then(|o| o.get(k));
                    walk(x, old_x, child, &join(path, k), errs);
                }
            }
        }
        Value::Array(items) => {
            let Some(item) = s.items.as_deref() else { return };
            for (i, x) in items.iter().enumerate() {
                let old_x = match (&s.list_type, old.and_then(Value::as_array)) {
                    (ListType::Map(keys), Some(olds)) => {
                        olds.iter().find(|o| keys.iter().all(|k| o.get(k) == x.get(k)))
                    }
                    (ListType::Set, Some(olds)) => olds.iter().find(|o| *o == x),
                    _ => None,
                };
                walk(x, old_x, item, &format!("{path}[{i}]"), errs);
            }
        }
        _ => {}
    }
}

/// One rule: `None` when it holds.
fn check(rule: &Rule, v: &Value, old: Option<&Value>, s: &Schema, path: &str) -> Option<FieldError> {
    let program = match Program::compile(&rule.rule) {
        Ok(p) => p,
        Err(e) => {
            return Some(FieldError::invalid_typed(path, json_type(v), format!("compilation failed: {e}")));
        }
    };
    let mut ctx = Context::default();
    ctx.add_variable_from_value("self", to_cel(v, Some(s)));
    if let Some(o) = old {
        ctx.add_variable_from_value("oldSelf", to_cel(o, Some(s)));
    }
    let outcome = program.execute(&ctx);
    let message = match outcome {
        Ok(Cel::Bool(true)) => return None,
        Ok(Cel::Bool(false)) => failure_message(rule, &ctx),
        Ok(other) => format!("rule did not evaluate to a bool: {other:?}"),
        Err(e) => format!("rule evaluation failed: {e}"),
    };
    let field = match &rule.field_path {
        Some(fp) => format!("{path}{}", if path.is_empty() { fp.trim_start_matches('.') } else { fp }),
        None => path.to_owned(),
    };
    Some(match rule.reason.as_deref() {
        Some("FieldValueForbidden") => FieldError::forbidden(field, message),
        Some("FieldValueRequired") => FieldError::required(field, message),
        Some("FieldValueDuplicate") => FieldError {
            kind: "FieldValueDuplicate",
            field,
            body: format!("Duplicate value: {:?}: {message}", json_type(v)),
        },
        _ => FieldError::invalid_typed(field, json_type(v), message),
    })
}

fn failure_message(rule: &Rule, ctx: &Context<'_, '_>) -> String {
    if let Some(expr) = &rule.message_expression
        && let Ok(p) = Program::compile(expr)
        && let Ok(Cel::String(s)) = p.execute(ctx)
        && !s.trim().is_empty()
    {
        return s.trim().to_owned();
    }
    rule.message.clone().unwrap_or_else(|| format!("failed rule: {}", rule.rule))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Schema {
        Schema::parse(&json!({
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.metadata.name.size() <= 63", "message": "name must be at most 63 characters"}
            ],
            "properties": {"spec": {"type": "object", "properties": {
                "secretName": {"type": "string", "x-kubernetes-validations": [
                    {"rule": "self == oldSelf", "message": "secretName is immutable"}
                ]},
                "maxKeys": {"type": "integer", "x-kubernetes-validations": [
                    {"rule": "self >= 1", "messageExpression": "'maxKeys must be at least 1, not ' + string(self)"}
                ]}
            }}}
        }))
    }

    #[test]
    fn rules_transition_rules_and_messages() {
        let s = schema();
        let long = "n".repeat(64);
        let obj = json!({"metadata": {"name": long, "labels": {"x": "y"}}, "spec": {"secretName": "a", "maxKeys": 0}});
        let errs: Vec<String> = validate(&obj, None, &s).iter().map(FieldError::message).collect();
        assert_eq!(
            errs,
            [
                "Invalid value: \"object\": name must be at most 63 characters",
                "spec.maxKeys: Invalid value: \"integer\": maxKeys must be at least 1, not 0",
            ]
        );
        let old = json!({"metadata": {"name": "x"}, "spec": {"secretName": "b", "maxKeys": 2}});
        let new = json!({"metadata": {"name": "x"}, "spec": {"secretName": "a", "maxKeys": 2}});
        let errs: Vec<String> = validate(&new, Some(&old), &s).iter().map(FieldError::message).collect();
        assert_eq!(errs, ["spec.secretName: Invalid value: \"string\": secretName is immutable"]);
        assert!(validate(&new, None, &s).is_empty(), "no transition rule on create");
    }
}
