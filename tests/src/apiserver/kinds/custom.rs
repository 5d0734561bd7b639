//! Custom resources: the apiextensions pipeline (schema defaults, schema
//! validation, CEL rules with transition rules), no unconditional updates
//! or strategic merge, a generation bump on deletion, no creates while
//! their CRD terminates.

use serde_json::{Value, json};

use super::crd;
use crate::apiserver::errors::{ApiError, ApiResult, FieldError};
use crate::apiserver::resources::ResourceType;
use crate::apiserver::store::Store;
use crate::apiserver::strategy::Strategy;
use crate::apiserver::{cel, schema};

/// Every custom resource.
#[derive(Debug)]
pub struct CustomResource;

/// Schema and CEL validation (`old` for transition rules).
fn validate(t: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut body = obj.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
    }
    let mut errs = Vec::new();
    let mut no_meta = (*t.schema).clone();
    no_meta.properties.remove("metadata");
    no_meta.required.retain(|r| r != "metadata");
    schema::validate(&body, &no_meta, "", &mut errs);
    errs.extend(cel::validate(obj, old, &t.schema));
    errs
}

impl Strategy for CustomResource {
    fn defaults(&self, t: &ResourceType, obj: &mut Value) {
        schema::apply_defaults(obj, &t.schema);
    }

    fn validate(&self, t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        validate(t, obj, None)
    }

    fn validate_update(&self, t: &ResourceType, new: &Value, old: &Value) -> Vec<FieldError> {
        validate(t, new, Some(old))
    }

    fn allow_unconditional_update(&self) -> bool {
        false
    }

    fn allow_strategic_merge(&self) -> bool {
        false
    }

    fn admit_create(&self, store: &Store, t: &ResourceType) -> ApiResult<()> {
        let name = format!("{}.{}", t.plural, t.group);
        if store.raw(&crd::key(&name)).is_some_and(|c| c["metadata"]["deletionTimestamp"].is_string()) {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "create not allowed while custom resource definition is terminating",
            ));
        }
        Ok(())
    }

    fn prepare_for_delete(&self, obj: &mut Value, _now: &str) {
        // Setting deletionTimestamp bumps a custom resource's generation.
        let g = obj["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        obj["metadata"]["generation"] = json!(g);
    }

    fn delete_returns_object(&self) -> bool {
        true
    }
}
