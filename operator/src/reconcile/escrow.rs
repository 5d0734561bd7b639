//! Act, for backups: write the keyring to the spec's destinations through
//! `backup`, with the retry delay, metrics and events that follow the
//! outcome. The rule (no key anywhere before a backup holds it) is applied
//! by the callers in `create` and `converge`.

use std::time::Duration;

use encstr_core::Keyring;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use tracing::{info, warn};

use super::events::Note;
use crate::backup::{self, store::Writer};
use crate::context::Ctx;
use crate::crd::LastBackup;
use crate::desired::ValidSpec;
use crate::keyring::{KeyringResource, Kind};
use crate::metrics::KeyringLabels;

/// Backups during one reconcile: the newest written and the last failure.
#[derive(Debug, Default)]
pub struct BackupState {
    /// The newest backup (this process's memory, else the status).
    pub last: Option<LastBackup>,
    /// Why the last attempt failed.
    pub failure: Option<String>,
    /// When to try again after a failure.
    pub retry: Option<Duration>,
}

impl BackupState {
    /// What is known before this reconcile writes anything: the newest
    /// backup, if it went to the destinations the spec names now.
    pub fn of<K: KeyringResource>(k: &K, ctx: &Ctx, spec: &ValidSpec, master_ns: &str) -> Self {
        let from_status = k.keyring_status().and_then(|s| s.last_backup.as_ref());
        let last = ctx.shared.last_backup(&k.id(), from_status);
        let last = match &spec.backup {
            Some(plan) => last.filter(|l| backup::written_to(plan, master_ns, l)),
            None => None,
        };
        BackupState { last, ..Default::default() }
    }
}

/// Where and how a keyring's backups are written (and looked for).
pub fn destination<'a, K: KeyringResource>(
    _k: &K,
    ctx: &'a Ctx,
    master_ns: &'a str,
) -> backup::Destination<'a> {
    backup::Destination {
        master_ns,
        writer: match K::KIND {
            Kind::Namespaced => Writer::Tenant,
            Kind::Cluster => Writer::Admin,
        },
        policy: &ctx.shared.backup_policy,
        timeout: ctx.shared.backup_timeout,
    }
}

/// The destinations of `plan` that already hold backups, before a new
/// keyring is generated; `None` when one cannot be looked at (or backups
/// are backing off after a failure): a failed backup, with its events,
/// metrics and retry delay — nothing is generated.
pub async fn existing<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    plan: &backup::Plan,
    master_ns: &str,
    b: &mut BackupState,
    notes: &mut Vec<Note>,
) -> Option<Vec<String>> {
    if let Err((why, wait)) = ctx.shared.may_back_up(&k.id()) {
        b.failure = Some(why);
        b.retry = Some(wait.max(Duration::from_millis(100)));
        return None;
    }
    match backup::existing(&ctx.shared.client, plan, destination(k, ctx, master_ns)).await {
        Ok(found) => Some(found),
        Err(failure) => {
            ctx.shared.metrics.backup_failures.get_or_create(&KeyringLabels::of(&k.id())).inc();
            b.retry = ctx.shared.backed_up(&k.id(), Some(&failure.to_string()));
            warn!(error = %failure, "cannot look for existing backups");
            b.failure = Some(failure.to_string());
            notes.push(Note::BackupFailed { keys: NO_KEYS_YET.into(), failure });
            None
        }
    }
}

/// What a failed look for existing backups names as the keys.
const NO_KEYS_YET: &str = "(none yet: looking for backups of an earlier keyring)";

/// Back `ring` up to every destination (when the spec asks for backups):
/// events, metrics and the retry delay follow the outcome. Whether every
/// key of `ring` is now in a backup.
pub async fn back_up<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
    ring: &Keyring,
    b: &mut BackupState,
    notes: &mut Vec<Note>,
) -> bool {
    let Some(plan) = &spec.backup else { return true };
    if let Err((why, wait)) = ctx.shared.may_back_up(&k.id()) {
        // Backing off after a failure.
        b.failure = Some(why);
        b.retry = Some(wait.max(Duration::from_millis(100)));
        return false;
    }
    let owner = backup::Owner {
        labels: k.managed_labels("backup"),
        label: (K::KIND.label().to_owned(), k.name_any()),
    };
    let to = destination(k, ctx, master_ns);
    let kl = KeyringLabels::of(&k.id());
    let keys = backup::ids(ring).join(",");
    match backup::write(&ctx.shared.client, plan, to, &owner, ring, Timestamp::now(), b.last.as_ref()).await {
        Ok(last) => {
            ctx.shared.backed_up(&k.id(), None);
            ctx.shared.wrote_backup(&k.id(), &last);
            let now = Timestamp::now().as_millisecond() as f64 / 1000.0;
            ctx.shared.metrics.backup_success.get_or_create(&kl).set(now);
            info!(keys = %keys, location = %last.location, "backup written");
            notes.push(Note::BackupWritten { keys, location: last.location.clone() });
            b.last = Some(last);
            b.failure = None;
            b.retry = None;
            true
        }
        Err(failure) => {
            ctx.shared.metrics.backup_failures.get_or_create(&kl).inc();
            b.retry = ctx.shared.backed_up(&k.id(), Some(&failure.to_string()));
            warn!(keys = %keys, error = %failure, "backup failed");
            b.failure = Some(failure.to_string());
            notes.push(Note::BackupFailed { keys, failure });
            false
        }
    }
}
