//! Per-kind behaviour of the one write path, in the shape of kube-apiserver's
//! registry strategies (`rest.RESTCreateStrategy`, `RESTUpdateStrategy`,
//! `RESTDeleteStrategy`): a [`Strategy`] per kind (one file each under
//! `kinds/`, paired with its type once in [`super::kinds::BUILTINS`]),
//! with defaults for everything a kind does not change. The generic store
//! and handlers call these hooks and never name a kind.

use std::fmt::Debug;

use serde_json::{Value, json};

use super::auth::UserInfo;
use super::errors::{ApiError, ApiResult, FieldError};
use super::resources::ResourceType;
use super::store::{Prepared, Store};
use super::validation;

/// One kind's behaviour. Every method has the generic default, so a kind
/// says only what it does differently.
pub trait Strategy: Sync + Debug {
    // --- Versions ---------------------------------------------------------

    /// The stored form of an object sent in this type's version.
    fn storage_form(&self, obj: Value) -> Value {
        obj
    }

    /// This type's version of a stored object (before apiVersion and kind).
    fn served_form(&self, obj: Value) -> Value {
        obj
    }

    // --- Create and update (RESTCreateStrategy, RESTUpdateStrategy) -------

    /// What Go's typed decoding of the kind refuses or normalises.
    fn decode(&self, _t: &ResourceType, _obj: &mut Value) -> ApiResult<()> {
        Ok(())
    }

    /// Whether a create drops `status` (when the type has the subresource).
    fn resets_status_on_create(&self) -> bool {
        true
    }

    /// `PrepareForCreate`: the kind's normalisation of a new object.
    fn prepare_for_create(&self, _obj: &mut Value) {}

    /// `PrepareForUpdate`: the kind's normalisation of a new version.
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// The kind's defaulting (built-in defaulters, CRD schema defaults).
    fn defaults(&self, _t: &ResourceType, _obj: &mut Value) {}

    /// `Validate`: the kind's rules for a new object (metadata is generic).
    fn validate(&self, _t: &ResourceType, _obj: &Value) -> Vec<FieldError> {
        Vec::new()
    }

    /// `ValidateUpdate`: the kind's rules for a new version.
    fn validate_update(&self, t: &ResourceType, new: &Value, _old: &Value) -> Vec<FieldError> {
        self.validate(t, new)
    }

    /// `AllowUnconditionalUpdate`: whether a PUT without resourceVersion
    /// takes the stored one.
    fn allow_unconditional_update(&self) -> bool {
        true
    }

    /// Whether strategic merge patches are served (built-ins only).
    fn allow_strategic_merge(&self) -> bool {
        true
    }

    /// The kind's check of a create against the server's state, in
    /// admission (a custom resource of a terminating CRD).
    fn admit_create(&self, _store: &Store, _t: &ResourceType) -> ApiResult<()> {
        Ok(())
    }

    /// Authorization beyond RBAC's verb check: escalation (RBAC kinds).
    fn check_escalation(&self, _store: &Store, _p: &Prepared) -> ApiResult<()> {
        Ok(())
    }

    /// What storage sets on a write it commits (a CRD's status).
    fn canonicalize(&self, _obj: &mut Value, _old: Option<&Value>, _now: &str) {}

    /// After a create or update is stored (registering a CRD's types,
    /// ClusterRole aggregation).
    fn after_commit(&self, _store: &mut Store, _obj: &Value) {}

    // --- Delete (RESTDeleteStrategy, RESTGracefulDeleteStrategy) ---------

    /// Whether this object may be deleted at all.
    fn check_delete(&self, _name: &str) -> ApiResult<()> {
        Ok(())
    }

    /// Whether a delete always goes through `deletionTimestamp` first
    /// (even without finalizers).
    fn graceful_delete(&self) -> bool {
        false
    }

    /// What marking an object deleted changes besides `deletionTimestamp`.
    fn prepare_for_delete(&self, _obj: &mut Value, _now: &str) {}

    /// Whether nothing but `metadata.finalizers` holds a deleted object
    /// back (a Namespace also waits for `spec.finalizers`).
    fn finalized(&self, _obj: &Value) -> bool {
        true
    }

    /// Whether a delete answers with the object (else a Success Status).
    fn delete_returns_object(&self) -> bool {
        false
    }

