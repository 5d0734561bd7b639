//! The key-loss guards (spec "Never lose a key"), as pure functions: each
//! holds back every write of key material for its keyring while it holds,
//! and the human decisions that release them (`encstr.io/restore-from`,
//! `encstr.io/accept-missing-keys`).

use std::collections::BTreeSet;

use encstr_core::{KeyId, Keyring};

use crate::crd::KeyringStatus;
use crate::desired::KeyMeta;

/// Why writes are held back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// `spec.secretName` differs from the name the master was created with.
    SecretNameChanged {
        /// What the spec says now.
        spec: String,
        /// What the master was created as.
        recorded: String,
    },
    /// The master is gone while keys were handed out (the status lists
    /// keys, or Secrets still carry the keyring's label).
    MasterMissing {
        /// Where labelled Secrets (copies) still exist, `namespace/name`.
        copies: Vec<String>,
    },
    /// The master lacks keys the status lists (and the operator did not
    /// prune them).
    KeysMissing {
        /// The missing ids.
        missing: Vec<KeyId>,
    },
}

impl Guard {
    /// The condition reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Guard::SecretNameChanged { .. } => "SecretNameChanged",
            Guard::MasterMissing { .. } => "MasterMissing",
            Guard::KeysMissing { .. } => "KeysMissing",
        }
    }

    /// What happened and what to do (no key material, ids only).
    pub fn message(&self, master: &str) -> String {
        match self {
            Guard::SecretNameChanged { spec, recorded } => format!(
                "spec.secretName is {spec:?} but the master was created as {recorded:?}; nothing is written until spec.secretName is {recorded:?} again (rename by creating a new keyring that imports this one)"
            ),
            Guard::MasterMissing { copies } => {
                let where_ = if copies.is_empty() {
                    "no copies were found".to_owned()
                } else {
                    let shown: Vec<&str> = copies.iter().take(5).map(String::as_str).collect();
                    format!(
                        "copies exist in {}{}",
                        shown.join(", "),
                        if copies.len() > 5 { ", ..." } else { "" }
                    )
                };
                format!(
                    "the master Secret {master} is missing but keys were handed out ({where_}); nothing is generated or written. Restore the master (from a copy, a backup or an offline file), or annotate this resource encstr.io/restore-from=<namespace> to rebuild it from the copy there"
                )
            }
            Guard::KeysMissing { missing } => format!(
                "the master Secret {master} lacks key(s) {} that were handed out; copies are not touched. Put the keys back, or acknowledge the loss with the annotation encstr.io/accept-missing-keys={}",
                ids(missing),
                ids(missing).replace(", ", ",")
            ),
        }
    }
}

/// `a, b, c`.
pub fn ids(list: &[KeyId]) -> String {
    list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The keys the status records as handed out.
pub fn recorded(status: Option<&KeyringStatus>) -> BTreeSet<KeyId> {
    status.into_iter().flat_map(|s| &s.keys).filter_map(|k| k.id.parse().ok()).collect()
}

/// Ids in an `encstr.io/accept-missing-keys` value (`a,b`).
pub fn parse_ids(value: &str) -> Result<Vec<KeyId>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("{s:?} is not a key id (8 hex digits)")))
        .collect()
}

/// What the guards look at.
#[derive(Debug)]
pub struct Input<'a> {
    /// `spec.secretName` (resolved).
    pub secret_name: &'a str,
    /// The status (the record of handed-out keys).
    pub status: Option<&'a KeyringStatus>,
    /// The master's keyring and lifecycle, if the master exists.
    pub master: Option<(&'a Keyring, &'a KeyMeta)>,
    /// Secrets carrying this keyring's label other than the master,
    /// `namespace/name`.
    pub labelled: &'a [String],
    /// Ids a human acknowledged as lost (`encstr.io/accept-missing-keys`).
    pub accepted: &'a [KeyId],
}

