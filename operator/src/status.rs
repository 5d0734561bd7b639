//! Pure functions computing the status: keys, targets and conditions.
//! A condition's `lastTransitionTime` changes only when its status does.

use encstr_core::{KeyId, Keyring};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{Condition, KeyState, KeyStatus, SecretKeyringStatus, TargetStatus, condition};
use crate::desired::{Invalid, KeyMeta, fmt_time, key_states};
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

/// What the status is computed from.
#[derive(Debug)]
pub struct Input<'a> {
    /// The master keyring and its lifecycle (absent if there is none yet).
    pub master: Option<(&'a Keyring, &'a KeyMeta)>,
    /// Token usage, when counted.
    pub usage: Option<&'a Usage>,
    /// Keys retention wants gone but that are in use.
    pub blocked: &'a [KeyId],
    /// Target states.
    pub targets: Vec<TargetStatus>,
    /// Why the spec (or the master, or the import) is unusable.
    pub invalid: Option<&'a Invalid>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// When the staged key will be promoted (if known).
    pub promotion_at: Option<Timestamp>,
    /// Now.
    pub now: Timestamp,
}

/// The status to write.
pub fn compute(previous: Option<&SecretKeyringStatus>, input: &Input<'_>) -> SecretKeyringStatus {
    let prev_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let now = input.now;
    let gen_ = input.generation;
    let mut status = SecretKeyringStatus { observed_generation: gen_, ..SecretKeyringStatus::default() };
    // Without a usable master, keep what was known about the keys.
    match input.master {
        Some((ring, meta)) => {
            status.keys = key_states(ring, meta)
                .into_iter()
                .map(|(id, state)| KeyStatus {
                    id: id.to_string(),
                    state,
                    created_at: meta.created.get(&id).map(|t| fmt_time(*t)),
                    promoted_at: (state == KeyState::Primary)
                        .then_some(meta.promoted_at)
                        .flatten()
                        .map(fmt_time),
                    in_use: input.usage.map(|u| u.counts.get(&id).copied().unwrap_or(0)),
                })
                .collect();
            status.primary_key_id = Some(ring.primary().id().to_string());
            status.key_count = Some(ring.len() as u32);
            status.last_rotation_time = meta.last_rotation.map(fmt_time);
        }
        None => {
            if let Some(p) = previous {
                status.keys = p.keys.clone();
                status.primary_key_id = p.primary_key_id.clone();
                status.key_count = p.key_count;
                status.last_rotation_time = p.last_rotation_time.clone();
            }
        }
    }
    status.targets = input.targets.clone();
    let synced = status.targets.iter().filter(|t| t.synced).count();
    status.synced_targets = Some(format!("{synced}/{}", status.targets.len()));

    let unsynced: Vec<String> = status
        .targets
        .iter()
        .filter(|t| !t.synced)
        .take(5)
        .map(|t| format!("{} ({})", t.namespace, t.message.as_deref().unwrap_or("not synced")))
        .collect();
    let distributed = input.master.is_some() && unsynced.is_empty();
    let dist = if distributed {
        condition(
            prev_conditions,
            condition::DISTRIBUTED,
            true,
            "Distributed",
            format!("{synced}/{synced} targets hold a copy identical to the master"),
            gen_,
            now,
        )
    } else if input.master.is_none() {
        condition(
            prev_conditions,
            condition::DISTRIBUTED,
            false,
            "NoKeyring",
            "no master keyring yet".into(),
            gen_,
            now,
        )
    } else {
        condition(
            prev_conditions,
            condition::DISTRIBUTED,
            false,
            "NotDistributed",
            format!("not synced: {}", unsynced.join(", ")),
            gen_,
            now,
        )
    };
    let staged = input.master.and_then(|(_, m)| m.staged);
    let rotating = match (staged, input.promotion_at) {
        (Some(id), Some(at)) => condition(
            prev_conditions,
            condition::ROTATING,
            true,
            "PromotionPending",
            format!("key {id} is distributed; it becomes primary at {}", fmt_time(at)),
            gen_,
            now,
        ),
        (Some(id), None) => condition(
            prev_conditions,
            condition::ROTATING,
            true,
            "Distributing",
            format!("key {id} is staged and waits until every target holds it"),
            gen_,
            now,
        ),
        (None, _) => condition(
            prev_conditions,
            condition::ROTATING,
            false,
            "Idle",
            "no rotation in progress".into(),
            gen_,
            now,
        ),
    };
    let prune = if input.blocked.is_empty() {
        condition(
            prev_conditions,
            condition::PRUNE_BLOCKED,
            false,
            "NotBlocked",
            "no key is kept beyond retention".into(),
            gen_,
            now,
        )
    } else {
        let mut parts = Vec::new();
        for id in input.blocked {
            let places = input.usage.and_then(|u| u.places.get(id)).cloned().unwrap_or_default();
            let count = input.usage.and_then(|u| u.counts.get(id)).copied().unwrap_or(0);
            parts.push(format!("key {id} is used by {count} token(s): {}", places.join(", ")));
        }
        condition(
            prev_conditions,
            condition::PRUNE_BLOCKED,
            true,
            "KeysInUse",
            format!(
                "{}; re-encrypt them (encstr reencrypt) to let retention remove the key",
                parts.join("; ")
            ),
            gen_,
            now,
        )
    };
    let ready = match input.invalid {
        Some(inv) => {
            condition(prev_conditions, condition::READY, false, inv.reason, inv.message.clone(), gen_, now)
        }
        None if !distributed => condition(
            prev_conditions,
            condition::READY,
            false,
            "NotDistributed",
            dist.message.clone(),
            gen_,
            now,
        ),
        None => condition(
            prev_conditions,
            condition::READY,
            true,
            "Ready",
            "the keyring is generated and distributed".into(),
            gen_,
            now,
        ),
    };
    status.conditions = vec![ready, dist, rotating, prune];
    status
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
            message: (!synced).then(|| "namespace not found".into()),
        };
        let input = |synced, now| Input {
            master: Some((&ring, &meta)),
            usage: None,
            blocked: &[],
            targets: vec![target(synced)],
            invalid: None,
            generation: Some(1),
            promotion_at: None,
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
        assert_eq!(s3.synced_targets.as_deref(), Some("0/1"));
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
                usage: None,
                blocked: &[],
                targets: vec![],
                invalid: Some(&inv),
                generation: Some(2),
                promotion_at: None,
                now: t("2026-11-23T09:00:00Z"),
            },
        );
        assert_eq!(
            (s.conditions[0].reason.as_str(), s.conditions[0].status.as_str()),
            ("InvalidDuration", "False")
        );
        assert_eq!(s.observed_generation, Some(2));
    }
}
