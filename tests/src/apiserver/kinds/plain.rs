//! The kinds without behaviour of their own (Deployments, Services, PDBs,
//! NetworkPolicies): their types, and the strategy whose every hook is the
//! default.

use serde_json::json;

use super::pod::pod_spec;
use crate::apiserver::resources::{self, Column, ResourceType};
use crate::apiserver::strategy::Strategy;

/// Every hook's default.
#[derive(Debug)]
pub struct Plain;

impl Strategy for Plain {}

/// `apps/v1` Deployments.
pub fn deployments() -> ResourceType {
    let mut deployments = ResourceType::builtin("apps", "v1", "deployments", "Deployment", true, &["deploy"])
        .with_schema(resources::object(json!({
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
                "template": {"type": "object", "properties": {"metadata": resources::object_meta(), "spec": pod_spec()}}}},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"conditions": resources::conditions()}}
        })))
        .with_columns(vec![
            Column::new("Ready", "string", "@ready"),
            Column::new("Up-to-date", "integer", ".status.updatedReplicas"),
            Column::new("Available", "integer", ".status.availableReplicas"),
            Column::new("Age", "date", ".metadata.creationTimestamp"),
        ]);
    deployments.status = true;
    deployments.generation = true;
    deployments.categories = vec!["all".into()];
    deployments
}

/// Core `v1` Services.
pub fn services() -> ResourceType {
    let mut services = ResourceType::builtin("", "v1", "services", "Service", true, &["svc"])
        .with_schema(resources::object(
            json!({"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
            "ports": resources::map_list(&["port", "protocol"], resources::preserve())}}, "status": resources::preserve()}),
        ))
        .with_columns(vec![
            Column::new("Type", "string", ".spec.type"),
            Column::new("Cluster-IP", "string", ".spec.clusterIP"),
            Column::new("Age", "date", ".metadata.creationTimestamp"),
        ]);
    services.status = true;
    services.categories = vec!["all".into()];
    services
}

/// `policy/v1` PodDisruptionBudgets.
pub fn pod_disruption_budgets() -> ResourceType {
    ResourceType::builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"])
        .with_schema(resources::object(
            json!({"spec": resources::preserve(), "status": resources::preserve()}),
        ))
}

/// `networking.k8s.io/v1` NetworkPolicies.
pub fn network_policies() -> ResourceType {
    ResourceType::builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, &["netpol"])
        .with_schema(resources::object(json!({"spec": resources::preserve()})))
}
