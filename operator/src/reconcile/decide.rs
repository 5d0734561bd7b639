//! Decide: pure functions from what a reconcile saw (and the keyring's
//! memory) to what it does. No API calls, no clock: `now` is an input.
//! The decision table is unit-tested below, case by case.

use std::time::Duration;

use encstr_core::{KeyId, Keyring, Recipient};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use zeroize::Zeroizing;

use super::events::{self, Note};
use super::observe::Target;
use crate::crd::*;
use crate::desired::{self, Invalid, KeyMeta, RotationReason, Step, ValidSpec};
use crate::guard::{self, Guard};
use crate::keyring::{KeyringResource, is_managed};
use crate::usage::Usage;

/// The master as found and parsed.
#[derive(Debug, Clone)]
pub struct Master {
    /// The Secret as read (its resourceVersion is the write precondition).
    pub secret: Secret,
    /// Its keyring.
    pub ring: Keyring,
    /// Its keys' lifecycle.
    pub meta: KeyMeta,
}

/// The keyring in a Secret's `keyring` key.
pub fn parse_ring(secret: &Secret) -> Result<Keyring, encstr_core::Error> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .map(|b| Zeroizing::new(b.0.clone()))
        .unwrap_or_default();
    std::str::from_utf8(&bytes).map_err(|_| encstr_core::Error::NotUtf8).and_then(Keyring::parse)
}

/// Why a keyring is held: nothing is generated, overwritten or deleted.
/// (What each says is in `events`.)
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// The spec is invalid (the reason and message of `desired::validate`).
    Spec(Invalid),
    /// A Secret of the master's name exists and is not this keyring's.
    MasterConflict {
        /// `namespace/name`.
        place: String,
    },
    /// The master's keyring does not parse.
    MasterInvalid {
        /// `namespace/name`.
        place: String,
        /// Why (a core error: never key material).
        error: String,
    },
    /// `spec.importFrom` cannot be used.
    Import(ImportProblem),
    /// The master's namespace cannot hold it.
    NamespaceMissing {
        /// The namespace.
        namespace: String,
        /// What the API server said.
        why: String,
    },
    /// Keys of the master are in no backup at the current destinations
    /// (only deletion looks at this: the Secrets are their last holders).
    NotBackedUp {
        /// The keys no backup holds.
        keys: Vec<KeyId>,
    },
    /// No master, and the backup destinations already hold backups: no new
    /// keyring is generated over them.
    BackupsExist {
        /// The destinations holding backups, described.
        found: Vec<String>,
    },
    /// A key-loss guard holds writes back.
    Guard {
        /// The guard.
        guard: Guard,
        /// The master's place, `namespace/name`, for the message.
        master: String,
    },
}

/// Why `spec.importFrom` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportProblem {
    /// The Secret does not exist.
    NotFound {
        /// Its name.
        name: String,
        /// The master's namespace.
        namespace: String,
    },
    /// It is another keyring's master or copy.
    Managed {
        /// `namespace/name`.
        place: String,
    },
    /// It has no such key.
    NoKey {
        /// Its name.
        name: String,
        /// The data key.
        key: String,
    },
    /// The key does not hold a keyring.
    NotAKeyring {
        /// Its name.
        name: String,
        /// The data key.
        key: String,
        /// Why (a core error: never key material).
        error: String,
    },
}

impl Hold {
    /// Whether the hold is looked at again after the resync interval
    /// without a change to the keyring: every hold but an invalid spec (only
    /// an edit of the keyring fixes that, and it triggers a reconcile). The
    /// fix of the others may be where no watch sees it: the import Secret
    /// created or repaired, somebody else's Secret moved out of the master's
    /// way (neither carries the keyring's label), the master's namespace
    /// created, a backup destination emptied.
    pub fn rechecks(&self) -> bool {
        !matches!(self, Hold::Spec(_))
    }

    /// The guard, if a guard holds.
    pub fn guard(&self) -> Option<&Guard> {
        match self {
            Hold::Guard { guard, .. } => Some(guard),
            _ => None,
        }
    }
}

