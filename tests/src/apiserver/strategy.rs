//! Per-kind behaviour of the one write path, as kube-apiserver's registry
//! strategies do it: what is prepared on create and update (defaults,
//! normalisation, status), how objects are validated, and how a kind's
//! versions map to its storage (`events.k8s.io/v1` events are core events).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::errors::{ApiError, ApiResult, FieldError};
use super::resources::ResourceType;
use super::{cel, schema, validation};

/// The finalizer of namespaces that still have content.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";
/// The finalizer a CRD keeps until its custom resources are gone.
pub const CRD_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
/// The label every namespace carries.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn is(t: &ResourceType, group: &str, plural: &str) -> bool {
    t.group == group && t.plural == plural
}

/// The stored form of an object sent for type `t`.
pub fn to_storage(t: &ResourceType, mut obj: Value) -> Value {
    if is(t, "events.k8s.io", "events") {
        let pairs = [
            ("regarding", "involvedObject"),
            ("note", "message"),
            ("reportingController", "reportingComponent"),
            ("deprecatedSource", "source"),
            ("deprecatedFirstTimestamp", "firstTimestamp"),
            ("deprecatedLastTimestamp", "lastTimestamp"),
            ("deprecatedCount", "count"),
        ];
        if let Some(m) = obj.as_object_mut() {
            for (from, to) in pairs {
                if let Some(v) = m.remove(from) {
                    m.insert(to.into(), v);
                }
            }
        }
    }
    obj
}

/// The form of a stored object served for type `t`.
pub fn from_storage(t: &ResourceType, mut obj: Value) -> Value {
    if is(t, "events.k8s.io", "events") {
        let pairs = [
            ("involvedObject", "regarding"),
            ("message", "note"),
            ("reportingComponent", "reportingController"),
            ("source", "deprecatedSource"),
            ("firstTimestamp", "deprecatedFirstTimestamp"),
            ("lastTimestamp", "deprecatedLastTimestamp"),
            ("count", "deprecatedCount"),
        ];
        if let Some(m) = obj.as_object_mut() {
            for (from, to) in pairs {
                if let Some(v) = m.remove(from) {
                    m.insert(to.into(), v);
                }
            }
        }
    }
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(t.api_version()));
        m.insert("kind".into(), Value::String(t.kind.clone()));
    }
    obj
}

/// Decoding errors of a kind's body (what Go's typed decoding refuses).
fn decode_checks(t: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    if is(t, "", "secrets") {
        let string_data = obj.as_object_mut().and_then(|m| m.remove("stringData"));
        if let Some(Value::Object(sd)) = string_data {
            let mut data: Map<String, Value> =
                obj.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
            for (k, v) in sd {
                data.insert(k, Value::String(STANDARD.encode(v.as_str().unwrap_or_default())));
            }
            obj["data"] = Value::Object(data);
        }
        if let Some(data) = obj["data"].as_object() {
            for (k, v) in data {
                if v.as_str().is_none_or(|s| STANDARD.decode(s).is_err()) {
                    return Err(ApiError::bad_request(format!(
                        "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 0 (key {k:?})"
                    )));
                }
            }
        }
    }
    if is(t, "", "configmaps")
        && let Some(data) = obj["binaryData"].as_object()
    {
        for (k, v) in data {
            if v.as_str().is_none_or(|s| STANDARD.decode(s).is_err()) {
                return Err(ApiError::bad_request(format!(
                    "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: illegal base64 data at input byte 0 (key {k:?})"
                )));
            }
        }
    }
    if let Some(meta) = obj.get("metadata")
        && !meta.is_null()
        && !meta.is_object()
    {
        return Err(ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: json: cannot unmarshal into Go struct field .metadata of type v1.ObjectMeta",
            t.kind, t.version, t.kind
        )));
    }
    Ok(())
}

