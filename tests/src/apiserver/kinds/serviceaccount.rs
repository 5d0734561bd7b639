//! ServiceAccounts: validation and the `token` subresource (TokenRequest),
//! whose tokens authenticate as the account while it exists.

use serde_json::{Value, json};

use crate::apiserver::errors::{ApiError, ApiResult, FieldError};
use crate::apiserver::resources::ResourceType;
use crate::apiserver::resources::{self, Column};
use crate::apiserver::store::{self, ObjKey, Store};
use crate::apiserver::strategy::{Strategy, SubresourceRequest};
use crate::apiserver::validation;

/// The audience of tokens without one asked for.
pub const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Core `v1` ServiceAccount.
#[derive(Debug)]
pub struct ServiceAccount;

impl Strategy for ServiceAccount {
    fn validate(&self, _t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        validation::service_account(obj)
    }

    fn subresources(&self) -> &'static [(&'static str, &'static str)] {
        &[("token", "create")]
    }

    fn discovery(&self) -> Vec<Value> {
        vec![json!({
            "name": "serviceaccounts/token", "singularName": "", "namespaced": true,
            "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest", "verbs": ["create"],
        })]
    }

    fn serve_subresource(&self, store: &mut Store, r: &SubresourceRequest<'_>) -> ApiResult<(u16, Value)> {
        token_request(store, r.namespace, r.name, &r.body, r.dry_run).map(|v| (201, v))
    }
}

impl Store {
    /// A ServiceAccount's uid, if it exists.
    pub fn service_account_uid(&self, ns: &str, name: &str) -> Option<String> {
        let key = ObjKey {
            group: String::new(),
            plural: "serviceaccounts".into(),
            namespace: ns.into(),
            name: name.into(),
        };
        self.raw(&key).and_then(|sa| sa["metadata"]["uid"].as_str().map(str::to_owned))
    }
}

/// `POST serviceaccounts/{name}/token`.
fn token_request(store: &mut Store, ns: &str, name: &str, body: &Value, dry: bool) -> ApiResult<Value> {
    let uid = store
        .service_account_uid(ns, name)
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
    let seconds = body["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
    let mut errs = Vec::new();
    if seconds < 600 {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            &json!(seconds),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if seconds > 1 << 32 {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            &json!(seconds),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid("authentication.k8s.io", "TokenRequest", name, &errs));
    }
    let (token, expires) =
        if dry { (String::new(), 0) } else { store.auth.mint(ns, name, &uid, seconds as u64) };
    let audiences = match body["spec"]["audiences"].as_array() {
        Some(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => json!([DEFAULT_AUDIENCE]),
    };
    Ok(json!({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": store::now()},
        "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": body["spec"]["boundObjectRef"]},
        "status": {"token": token, "expirationTimestamp": store::rfc3339(expires)},
    }))
}

/// The ServiceAccount type.
pub fn resource() -> ResourceType {
    let mut sa = ResourceType::builtin("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"])
        .with_schema(resources::object(json!({
            "secrets": resources::map_list(&["name"], resources::preserve()),
            "imagePullSecrets": resources::map_list(&["name"], json!({"type": "object", "properties": {"name": {"type": "string"}}})),
            "automountServiceAccountToken": {"type": "boolean"}
        })));
    sa.columns = vec![Column::new("Age", "date", ".metadata.creationTimestamp")];
    sa
}