/// Read the master Secret: this keyring's (its label and role `master`)
/// and parsable, or why it is held.
/// A master put back by hand (no encstr.io annotations: from a backup or an
/// offline file) takes its lifecycle from the status's record, so nothing
/// (like an old rotation request) is done twice.
pub fn master<K: KeyringResource>(
    k: &K,
    place: &str,
    secret: Option<Secret>,
    now: Timestamp,
) -> Result<Option<Master>, Hold> {
    let Some(secret) = secret else { return Ok(None) };
    // Name (how it was read), label, role, and content (below), as copies
    // are matched: a labelled Secret of another role is not the master.
    let labels = secret.labels();
    if labels.get(K::KIND.label()) != Some(&k.name_any())
        || labels.get(LABEL_ROLE).map(String::as_str) != Some("master")
    {
        return Err(Hold::MasterConflict { place: place.to_owned() });
    }
    let ring = parse_ring(&secret)
        .map_err(|e| Hold::MasterInvalid { place: place.to_owned(), error: e.to_string() })?;
    let restored = !secret.annotations().keys().any(|a| a.starts_with(LABEL_PREFIX));
    let meta = if restored {
        meta_from_status(&ring, k.keyring_status(), k.annotations().get(ANN_ROTATE).map(String::as_str), now)
    } else {
        KeyMeta::from_annotations(secret.annotations())
    };
    Ok(Some(Master { secret, ring, meta }))
}

/// The lifecycle of a restored master, from the status's record.
pub fn meta_from_status(
    ring: &Keyring,
    st: Option<&KeyringStatus>,
    rotate: Option<&str>,
    now: Timestamp,
) -> KeyMeta {
    let mut meta = KeyMeta::initial(ring, rotate, now);
    let time = |t: &Option<String>| t.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
    for k in st.into_iter().flat_map(|s| &s.keys) {
        let Ok(id) = k.id.parse::<KeyId>() else { continue };
        if !ring.contains(id) {
            continue;
        }
        if let Some(t) = time(&k.created_at) {
            meta.created.insert(id, t);
        }
        if let Some(t) = time(&k.promoted_at) {
            meta.promoted.insert(id, t);
        }
        if let Some(t) = time(&k.retired_at) {
            meta.retired.insert(id, t);
        }
        if k.imported {
            meta.imported.insert(id);
        }
        if k.state == KeyState::Staged && id != ring.primary().id() {
            meta.staged = Some(id);
            meta.retired.remove(&id);
        }
    }
    meta
}

/// What a reconcile saw of a keyring whose spec is valid.
#[derive(Debug)]
pub struct Seen<'a> {
    /// `spec.secretName`.
    pub secret_name: &'a str,
    /// The master's place, `namespace/name`.
    pub place: &'a str,
    /// The master, if it exists.
    pub master: Option<&'a Master>,
    /// The status (the record of handed-out keys).
    pub status: Option<&'a KeyringStatus>,
    /// Secrets carrying the keyring's label other than the master.
    pub labelled: &'a [String],
    /// `encstr.io/restore-from`.
    pub restore_from: Option<&'a str>,
    /// `encstr.io/accept-missing-keys`.
    pub accept_missing: Option<&'a str>,
}

/// What `encstr.io/accept-missing-keys` does in this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accept {
    /// The annotation is absent (or not looked at).
    Absent,
    /// The loss of these keys is acknowledged; the annotation goes once the
    /// keyring proceeds.
    Accepted(Vec<KeyId>),
    /// Refused (and why); the annotation goes.
    Refused(String),
}

/// What to do with a keyring.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Nothing is written but the status.
    Hold(Hold),
    /// `encstr.io/restore-from`: rebuild the master from the copy in this
    /// namespace, if `guard::restore` allows it once the copy is read.
    Restore {
        /// The namespace named.
        from: String,
        /// The guard that holds (a restore applies only to MasterMissing).
        guard: Option<Guard>,
    },
    /// No master and nothing handed out: create one.
    Create,
    /// Converge the existing master and its copies.
    Converge,
}

/// The decision for a keyring whose spec is valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The accept annotation's effect.
    pub accept: Accept,
    /// The path.
    pub next: Next,
}

