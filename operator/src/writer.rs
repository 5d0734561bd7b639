//! The one place that writes: Secrets, the ConfigMaps publishing
//! recipients (under the same rules), and a keyring's own metadata and
//! status. Missing Secrets are created with a create call (a 409 means
//! somebody else's Secret appeared: a conflict, not a takeover); existing
//! ones are replaced with their resourceVersion as a precondition (a 409
//! means the state they were computed from is stale). No apply, no force on
//! Secrets: a co-owner of a field cannot pin or loop a write. Every call
//! goes through the fenced client (see `lease`) with the operator's field
//! manager.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};

use crate::crd::{FIELD_MANAGER, KeyringStatus, LABEL_PREFIX};
use crate::error::Result;
use crate::keyring::KeyringResource;

/// What a create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Written; its resourceVersion.
    Yes(Option<String>),
    /// A Secret of that name exists (someone else's, or created meanwhile).
    AlreadyExists,
    /// The namespace does not exist (or is terminating).
    NoNamespace(String),
}

fn params() -> PostParams {
    PostParams { dry_run: false, field_manager: Some(FIELD_MANAGER.into()) }
}

/// An object the writer handles with the copy rules: a Secret (master or
/// copy) or a recipient ConfigMap.
pub trait Namespaced:
    kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + serde::Serialize
    + serde::de::DeserializeOwned
{
}

impl Namespaced for Secret {}
impl Namespaced for ConfigMap {}

fn api_of<T: Namespaced>(client: &Client, obj: &T) -> Api<T> {
    Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default())
}

/// Create an object that should not exist yet (a 409: somebody else's, or
/// created meanwhile — never taken over by this call).
pub async fn create<T: Namespaced>(client: &Client, obj: &T) -> Result<Created> {
    let mut o = obj.clone();
    o.meta_mut().resource_version = None;
    o.meta_mut().uid = None;
    match api_of(client, obj).create(&params(), &o).await {
        Ok(created) => Ok(Created::Yes(created.resource_version())),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Created::AlreadyExists),
        Err(kube::Error::Api(e))
            if e.code == 404 || (e.code == 403 && e.message.contains("being terminated")) =>
        {
            Ok(Created::NoNamespace(e.message.clone()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Replace an existing object; `obj` carries the resourceVersion it was
/// computed from (a change since then fails with 409).
pub async fn replace<T: Namespaced>(client: &Client, obj: &T) -> Result<Option<String>> {
    debug_assert!(obj.meta().resource_version.is_some(), "a precondition");
    let written = api_of(client, obj).replace(&obj.name_any(), &params(), obj).await?;
    Ok(written.resource_version())
}

/// Delete an object if it is still the one seen (uid and resourceVersion).
pub async fn delete<T: Namespaced>(client: &Client, obj: &T) -> Result<()> {
    let dp = DeleteParams {
        preconditions: Some(Preconditions { uid: obj.uid(), resource_version: obj.resource_version() }),
        ..DeleteParams::default()
    };
    match api_of(client, obj).delete(&obj.name_any(), &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Leave an object in place, no longer managed: without encstr labels and
/// annotations (resourceVersion precondition).
pub async fn release<T: Namespaced>(client: &Client, obj: &T) -> Result<()> {
    let mut o = obj.clone();
    let meta = o.meta_mut();
    meta.managed_fields = None;
    if let Some(l) = meta.labels.as_mut() {
        l.retain(|k, _| !k.starts_with(LABEL_PREFIX));
    }
    if let Some(a) = meta.annotations.as_mut() {
        a.retain(|k, _| !k.starts_with(LABEL_PREFIX));
    }
    match replace(client, &o).await {
        Ok(_) => Ok(()),
        Err(crate::Error::Kube(kube::Error::Api(e))) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

fn keyring_api<K: KeyringResource>(client: &Client, k: &K) -> Api<K> {
    K::api(client.clone(), &k.namespace().unwrap_or_default())
}

fn merge_params() -> PatchParams {
    PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() }
}

/// Set a keyring's finalizers (merge patch with its resourceVersion as a
/// precondition); the keyring's new resourceVersion.
pub async fn set_finalizers<K: KeyringResource>(
    client: &Client,
    k: &K,
    finalizers: &[String],
) -> Result<Option<String>> {
    let body = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": k.resource_version()}
    });
    let written = keyring_api(client, k).patch(&k.name_any(), &merge_params(), &Patch::Merge(body)).await?;
    Ok(written.resource_version())
}

/// Remove a one-shot annotation (`restore-from`, `accept-missing-keys`)
/// if it still holds the value acted on (a JSON patch testing it first: a
/// request the user made meanwhile is left for the next reconcile). The
/// keyring's new resourceVersion if it was removed.
pub async fn remove_annotation<K: KeyringResource>(
    client: &Client,
    k: &K,
    key: &str,
) -> Result<Option<String>> {
    let Some(seen) = k.annotations().get(key) else { return Ok(None) };
    let path = format!("/metadata/annotations/{}", key.replace('~', "~0").replace('/', "~1"));
    let ops = serde_json::json!([
        {"op": "test", "path": path, "value": seen},
        {"op": "remove", "path": path},
    ]);
    let patch: json_patch::Patch = serde_json::from_value(ops).expect("a JSON patch of two valid operations");
    let api = keyring_api(client, k);
    match api.patch(&k.name_any(), &merge_params(), &Patch::<()>::Json(patch)).await {
        Ok(written) => Ok(written.resource_version()),
        // Changed or removed since it was read (the test fails: 422; a
        // policy refusing the patch is a 422 too, and the annotation then
        // stays: callers do not rely on it being gone), or the keyring is
        // gone.
        Err(kube::Error::Api(e)) if e.code == 422 || e.code == 404 => {
            tracing::info!(keyring = %k.name_any(), annotation = key, code = e.code, "one-shot annotation not removed");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Write a keyring's status (server-side apply of the status subresource)
/// if it changed, on the keyring as it was seen: the apply carries its
/// resourceVersion, so a status computed from an older state (a deposed
/// leader's, a retry's) fails with 409 instead of rolling the record back.
pub async fn status<K: KeyringResource>(client: &Client, k: &K, st: &KeyringStatus) -> Result<()> {
    if k.keyring_status() == Some(st) {
        return Ok(());
    }
    // Serialized straight from the struct: with 10,000 targets a JSON
    // value tree of the status would be megabytes of small allocations.
    let body = StatusApply {
        api_version: "encstr.io/v1alpha1",
        kind: K::KIND.as_str(),
        metadata: ApplyMeta { name: k.name_any(), resource_version: k.resource_version() },
        status: st,
    };
    match keyring_api(client, k)
        .patch_status(&k.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(body))
        .await
    {
        Ok(_) => Ok(()),
        // The keyring changed since it was read: that newer version is
        // reconciled in turn (its watch event), and computes its own status.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::info!(keyring = %k.name_any(), "status not written: the keyring changed since it was read (the newer one reports)");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The body of a status apply.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusApply<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ApplyMeta,
    status: &'a KeyringStatus,
}

/// The apply's metadata: the name, and the resourceVersion precondition.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ApplyMeta {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_version: Option<String>,
}
