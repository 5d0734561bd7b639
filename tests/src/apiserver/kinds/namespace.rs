//! Namespaces: the `kubernetes` finalizer and the name label on every
//! namespace, `Active` then `Terminating`, `spec.finalizers` changed only
//! through `/finalize`, the system namespaces that cannot go, and the
//! namespace lifecycle admission of everything created in one.

use serde_json::{Value, json};

use crate::apiserver::errors::{ApiError, ApiResult, FieldError};
use crate::apiserver::resources::{self, Column, ResourceType};
use crate::apiserver::store::{ObjKey, Opts, Store};
use crate::apiserver::strategy::{self, Strategy, SubresourceRequest};
use crate::apiserver::validation;
use crate::apiserver::validation::NameRule;

/// The finalizer of namespaces that still have content.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";
/// The label every namespace carries.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The namespaces a new server has.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];
/// The namespaces that cannot be deleted.
const UNDELETABLE: &[&str] = &["default", "kube-system", "kube-public"];

/// Core `v1` Namespace.
#[derive(Debug)]
pub struct Namespace;

/// The key of a namespace.
pub fn key(name: &str) -> ObjKey {
    ObjKey { group: String::new(), plural: "namespaces".into(), namespace: String::new(), name: name.into() }
}

impl Strategy for Namespace {
    fn field_labels(&self) -> &'static [&'static str] {
        &["status.phase"]
    }

    fn namespace_selector_on_self(&self) -> bool {
        true
    }

    fn resets_status_on_create(&self) -> bool {
        false
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let name = obj["metadata"]["name"].clone();
        obj["status"] = json!({"phase": "Active"});
        obj["spec"]["finalizers"] = json!([NAMESPACE_FINALIZER]);
        obj["metadata"]["labels"][NAMESPACE_NAME_LABEL] = name;
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        new["metadata"]["labels"][NAMESPACE_NAME_LABEL] = old["metadata"]["name"].clone();
        // spec.finalizers change only through /finalize.
        new["spec"]["finalizers"] = old["spec"]["finalizers"].clone();
    }

    fn validate(&self, _t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        validation::namespace(obj)
    }

    fn check_delete(&self, name: &str) -> ApiResult<()> {
        if UNDELETABLE.contains(&name) {
            return Err(ApiError::forbidden(
                format!("namespaces {name:?} is forbidden: this namespace may not be deleted"),
                Some(json!({"name": name, "kind": "namespaces"})),
            ));
        }
        Ok(())
    }

    fn graceful_delete(&self) -> bool {
        true
    }

    fn prepare_for_delete(&self, obj: &mut Value, _now: &str) {
        obj["status"]["phase"] = json!("Terminating");
    }

    fn finalized(&self, obj: &Value) -> bool {
        obj["spec"]["finalizers"].as_array().is_none_or(Vec::is_empty)
    }

    fn delete_returns_object(&self) -> bool {
        true
    }

    fn subresources(&self) -> &'static [(&'static str, &'static str)] {
        &[("finalize", "update")]
    }

    fn serve_subresource(&self, store: &mut Store, r: &SubresourceRequest<'_>) -> ApiResult<(u16, Value)> {
        finalize(store, r.name, &r.body, r.dry_run).map(|v| (200, v))
    }
}

/// `PUT namespaces/{name}/finalize`: replace `spec.finalizers` (and
/// nothing else). A terminating namespace without finalizers goes.
fn finalize(store: &mut Store, name: &str, body: &Value, dry_run: bool) -> ApiResult<Value> {
    let t = store.type_for_key(&key(name)).expect("builtin");
    let old = store.raw(&key(name)).cloned().ok_or_else(|| ApiError::not_found("", "namespaces", name))?;
    if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            body["metadata"]["name"].as_str().unwrap_or_default()
        )));
    }
    if let Some(rv) = body["metadata"]["resourceVersion"].as_str().filter(|r| !r.is_empty())
        && Some(rv) != old["metadata"]["resourceVersion"].as_str()
    {
        return Err(ApiError::conflict("", "namespaces", name));
    }
    let mut new = old.clone();
    new["spec"]["finalizers"] = body["spec"]["finalizers"].clone();
    if new["spec"]["finalizers"].is_null() {
        new["spec"]["finalizers"] = json!([]);
    }
    let errs = Namespace.validate_update(&t, &new, &old);
    if !errs.is_empty() {
        return Err(ApiError::invalid("", "Namespace", name, &errs));
    }
    if dry_run || new == old {
        return Ok(strategy::from_storage(&t, new));
    }
    Ok(store.system_write(&key(name), new).map_or(Value::Null, |v| strategy::from_storage(&t, v)))
}

/// NamespaceLifecycle admission: objects are created in namespaces that
/// exist and are not being deleted.
pub fn lifecycle(store: &Store, t: &ResourceType, ns: &str, name: &str) -> ApiResult<()> {
    if !t.namespaced {
        return Ok(());
    }
    match store.raw(&key(ns)) {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(s) if s["metadata"]["deletionTimestamp"].is_string() => {
            let msg =
                format!("unable to create new content in namespace {ns} because it is being terminated");
            let object = if name.is_empty() { t.qualified() } else { format!("{} {name:?}", t.qualified()) };
            Err(ApiError::forbidden(
                format!("{object} is forbidden: {msg}"),
                Some(json!({"name": name, "group": t.group, "kind": t.plural,
                    "causes": [{"reason": "NamespaceTerminating", "message": msg, "field": "metadata.namespace"}]})),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// The namespaces a new server has.
pub fn bootstrap(store: &mut Store) {
    let ns = store.type_of("", "v1", "namespaces").expect("builtin");
    for name in SYSTEM_NAMESPACES {
        store.system_create(&ns, "", json!({"metadata": {"name": name}}), Opts::system("kube-apiserver"));
    }
}

/// The Namespace type.
pub fn resource() -> ResourceType {
    let mut ns = ResourceType::builtin("", "v1", "namespaces", "Namespace", false, &["ns"])
        .with_schema(resources::object(json!({
            "spec": {"type": "object", "properties": {"finalizers": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}},
            "status": {"type": "object", "properties": {"phase": {"type": "string"}, "conditions": resources::conditions()}}
        })))
        .with_columns(vec![Column::new("Status", "string", ".status.phase"), Column::new("Age", "date", ".metadata.creationTimestamp")]);
    ns.status = true;
    ns.names = NameRule::Label;
    ns
}