impl Decision {
    /// The guard gauge's value when the guards were looked at
    /// (`Some(None)`: none holds), `None` when they were not.
    pub fn guard_gauge(&self) -> Option<Option<&'static str>> {
        match &self.next {
            Next::Hold(Hold::Guard { guard, .. }) => Some(Some(guard.reason())),
            Next::Create | Next::Converge => Some(None),
            Next::Hold(_) | Next::Restore { .. } => None,
        }
    }
}

/// Decide what to do with a keyring (the spec is valid, the master is this
/// keyring's and parses).
pub fn keyring(seen: &Seen<'_>) -> Decision {
    let check = |accepted: &[KeyId]| {
        guard::check(&guard::Input {
            secret_name: seen.secret_name,
            status: seen.status,
            master: seen.master.map(|m| (&m.ring, &m.meta)),
            labelled: seen.labelled,
            accepted,
        })
    };
    let mut guard = check(&[]);
    if let Some(from) = seen.restore_from {
        return Decision { accept: Accept::Absent, next: Next::Restore { from: from.to_owned(), guard } };
    }
    let accept = match seen.accept_missing.map(|value| guard::accept(guard.as_ref(), value)) {
        None => Accept::Absent,
        Some(Ok(ids)) => {
            guard = check(&ids);
            Accept::Accepted(ids)
        }
        Some(Err(why)) => Accept::Refused(why),
    };
    let next = match (guard, seen.master) {
        (Some(guard), _) => Next::Hold(Hold::Guard { guard, master: seen.place.to_owned() }),
        (None, None) => Next::Create,
        (None, Some(_)) => Next::Converge,
    };
    Decision { accept, next }
}

/// The targets whose copies a promotion waits for: the active ones, but
/// not one the last distribution found holding somebody else's Secret of
/// that name (it never gets a copy; waiting for it would hold every
/// rotation back).
pub fn promotion_targets<'a>(targets: &'a [Target], status: Option<&KeyringStatus>) -> Vec<&'a str> {
    let conflict = |ns: &str| {
        status.is_some_and(|s| {
            s.targets.iter().any(|t| t.namespace == ns && t.reason.as_deref() == Some("SecretConflict"))
        })
    };
    targets
        .iter()
        .filter_map(|t| match t {
            Target::Active(ns) if !conflict(ns) => Some(ns.as_str()),
            _ => None,
        })
        .collect()
}

/// What deletion does: the policy asked for, except `Delete` while
/// anything holds the keyring's writes — then `Retain`, with a Warning.
pub fn deletion(requested: DeletionPolicy, hold: Option<&Hold>) -> (DeletionPolicy, Option<Note>) {
    match (requested, hold) {
        (DeletionPolicy::Delete, Some(hold)) => {
            (DeletionPolicy::Retain, Some(Note::DeletionRetained(hold.invalid())))
        }
        (policy, _) => (policy, None),
    }
}

/// Keys of `ring` the last backup does not hold, when backups are on.
pub fn not_backed_up(spec: &ValidSpec, ring: &Keyring, last: Option<&LastBackup>) -> Option<Hold> {
    spec.backup.as_ref()?;
    let held: Vec<String> = last.map(|l| l.key_ids.clone()).unwrap_or_default();
    let keys: Vec<KeyId> = ring.ids().into_iter().filter(|id| !held.contains(&id.to_string())).collect();
    (!keys.is_empty()).then_some(Hold::NotBackedUp { keys })
}

/// Before a master is created: Secrets still carrying the keyring's label,
/// as the API server lists them (not the cache), mean keys were handed out
/// by a master that is gone.
pub fn create(place: &str, labelled_on_server: Vec<String>) -> Result<(), Hold> {
    if labelled_on_server.is_empty() {
        return Ok(());
    }
    Err(Hold::Guard { guard: Guard::MasterMissing { copies: labelled_on_server }, master: place.to_owned() })
}