/// The built-ins' defaulting functions that matter here (RBAC bindings'
/// `roleRef.apiGroup` and subjects' `apiGroup`).
fn builtin_defaults(t: &ResourceType, obj: &mut Value) {
    if t.group == "admissionregistration.k8s.io" {
        let mutating = t.plural == "mutatingwebhookconfigurations";
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
            if mutating {
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
    if t.group == "rbac.authorization.k8s.io"
        && matches!(t.plural.as_str(), "rolebindings" | "clusterrolebindings")
    {
        if obj["roleRef"].is_object() && obj["roleRef"]["apiGroup"].as_str().is_none_or(str::is_empty) {
            obj["roleRef"]["apiGroup"] = json!("rbac.authorization.k8s.io");
        }
        for s in obj["subjects"].as_array_mut().into_iter().flatten() {
            if s["apiGroup"].as_str().is_none_or(str::is_empty)
                && matches!(s["kind"].as_str(), Some("User" | "Group"))
            {
                s["apiGroup"] = json!("rbac.authorization.k8s.io");
            }
        }
    }
}

/// Prepare a new object (normalised, status reset, kind defaults).
pub fn prepare_create(t: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    decode_checks(t, obj)?;
    builtin_defaults(t, obj);
    if t.status
        && !t.is_namespace()
        && !t.is_crd()
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    if is(t, "", "secrets") && obj.get("type").is_none_or(Value::is_null) {
        obj["type"] = json!("Opaque");
    }
    if t.is_namespace() {
        let name = obj["metadata"]["name"].clone();
        obj["status"] = json!({"phase": "Active"});
        obj["spec"]["finalizers"] = json!([NAMESPACE_FINALIZER]);
        obj["metadata"]["labels"][NAMESPACE_NAME_LABEL] = name;
    }
    if is(t, "", "pods") {
        obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
    }
    if t.is_crd() {
        let fins = obj["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
        if !fins.iter().any(|f| f == CRD_FINALIZER) {
            let mut f = fins;
            f.push(json!(CRD_FINALIZER));
            obj["metadata"]["finalizers"] = Value::Array(f);
        }
    }
    Ok(())
}

/// Prepare a new version of an object (normalised; the label namespaces
/// always carry).
pub fn prepare_update(t: &ResourceType, new: &mut Value, old: &Value) -> ApiResult<()> {
    decode_checks(t, new)?;
    builtin_defaults(t, new);
    if t.is_namespace() {
        new["metadata"]["labels"][NAMESPACE_NAME_LABEL] = old["metadata"]["name"].clone();
        // spec.finalizers change only through /finalize.
        new["spec"]["finalizers"] = old["spec"]["finalizers"].clone();
    }
    if is(t, "", "secrets") && new.get("type").is_none_or(Value::is_null) {
        new["type"] = old["type"].clone();
    }
    Ok(())
}

/// Apply the schema's defaults (custom resources).
pub fn default(t: &ResourceType, obj: &mut Value) {
    if t.custom {
        schema::apply_defaults(obj, &t.schema);
    }
}

/// Validation of a new object (`old`: `None`) or of an update.
pub fn validate(t: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = match old {
        None => validation::object_meta(&obj["metadata"], t.namespaced, t.names),
        Some(o) => validation::object_meta_update(&obj["metadata"], &o["metadata"]),
    };
    if t.custom {
        let mut body = obj.clone();
        if let Some(m) = body.as_object_mut() {
            m.remove("metadata");
            m.remove("apiVersion");
            m.remove("kind");
        }
        let mut schema_errs = Vec::new();
        let mut no_meta = (*t.schema).clone();
        no_meta.properties.remove("metadata");
        no_meta.required.retain(|r| r != "metadata");
        schema::validate(&body, &no_meta, "", &mut schema_errs);
        errs.extend(schema_errs);
        errs.extend(cel::validate(obj, old, &t.schema));
    } else if t.is_crd() {
        errs.extend(crd(obj, old));
    } else {
        // Validation is the stored kind's (events.k8s.io events are core
        // events).
        errs.extend(validation::builtin(&t.kind, &t.storage.0, obj, old));
    }
    errs
}

/// Validation of a CustomResourceDefinition.
fn crd(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let (group, plural) = (s(&spec["group"]), s(&spec["names"]["plural"]));
    let name = s(&obj["metadata"]["name"]);
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if group.split('.').count() < 2 {
        errs.push(FieldError::invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
        errs.push(FieldError::not_supported("spec.scope", &spec["scope"], &["Cluster", "Namespaced"]));
    }
    for f in ["plural", "kind", "listKind"] {
        if f != "listKind" && s(&spec["names"][f]).is_empty() {
            errs.push(FieldError::required(format!("spec.names.{f}"), ""));
        }
    }
    if !plural.is_empty() {
        for m in validation::dns1123_label(&plural) {
            errs.push(FieldError::invalid("spec.names.plural", &json!(plural), m));
        }
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::invalid(
            "spec.versions",
            &json!([]),
            "must have exactly one version marked as storage version",
        ));
    }
    let storage = versions.iter().filter(|v| v["storage"].as_bool() == Some(true)).count();
    if !versions.is_empty() && storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            &spec["versions"],
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        if let Some(schema) = v["schema"].get("openAPIV3Schema").filter(|s| !s.is_null()) {
            let at_schema = format!("{at}.schema.openAPIV3Schema");
            let structural = schema::structural_errors(schema, &at_schema);
            // As upstream: rules are compiled only in a schema without errors.
            if structural.is_empty() {
                errs.extend(cel::rule_definition_errors(schema, &at_schema));
            }
            errs.extend(structural);
        } else {
            errs.push(FieldError::required(format!("{at}.schema.openAPIV3Schema"), "schemas are required"));
        }
        for (j, c) in v["additionalPrinterColumns"].as_array().into_iter().flatten().enumerate() {
            let ty = c["type"].as_str().unwrap_or_default();
            if !matches!(ty, "integer" | "number" | "string" | "boolean" | "date") {
                errs.push(FieldError::not_supported(
                    format!("{at}.additionalPrinterColumns[{j}].type"),
                    &c["type"],
                    &["boolean", "date", "integer", "number", "string"],
                ));
            }
            if c["jsonPath"].as_str().is_none_or(str::is_empty) {
                errs.push(FieldError::required(format!("{at}.additionalPrinterColumns[{j}].jsonPath"), ""));
            }
        }
    }
    if let Some(old) = old {
        if old["spec"]["group"] != spec["group"] {
            errs.push(FieldError::immutable("spec.group", &spec["group"]));
        }
        if old["spec"]["names"]["plural"] != spec["names"]["plural"] {
            errs.push(FieldError::immutable("spec.names.plural", &spec["names"]["plural"]));
        }
        if old["spec"]["scope"] != spec["scope"] {
            errs.push(FieldError::immutable("spec.scope", &spec["scope"]));
        }
    }
    errs
}

/// A CRD's status after it is written: names accepted, established (or
/// terminating).
pub fn crd_status(crd: &Value, now: &str) -> Value {
    let terminating = crd["metadata"]["deletionTimestamp"].is_string();
    let mut conditions = vec![
        json!({"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now}),
        json!({"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}),
    ];
    if terminating {
        conditions.push(json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress", "lastTransitionTime": now}));
    }
    let mut names = crd["spec"]["names"].clone();
    if names["listKind"].is_null() {
        names["listKind"] = json!(format!("{}List", names["kind"].as_str().unwrap_or_default()));
    }
    if names["singular"].is_null() {
        names["singular"] = json!(names["kind"].as_str().unwrap_or_default().to_lowercase());
    }
    json!({
        "acceptedNames": names,
        "storedVersions": crd["spec"]["versions"].as_array().map(|vs| vs.iter().filter(|v| v["storage"].as_bool() == Some(true)).map(|v| v["name"].clone()).collect::<Vec<_>>()).unwrap_or_default(),
        "conditions": conditions,
    })
}

/// The part of an object whose changes bump `metadata.generation`.
pub fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_convert_between_versions() {
        let types = super::super::resources::builtins();
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
