//! ConfigMaps: `binaryData` checked on decoding, keys, size, `immutable`.

use serde_json::Value;

use super::secret::check_base64;
use crate::apiserver::errors::{ApiResult, FieldError};
use crate::apiserver::resources::ResourceType;
use crate::apiserver::resources::{self, Column};
use crate::apiserver::strategy::Strategy;
use crate::apiserver::validation;
use serde_json::json;

/// Core `v1` ConfigMap.
#[derive(Debug)]
pub struct ConfigMap;

impl Strategy for ConfigMap {
    fn decode(&self, _t: &ResourceType, obj: &mut Value) -> ApiResult<()> {
        check_base64(obj, "binaryData", "ConfigMap")
    }

    fn validate(&self, _t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        validation::config_map(obj, None)
    }

    fn validate_update(&self, _t: &ResourceType, new: &Value, old: &Value) -> Vec<FieldError> {
        validation::config_map(new, Some(old))
    }
}

/// The ConfigMap type.
pub fn resource() -> ResourceType {
    let string_map = resources::string_map;
    ResourceType::builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"])
        .with_schema(resources::object(
            json!({"data": string_map(), "binaryData": string_map(), "immutable": {"type": "boolean"}}),
        ))
        .with_columns(vec![
            Column::new("Data", "integer", "@data"),
            Column::new("Age", "date", ".metadata.creationTimestamp"),
        ])
}