/// Whether a new keyring's backup destinations must be looked at before
/// one is generated: backups are on, nobody said
/// `encstr.io/ignore-existing-backups`, and this process has not backed
/// this keyring up itself (a retry after the master could not be created
/// finds its own backups).
pub fn look_for_backups(spec: &ValidSpec, ignore: bool, wrote_backup: bool) -> bool {
    spec.backup.is_some() && !ignore && !wrote_backup
}

/// Whether a new keyring may be generated, given the backup destinations
/// that hold backups: not over backups of a keyring that is gone (its keys
/// may protect data: restore it instead). (A destination that cannot be
/// looked at is a failed backup: nothing is generated either.)
pub fn generate(found: &[String]) -> Result<(), Hold> {
    if found.is_empty() {
        return Ok(());
    }
    Err(Hold::BackupsExist { found: found.to_vec() })
}

/// Whether the copy in `ns` (its keyring's digest `digest`) may rebuild the
/// master: `ns` is an active target, and every copy the cache holds in the
/// targets holds that same keyring. A Secret planted with the keyring's
/// label and colliding key ids cannot become the master.
pub fn restore_source(
    ns: &str,
    targets: &[Target],
    digest: [u8; 32],
    cached: &[(String, Option<[u8; 32]>)],
) -> Result<(), String> {
    if !targets.iter().any(|t| matches!(t, Target::Active(n) if n == ns)) {
        return Err(format!(
            "namespace {ns} is not an active target of this keyring; restore from a copy in one"
        ));
    }
    let in_targets = cached.iter().filter(|(n, _)| targets.iter().any(|t| t.name() == n));
    let differs: Vec<&str> =
        in_targets.filter(|(_, d)| *d != Some(digest)).map(|(n, _)| n.as_str()).collect();
    if !differs.is_empty() {
        return Err(format!(
            "the copy in namespace {ns} differs from the copies in {} (one of them was changed); restore the master from a backup instead",
            differs.join(", ")
        ));
    }
    Ok(())
}

/// The keyring a new master starts with: `None` to generate one, or the
/// one `spec.importFrom` names (`source` is that Secret, if it exists).
pub fn import(spec: &ValidSpec, master_ns: &str, source: Option<&Secret>) -> Result<Option<Keyring>, Hold> {
    let Some((name, key)) = &spec.import else { return Ok(None) };
    let (name, key) = (name.clone(), key.clone());
    let held = |p| Err(Hold::Import(p));
    let Some(source) = source else {
        return held(ImportProblem::NotFound { name, namespace: master_ns.to_owned() });
    };
    if is_managed(source.labels()) {
        return held(ImportProblem::Managed { place: format!("{master_ns}/{name}") });
    }
    let Some(bytes) = source.data.as_ref().and_then(|d| d.get(&key)) else {
        return held(ImportProblem::NoKey { name, key });
    };
    let text = Zeroizing::new(String::from_utf8_lossy(&bytes.0).into_owned());
    match Keyring::parse(&text) {
        Ok(ring) => Ok(Some(ring)),
        Err(e) => held(ImportProblem::NotAKeyring { name, key, error: e.to_string() }),
    }
}

/// The part of `ring` that may be distributed: all of it without backups;
/// with backups, the keys the newest backup holds (`None`: none yet).
pub fn distributable(spec: &ValidSpec, ring: &Keyring, last: Option<&LastBackup>) -> Option<Keyring> {
    if spec.backup.is_none() || crate::backup::holds_all(last, ring) {
        return Some(ring.clone());
    }
    let last = last?;
    let keys: Vec<_> =
        ring.keys().filter(|key| last.key_ids.contains(&key.id().to_string())).cloned().collect();
    Keyring::new(keys).ok()
}

/// What a copy that holds `held` gets: the distributable keys, and every
/// key of the master it already holds — a copy never loses a key the
/// master still has (backups turned off and on again, a failing backup),
/// in the master's order. `None`: the distributable ring as it is.
pub fn copy_ring(master: &Keyring, distributable: &Keyring, held: &Keyring) -> Option<Keyring> {
    let extra = held.ids().into_iter().any(|id| master.contains(id) && !distributable.contains(id));
    if !extra {
        return None;
    }
    let keys = master.keys().filter(|k| distributable.contains(k.id()) || held.contains(k.id())).cloned();
    Keyring::new(keys.collect()).ok()
}

