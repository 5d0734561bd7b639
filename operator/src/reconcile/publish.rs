//! Act, for the recipient: make every namespace `decide` chose hold the
//! ConfigMap `<secretName>-recipient` publishing the recipient, under the
//! rules of copies — create missing ones (a create, never an upsert),
//! replace stale ones of ours (resourceVersion precondition), leave
//! anybody else's alone — through `writer`.

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tracing::info;

use super::decide::{self, Holding};
use super::events::{Note, TargetState};
use super::report::Report;
use crate::context::Ctx;
use crate::crd::*;
use crate::desired;
use crate::error::{Error, Result};
use crate::keyring::{KeyringResource, Kind};
use crate::writer::{self, Created};

/// The longest name of a ConfigMap (a DNS subdomain).
const MAX_OBJECT_NAME: usize = 253;

/// ConfigMaps written at the same time.
const PUBLISH_CONCURRENCY: usize = 8;

/// What publishing did in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The ConfigMap publishes the recipient (`true`: it was written now).
    Yes(bool),
    /// It could not be written there: why (a target state).
    No(TargetState),
}

/// Publish `recipient` in each of `namespaces`, in order. A failed write is
/// reported per namespace and returned, so the keyring is retried with
/// backoff after its status is written; a refused fence ends the reconcile
/// at once.
pub async fn publish<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    secret_name: &str,
    namespaces: &[String],
    recipient: &str,
) -> Result<(Vec<Published>, Option<Error>)> {
    let name = desired::recipient_config_map_name(secret_name);
    if name.len() > MAX_OBJECT_NAME {
        // No such ConfigMap can exist: said per namespace, not retried.
        let error = format!(
            "{secret_name}{RECIPIENT_SUFFIX} is longer than {MAX_OBJECT_NAME} characters; read the recipient from the keyring's status"
        );
        let state = TargetState::RecipientWriteFailed { reason: "RecipientNameTooLong", error };
        return Ok((namespaces.iter().map(|_| Published::No(state.clone())).collect(), None));
    }
    let want = Want { name: &name, labels: k.managed_labels(ROLE_RECIPIENT), recipient };
    let want = &want;
    let mut results = futures::stream::iter(0..namespaces.len())
        .map(|i| one(k, ctx, &namespaces[i], want))
        .buffered(PUBLISH_CONCURRENCY);
    let (mut out, mut written, mut failure) = (Vec::with_capacity(namespaces.len()), Vec::new(), None);
    let mut i = 0;
    while let Some(result) = results.next().await {
        let p = match result {
            Ok(p) => p,
            Err(e) if e.is_not_leader() => return Err(e),
            Err(e) => {
                let p = Published::No(TargetState::RecipientWriteFailed {
                    reason: e.reason(),
                    error: e.to_string(),
                });
                failure = Some(e);
                p
            }
        };
        if p == Published::Yes(true) {
            written.push(namespaces[i].clone());
        }
        out.push(p);
        i += 1;
    }
    if !written.is_empty() {
        info!(namespaces = ?written, recipient = %recipient, "recipient published");
    }
    Ok((out, failure))
}

/// What every namespace gets.
struct Want<'a> {
    name: &'a str,
    labels: std::collections::BTreeMap<String, String>,
    recipient: &'a str,
}

/// Whether a ConfigMap is one the operator wrote for this keyring: its
/// label names the keyring and its role is `recipient` (it already has the
/// recipient's name and namespace).
fn is_ours<K: KeyringResource>(k: &K, cm: &ConfigMap) -> bool {
    cm.labels().get(K::KIND.label()) == Some(&k.name_any())
        && cm.labels().get(LABEL_ROLE).map(String::as_str) == Some(ROLE_RECIPIENT)
}

async fn one<K: KeyringResource>(k: &K, ctx: &Ctx, ns: &str, want: &Want<'_>) -> Result<Published> {
    let name = k.name_any();
    let cached = ctx.config_maps.get(ns, want.name).filter(|c| {
        c.label(K::KIND.label()) == Some(name.as_str()) && c.label(LABEL_ROLE) == Some(ROLE_RECIPIENT)
    });
    match cached {
        Some(c) if c.is_current(want.recipient, want.labels.iter()) => Ok(Published::Yes(false)),
        Some(_) => refresh(k, ctx, ns, want).await,
        None => {
            let cm = desired::recipient_config_map(None, ns, want.name, want.labels.clone(), want.recipient);
            match writer::create(&ctx.shared.client, &cm).await? {
                Created::Yes(_) => Ok(Published::Yes(true)),
                Created::NoNamespace(_) => Ok(Published::No(TargetState::NamespaceNotFound)),
                Created::AlreadyExists => refresh(k, ctx, ns, want).await,
            }
        }
    }
}

