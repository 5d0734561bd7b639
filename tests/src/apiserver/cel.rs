//! `x-kubernetes-validations`: CEL rules evaluated with the `cel` crate, at
//! the schema node that declares them, with `self` bound to the value there
//! and, for transition rules, `oldSelf` to the old object's value at the same
//! place (properties and map-list items are correlated; a transition rule is
//! skipped where there is no old value, as Kubernetes does).

use std::collections::HashMap;
use std::sync::Arc;

use cel::{Context, Program, Value as Cel};
use serde_json::{Value, json};

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

/// The reasons a rule may give (`supportedValidationReason`).
const REASONS: [&str; 4] =
    ["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"];

/// Whether `path` (`.a.b`, `['a']`) names a field of the schema node `v`.
fn field_path_valid(v: &Value, path: &str) -> bool {
    let mut node = v;
    let mut rest = path.trim();
    while !rest.is_empty() {
        let (name, after) = if let Some(r) = rest.strip_prefix("['") {
            let Some(end) = r.find("']") else { return false };
            (&r[..end], &r[end + 2..])
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            (&r[..end], &r[end..])
        } else {
            return false;
        };
        if name.is_empty() {
            return false;
        }
        node = match node["properties"]
            .get(name)
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
        {
            Some(n) => n,
            None => return false,
        };
        rest = after;
    }
    true
}

/// Errors in a CRD schema's `x-kubernetes-validations` (as the CRD
/// validation reports them): empty rules, messages, reasons, field paths,
/// and rules or message expressions that do not compile.
pub fn rule_definition_errors(v: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(rules) = v["x-kubernetes-validations"].as_array() {
        for (i, r) in rules.iter().enumerate() {
            let at = format!("{path}.x-kubernetes-validations[{i}]");
            let rule = r["rule"].as_str().unwrap_or_default().trim();
            let message = r["message"].as_str();
            if rule.is_empty() {
                errs.push(FieldError::required(format!("{at}.rule"), "rule is not specified"));
            } else if message.is_some_and(|m| m.trim().is_empty()) {
                errs.push(FieldError::invalid(
                    format!("{at}.message"),
                    &r["message"],
                    "must be non-empty if specified",
                ));
            } else if message.is_some_and(|m| m.trim().contains('\n')) {
                errs.push(FieldError::invalid(
                    format!("{at}.message"),
                    &r["message"],
                    "must not contain line breaks",
                ));
            } else if rule.contains('\n') && message.is_none_or(|m| m.trim().is_empty()) {
                errs.push(FieldError::required(
                    format!("{at}.message"),
                    "message must be specified if rule contains line breaks",
                ));
            }
            if let Some(reason) = r["reason"].as_str()
                && !REASONS.contains(&reason)
            {
                errs.push(FieldError::not_supported(format!("{at}.reason"), &r["reason"], &REASONS));
            }
            if let Some(fp) = r["fieldPath"].as_str()
                && (fp.trim().is_empty() || fp.contains('\n') || !field_path_valid(v, fp))
            {
                errs.push(FieldError::invalid(
                    format!("{at}.fieldPath"),
                    &r["fieldPath"],
                    "must be a valid path",
                ));
            }
            if !rule.is_empty()
                && let Err(e) = Program::compile(rule)
            {
                errs.push(FieldError::invalid(
                    format!("{at}.rule"),
                    &json!(rule),
                    format!("compilation failed: {e}"),
                ));
            }
            if let Some(expr) = r["messageExpression"].as_str()
                && let Err(e) = Program::compile(expr)
            {
                errs.push(FieldError::invalid(
                    format!("{at}.messageExpression"),
                    &json!(expr),
                    format!("messageExpression compilation failed: {e}"),
                ));
            }
        }
    }
    for (k, child) in v["properties"].as_object().into_iter().flatten() {
        errs.extend(rule_definition_errors(child, &format!("{path}.properties[{k}]")));
    }
    for key in ["items", "additionalProperties"] {
        if v[key].is_object() {
            errs.extend(rule_definition_errors(&v[key], &format!("{path}.{key}")));
        }
    }
    errs
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

    #[test]
    fn rule_definitions_are_checked_when_the_crd_is_written() {
        let schema = json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.metadata.name.size() <= 63", "reason": "FieldValueTooLong", "fieldPath": ".metadata.name"},
            {"rule": "self.spec.x ==", "message": "m"}],
            "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self.x != ''", "fieldPath": ".x"}, {"rule": "true", "fieldPath": ".nope"}]}}});
        let errs: Vec<String> =
            rule_definition_errors(&schema, "s").iter().map(FieldError::message).collect();
        assert!(
            errs[0].starts_with(
                "s.x-kubernetes-validations[0].reason: Unsupported value: \"FieldValueTooLong\""
            ),
            "{errs:?}"
        );
        assert!(errs[1].starts_with("s.x-kubernetes-validations[0].fieldPath: Invalid value: \".metadata.name\": must be a valid path"), "{errs:?}");
        assert!(
            errs[2].starts_with(
                "s.x-kubernetes-validations[1].rule: Invalid value: \"self.spec.x ==\": compilation failed"
            ),
            "{errs:?}"
        );
        assert_eq!(
            errs[3],
            "s.properties[spec].x-kubernetes-validations[1].fieldPath: Invalid value: \".nope\": must be a valid path"
        );
        assert_eq!(errs.len(), 4);
    }
}