/// Keys retention wants gone that are still used, and a Warning when that
/// is news (the PruneBlocked condition does not already name the places).
pub fn prune_blocked(
    status: Option<&KeyringStatus>,
    candidates: &[KeyId],
    ring: &Keyring,
    usage: Option<&Usage>,
) -> (Vec<KeyId>, Option<Note>) {
    let Some(u) = usage else { return (Vec::new(), None) };
    let blocked: Vec<KeyId> = candidates
        .iter()
        .filter(|c| ring.contains(**c) && (u.count(**c) > 0 || u.unreadable > 0))
        .copied()
        .collect();
    let was = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::PRUNE_BLOCKED));
    let places: Vec<String> = blocked
        .iter()
        .flat_map(|id| u.places.get(id).cloned().unwrap_or_default())
        .chain(u.unreadable_places.iter().cloned())
        .take(5)
        .collect();
    let news =
        was.is_none_or(|c| c.status != "True" || !places.iter().all(|p| c.message.contains(p.as_str())));
    let note = (!blocked.is_empty() && news).then(|| Note::PruneBlocked { keys: blocked.clone(), places });
    (blocked, note)
}

/// Imported keys retention keeps (see `desired::kept_imported`), and a
/// Normal event when that is news (the status does not already say
/// `kept: Imported` for each of them).
pub fn imported_kept(status: Option<&KeyringStatus>, kept: &[KeyId]) -> Option<Note> {
    let shown = |id: &KeyId| {
        status
            .is_some_and(|s| s.keys.iter().any(|k| k.id == id.to_string() && k.kept == Some(Kept::Imported)))
    };
    (!kept.iter().all(shown)).then(|| Note::ImportedKept(kept.to_vec()))
}

/// The event saying a due rotation waits for the minimum interval, when
/// that is news (the RotationInProgress condition does not say so yet).
pub fn rotation_deferred_note(
    status: Option<&KeyringStatus>,
    why: &RotationReason,
    at: Timestamp,
    interval: Duration,
) -> Option<Note> {
    let said = status
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::ROTATING))
        .is_some_and(|c| c.reason == "RotationDeferred");
    (!said).then(|| Note::RotationDeferred { why: why.clone(), at, interval })
}

/// The event announcing a step written to the master.
pub fn step_note(step: &Step, before: &Keyring, after: &Keyring, meta: &KeyMeta) -> Option<Note> {
    match step {
        Step::Stage(why) => {
            Some(Note::KeyStaged { why: why.clone(), staged: meta.staged?, primary: after.primary().id() })
        }
        Step::Promote => {
            Some(Note::KeyPromoted { primary: after.primary().id(), former: before.primary().id() })
        }
        Step::Prune(removed) => Some(Note::KeysPruned(removed.clone())),
        Step::MarkDistributed | Step::AcknowledgeRequest => None,
    }
}

/// What `next_look` needs besides the keyring.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The resync interval.
    pub resync: Duration,
    /// A step was written this time.
    pub stepped: bool,
    /// When the staged key is promoted, if its delay is running.
    pub promotion_at: Option<Timestamp>,
    /// When a failed backup is retried.
    pub backup_retry: Option<Duration>,
    /// The usage scan interval, when retention wants keys gone.
    pub rescan: Option<Duration>,
    /// When a deferred rotation may start.
    pub rotation_at: Option<Timestamp>,
    /// Now.
    pub now: Timestamp,
}

