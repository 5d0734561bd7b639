//! The one place that writes Secrets. Missing Secrets are created with a
//! create call (a 409 means somebody else's Secret appeared: a conflict, not
//! a takeover); existing ones are replaced with their resourceVersion as a
//! precondition (a 409 means the state they were computed from is stale).
//! No apply, no force: a co-owner of a field cannot pin or loop a write.
//! Every call goes through the fenced client (see `lease`).

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};

use crate::crd::{FIELD_MANAGER, LABEL_PREFIX};
use crate::error::Result;

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

/// Create a Secret that should not exist yet.
pub async fn create(client: &Client, secret: &Secret) -> Result<Created> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &secret.namespace().unwrap_or_default());
    let mut s = secret.clone();
    s.metadata.resource_version = None;
    s.metadata.uid = None;
    match api.create(&params(), &s).await {
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

/// Replace an existing Secret; `secret` carries the resourceVersion it was
/// computed from (a change since then fails with 409).
pub async fn replace(client: &Client, secret: &Secret) -> Result<Option<String>> {
    debug_assert!(secret.metadata.resource_version.is_some(), "a precondition");
    let api: Api<Secret> = Api::namespaced(client.clone(), &secret.namespace().unwrap_or_default());
    let written = api.replace(&secret.name_any(), &params(), secret).await?;
    Ok(written.resource_version())
}

/// Delete a Secret if it is still the one seen (uid and resourceVersion).
pub async fn delete(client: &Client, secret: &Secret) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &secret.namespace().unwrap_or_default());
    let dp = DeleteParams {
        preconditions: Some(Preconditions { uid: secret.uid(), resource_version: secret.resource_version() }),
        ..DeleteParams::default()
    };
    match api.delete(&secret.name_any(), &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Leave a Secret in place, no longer managed: without encstr labels and
/// annotations (resourceVersion precondition).
pub async fn release(client: &Client, secret: &Secret) -> Result<()> {
    let mut s = secret.clone();
    s.metadata.managed_fields = None;
    if let Some(l) = s.metadata.labels.as_mut() {
        l.retain(|k, _| !k.starts_with(LABEL_PREFIX));
    }
    if let Some(a) = s.metadata.annotations.as_mut() {
        a.retain(|k, _| !k.starts_with(LABEL_PREFIX));
    }
    match replace(client, &s).await {
        Ok(_) => Ok(()),
        Err(crate::Error::Kube(kube::Error::Api(e))) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
