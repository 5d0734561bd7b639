//! Mutating and validating webhook configurations: upstream's defaults
//! and validation (they never pass through webhooks themselves; see
//! `admission.rs`).

use serde_json::{Value, json};

use crate::apiserver::errors::FieldError;
use crate::apiserver::resources::ResourceType;
use crate::apiserver::resources::{self, Column};
use crate::apiserver::strategy::Strategy;
use crate::apiserver::validation;

/// Their API group.
pub const GROUP: &str = "admissionregistration.k8s.io";

/// `admissionregistration.k8s.io/v1` Mutating- and (`!mutating`)
/// ValidatingWebhookConfiguration.
#[derive(Debug)]
pub struct WebhookConfiguration {
    /// Mutating webhooks (with a `reinvocationPolicy`).
    pub mutating: bool,
}

impl Strategy for WebhookConfiguration {
    fn skips_webhooks(&self) -> bool {
        true
    }

    fn defaults(&self, _t: &ResourceType, obj: &mut Value) {
        for w in obj["webhooks"].as_array_mut().into_iter().flatten() {
            let Some(m) = w.as_object_mut() else { continue };
            let mut default = |k: &str, v: Value| {
                if m.get(k).is_none_or(Value::is_null) {
                    m.insert(k.into(), v);
                }
            };
            default("failurePolicy", json!("Fail"));
            default("matchPolicy", json!("Equivalent"));
            default("namespaceSelector", json!({}));
            default("objectSelector", json!({}));
            default("timeoutSeconds", json!(10));
            if self.mutating {
                default("reinvocationPolicy", json!("Never"));
            }
            if let Some(port) =
                m.get_mut("clientConfig").and_then(|c| c.get_mut("service")).and_then(Value::as_object_mut)
                && port.get("port").is_none_or(Value::is_null)
            {
                port.insert("port".into(), json!(443));
            }
            for rule in m.get_mut("rules").and_then(Value::as_array_mut).into_iter().flatten() {
                if rule.get("scope").is_none_or(Value::is_null) {
                    rule["scope"] = json!("*");
                }
            }
        }
    }

    fn validate(&self, t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        validation::webhook_configuration(&t.kind, obj)
    }
}

fn webhooks_schema(mutating: bool) -> Value {
    let preserve = resources::preserve;
    let mut item = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "clientConfig": {"type": "object", "properties": {
            "url": {"type": "string"}, "caBundle": {"type": "string", "format": "byte"},
            "service": {"type": "object", "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "path": {"type": "string"}, "port": {"type": "integer"}}}}},
        "rules": {"type": "array", "items": {"type": "object", "properties": {
            "operations": {"type": "array", "items": {"type": "string"}}, "apiGroups": {"type": "array", "items": {"type": "string"}},
            "apiVersions": {"type": "array", "items": {"type": "string"}}, "resources": {"type": "array", "items": {"type": "string"}},
            "scope": {"type": "string"}}}},
        "failurePolicy": {"type": "string"}, "matchPolicy": {"type": "string"},
        "namespaceSelector": preserve(), "objectSelector": preserve(), "sideEffects": {"type": "string"},
        "timeoutSeconds": {"type": "integer"}, "admissionReviewVersions": {"type": "array", "items": {"type": "string"}},
        "matchConditions": {"type": "array", "items": preserve()}
    }});
    if mutating {
        item["properties"]["reinvocationPolicy"] = json!({"type": "string"});
    }
    resources::map_list(&["name"], item)
}

fn configuration_type(plural: &str, kind: &str, mutating: bool) -> ResourceType {
    ResourceType::builtin(GROUP, "v1", plural, kind, false, &[])
        .with_schema(resources::object(json!({"webhooks": webhooks_schema(mutating)})))
        .with_columns(vec![
            Column::new("Webhooks", "integer", "@webhooks"),
            Column::new("Age", "date", ".metadata.creationTimestamp"),
        ])
}

/// The MutatingWebhookConfiguration type.
pub fn mutating() -> ResourceType {
    configuration_type("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", true)
}

/// The ValidatingWebhookConfiguration type.
pub fn validating() -> ResourceType {
    configuration_type("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", false)
}