/// A ConfigMap that is stale, or exists unknown to the cache: read it from
/// the API server and, if it is this keyring's and not current, replace it
/// (its other labels, annotations and data kept); somebody else's is left
/// alone.
async fn refresh<K: KeyringResource>(k: &K, ctx: &Ctx, ns: &str, want: &Want<'_>) -> Result<Published> {
    match config_map(&ctx.shared.client, ns, want.name).await? {
        Some(cm) if is_ours(k, &cm) => {
            if desired::recipient_is_current(&cm, want.recipient, &want.labels) {
                return Ok(Published::Yes(false));
            }
            let cm =
                desired::recipient_config_map(Some(&cm), ns, want.name, want.labels.clone(), want.recipient);
            writer::replace(&ctx.shared.client, &cm).await?;
            Ok(Published::Yes(true))
        }
        Some(_) => Ok(Published::No(TargetState::RecipientConflict { name: want.name.to_owned() })),
        None => Ok(Published::No(TargetState::RecipientWriteFailed {
            reason: "WriteConflict",
            error: "the ConfigMap changed while it was being written; retrying".into(),
        })),
    }
}

/// A ConfigMap by namespace and name, from the API server.
async fn config_map(client: &Client, ns: &str, name: &str) -> Result<Option<ConfigMap>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    Ok(api.get_opt(name).await?)
}

/// Decide the recipient (`decide::recipient`) from the master's keyring and
/// what each counted target's copy holds (`copies`, cluster kind; none for
/// a SecretKeyring, whose pods mount the master), publish it where it
/// belongs, and record it and each namespace's outcome in `r`. Returns a
/// failed write, after which the keyring is retried with backoff.
pub async fn recipient<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    secret_name: &str,
    master_ns: &str,
    ring: &encstr_core::Keyring,
    copies: &[(String, Holding)],
    r: &mut Report,
) -> Result<Option<Error>> {
    let holdings: Vec<Holding> = copies.iter().map(|(_, h)| h.clone()).collect();
    let published = k.keyring_status().and_then(|s| s.recipient.as_deref());
    let Some(recipient) = decide::recipient(ring, published, &holdings) else {
        r.recipient = None;
        return Ok(None);
    };
    let text = recipient.to_string();
    r.recipient = Some(text.clone());
    let namespaces: Vec<String> = match K::KIND {
        Kind::Namespaced => vec![master_ns.to_owned()],
        Kind::Cluster => copies
            .iter()
            .filter(|(_, h)| decide::publishes_in(h, &recipient))
            .map(|(ns, _)| ns.clone())
            .collect(),
    };
    let (outcomes, failure) = publish(k, ctx, secret_name, &namespaces, &text).await?;
    let previous = |ns: &str| match K::KIND {
        Kind::Namespaced => k
            .keyring_status()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::DISTRIBUTED))
            .map(|c| c.reason.clone()),
        Kind::Cluster => k
            .keyring_status()
            .and_then(|s| s.targets.iter().find(|t| t.namespace == ns))
            .and_then(|t| t.reason.clone()),
    };
    for (ns, outcome) in namespaces.iter().zip(outcomes) {
        let Published::No(state) = outcome else { continue };
        let st = state.status(ns);
        if matches!(state, TargetState::RecipientConflict { .. }) && previous(ns) != st.reason {
            r.notes.push(Note::RecipientConflict {
                namespace: ns.clone(),
                message: st.message.clone().unwrap_or_default(),
            });
        }
        match K::KIND {
            Kind::Namespaced => r.local = Some(st),
            Kind::Cluster => {
                if let Some(t) = r.targets.iter_mut().find(|t| t.namespace == *ns) {
                    *t = st;
                }
            }
        }
    }
    Ok(failure)
}

/// The recipient ConfigMaps the operator wrote for this keyring, from the
/// API server (paginated): named for `secret_names` (the spec's and the
/// recorded one), the keyring's label and role `recipient`.
pub async fn ours_on_server<K: KeyringResource>(
    k: &K,
    client: &Client,
    secret_names: &[String],
) -> Result<Vec<ConfigMap>> {
    let api: Api<ConfigMap> = match K::KIND {
        Kind::Namespaced => Api::namespaced(client.clone(), &k.namespace().unwrap_or_default()),
        Kind::Cluster => Api::all(client.clone()),
    };
    let selector = format!("{}={},{LABEL_ROLE}={ROLE_RECIPIENT}", K::KIND.label(), k.name_any());
    let names: Vec<String> = secret_names.iter().map(|n| desired::recipient_config_map_name(n)).collect();
    let mut out = Vec::new();
    let mut lp = ListParams::default().labels(&selector).limit(500);
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items.into_iter().filter(|c| names.contains(&c.name_any()) && is_ours(k, c)));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => return Ok(out),
        }
    }
}