/// When to look at a converged keyring again.
pub fn next_look(spec: &ValidSpec, ring: &Keyring, meta: &KeyMeta, t: Timing) -> Duration {
    let (resync, now) = (t.resync, t.now);
    let mut wait = if t.stepped {
        Duration::from_millis(50)
    } else if let Some(at) = t.promotion_at {
        let wait = Duration::try_from(now.duration_until(at)).unwrap_or_default();
        wait.clamp(Duration::from_millis(100), resync.max(Duration::from_millis(100)))
    } else if meta.staged.is_some() {
        Duration::from_secs(2)
    } else {
        // A rotation deferred by the minimum interval is due when it ends.
        let rotation_due = t.rotation_at.or_else(|| {
            spec.every.map(|every| {
                let since = meta.promoted.values().max().copied().unwrap_or(now);
                since + SignedDuration::try_from(every).unwrap_or_default()
            })
        });
        let prune_due = desired::next_prune_at(spec, ring, meta);
        match [rotation_due, prune_due].into_iter().flatten().min() {
            Some(due) => {
                let wait = Duration::try_from(now.duration_until(due)).unwrap_or_default();
                wait.clamp(Duration::from_millis(200), resync.max(Duration::from_millis(200)))
            }
            None => resync,
        }
    };
    if let Some(retry) = t.backup_retry {
        wait = wait.min(retry);
    }

    // Keys retention wants gone are looked at again after the scan interval
    // (ConfigMaps and Secrets are not watched).
    if let Some(rescan) = t.rescan {
        wait = wait.min(rescan.max(Duration::from_millis(200)));
    }
    wait
}

/// When the staged key is promoted, if its delay is running.
pub fn promotion_at(spec: &ValidSpec, meta: &KeyMeta) -> Option<Timestamp> {
    meta.staged
        .and(meta.distributed_at)
        .map(|at| at + SignedDuration::try_from(spec.promotion_delay).unwrap_or_default())
}

/// What a target's copy is known to hold, for the recipient published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// These keys: the copy was written or found current in this reconcile.
    Keys(Vec<KeyId>),
    /// A copy may be there, holding what it held before (its write failed
    /// or raced, or nothing was distributed for want of a backup).
    Unknown,
}

/// What the operator knows the copy in a target holds after distributing
/// `distributed` (`None`: the target does not count — no copy of this
/// keyring goes there: the namespace is missing or terminating, or holds
/// somebody else's Secret of that name).
pub fn holding(state: &events::TargetState, distributed: &Keyring) -> Option<Holding> {
    match state {
        events::TargetState::Synced => Some(Holding::Keys(distributed.ids())),
        events::TargetState::NamespaceNotFound
        | events::TargetState::NamespaceTerminating
        | events::TargetState::SecretConflict { .. } => None,
        events::TargetState::WriteConflict
        | events::TargetState::BackupPending
        | events::TargetState::WriteFailed { .. }
        | events::TargetState::RecipientConflict { .. }
        | events::TargetState::RecipientWriteFailed { .. } => Some(Holding::Unknown),
    }
}

/// The recipient to publish (ENCSTR-v2 §2), so that a value sealed to it
/// opens in every target at every moment: the primary's once every copy
/// that counts is known to hold the primary (after the first distribution,
/// after each promotion — the copies held the staged key before it was
/// promoted); until then the one `published` before, while the master
/// still holds its key and no copy is known to lack it; else none. A
/// SecretKeyring has no copies (`copies` is empty): the master its pods
/// mount holds the primary.
pub fn recipient(ring: &Keyring, published: Option<&str>, copies: &[Holding]) -> Option<Recipient> {
    let held_by = |id: KeyId, unknown: bool| {
        copies.iter().all(|c| match c {
            Holding::Keys(ids) => ids.contains(&id),
            Holding::Unknown => unknown,
        })
    };
    let primary = ring.primary();
    if held_by(primary.id(), false) {
        return Some(primary.recipient().clone());
    }
    // The status is a record, not proof: the recipient comes from the
    // master's own key of that id, and only if it is the one published.
    let before = published.and_then(|p| Recipient::parse(p).ok())?;
    let key = ring.keys().find(|k| k.id() == before.key_id())?;
    (key.recipient() == &before && held_by(key.id(), true)).then_some(before)
}

/// Whether a target gets the recipient ConfigMap: its copy is known to hold
/// the recipient's key.
pub fn publishes_in(copy: &Holding, recipient: &Recipient) -> bool {
    matches!(copy, Holding::Keys(ids) if ids.contains(&recipient.key_id()))
}

#[cfg(test)]
mod tests;
