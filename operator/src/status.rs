//! Pure functions computing the status: keys, targets and conditions.
//! A condition's `lastTransitionTime` changes only when its status does.

use encstr_core::{KeyId, Keyring};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{
    Condition, Kept, KeyState, KeyStatus, KeyringStatus, LastBackup, TargetStatus, condition, fmt_time,
};
use crate::desired::{Invalid, KeyMeta, key_states};
use crate::usage::Usage;

/// A condition, keeping the previous `lastTransitionTime` when the status
/// did not change.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let last = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| fmt_time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        last_transition_time: last,
        observed_generation: generation,
    }
}

/// What is known about backups.
#[derive(Debug, Clone, Copy, Default)]
pub enum BackupInput<'a> {
    /// Not configured: no `BackupCurrent` condition.
    #[default]
    Off,
    /// Not looked at (the keyring is blocked): the previous condition stays.
    Carry,
    /// Configured: the newest backup and the last attempt's failure.
    On {
        /// The newest backup written.
        last: Option<&'a LastBackup>,
        /// Why the last attempt failed (destination and reason).
        failure: Option<&'a str>,
    },
}

/// The targets of a cluster keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Every target's state, as distribution found it.
    Seen(Vec<TargetStatus>),
    /// Not looked at (the keyring is held): the previous status's list
    /// and counts stay.
    Carried,
}

/// What the status is computed from.
#[derive(Debug)]
pub struct Input<'a> {
    /// The master keyring and its lifecycle (absent if there is none, or
    /// it is not usable).
    pub master: Option<(&'a Keyring, &'a KeyMeta)>,
    /// The name the master has (when it exists).
    pub secret_name: Option<&'a str>,
    /// Whether the kind has targets (ClusterSecretKeyring).
    pub cluster: bool,
    /// Token usage, when counted completely.
    pub usage: Option<&'a Usage>,
    /// Keys retention wants gone but that are in use.
    pub blocked: &'a [KeyId],
    /// Keys retention wants gone but keeps because they were imported.
    pub kept_imported: &'a [KeyId],
    /// Target states (cluster kind).
    pub targets: Targets,
    /// Why the keyring cannot proceed (invalid spec, a guard, a conflict).
    pub invalid: Option<&'a Invalid>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Backups.
    pub backup: BackupInput<'a>,
    /// When the staged key will be promoted (if known).
    pub promotion_at: Option<Timestamp>,
    /// The recipient published (`reconcile::decide::recipient`); without a
    /// usable master the previous one is kept.
    pub recipient: Option<String>,
    /// A SecretKeyring's own namespace, when its recipient ConfigMap cannot
    /// be written there (a ClusterSecretKeyring says so per target).
    pub local: Option<TargetStatus>,
    /// A due rotation that waits for the minimum interval: why, until when,
    /// and the interval.
    pub rotation_deferred: Option<(&'a crate::desired::RotationReason, Timestamp, std::time::Duration)>,
    /// Now.
    pub now: Timestamp,
}

/// The keys, primary, count and last rotation: from a usable master, else
/// the record of what was handed out, kept as it was.
fn keys(status: &mut KeyringStatus, previous: Option<&KeyringStatus>, input: &Input<'_>) {
    match input.master {
        Some((ring, meta)) => {
            let previous_use =
                |id: &str| previous.and_then(|p| p.keys.iter().find(|k| k.id == id)).and_then(|k| k.in_use);
            status.keys = key_states(ring, meta)
                .into_iter()
                .map(|(id, state)| KeyStatus {
                    id: id.to_string(),
                    state,
                    created_at: meta.created.get(&id).map(|t| fmt_time(*t)),
                    promoted_at: meta.promoted.get(&id).map(|t| fmt_time(*t)),
                    retired_at: (state == KeyState::DecryptOnly)
                        .then(|| meta.retired.get(&id).map(|t| fmt_time(*t)))
                        .flatten(),
                    in_use: input.usage.map(|u| u.count(id)).or_else(|| previous_use(&id.to_string())),
                    imported: meta.imported.contains(&id),
                    kept: if input.blocked.contains(&id) {
                        Some(Kept::InUse)
                    } else if input.kept_imported.contains(&id) {
                        Some(Kept::Imported)
                    } else {
                        None
                    },
                })
                .collect();
            status.primary_key_id = Some(ring.primary().id().to_string());
            status.recipient = input.recipient.clone();
            status.key_count = Some(ring.len() as u32);
            status.last_rotation_time = meta.last_rotation.map(fmt_time);
        }
        None => {
            if let Some(p) = previous {
                status.keys = p.keys.clone();
                status.primary_key_id = p.primary_key_id.clone();
                status.recipient = p.recipient.clone();
                status.key_count = p.key_count;
                status.last_rotation_time = p.last_rotation_time.clone();
            }
        }
    }
}

