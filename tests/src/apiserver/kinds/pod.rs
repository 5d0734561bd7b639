//! Pods: a new pod is `Pending`; validation of containers, volumes and the
//! immutable spec; deletes answer with the pod.

use serde_json::{Value, json};

use crate::apiserver::errors::FieldError;
use crate::apiserver::resources::{self, Column, ResourceType};
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

/// A container: the fields the product uses, with their list semantics.
fn container() -> Value {
    let (map_list, preserve) = (resources::map_list, resources::preserve);
    json!({"type": "object", "properties": {
        "name": {"type": "string"}, "image": {"type": "string"}, "imagePullPolicy": {"type": "string"},
        "command": {"type": "array", "items": {"type": "string"}}, "args": {"type": "array", "items": {"type": "string"}},
        "workingDir": {"type": "string"}, "restartPolicy": {"type": "string"},
        "ports": map_list(&["containerPort", "protocol"], json!({"type": "object", "properties": {
            "name": {"type": "string"}, "containerPort": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"},
            "hostPort": {"type": "integer"}, "hostIP": {"type": "string"}}})),
        "env": map_list(&["name"], json!({"type": "object", "properties": {
            "name": {"type": "string"}, "value": {"type": "string"}, "valueFrom": preserve()}})),
        "envFrom": {"type": "array", "items": preserve()},
        "volumeMounts": map_list(&["mountPath"], json!({"type": "object", "properties": {
            "name": {"type": "string"}, "mountPath": {"type": "string"}, "readOnly": {"type": "boolean"},
            "subPath": {"type": "string"}, "subPathExpr": {"type": "string"}, "mountPropagation": {"type": "string"},
            "recursiveReadOnly": {"type": "string"}}})),
        "resources": preserve(), "securityContext": preserve(),
        "livenessProbe": preserve(), "readinessProbe": preserve(), "startupProbe": preserve(),
        "lifecycle": preserve(), "terminationMessagePath": {"type": "string"},
        "terminationMessagePolicy": {"type": "string"}, "stdin": {"type": "boolean"}, "tty": {"type": "boolean"},
        "volumeDevices": {"type": "array", "items": preserve()}, "resizePolicy": {"type": "array", "items": preserve()}
    }})
}

/// A pod spec: the fields the product uses, with their list semantics.
pub fn pod_spec() -> Value {
    let (map_list, preserve) = (resources::map_list, resources::preserve);
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
        "containers": map_list(&["name"], container()),
        "initContainers": map_list(&["name"], container()),
        "ephemeralContainers": map_list(&["name"], container()),
        "volumes": map_list(&["name"], json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"name": {"type": "string"}}})),
        "imagePullSecrets": map_list(&["name"], json!({"type": "object", "properties": {"name": {"type": "string"}}})),
        "tolerations": {"type": "array", "items": preserve()},
        "shareProcessNamespace": {"type": "boolean"}, "automountServiceAccountToken": {"type": "boolean"},
        "serviceAccountName": {"type": "string"}, "securityContext": preserve()
    }})
}

/// The Pod type.
pub fn resource() -> ResourceType {
    let mut pods = ResourceType::builtin("", "v1", "pods", "Pod", true, &["po"])
        .with_schema(resources::object(json!({"spec": pod_spec(), "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"conditions": resources::conditions()}}})))
        .with_columns(vec![
            Column::new("Ready", "string", "@ready"),
            Column::new("Status", "string", ".status.phase"),
            Column::new("Restarts", "integer", "@restarts"),
            Column::new("Age", "date", ".metadata.creationTimestamp"),
        ]);
    pods.status = true;
    pods.categories = vec!["all".into()];
    pods
}
