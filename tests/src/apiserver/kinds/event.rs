//! Events: one store for core `v1` and `events.k8s.io/v1` events, converted
//! between the versions; both are validated as core events.

use serde_json::Value;

use crate::apiserver::errors::FieldError;
use crate::apiserver::resources::ResourceType;
use crate::apiserver::strategy::Strategy;
use crate::apiserver::validation;

/// `events.k8s.io/v1` fields and the core fields they are stored as.
const V1_TO_CORE: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(mut obj: Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) -> Value {
    if let Some(m) = obj.as_object_mut() {
        for (from, to) in pairs {
            if let Some(v) = m.remove(from) {
                m.insert(to.into(), v);
            }
        }
    }
    obj
}

/// The field selector labels of events (both versions use the core names).
pub const FIELD_LABELS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// Core `v1` Event.
#[derive(Debug)]
pub struct CoreEvent;

impl Strategy for CoreEvent {
    fn field_labels(&self) -> &'static [&'static str] {
        FIELD_LABELS
    }

    fn validate(&self, _t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        validation::event(obj, None)
    }

    fn validate_update(&self, _t: &ResourceType, new: &Value, old: &Value) -> Vec<FieldError> {
        validation::event(new, Some(old))
    }
}

/// `events.k8s.io/v1` Event, stored as a core event.
#[derive(Debug)]
pub struct EventsV1;

impl Strategy for EventsV1 {
    fn field_labels(&self) -> &'static [&'static str] {
        FIELD_LABELS
    }

    fn storage_form(&self, obj: Value) -> Value {
        rename(obj, V1_TO_CORE.iter().copied())
    }

    fn served_form(&self, obj: Value) -> Value {
        rename(obj, V1_TO_CORE.iter().map(|(v1, core)| (*core, *v1)))
    }

    fn validate(&self, t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        CoreEvent.validate(t, obj)
    }

    fn validate_update(&self, t: &ResourceType, new: &Value, old: &Value) -> Vec<FieldError> {
        CoreEvent.validate_update(t, new, old)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::apiserver::strategy::{from_storage, to_storage};

    #[test]
    fn events_convert_between_versions() {
        let types = crate::apiserver::resources::builtins();
        let ev = types.iter().find(|t| t.group == "events.k8s.io").unwrap();
        let stored =
            to_storage(ev, json!({"regarding": {"name": "x"}, "note": "hi", "reportingController": "c"}));
        assert_eq!(
            stored,
            json!({"involvedObject": {"name": "x"}, "message": "hi", "reportingComponent": "c"})
        );
        let served = from_storage(ev, stored);
        assert_eq!(served["note"], "hi");
        assert_eq!(served["apiVersion"], "events.k8s.io/v1");
    }
}