    /// After the object is gone for good.
    fn after_remove(&self, _store: &mut Store, _obj: &Value) {}

    // --- Subresources and unstored kinds ---------------------------------

    /// The subresources besides `status`, with the verb each serves.
    fn subresources(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Discovery's entries for those subresources (`APIResource`s).
    fn discovery(&self) -> Vec<Value> {
        Vec::new()
    }

    /// Serve one of [`Strategy::subresources`]: the answer's code and body.
    fn serve_subresource(&self, _store: &mut Store, _r: &SubresourceRequest<'_>) -> ApiResult<(u16, Value)> {
        Err(ApiError::new(404, "NotFound", "the server could not find the requested resource"))
    }

    /// The status of a review (a kind created and never stored).
    fn review(&self, _store: &Store, _r: &ReviewRequest<'_>) -> ApiResult<Value> {
        Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ))
    }

    // --- Reads and admission ----------------------------------------------

    /// The field selector labels the kind supports besides `metadata.name`
    /// and `metadata.namespace`.
    fn field_labels(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether writes of the kind skip the admission webhooks (webhook
    /// configurations, so a broken webhook cannot lock itself in).
    fn skips_webhooks(&self) -> bool {
        false
    }

    /// Whether a webhook's `namespaceSelector` is matched against the
    /// object's own labels (a Namespace) rather than its namespace's.
    fn namespace_selector_on_self(&self) -> bool {
        false
    }
}

/// A review to answer.
#[derive(Debug)]
pub struct ReviewRequest<'a> {
    /// The review's type.
    pub t: &'a ResourceType,
    /// Namespace of the request (`""` when cluster-scoped).
    pub namespace: &'a str,
    /// The review's `spec`.
    pub spec: &'a Value,
    /// Who asks.
    pub user: UserInfo,
}

/// A request to a subresource a kind serves.
#[derive(Debug)]
pub struct SubresourceRequest<'a> {
    /// The subresource.
    pub subresource: &'a str,
    /// Namespace (`""` when cluster-scoped).
    pub namespace: &'a str,
    /// The object's name.
    pub name: &'a str,
    /// The decoded body.
    pub body: Value,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// The stored form of an object sent for type `t`.
pub fn to_storage(t: &ResourceType, obj: Value) -> Value {
    t.strategy.storage_form(obj)
}

/// The form of a stored object served for type `t`.
pub fn from_storage(t: &ResourceType, obj: Value) -> Value {
    let mut obj = t.strategy.served_form(obj);
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(t.api_version()));
        m.insert("kind".into(), Value::String(t.kind.clone()));
    }
    obj
}

/// Decoding errors of any body: the kind's, then ObjectMeta's type.
fn decode(t: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    t.strategy.decode(t, obj)?;
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

/// Prepare a new object: decoded, status reset, the kind's preparation,
/// defaults.
pub fn prepare_create(t: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    decode(t, obj)?;
    if t.status
        && t.strategy.resets_status_on_create()
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    t.strategy.prepare_for_create(obj);
    t.strategy.defaults(t, obj);
    Ok(())
}

/// Prepare a new version of an object: decoded, the kind's preparation,
/// defaults.
pub fn prepare_update(t: &ResourceType, new: &mut Value, old: &Value) -> ApiResult<()> {
    decode(t, new)?;
    t.strategy.prepare_for_update(new, old);
    t.strategy.defaults(t, new);
    Ok(())
}

/// Validation of a new object (`old`: `None`) or of an update: metadata,
/// then the kind's rules.
pub fn validate(t: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = match old {
        None => validation::object_meta(&obj["metadata"], t.namespaced, t.names),
        Some(o) => validation::object_meta_update(&obj["metadata"], &o["metadata"]),
    };
    errs.extend(match old {
        None => t.strategy.validate(t, obj),
        Some(o) => t.strategy.validate_update(t, obj, o),
    });
    errs
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

/// Add a finalizer unless it is there.
pub fn ensure_finalizer(obj: &mut Value, finalizer: &str) {
    let fins = obj["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
    if !fins.iter().any(|f| f == finalizer) {
        let mut f = fins;
        f.push(json!(finalizer));
        obj["metadata"]["finalizers"] = Value::Array(f);
    }
}