/// The status to write.
pub fn compute(previous: Option<&KeyringStatus>, input: &Input<'_>) -> KeyringStatus {
    let prev_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let now = input.now;
    let gen_ = input.generation;
    let mut status = KeyringStatus { observed_generation: gen_, ..KeyringStatus::default() };
    status.secret_name =
        input.secret_name.map(str::to_owned).or_else(|| previous.and_then(|p| p.secret_name.clone()));
    keys(&mut status, previous, input);
    let mut counts = (0, 0);
    if input.cluster {
        match &input.targets {
            Targets::Seen(all) => {
                status.targets = listed_targets(all);
                counts = target_counts(all);
            }
            Targets::Carried => {
                status.targets = previous.map(|p| p.targets.clone()).unwrap_or_default();
                counts = previous
                    .and_then(|p| p.synced_targets.as_deref())
                    .and_then(parse_counts)
                    .unwrap_or_else(|| target_counts(&status.targets));
            }
        }
        status.synced_targets = Some(format!("{}/{}", counts.0, counts.1));
    }
    status.last_backup = match input.backup {
        BackupInput::On { last: Some(l), .. } => Some(l.clone()),
        _ => previous.and_then(|p| p.last_backup.clone()),
    };
    let backup = backup_current(&status, input, prev_conditions);
    let backup_failure = match input.backup {
        BackupInput::On { failure: Some(f), .. } => Some(f),
        _ => None,
    };
    let dist = distributed(&status, counts, input, prev_conditions);
    let rotating = rotating(input, prev_conditions);
    let prune = prune_blocked(input, prev_conditions);
    let ready = match input.invalid {
        Some(inv) => {
            condition(prev_conditions, condition::READY, false, inv.reason, inv.message.clone(), gen_, now)
        }
        None if backup_failure.is_some() => condition(
            prev_conditions,
            condition::READY,
            false,
            "BackupFailed",
            format!(
                "backup failed ({}); keys not yet backed up are neither distributed nor promoted",
                backup_failure.unwrap_or_default()
            ),
            gen_,
            now,
        ),
        None if dist.status != "True" => {
            condition(prev_conditions, condition::READY, false, &dist.reason, dist.message.clone(), gen_, now)
        }
        None => {
            let what = if input.cluster { "generated and distributed" } else { "generated" };
            condition(
                prev_conditions,
                condition::READY,
                true,
                "Ready",
                format!("the keyring is {what}"),
                gen_,
                now,
            )
        }
    };
    status.conditions = vec![ready, dist, rotating, prune];
    status.conditions.extend(backup);
    status
}

/// `BackupCurrent`: True when the newest backup holds exactly the master's
/// keys, in order.
fn backup_current(status: &KeyringStatus, input: &Input<'_>, prev: &[Condition]) -> Option<Condition> {
    let (gen_, now) = (input.generation, input.now);
    match input.backup {
        BackupInput::Off => None,
        BackupInput::Carry => prev.iter().find(|c| c.type_ == condition::BACKUP_CURRENT).cloned(),
        BackupInput::On { failure, .. } => {
            let last = status.last_backup.as_ref();
            let current = input.master.is_some_and(|(ring, _)| crate::backup::is_current(last, ring));
            let (ok, reason, message) = match (failure, current) {
                (Some(f), _) => (false, "BackupFailed", format!("the last backup failed: {f}")),
                (None, true) => (
                    true,
                    "BackupCurrent",
                    format!(
                        "the newest backup holds every key ({}): {}",
                        last.map(|l| l.key_ids.join(",")).unwrap_or_default(),
                        last.map(|l| l.location.as_str()).unwrap_or_default()
                    ),
                ),
                (None, false) => {
                    (false, "BackupPending", "the keyring changed since the newest backup".into())
                }
            };
            Some(condition(prev, condition::BACKUP_CURRENT, ok, reason, message, gen_, now))
        }
    }
}

