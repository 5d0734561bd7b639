//! Leases (`coordination.k8s.io/v1`): validation of the spec.

use serde_json::Value;

use crate::apiserver::errors::FieldError;
use crate::apiserver::resources::ResourceType;
use crate::apiserver::strategy::Strategy;
use crate::apiserver::validation;

/// `coordination.k8s.io/v1` Lease.
#[derive(Debug)]
pub struct Lease;

impl Strategy for Lease {
    fn validate(&self, _t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        validation::lease(obj)
    }
}
