//! Secrets: `stringData` folded into `data`, base64 checked on decoding,
//! `type` defaulted to `Opaque` and kept on update.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::apiserver::errors::{ApiError, ApiResult, FieldError};
use crate::apiserver::resources::ResourceType;
use crate::apiserver::resources::{self, Column};
use crate::apiserver::strategy::Strategy;
use crate::apiserver::validation;

/// Core `v1` Secret.
#[derive(Debug)]
pub struct Secret;

/// Refuse values of `field` that are not base64, as Go's decoding words it.
pub fn check_base64(obj: &Value, field: &str, kind: &str) -> ApiResult<()> {
    for (k, v) in obj[field].as_object().into_iter().flatten() {
        if v.as_str().is_none_or(|s| STANDARD.decode(s).is_err()) {
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"v1\" cannot be handled as a {kind}: illegal base64 data at input byte 0 (key {k:?})"
            )));
        }
    }
    Ok(())
}

impl Strategy for Secret {
    fn field_labels(&self) -> &'static [&'static str] {
        &["type"]
    }

    fn decode(&self, _t: &ResourceType, obj: &mut Value) -> ApiResult<()> {
        let string_data = obj.as_object_mut().and_then(|m| m.remove("stringData"));
        if let Some(Value::Object(sd)) = string_data {
            let mut data: Map<String, Value> =
                obj.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
            for (k, v) in sd {
                data.insert(k, Value::String(STANDARD.encode(v.as_str().unwrap_or_default())));
            }
            obj["data"] = Value::Object(data);
        }
        check_base64(obj, "data", "Secret")
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        if obj.get("type").is_none_or(Value::is_null) {
            obj["type"] = json!("Opaque");
        }
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        if new.get("type").is_none_or(Value::is_null) {
            new["type"] = old["type"].clone();
        }
    }

    fn validate(&self, _t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        validation::secret(obj, None)
    }

    fn validate_update(&self, _t: &ResourceType, new: &Value, old: &Value) -> Vec<FieldError> {
        validation::secret(new, Some(old))
    }
}

/// The Secret type.
pub fn resource() -> ResourceType {
    let string_map = resources::string_map;
    ResourceType::builtin("", "v1", "secrets", "Secret", true, &[])
        .with_schema(resources::object(json!({"data": string_map(), "stringData": string_map(), "type": {"type": "string"}, "immutable": {"type": "boolean"}})))
        .with_columns(vec![
            Column::new("Type", "string", ".type"),
            Column::new("Data", "integer", "@data"),
            Column::new("Age", "date", ".metadata.creationTimestamp"),
        ])
}
