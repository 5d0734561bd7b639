//! Leases (`coordination.k8s.io/v1`): validation of the spec.

use serde_json::Value;

use crate::apiserver::errors::FieldError;
use crate::apiserver::resources::ResourceType;
use crate::apiserver::resources::{self, Column};
use crate::apiserver::strategy::Strategy;
use crate::apiserver::validation;
use serde_json::json;

/// `coordination.k8s.io/v1` Lease.
#[derive(Debug)]
pub struct Lease;

impl Strategy for Lease {
    fn validate(&self, _t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        validation::lease(obj)
    }
}

/// The Lease type.
pub fn resource() -> ResourceType {
    ResourceType::builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[])
        .with_schema(resources::object(json!({"spec": {"type": "object", "properties": {
            "holderIdentity": {"type": "string"}, "leaseDurationSeconds": {"type": "integer"},
            "acquireTime": {"type": "string"}, "renewTime": {"type": "string"}, "leaseTransitions": {"type": "integer"},
            "strategy": {"type": "string"}, "preferredHolder": {"type": "string"}}}})))
        .with_columns(vec![Column::new("Holder", "string", ".spec.holderIdentity"), Column::new("Age", "date", ".metadata.creationTimestamp")])
}