/// The guard that holds, if any (`SecretNameChanged` first).
pub fn check(i: &Input<'_>) -> Option<Guard> {
    if let Some(recorded) = i.status.and_then(|s| s.secret_name.as_deref())
        && recorded != i.secret_name
    {
        return Some(Guard::SecretNameChanged {
            spec: i.secret_name.to_owned(),
            recorded: recorded.to_owned(),
        });
    }
    let record = recorded(i.status);
    match i.master {
        None if !record.is_empty() || !i.labelled.is_empty() => {
            Some(Guard::MasterMissing { copies: i.labelled.to_vec() })
        }
        None => None,
        Some((ring, meta)) => {
            let present: BTreeSet<KeyId> = ring.ids().into_iter().collect();
            let missing: Vec<KeyId> = record
                .into_iter()
                .filter(|id| !present.contains(id) && !meta.pruned.contains(id) && !i.accepted.contains(id))
                .collect();
            (!missing.is_empty()).then_some(Guard::KeysMissing { missing })
        }
    }
}

/// What to do with `encstr.io/restore-from=<namespace>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// Rebuild the master from the copy in that namespace.
    From(String),
    /// Refused (and why); the annotation is removed all the same.
    Refused(String),
}

/// Decide a restore request. `copy` is the keyring of the copy in the
/// requested namespace, if there is one carrying this keyring's label.
pub fn restore(
    guard: Option<&Guard>,
    namespace: &str,
    namespaced_kind: bool,
    copy: Option<&Keyring>,
    status: Option<&KeyringStatus>,
) -> Restore {
    if !matches!(guard, Some(Guard::MasterMissing { .. })) {
        return Restore::Refused(format!(
            "encstr.io/restore-from={namespace} applies only while the master is missing (MasterMissing); nothing was changed"
        ));
    }
    if namespaced_kind {
        return Restore::Refused(
            "a SecretKeyring has no copies to restore from: restore its master Secret itself (from a backup or an offline file)"
                .into(),
        );
    }
    let Some(ring) = copy else {
        return Restore::Refused(format!("there is no copy of this keyring in namespace {namespace}"));
    };
    let have: BTreeSet<KeyId> = ring.ids().into_iter().collect();
    let lacking: Vec<KeyId> = recorded(status).into_iter().filter(|id| !have.contains(id)).collect();
    if !lacking.is_empty() {
        return Restore::Refused(format!(
            "the copy in namespace {namespace} lacks key(s) {} the status lists; restore from a copy or backup that holds every key",
            ids(&lacking)
        ));
    }
    Restore::From(namespace.to_owned())
}