fn distributed(
    status: &KeyringStatus,
    (synced, total): (usize, usize),
    input: &Input<'_>,
    prev: &[Condition],
) -> Condition {
    let (gen_, now) = (input.generation, input.now);
    if input.master.is_none() {
        return condition(
            prev,
            condition::DISTRIBUTED,
            false,
            "NoKeyring",
            "no usable master keyring".into(),
            gen_,
            now,
        );
    }
    if let (false, Some(local)) = (input.cluster, &input.local) {
        return condition(
            prev,
            condition::DISTRIBUTED,
            false,
            local.reason.as_deref().unwrap_or("NotDistributed"),
            local.message.clone().unwrap_or_default(),
            gen_,
            now,
        );
    }
    if !input.cluster {
        return condition(
            prev,
            condition::DISTRIBUTED,
            true,
            "Local",
            "the master is the keyring the namespace's pods mount".into(),
            gen_,
            now,
        );
    }
    const SHOWN: usize = 5;
    let unsynced: Vec<String> = status
        .targets
        .iter()
        .filter(|t| !t.synced)
        .take(SHOWN)
        .map(|t| {
            format!(
                "{} ({})",
                t.namespace,
                t.message.as_deref().or(t.reason.as_deref()).unwrap_or("not synced")
            )
        })
        .collect();
    if synced == total {
        condition(
            prev,
            condition::DISTRIBUTED,
            true,
            "Distributed",
            format!("{synced}/{synced} targets hold a copy identical to the master"),
            gen_,
            now,
        )
    } else {
        let reason = status
            .targets
            .iter()
            .find(|t| !t.synced)
            .and_then(|t| t.reason.clone())
            .unwrap_or_else(|| "NotDistributed".into());
        let more = (total - synced).saturating_sub(unsynced.len());
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        condition(
            prev,
            condition::DISTRIBUTED,
            false,
            &reason,
            format!("not synced: {}{more}", unsynced.join(", ")),
            gen_,
            now,
        )
    }
}

/// Unsynced targets the status lists with their message.
pub const MAX_TARGET_MESSAGES: usize = 20;
/// Targets the status lists besides those holding somebody else's Secret.
pub const MAX_LISTED_TARGETS: usize = 1000;
/// Bytes of a listed target's message.
pub const MAX_TARGET_MESSAGE: usize = 256;

/// `(synced, total)`.
pub fn target_counts(targets: &[TargetStatus]) -> (usize, usize) {
    (targets.iter().filter(|t| t.synced).count(), targets.len())
}

fn parse_counts(s: &str) -> Option<(usize, usize)> {
    let (synced, total) = s.split_once('/')?;
    Some((synced.parse().ok()?, total.parse().ok()?))
}

/// The targets the status lists, so that it stays far below etcd's object
/// limit (1.5 MiB) with 10,000 targets: every target holding somebody
/// else's Secret (promotion and its events go by them: namespace and
/// reason only), the first [`MAX_TARGET_MESSAGES`] unsynced targets with
/// their message, and other targets without one, unsynced first, up to
/// [`MAX_LISTED_TARGETS`]; in their order. `syncedTargets` and the
/// `KeyringDistributed` condition count every target.
pub fn listed_targets(all: &[TargetStatus]) -> Vec<TargetStatus> {
    let conflict = |t: &TargetStatus| t.reason.as_deref() == Some("SecretConflict");
    let mut keep = vec![false; all.len()];
    let mut budget = MAX_LISTED_TARGETS;
    for wanted in [false, true] {
        for (i, t) in all.iter().enumerate() {
            if t.synced == wanted && !conflict(t) && budget > 0 {
                keep[i] = true;
                budget -= 1;
            }
        }
    }
    let mut messages = MAX_TARGET_MESSAGES;
    all.iter()
        .zip(keep)
        .filter(|(t, keep)| *keep || conflict(t))
        .map(|(t, _)| {
            let mut t = t.clone();
            if !t.synced && messages > 0 {
                messages -= 1;
                t.message = t.message.map(|m| crate::context::cut(m, MAX_TARGET_MESSAGE));
            } else {
                t.message = None;
            }
            t
        })
        .collect()
}

