//! Pods: a new pod is `Pending`; validation of containers, volumes and the
//! immutable spec; deletes answer with the pod.

use serde_json::{Value, json};

use crate::apiserver::errors::FieldError;
use crate::apiserver::resources::ResourceType;
use crate::apiserver::strategy::Strategy;
use crate::apiserver::validation;

/// Core `v1` Pod.
#[derive(Debug)]
pub struct Pod;

impl Strategy for Pod {
    fn field_labels(&self) -> &'static [&'static str] {
        &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
        ]
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
    }

    fn validate(&self, _t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        validation::pod(obj, None)
    }

    fn validate_update(&self, _t: &ResourceType, new: &Value, old: &Value) -> Vec<FieldError> {
        validation::pod(new, Some(old))
    }

    fn delete_returns_object(&self) -> bool {
        true
    }
}