/// Decide `encstr.io/accept-missing-keys`: `Ok(ids)` when the value parses
/// and covers every missing key, else why not.
pub fn accept(guard: Option<&Guard>, value: &str) -> Result<Vec<KeyId>, String> {
    let listed = parse_ids(value)?;
    let Some(Guard::KeysMissing { missing }) = guard else {
        return Err(format!(
            "encstr.io/accept-missing-keys={value} applies only while keys are missing (KeysMissing); nothing was changed"
        ));
    };
    let uncovered: Vec<KeyId> = missing.iter().filter(|id| !listed.contains(id)).copied().collect();
    if uncovered.is_empty() {
        Ok(listed)
    } else {
        Err(format!(
            "key(s) {} are missing too and were not listed; list every missing key to accept the loss",
            ids(&uncovered)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{key, recorded as status};

    fn input<'a>(
        st: Option<&'a KeyringStatus>,
        master: Option<(&'a Keyring, &'a KeyMeta)>,
        labelled: &'a [String],
        accepted: &'a [KeyId],
    ) -> Input<'a> {
        Input { secret_name: "payments", status: st, master, labelled, accepted }
    }

    #[test]
    fn a_new_keyring_is_not_guarded() {
        assert_eq!(check(&input(None, None, &[], &[])), None);
        let empty = KeyringStatus::default();
        assert_eq!(check(&input(Some(&empty), None, &[], &[])), None);
    }

    #[test]
    fn a_missing_master_is_guarded_when_keys_were_handed_out() {
        let st = status(&[1, 2], "payments");
        let g = check(&input(Some(&st), None, &[], &[])).unwrap();
        assert_eq!(g.reason(), "MasterMissing");
        // Copies alone (a status lost with its resource) guard too.
        let copies = vec!["team-a/payments".to_owned()];
        let g = check(&input(None, None, &copies, &[])).unwrap();
        assert_eq!(g, Guard::MasterMissing { copies: copies.clone() });
        assert!(g.message("encstr/payments").contains("copies exist in team-a/payments"));
    }

    #[test]
    fn a_master_missing_keys_is_guarded_unless_pruned_or_accepted() {
        let st = status(&[1, 2, 3], "payments");
        let ring = Keyring::new(vec![key(1), key(3)]).unwrap();
        let meta = KeyMeta::default();
        let g = check(&input(Some(&st), Some((&ring, &meta)), &[], &[])).unwrap();
        assert_eq!(g, Guard::KeysMissing { missing: vec![key(2).id()] });
        assert!(g.message("m").contains(&format!("encstr.io/accept-missing-keys={}", key(2).id())));
        let pruned = KeyMeta { pruned: vec![key(2).id()], ..KeyMeta::default() };
        assert_eq!(
            check(&input(Some(&st), Some((&ring, &pruned)), &[], &[])),
            None,
            "the operator pruned it"
        );
        let accepted = [key(2).id()];
        assert_eq!(check(&input(Some(&st), Some((&ring, &meta)), &[], &accepted)), None);
        // Extra keys are fine (staged but not yet recorded).
        let more = Keyring::new(vec![key(1), key(2), key(3), key(4)]).unwrap();
        assert_eq!(check(&input(Some(&st), Some((&more, &meta)), &[], &[])), None);
    }

    #[test]
    fn a_changed_secret_name_comes_first() {
        let st = status(&[1], "old-name");
        let g = check(&input(Some(&st), None, &[], &[])).unwrap();
        assert_eq!(g.reason(), "SecretNameChanged");
    }

    #[test]
    fn restore_needs_a_missing_master_a_cluster_keyring_and_a_complete_copy() {
        let st = status(&[1, 2], "payments");
        let missing = Guard::MasterMissing { copies: vec![] };
        let full = Keyring::new(vec![key(1), key(2)]).unwrap();
        let partial = Keyring::new(vec![key(2)]).unwrap();
        assert_eq!(
            restore(Some(&missing), "team-a", false, Some(&full), Some(&st)),
            Restore::From("team-a".into())
        );
        let Restore::Refused(why) = restore(Some(&missing), "team-a", false, Some(&partial), Some(&st))
        else {
            panic!()
        };
        assert!(why.contains(&key(1).id().to_string()), "{why}");
        assert!(matches!(restore(Some(&missing), "team-a", false, None, Some(&st)), Restore::Refused(_)));
        assert!(matches!(
            restore(Some(&missing), "team-a", true, Some(&full), Some(&st)),
            Restore::Refused(_)
        ));
        assert!(matches!(restore(None, "team-a", false, Some(&full), Some(&st)), Restore::Refused(_)));
    }

    #[test]
    fn accepting_needs_every_missing_key_listed() {
        let g = Guard::KeysMissing { missing: vec![key(1).id(), key(2).id()] };
        assert!(accept(Some(&g), &key(1).id().to_string()).is_err());
        let both = format!("{},{}", key(1).id(), key(2).id());
        assert_eq!(accept(Some(&g), &both).unwrap(), vec![key(1).id(), key(2).id()]);
        assert!(accept(Some(&g), "nothex").is_err());
        assert!(accept(None, &both).is_err());
    }
}
