//! CustomResourceDefinitions: the cleanup finalizer, validation (names,
//! versions, structural schemas, printer columns), the status storage
//! writes (names accepted, established, terminating), and the types they
//! register while they exist.

use serde_json::{Value, json};

use crate::apiserver::errors::FieldError;
use crate::apiserver::resources::Column;
use crate::apiserver::resources::{self, ResourceType};
use crate::apiserver::store::{ObjKey, Store};
use crate::apiserver::strategy::{self, Strategy};
use crate::apiserver::{cel, schema, validation};

/// Their API group.
pub const GROUP: &str = "apiextensions.k8s.io";
/// Their resource.
pub const PLURAL: &str = "customresourcedefinitions";
/// The finalizer a CRD keeps until its custom resources are gone.
pub const CRD_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The key of a CRD.
pub fn key(name: &str) -> ObjKey {
    ObjKey { group: GROUP.into(), plural: PLURAL.into(), namespace: String::new(), name: name.into() }
}

/// `apiextensions.k8s.io/v1` CustomResourceDefinition.
#[derive(Debug)]
pub struct CustomResourceDefinition;

fn group_and_plural(crd: &Value) -> (&str, &str) {
    (
        crd["spec"]["group"].as_str().unwrap_or_default(),
        crd["spec"]["names"]["plural"].as_str().unwrap_or_default(),
    )
}

impl Strategy for CustomResourceDefinition {
    fn resets_status_on_create(&self) -> bool {
        false
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        strategy::ensure_finalizer(obj, CRD_FINALIZER);
    }

    fn validate(&self, _t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        validate(obj, None)
    }

    fn validate_update(&self, _t: &ResourceType, new: &Value, old: &Value) -> Vec<FieldError> {
        validate(new, Some(old))
    }

    fn allow_unconditional_update(&self) -> bool {
        false
    }

    fn allow_strategic_merge(&self) -> bool {
        false
    }

    fn canonicalize(&self, obj: &mut Value, old: Option<&Value>, now: &str) {
        obj["status"] = status(obj, now);
        let before = old.and_then(|o| o["status"]["conditions"].as_array());
        if let (Some(a), Some(b)) = (before, obj["status"]["conditions"].as_array_mut()) {
            for c in b.iter_mut() {
                if let Some(prev) = a.iter().find(|p| p["type"] == c["type"] && p["status"] == c["status"]) {
                    c["lastTransitionTime"] = prev["lastTransitionTime"].clone();
                }
            }
        }
    }

    fn after_commit(&self, store: &mut Store, obj: &Value) {
        let (group, plural) = group_and_plural(obj);
        store.replace_types(group, plural, resources::from_crd(obj));
    }

    fn graceful_delete(&self) -> bool {
        true
    }

    fn prepare_for_delete(&self, obj: &mut Value, now: &str) {
        obj["status"] = status(obj, now);
    }

    fn delete_returns_object(&self) -> bool {
        true
    }

    fn after_remove(&self, store: &mut Store, obj: &Value) {
        let (group, plural) = group_and_plural(obj);
        store.replace_types(group, plural, Vec::new());
    }
}

/// A CRD's status after it is written: names accepted, established (or
/// terminating).
pub fn status(crd: &Value, now: &str) -> Value {
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
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    json!({"acceptedNames": names, "storedVersions": stored, "conditions": conditions})
}

/// Validation of a CustomResourceDefinition.
fn validate(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = names(obj);
    errs.extend(versions(&obj["spec"]));
    if let Some(old) = old {
        let spec = &obj["spec"];
        for (field, new, before) in [
            ("spec.group", &spec["group"], &old["spec"]["group"]),
            ("spec.names.plural", &spec["names"]["plural"], &old["spec"]["names"]["plural"]),
            ("spec.scope", &spec["scope"], &old["spec"]["scope"]),
        ] {
            if new != before {
                errs.push(FieldError::immutable(field, new));
            }
        }
    }
    errs
}

fn names(obj: &Value) -> Vec<FieldError> {
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
    for f in ["plural", "kind"] {
        if s(&spec["names"][f]).is_empty() {
            errs.push(FieldError::required(format!("spec.names.{f}"), ""));
        }
    }
    if !plural.is_empty() {
        for m in validation::dns1123_label(&plural) {
            errs.push(FieldError::invalid("spec.names.plural", &json!(plural), m));
        }
    }
    errs
}

fn versions(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage = versions.iter().filter(|v| v["storage"].as_bool() == Some(true)).count();
    if versions.is_empty() || storage != 1 {
        let at = if versions.is_empty() { json!([]) } else { spec["versions"].clone() };
        errs.push(FieldError::invalid(
            "spec.versions",
            &at,
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
        errs.extend(printer_columns(v, &at));
    }
    errs
}

fn printer_columns(version: &Value, at: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (j, c) in version["additionalPrinterColumns"].as_array().into_iter().flatten().enumerate() {
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
    errs
}

/// The CustomResourceDefinition type.
pub fn resource() -> ResourceType {
    let mut crd =
        ResourceType::builtin(GROUP, "v1", PLURAL, "CustomResourceDefinition", false, &["crd", "crds"])
            .with_schema(resources::object(
                json!({"spec": resources::preserve(), "status": resources::preserve()}),
            ))
            .with_columns(vec![Column::new("Created At", "date", ".metadata.creationTimestamp")]);
    crd.status = true;
    crd.generation = true;
    crd
}
