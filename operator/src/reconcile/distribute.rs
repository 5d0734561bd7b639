//! Act, for copies: make every active target hold a copy identical to the
//! master — create missing ones, replace stale ones of ours (resourceVersion
//! precondition), leave anybody else's alone — through `writer`.

use std::collections::BTreeMap;

use encstr_core::Keyring;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use tracing::info;
use zeroize::Zeroizing;

use super::decide;
use super::events::{Note, TargetState};
use super::observe::{self, Target};
use crate::cache;
use crate::context::Ctx;
use crate::crd::*;
use crate::desired::{self, ValidSpec};
use crate::error::{Error, Result};
use crate::keyring::KeyringResource;
use crate::writer::{self, Created};

/// Copies written at the same time.
const DISTRIBUTE_CONCURRENCY: usize = 8;

/// What a copy holds.
struct Copy {
    bytes: Zeroizing<Vec<u8>>,
    digest: [u8; 32],
    ids: String,
    labels: BTreeMap<String, String>,
}

impl Copy {
    fn of(ring: &Keyring, labels: BTreeMap<String, String>) -> Copy {
        let bytes = Zeroizing::new(ring.to_text().as_bytes().to_vec());
        Copy { digest: cache::digest(&bytes), bytes, ids: desired::key_ids(ring), labels }
    }

    /// The copy to write in `ns`: `existing` (if any) with this keyring.
    fn secret(&self, existing: Option<&Secret>, ns: &str, name: &str) -> Secret {
        let annotations = BTreeMap::from([(ANN_KEY_IDS.to_owned(), self.ids.clone())]);
        desired::secret(existing, ns, name, self.labels.clone(), annotations, &self.bytes)
    }
}

/// What every copy gets, and the master (a copy keeps the master's keys
/// it already holds).
struct Copies<'a> {
    copy: Copy,
    ring: &'a Keyring,
    master: &'a Keyring,
}

/// Distribute `ring` (the part of `master` that may be distributed) to
/// every target; each target's status and state, in order. A failed write is reported per target and returned, so
/// the keyring is retried with backoff after its status is written; a
/// refused fence ends the reconcile at once.
pub async fn distribute<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    targets: &[Target],
    ring: &Keyring,
    master: &Keyring,
    notes: &mut Vec<Note>,
) -> Result<(Vec<TargetStatus>, Vec<TargetState>, Option<Error>)> {
    let copy = Copies { copy: Copy::of(ring, k.managed_labels("copy")), ring, master };
    let previous: BTreeMap<String, Option<String>> = k
        .keyring_status()
        .map(|s| s.targets.iter().map(|t| (t.namespace.clone(), t.reason.clone())).collect())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(targets.len());
    let mut states = Vec::with_capacity(targets.len());
    let mut written = Vec::new();
    let mut failure = None;
    // A few targets at a time (a copy is one round trip): results in order.
    // Futures are made as the window moves (10,000 made up front would hold
    // megabytes), from indices (a closure over `&Target` is not Send here).
    let copy = &copy;
    let mut results = futures::stream::iter(0..targets.len())
        .map(|i| sync_one(k, ctx, spec, &targets[i], copy))
        .buffered(DISTRIBUTE_CONCURRENCY);
    while let Some((t, result)) = results.next().await {
        let ns = t.name().to_owned();
        let state = match result {
            Ok((state, wrote)) => {
                if wrote {
                    written.push(ns.clone());
                }
                state
            }
            Err(e) if e.is_not_leader() => return Err(e),
            Err(e) => {
                let state = TargetState::WriteFailed { reason: e.reason(), error: e.to_string() };
                failure = Some(e);
                state
            }
        };
        let st = state.status(&ns);
        if matches!(state, TargetState::SecretConflict { .. }) && previous.get(&ns) != Some(&st.reason) {
            notes.push(Note::SecretConflict {
                namespace: ns,
                message: st.message.clone().unwrap_or_default(),
            });
        }
        out.push(st);
        states.push(state);
    }
    if !written.is_empty() {
        info!(namespaces = ?written, "copies written");
    }
    Ok((out, states, failure))
}

/// [`sync_target`], with the target it was for.
async fn sync_one<'a, K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    t: &'a Target,
    copy: &Copies<'_>,
) -> (&'a Target, Result<(TargetState, bool)>) {
    (t, sync_target(k, ctx, spec, t, copy).await)
}

/// One target: its state and whether a copy was written.
async fn sync_target<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    t: &Target,
    copy: &Copies<'_>,
) -> Result<(TargetState, bool)> {
    let ns = match t {
        Target::Missing(_) => return Ok((TargetState::NamespaceNotFound, false)),
        Target::Terminating(_) => return Ok((TargetState::NamespaceTerminating, false)),
        Target::Active(ns) => ns,
    };
    let name = k.name_any();
    let cached = ctx
        .secrets
        .get(ns, &spec.secret_name)
        .filter(|c| c.label(K::KIND.label()) == Some(name.as_str()) && c.label(LABEL_ROLE) == Some("copy"));
    match cached {
        Some(c) if c.is_current(&copy.copy.digest, &copy.copy.ids, copy.copy.labels.iter()) => {
            Ok((TargetState::Synced, false))
        }
        Some(_) => refresh_copy(k, ctx, spec, ns, copy).await,
        None => create_copy(k, ctx, spec, ns, copy).await,
    }
}

/// A copy the cache does not hold: create it; if a Secret of that name
/// exists (the cache lags), it is refreshed as below.
async fn create_copy<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    ns: &str,
    copy: &Copies<'_>,
) -> Result<(TargetState, bool)> {
    match writer::create(&ctx.shared.client, &copy.copy.secret(None, ns, &spec.secret_name)).await? {
        Created::Yes(_) => Ok((TargetState::Synced, true)),
        Created::NoNamespace(_) => Ok((TargetState::NamespaceNotFound, false)),
        Created::AlreadyExists => refresh_copy(k, ctx, spec, ns, copy).await,
    }
}

/// A copy that is stale, or exists unknown to the cache: read it from the
/// API server (the cache keeps only a digest) and, if it is this keyring's
/// and not current, replace it with its other labels, annotations and data
/// kept; somebody else's Secret is left alone.
async fn refresh_copy<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    ns: &str,
    copy: &Copies<'_>,
) -> Result<(TargetState, bool)> {
    match observe::secret(&ctx.shared.client, ns, &spec.secret_name).await? {
        Some(s)
            if s.labels().get(K::KIND.label()) == Some(&k.name_any())
                && s.labels().get(LABEL_ROLE).map(String::as_str) == Some("copy") =>
        {
            // Never fewer keys than the copy holds (while the master has them).
            let held = decide::parse_ring(&s).ok();
            let widened = held.and_then(|h| decide::copy_ring(copy.master, copy.ring, &h));
            let wide;
            let this = match &widened {
                Some(ring) => {
                    wide = Copy::of(ring, copy.copy.labels.clone());
                    &wide
                }
                None => &copy.copy,
            };
            if desired::copy_is_current(&s, &this.bytes, &this.ids, &this.labels) {
                return Ok((TargetState::Synced, false));
            }
            writer::replace(&ctx.shared.client, &this.secret(Some(&s), ns, &spec.secret_name)).await?;
            Ok((TargetState::Synced, true))
        }
        Some(_) => Ok((TargetState::SecretConflict { secret_name: spec.secret_name.clone() }, false)),
        None => Ok((TargetState::WriteConflict, false)),
    }
}