fn rotating(input: &Input<'_>, prev: &[Condition]) -> Condition {
    let (gen_, now) = (input.generation, input.now);
    let staged = input.master.and_then(|(_, m)| m.staged);
    match (staged, input.promotion_at) {
        (Some(id), Some(at)) => condition(
            prev,
            condition::ROTATING,
            true,
            "PromotionPending",
            format!("key {id} is distributed; it becomes primary at {}", fmt_time(at)),
            gen_,
            now,
        ),
        (Some(id), None) => condition(
            prev,
            condition::ROTATING,
            true,
            "Distributing",
            format!("key {id} is staged and waits until every target holds it"),
            gen_,
            now,
        ),
        (None, _) => match input.rotation_deferred {
            Some((why, at, interval)) => condition(
                prev,
                condition::ROTATING,
                false,
                "RotationDeferred",
                crate::reconcile::events::rotation_deferred(why, at, interval),
                gen_,
                now,
            ),
            None => condition(
                prev,
                condition::ROTATING,
                false,
                "Idle",
                "no rotation in progress".into(),
                gen_,
                now,
            ),
        },
    }
}

fn prune_blocked(input: &Input<'_>, prev: &[Condition]) -> Condition {
    let (gen_, now) = (input.generation, input.now);
    if input.blocked.is_empty() {
        return condition(
            prev,
            condition::PRUNE_BLOCKED,
            false,
            "NotBlocked",
            "no key is kept beyond retention".into(),
            gen_,
            now,
        );
    }
    let counted = |id: &&KeyId| input.usage.is_none_or(|u| u.unreadable == 0 || u.count(**id) > 0);
    let parts: Vec<String> = input
        .blocked
        .iter()
        .filter(counted)
        .map(|id| {
            let places = input.usage.and_then(|u| u.places.get(id)).cloned().unwrap_or_default();
            let count = input.usage.map(|u| u.count(*id)).unwrap_or(0);
            format!("key {id} is used by {count} token(s): {}", places.join(", "))
        })
        .chain(input.usage.filter(|u| u.unreadable > 0).map(|u| {
            format!(
                "{} ENCSTR occurrence(s) whose key id cannot be read keep every key: {}",
                u.unreadable,
                u.unreadable_places.join(", ")
            )
        }))
        .collect();
    condition(
        prev,
        condition::PRUNE_BLOCKED,
        true,
        "KeysInUse",
        format!("{}; re-encrypt them (encstr reencrypt) to let retention remove the key", parts.join("; ")),
        gen_,
        now,
    )
}

