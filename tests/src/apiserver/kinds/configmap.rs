//! ConfigMaps: `binaryData` checked on decoding, keys, size, `immutable`.

use serde_json::Value;

use super::secret::check_base64;
use crate::apiserver::errors::{ApiResult, FieldError};
use crate::apiserver::resources::ResourceType;
use crate::apiserver::strategy::Strategy;
use crate::apiserver::validation;

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
