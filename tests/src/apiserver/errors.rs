//! API errors as kube-apiserver renders them: a `metav1.Status` with a
//! reason, a code and, for validation, `details.causes` worded like
//! apimachinery's `field.Error`.

use serde_json::{Value, json};

/// One validation error of one field (`field.Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`,
    /// `FieldValueNotSupported`, `FieldValueTooLong`, `FieldValueDuplicate`,
    /// `FieldValueTypeInvalid`, `FieldValueTooMany`.
    pub kind: &'static str,
    /// The field's path (`metadata.labels`, `spec.rotation.every`).
    pub field: String,
    /// The message after the field: `Invalid value: "x": must be ...`.
    pub body: String,
}

/// How a value is shown in `Invalid value: ...`, as `field.Error` does:
/// strings quoted, numbers and booleans bare, anything else as JSON.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

impl FieldError {
    /// `field: Invalid value: VALUE: detail`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> Self {
        let detail = detail.as_ref();
        let body = if detail.is_empty() {
            format!("Invalid value: {}", show(value))
        } else {
            format!("Invalid value: {}: {detail}", show(value))
        };
        FieldError { kind: "FieldValueInvalid", field: field.into(), body }
    }

    /// `field: Invalid value: "TYPE": detail` (CEL rule failures show the
    /// value's type, never the value).
    pub fn invalid_typed(field: impl Into<String>, type_name: &str, detail: impl AsRef<str>) -> Self {
        FieldError {
            kind: "FieldValueInvalid",
            field: field.into(),
            body: format!("Invalid value: {type_name:?}: {}", detail.as_ref()),
        }
    }

    /// `field: Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: impl AsRef<str>) -> Self {
        let detail = detail.as_ref();
        let body =
            if detail.is_empty() { "Required value".to_owned() } else { format!("Required value: {detail}") };
        FieldError { kind: "FieldValueRequired", field: field.into(), body }
    }

    /// `field: Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: impl AsRef<str>) -> Self {
        FieldError {
            kind: "FieldValueForbidden",
            field: field.into(),
            body: format!("Forbidden: {}", detail.as_ref()),
        }
    }

    /// `field: Unsupported value: VALUE: supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            kind: "FieldValueNotSupported",
            field: field.into(),
            body: format!("Unsupported value: {}: supported values: {}", show(value), list.join(", ")),
        }
    }

    /// `field: Too long: may not be more than N bytes`.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        FieldError {
            kind: "FieldValueTooLong",
            field: field.into(),
            body: format!("Too long: may not be more than {max} {unit}"),
        }
    }

    /// `field: Too long: detail` (a custom detail).
    pub fn too_long_detail(field: impl Into<String>, detail: impl AsRef<str>) -> Self {
        FieldError {
            kind: "FieldValueTooLong",
            field: field.into(),
            body: format!("Too long: {}", detail.as_ref()),
        }
    }

    /// `field: Too many: N: must have at most M items`.
    pub fn too_many(field: impl Into<String>, have: usize, max: usize) -> Self {
        let unit = if max == 1 { "item" } else { "items" };
        FieldError {
            kind: "FieldValueTooMany",
            field: field.into(),
            body: format!("Too many: {have}: must have at most {max} {unit}"),
        }
    }

    /// `field: Duplicate value: VALUE`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        FieldError {
            kind: "FieldValueDuplicate",
            field: field.into(),
            body: format!("Duplicate value: {}", show(value)),
        }
    }

    /// `field: Invalid value: VALUE: field is immutable`.
    pub fn immutable(field: impl Into<String>, value: &Value) -> Self {
        FieldError::invalid(field, value, "field is immutable")
    }

    /// `field: Invalid value: VALUE: detail`, of type `FieldValueTypeInvalid`.
    pub fn type_invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> Self {
        FieldError {
            kind: "FieldValueTypeInvalid",
            field: field.into(),
            body: format!("Invalid value: {}: {}", show(value), detail.as_ref()),
        }
    }

    /// The whole message: `field: body`.
    pub fn message(&self) -> String {
        if self.field.is_empty() { self.body.clone() } else { format!("{}: {}", self.field, self.body) }
    }
}

/// A JSON value's type as OpenAPI names it.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// An API error, rendered as a `metav1.Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `BadRequest`, `Gone`, ...
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details` of the Status, when there are any.
    pub details: Option<Value>,
    /// `metadata.continue` of the Status (an expired continue token's
    /// inconsistent successor).
    pub list_continue: Option<String>,
}

impl ApiError {
    /// An error without details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None, list_continue: None }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// 404 for an object (`secrets "x" not found`), with details.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified(resource, group);
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{qualified} \"{name}\" not found"),
            details: Some(json!({"name": name, "group": group, "kind": resource})),
            list_continue: None,
        }
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", qualified(resource, group)),
            details: Some(json!({"name": name, "group": group, "kind": resource})),
            list_continue: None,
        }
    }

    /// 409 Conflict for a stale resourceVersion.
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(resource, group)
            ),
            details: Some(json!({"name": name, "group": group, "kind": resource})),
            list_continue: None,
        }
    }

    /// 422 Invalid, as `NewInvalid(qualifiedKind, name, errs)` words it:
    /// `Kind.group "name" is invalid: err` or `... is invalid: [err1, err2]`.
    pub fn invalid(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> Self {
        let qualified_kind = if group.is_empty() { kind.to_owned() } else { format!("{kind}.{group}") };
        let messages: Vec<String> = errs.iter().map(FieldError::message).collect();
        let joined =
            if messages.len() == 1 { messages[0].clone() } else { format!("[{}]", messages.join(", ")) };
        let causes: Vec<Value> =
            errs.iter().map(|e| json!({"reason": e.kind, "message": e.body, "field": e.field})).collect();
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{qualified_kind} \"{name}\" is invalid: {joined}"),
            details: Some(json!({"name": name, "group": group, "kind": kind, "causes": causes})),
            list_continue: None,
        }
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>, details: Option<Value>) -> Self {
        ApiError { code: 403, reason: "Forbidden", message: message.into(), details, list_continue: None }
    }

    /// The `metav1.Status` body.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        if let Some(c) = &self.list_continue {
            s["metadata"]["continue"] = json!(c);
        }
        s
    }
}

/// `resource` or `resource.group`.
pub fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() { resource.to_owned() } else { format!("{resource}.{group}") }
}

/// Result alias.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_is_worded_like_kube_apiserver() {
        let one = ApiError::invalid(
            "",
            "Secret",
            "s",
            &[FieldError::invalid("metadata.labels", &json!("x"), "must be no more than 63 characters")],
        );
        assert_eq!(
            one.message,
            "Secret \"s\" is invalid: metadata.labels: Invalid value: \"x\": must be no more than 63 characters"
        );
        assert_eq!(one.status()["details"]["causes"][0]["field"], "metadata.labels");
        let two = ApiError::invalid(
            "encstr.io",
            "SecretKeyring",
            "k",
            &[FieldError::required("spec.a", ""), FieldError::forbidden("spec.b", "no")],
        );
        assert_eq!(
            two.message,
            "SecretKeyring.encstr.io \"k\" is invalid: [spec.a: Required value, spec.b: Forbidden: no]"
        );
    }
}