#[cfg(test)]
mod tests {
    use encstr_core::{Key, Seed};

    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let ring = Keyring::new(vec![Key::from_seed(Seed::from_bytes([1; 32]))]).unwrap();
        let meta = KeyMeta::default();
        let target = |synced| TargetStatus {
            namespace: "a".into(),
            synced,
            reason: (!synced).then(|| "NamespaceNotFound".into()),
            message: (!synced).then(|| "namespace not found".into()),
        };
        let input = |synced, now| Input {
            master: Some((&ring, &meta)),
            secret_name: Some("payments"),
            cluster: true,
            usage: None,
            blocked: &[],
            kept_imported: &[],
            targets: Targets::Seen(vec![target(synced)]),
            invalid: None,
            generation: Some(1),
            backup: BackupInput::Off,
            promotion_at: None,
            recipient: None,
            local: None,
            rotation_deferred: None,
            now,
        };
        let s1 = compute(None, &input(true, t("2026-11-23T09:00:00Z")));
        assert_eq!(s1.conditions[0].status, "True");
        let s2 = compute(Some(&s1), &input(true, t("2026-11-23T10:00:00Z")));
        assert_eq!(s2, s1, "nothing changed: identical status (no write needed)");
        let s3 = compute(Some(&s2), &input(false, t("2026-11-23T11:00:00Z")));
        assert_eq!(
            (s3.conditions[0].status.as_str(), s3.conditions[0].last_transition_time.as_str()),
            ("False", "2026-11-23T11:00:00Z")
        );
        assert_eq!(s3.conditions[1].message, "not synced: a (namespace not found)");
        assert_eq!(
            (s3.conditions[0].reason.as_str(), s3.conditions[1].reason.as_str()),
            ("NamespaceNotFound", "NamespaceNotFound")
        );
        assert_eq!(s3.synced_targets.as_deref(), Some("0/1"));
        assert_eq!(s3.secret_name.as_deref(), Some("payments"));
    }

    #[test]
    fn invalid_spec_is_not_ready_with_its_reason() {
        let inv = Invalid {
            reason: "InvalidDuration",
            message: "spec.rotation.every \"x\" is not a duration".into(),
        };
        let s = compute(
            None,
            &Input {
                master: None,
                secret_name: None,
                cluster: false,
                usage: None,
                blocked: &[],
                kept_imported: &[],
                targets: Targets::Seen(vec![]),
                invalid: Some(&inv),
                generation: Some(2),
                backup: BackupInput::Off,
                promotion_at: None,
                recipient: None,
                local: None,
                rotation_deferred: None,
                now: t("2026-11-23T09:00:00Z"),
            },
        );
        assert_eq!(
            (s.conditions[0].reason.as_str(), s.conditions[0].status.as_str()),
            ("InvalidDuration", "False")
        );
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn backup_current_follows_the_newest_backup_and_failures_make_it_not_ready() {
        let (a, b) = (Key::from_seed(Seed::from_bytes([1; 32])), Key::from_seed(Seed::from_bytes([2; 32])));
        let ring = Keyring::new(vec![a.clone(), b.clone()]).unwrap();
        let meta = KeyMeta::default();
        let last = LastBackup {
            time: "2026-11-23T09:00:00Z".into(),
            key_ids: vec![a.id().to_string(), b.id().to_string()],
            location: "configmap:encstr/p#x.age".into(),
        };
        let input = |backup| Input {
            master: Some((&ring, &meta)),
            secret_name: Some("p"),
            cluster: false,
            usage: None,
            blocked: &[],
            kept_imported: &[],
            targets: Targets::Seen(vec![]),
            invalid: None,
            generation: Some(1),
            backup,
            promotion_at: None,
            recipient: None,
            local: None,
            rotation_deferred: None,
            now: t("2026-11-23T09:00:00Z"),
        };
        let get = |s: &KeyringStatus, ty: &str| {
            s.conditions.iter().find(|c| c.type_ == ty).map(|c| (c.status.clone(), c.reason.clone()))
        };
        let off = compute(None, &input(BackupInput::Off));
        assert_eq!(get(&off, condition::BACKUP_CURRENT), None, "no condition without spec.backup");
        let on = compute(None, &input(BackupInput::On { last: Some(&last), failure: None }));
        assert_eq!(get(&on, condition::BACKUP_CURRENT), Some(("True".into(), "BackupCurrent".into())));
        assert_eq!(on.last_backup.as_ref(), Some(&last));
        assert_eq!(get(&on, condition::READY).unwrap().0, "True");
        // Another order is another keyring: pending until backed up.
        let reordered = LastBackup { key_ids: vec![b.id().to_string(), a.id().to_string()], ..last.clone() };
        let pending = compute(None, &input(BackupInput::On { last: Some(&reordered), failure: None }));
        assert_eq!(get(&pending, condition::BACKUP_CURRENT), Some(("False".into(), "BackupPending".into())));
        let failed = compute(
            Some(&on),
            &input(BackupInput::On { last: None, failure: Some("configmap encstr/p: boom") }),
        );
        assert_eq!(get(&failed, condition::BACKUP_CURRENT), Some(("False".into(), "BackupFailed".into())));
        assert_eq!(get(&failed, condition::READY), Some(("False".into(), "BackupFailed".into())));
        assert_eq!(failed.last_backup.as_ref(), Some(&last), "the newest backup stays on record");
        // Blocked: the previous condition is carried.
        let carried = compute(Some(&on), &input(BackupInput::Carry));
        assert_eq!(get(&carried, condition::BACKUP_CURRENT), get(&on, condition::BACKUP_CURRENT));
    }

    #[test]
    fn the_recipient_is_shown_as_decided_and_kept_without_a_master() {
        let ring = Keyring::new(vec![Key::from_seed(Seed::from_bytes([1; 32]))]).unwrap();
        let meta = KeyMeta::default();
        let shown = ring.primary().recipient().to_string();
        let conflict = TargetStatus {
            namespace: "print".into(),
            synced: false,
            reason: Some("RecipientConflict".into()),
            message: Some("a ConfigMap named agents-recipient exists".into()),
        };
        let input = |master: bool, local: Option<TargetStatus>| Input {
            master: master.then_some((&ring, &meta)),
            secret_name: Some("agents"),
            cluster: false,
            usage: None,
            blocked: &[],
            kept_imported: &[],
            targets: Targets::Seen(vec![]),
            invalid: None,
            generation: Some(1),
            backup: BackupInput::Off,
            promotion_at: None,
            recipient: master.then(|| shown.clone()),
            local,
            rotation_deferred: None,
            now: t("2026-11-23T09:00:00Z"),
        };
        let ok = compute(None, &input(true, None));
        assert_eq!(ok.recipient.as_deref(), Some(shown.as_str()));
        assert_eq!(ok.conditions[1].reason, "Local");
        // A SecretKeyring whose ConfigMap is somebody else's is not Ready,
        // and says why; the status still shows the recipient.
        let conflicted = compute(Some(&ok), &input(true, Some(conflict)));
        assert_eq!(
            (conflicted.conditions[0].status.as_str(), conflicted.conditions[0].reason.as_str()),
            ("False", "RecipientConflict")
        );
        assert_eq!(conflicted.conditions[1].reason, "RecipientConflict");
        assert_eq!(conflicted.recipient.as_deref(), Some(shown.as_str()));
        // No usable master (a guard holds): the published recipient is kept.
        assert_eq!(compute(Some(&ok), &input(false, None)).recipient.as_deref(), Some(shown.as_str()));
    }

    #[test]
    fn ten_thousand_unsynced_targets_stay_far_below_the_object_limit() {
        let ring = Keyring::new(vec![Key::from_seed(Seed::from_bytes([1; 32]))]).unwrap();
        let meta = KeyMeta::default();
        let long = "x".repeat(1000);
        let target = |i: usize, reason: &str| TargetStatus {
            namespace: format!("tenant-namespace-{i:05}"),
            synced: false,
            reason: Some(reason.into()),
            message: Some(format!(
                "a Secret named payments exists and is not managed by this keyring {long}"
            )),
        };
        for reason in ["WriteFailed", "SecretConflict"] {
            let targets: Vec<TargetStatus> = (0..10_000).map(|i| target(i, reason)).collect();
            let input = Input {
                master: Some((&ring, &meta)),
                secret_name: Some("payments"),
                cluster: true,
                usage: None,
                blocked: &[],
                kept_imported: &[],
                targets: Targets::Seen(targets),
                invalid: None,
                generation: Some(1),
                backup: BackupInput::Off,
                promotion_at: None,
                recipient: None,
                local: None,
                rotation_deferred: None,
                now: t("2026-11-23T09:00:00Z"),
            };
            let st = compute(None, &input);
            let size = serde_json::to_vec(&st).unwrap().len();
            assert!(size < 1024 * 1024, "{reason}: {size} bytes");
            assert_eq!(st.synced_targets.as_deref(), Some("0/10000"), "{reason}: every target counted");
            let dist = st.conditions.iter().find(|c| c.type_ == condition::DISTRIBUTED).unwrap();
            assert!(dist.message.ends_with(" and 9995 more"), "{reason}: {}", dist.message);
            assert_eq!(st.targets.iter().filter(|t| t.message.is_some()).count(), MAX_TARGET_MESSAGES);
            assert!(
                st.targets.iter().all(|t| t.message.as_ref().is_none_or(|m| m.len() <= MAX_TARGET_MESSAGE))
            );
            if reason == "SecretConflict" {
                // Promotion goes by them: every one is listed.
                assert_eq!(st.targets.len(), 10_000);
            } else {
                assert_eq!(st.targets.len(), MAX_LISTED_TARGETS);
                assert!(size < 256 * 1024, "{reason}: {size} bytes");
            }
            // Carried while held: the counts stay.
            let held = Input { targets: Targets::Carried, ..input };
            let again = compute(Some(&st), &held);
            assert_eq!(again.synced_targets.as_deref(), Some("0/10000"));
        }
    }
}
