//! Report: the status (computed by `status`), events and metrics of a
//! reconcile, written last.

use encstr_core::{KeyId, Keyring};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use tracing::warn;

use super::decide::{Hold, Master};
use super::escrow::BackupState;
use super::events::Note;
use crate::context::Ctx;
use crate::crd::*;
use crate::desired::{self, KeyMeta, RotationReason, ValidSpec};
use crate::error::Result;
use crate::keyring::{Id, KeyringResource, Kind};
use crate::metrics::{KeyStateLabels, KeyringLabels, TargetLabels};
use crate::status;
use crate::usage::Usage;
use crate::writer;

/// The status input of a keyring with nothing known but its kind,
/// generation and backups.
fn base<'a, K: KeyringResource>(k: &K, backup: status::BackupInput<'a>) -> status::Input<'a> {
    status::Input {
        master: None,
        secret_name: None,
        cluster: K::KIND == Kind::Cluster,
        usage: None,
        blocked: &[],
        kept_imported: &[],
        targets: status::Targets::Seen(Vec::new()),
        invalid: None,
        generation: k.meta().generation,
        backup,
        promotion_at: None,
        recipient: None,
        local: None,
        rotation_deferred: None,
        now: Timestamp::now(),
    }
}

/// Publish a reconcile's events, in order.
pub async fn publish<K: KeyringResource>(k: &K, ctx: &Ctx, notes: Vec<Note>) {
    for n in notes {
        ctx.shared.publish(k, n.type_(), n.reason(), n.note()).await;
    }
}

/// Nothing can be written (invalid spec, a guard, a foreign or broken
/// master): status and a Warning event when the reason or message changes.
pub async fn held<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    master: Option<&Master>,
    hold: &Hold,
) -> Result<Action> {
    let inv = hold.invalid();
    warn!(reason = inv.reason, message = %inv.message, "holding back");
    let previous = k.keyring_status().and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::READY));
    if previous.is_none_or(|c| c.reason != inv.reason || c.message != inv.message) {
        publish(k, ctx, vec![Note::Held(inv.clone())]).await;
    }
    // A guard keeps the record of handed-out keys as it was.
    let guard = hold.guard().is_some();
    let shown = if guard { None } else { master.map(|m| (&m.ring, &m.meta)) };
    let input = status::Input {
        master: shown,
        targets: status::Targets::Carried,
        recipient: k.keyring_status().and_then(|s| s.recipient.clone()),
        invalid: Some(&inv),
        ..base(k, status::BackupInput::Carry)
    };
    let st = status::compute(k.keyring_status(), &input);
    writer::status(&ctx.shared.client, k, &st).await?;
    Ok(held_wake(hold, ctx.shared.resync))
}

/// When a held keyring looks again. A bad spec is fixed by editing the
/// keyring (its own event wakes it); what else holds it may be fixed in
/// objects no watch covers (somebody else's Secret at the master's place
/// deleted, an import source created, the master's namespace made), so it
/// looks again after the resync interval, at most a minute; a guard at the
/// resync interval.
pub fn held_wake(hold: &Hold, resync: std::time::Duration) -> Action {
    match hold {
        Hold::Guard { .. } => Action::requeue(resync),
        h if h.rechecks() => Action::requeue(resync.min(std::time::Duration::from_secs(60))),
        _ => Action::await_change(),
    }
}

/// A new keyring whose first backup failed: no master yet, the failure in
/// the status.
pub async fn not_backed_up<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    b: &BackupState,
    notes: Vec<Note>,
) -> Result<()> {
    publish(k, ctx, notes).await;
    let backup = status::BackupInput::On { last: None, failure: b.failure.as_deref() };
    let st = status::compute(k.keyring_status(), &base(k, backup));
    writer::status(&ctx.shared.client, k, &st).await
}

/// Everything [`converged`] needs besides the keyring.
#[derive(Debug, Default)]
pub struct Report {
    /// Backups.
    pub backup: BackupState,
    /// Each target's state (cluster kind).
    pub targets: Vec<TargetStatus>,
    /// The last complete usage count.
    pub usage: Option<Usage>,
    /// Keys retention wants gone that are still used.
    pub blocked: Vec<KeyId>,
    /// Keys retention wants gone but keeps because they were imported.
    pub kept_imported: Vec<KeyId>,
    /// Events, in order.
    pub notes: Vec<Note>,
    /// When the staged key is promoted.
    pub promotion_at: Option<Timestamp>,
    /// The recipient published (`None`: none yet, or withheld).
    pub recipient: Option<String>,
    /// A SecretKeyring's own namespace, when its recipient ConfigMap
    /// cannot be written there.
    pub local: Option<TargetStatus>,
    /// A due rotation that waits for the minimum interval, and until when.
    pub rotation_deferred: Option<(RotationReason, Timestamp)>,
}

/// Status, events and metrics of a usable master.
pub async fn converged<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    ring: &Keyring,
    meta: &KeyMeta,
    r: Report,
) -> Result<()> {
    let backup = match &spec.backup {
        Some(_) => {
            status::BackupInput::On { last: r.backup.last.as_ref(), failure: r.backup.failure.as_deref() }
        }
        None => status::BackupInput::Off,
    };
    let input = status::Input {
        master: Some((ring, meta)),
        secret_name: Some(&spec.secret_name),
        usage: r.usage.as_ref(),
        blocked: &r.blocked,
        kept_imported: &r.kept_imported,
        targets: status::Targets::Seen(r.targets),
        promotion_at: r.promotion_at,
        recipient: r.recipient,
        local: r.local,
        rotation_deferred: r
            .rotation_deferred
            .as_ref()
            .map(|(why, at)| (why, *at, ctx.shared.min_rotation_interval)),
        ..base(k, backup)
    };
    let st = status::compute(k.keyring_status(), &input);
    let all = match &input.targets {
        status::Targets::Seen(all) => all.as_slice(),
        status::Targets::Carried => &[],
    };
    record_metrics(ctx, &k.id(), ring, meta, all, r.blocked.len());
    publish(k, ctx, r.notes).await;
    writer::status(&ctx.shared.client, k, &st).await
}

fn record_metrics(
    ctx: &Ctx,
    id: &Id,
    ring: &Keyring,
    meta: &KeyMeta,
    targets: &[TargetStatus],
    blocked: usize,
) {
    let m = &ctx.shared.metrics;
    let (kind, namespace, keyring) = (id.kind.as_str(), id.namespace.clone(), id.name.clone());
    let states = desired::key_states(ring, meta);
    for state in [KeyState::Primary, KeyState::Staged, KeyState::DecryptOnly] {
        let n = states.iter().filter(|(_, s)| *s == state).count();
        m.keys
            .get_or_create(&KeyStateLabels {
                kind,
                namespace: namespace.clone(),
                keyring: keyring.clone(),
                state: state.as_str(),
            })
            .set(n as i64);
    }
    if let Some(p) = meta.primary_since(ring) {
        m.set_primary_since(id, p.as_second() as f64);
    }
    if id.kind == Kind::Cluster {
        // Every target (the status lists only some of them).
        let (synced, total) = status::target_counts(targets);
        let (synced, total) = (synced as i64, total as i64);
        m.targets
            .get_or_create(&TargetLabels {
                kind,
                namespace: namespace.clone(),
                keyring: keyring.clone(),
                synced: "true",
            })
            .set(synced);
        m.targets
            .get_or_create(&TargetLabels { kind, namespace, keyring, synced: "false" })
            .set(total - synced);
    }
    m.prune_blocked.get_or_create(&KeyringLabels::of(id)).set(blocked as i64);
}
