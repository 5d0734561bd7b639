//! Events: one store for core `v1` and `events.k8s.io/v1` events, converted
//! between the versions; both are validated as core events.

use serde_json::{Value, json};

use crate::apiserver::errors::FieldError;
use crate::apiserver::resources::ResourceType;
use crate::apiserver::resources::{self, Column};
use crate::apiserver::strategy::Strategy;
use crate::apiserver::validation;
use crate::apiserver::validation::NameRule;

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

fn columns() -> Vec<Column> {
    vec![
        Column::new("Last Seen", "string", "@lastSeen"),
        Column::new("Type", "string", ".type"),
        Column::new("Reason", "string", ".reason"),
        Column::new("Object", "string", "@involvedObject"),
        Column { priority: 1, ..Column::new("Subobject", "string", ".involvedObject.fieldPath") },
        Column { priority: 1, ..Column::new("Source", "string", "@source") },
        Column::new("Message", "string", ".message"),
        Column { priority: 1, ..Column::new("First Seen", "string", "@firstSeen") },
        Column { priority: 1, ..Column::new("Count", "integer", "@count") },
        Column { priority: 1, ..Column::new("Name", "string", ".metadata.name") },
    ]
}

fn object_reference() -> Value {
    json!({"type": "object", "properties": {
        "kind": {"type": "string"}, "namespace": {"type": "string"}, "name": {"type": "string"}, "uid": {"type": "string"},
        "apiVersion": {"type": "string"}, "resourceVersion": {"type": "string"}, "fieldPath": {"type": "string"}}})
}

/// The core v1 Event type (events.k8s.io/v1 events are stored in it).
pub fn core_events() -> ResourceType {
    let obj_ref = object_reference();
    let mut t = ResourceType::builtin("", "v1", "events", "Event", true, &["ev"])
        .with_schema(resources::object(json!({
            "involvedObject": obj_ref, "related": obj_ref, "reason": {"type": "string"}, "message": {"type": "string"},
            "source": {"type": "object", "properties": {"component": {"type": "string"}, "host": {"type": "string"}}},
            "firstTimestamp": {"type": "string"}, "lastTimestamp": {"type": "string"}, "count": {"type": "integer"},
            "type": {"type": "string"}, "eventTime": {"type": "string"},
            "series": {"type": "object", "properties": {"count": {"type": "integer"}, "lastObservedTime": {"type": "string"}}},
            "action": {"type": "string"}, "reportingComponent": {"type": "string"}, "reportingInstance": {"type": "string"}
        })))
        .with_columns(columns());
    t.names = NameRule::Any;
    t
}

/// The `events.k8s.io/v1` Event type (the served form of core events).
pub fn events_v1() -> ResourceType {
    let obj_ref = object_reference();
    let mut t = ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"])
        .with_schema(resources::object(json!({
            "regarding": obj_ref, "related": obj_ref, "reason": {"type": "string"}, "note": {"type": "string"},
            "deprecatedSource": {"type": "object", "properties": {"component": {"type": "string"}, "host": {"type": "string"}}},
            "deprecatedFirstTimestamp": {"type": "string"}, "deprecatedLastTimestamp": {"type": "string"},
            "deprecatedCount": {"type": "integer"}, "type": {"type": "string"}, "eventTime": {"type": "string"},
            "series": {"type": "object", "properties": {"count": {"type": "integer"}, "lastObservedTime": {"type": "string"}}},
            "action": {"type": "string"}, "reportingController": {"type": "string"}, "reportingInstance": {"type": "string"}
        })))
        .with_columns(columns());
    t.storage = (String::new(), "events".into());
    t.names = NameRule::Any;
    t
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
