//! Backups: the keyring encrypted to the spec's age recipients and written
//! to a ConfigMap in the master's namespace and/or an object store, before
//! the keyring is written anywhere else (see `reconcile`).
//!
//! The pure parts decide (entry names, which entries a ConfigMap keeps,
//! whether a keyring is backed up); the rest writes. A destination that
//! cannot be reached fails within the operator's `--backup-timeout`.
//! What an object store client may be given is decided in `store`; the
//! writes are in `write`.

pub mod store;
pub mod write;

use std::collections::BTreeMap;

use encstr_core::backup as age_backup;
use encstr_core::{KeyId, Keyring};
use k8s_openapi::jiff::{Timestamp, tz::TimeZone};

use crate::crd::{self, LastBackup};
pub use write::{Destination, Owner, write};

/// Default `spec.backup.keep`.
pub const DEFAULT_KEEP: usize = 10;

/// A validated `spec.backup`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Recipients as written in the spec (each parses).
    pub recipients: Vec<String>,
    /// ConfigMap name (in the master's namespace).
    pub config_map: Option<String>,
    /// Entries kept in the ConfigMap.
    pub keep: usize,
    /// Object store destination.
    pub object_store: Option<crd::ObjectStore>,
}

/// Validate `spec.backup`: every recipient parses, the URL is usable.
pub fn validate(b: &crd::Backup) -> Result<Plan, (&'static str, String)> {
    if b.recipients.is_empty() {
        return Err((
            "InvalidBackupRecipient",
            "spec.backup.recipients: at least one recipient is needed".into(),
        ));
    }
    for (i, r) in b.recipients.iter().enumerate() {
        if let Err(e) = age_backup::parse_recipient(r) {
            let why = e.to_string();
            let why = why.strip_prefix("backup: ").unwrap_or(&why);
            return Err(("InvalidBackupRecipient", format!("spec.backup.recipients[{i}]: {why}")));
        }
    }
    if b.config_map.is_none() && b.object_store.is_none() {
        return Err((
            "InvalidBackupDestination",
            "spec.backup needs a destination: configMap, objectStore or both".into(),
        ));
    }
    if let Some(os) = &b.object_store {
        store::check_spec(os).map_err(|why| ("InvalidBackupDestination", why))?;
    }
    Ok(Plan {
        recipients: b.recipients.clone(),
        config_map: b.config_map.as_ref().map(|c| c.name.clone()),
        keep: b.keep.map_or(DEFAULT_KEEP, |k| k.max(1) as usize),
        object_store: b.object_store.clone(),
    })
}

/// The key ids of a keyring, oldest first (as backups record them).
pub fn ids(ring: &Keyring) -> Vec<String> {
    ring.ids().iter().map(KeyId::to_string).collect()
}

/// Whether every key of `ring` is in the last backup.
pub fn holds_all(last: Option<&LastBackup>, ring: &Keyring) -> bool {
    last.is_some_and(|b| ids(ring).iter().all(|id| b.key_ids.contains(id)))
}

/// Whether the last backup holds exactly `ring`'s keys, in order.
pub fn is_current(last: Option<&LastBackup>, ring: &Keyring) -> bool {
    last.is_some_and(|b| b.key_ids == ids(ring))
}

/// The entry (and object) name of a backup written at `at`:
/// `20261123T184501.123Z-<primary id>.age`.
pub fn entry_name(at: Timestamp, primary: KeyId) -> String {
    let t = at.to_zoned(TimeZone::UTC).strftime("%Y%m%dT%H%M%S%.3fZ").to_string();
    format!("{t}-{primary}.age")
}

/// The entries a ConfigMap keeps after `entry` is added: the newest `keep`
/// (names start with their time, so they sort by age).
pub fn trimmed(existing: &BTreeMap<String, String>, keep: usize) -> Vec<String> {
    let entries: Vec<&String> = existing.keys().filter(|k| k.ends_with(".age")).collect();
    let drop = entries.len().saturating_sub(keep);
    entries.into_iter().take(drop).cloned().collect()
}

/// What kind of failure a backup met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The destination failed or could not be reached: a retry may fix it.
    Failed,
    /// A ConfigMap that is not ours.
    Conflict,
    /// The destination or its credentials are not allowed (see `store`).
    Refused,
}

impl FailureKind {
    /// The event reason.
    pub fn reason(self) -> &'static str {
        match self {
            FailureKind::Failed => "BackupFailed",
            FailureKind::Conflict => "BackupConflict",
            FailureKind::Refused => "BackupRefused",
        }
    }
}

/// Why a backup failed: the destination and the reason (never key material,
/// never a credential, never what a server answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `configmap <ns>/<name>` or the object store URL.
    pub destination: String,
    /// What went wrong.
    pub reason: String,
    /// What kind of failure.
    pub kind: FailureKind,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            FailureKind::Refused => write!(f, "{}: refused: {}", self.destination, self.reason),
            _ => write!(f, "{}: {}", self.destination, self.reason),
        }
    }
}

pub(crate) fn fail(destination: &str, reason: impl std::fmt::Display) -> Failure {
    Failure { destination: destination.to_owned(), reason: reason.to_string(), kind: FailureKind::Failed }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use encstr_core::Key;

    use super::*;

    const R: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    fn spec() -> crd::Backup {
        crd::Backup {
            recipients: vec![R.into()],
            config_map: Some(crd::ConfigMapRef { name: "b".into() }),
            ..Default::default()
        }
    }

    #[test]
    fn recipients_and_destinations_are_validated() {
        assert_eq!(validate(&spec()).expect("valid").keep, DEFAULT_KEEP);
        let mut b = spec();
        b.recipients.push("age1nope".into());
        let (reason, msg) = validate(&b).expect_err("bad recipient");
        assert_eq!(reason, "InvalidBackupRecipient");
        assert!(msg.starts_with("spec.backup.recipients[1]: recipient \"age1nope\""), "{msg}");
        let mut b = spec();
        b.config_map = None;
        assert_eq!(validate(&b).expect_err("nowhere").0, "InvalidBackupDestination");
        b.object_store = Some(crd::ObjectStore { url: "ftp://x/y".into(), ..Default::default() });
        assert_eq!(validate(&b).expect_err("ftp").0, "InvalidBackupDestination");
        b.object_store = Some(crd::ObjectStore { url: "s3://bucket/prefix".into(), ..Default::default() });
        assert!(validate(&b).is_ok());
    }

    #[test]
    fn entry_names_sort_by_time_and_trimming_keeps_the_newest() {
        let id: KeyId = "2d353d4a".parse().expect("id");
        let at: Timestamp = "2026-11-23T18:45:01.123456Z".parse().expect("time");
        assert_eq!(entry_name(at, id), "20261123T184501.123Z-2d353d4a.age");
        let later = at + Duration::from_millis(877);
        assert!(entry_name(later, id) > entry_name(at, id));
        let data: BTreeMap<String, String> =
            (0..5).map(|i| (format!("2026110{i}T000000.000Z-2d353d4a.age"), String::new())).collect();
        assert_eq!(
            trimmed(&data, 3),
            vec!["20261100T000000.000Z-2d353d4a.age", "20261101T000000.000Z-2d353d4a.age"]
        );
        assert!(trimmed(&data, 10).is_empty());
    }

    #[test]
    fn backed_up_means_every_key_and_current_means_the_same_order() {
        let (a, b) = (Key::generate().expect("a"), Key::generate().expect("b"));
        let ring = Keyring::new(vec![a.clone(), b.clone()]).expect("ring");
        let reordered = Keyring::new(vec![b, a]).expect("ring");
        let last = LastBackup { time: String::new(), key_ids: ids(&ring), location: String::new() };
        assert!(holds_all(Some(&last), &ring) && is_current(Some(&last), &ring));
        assert!(holds_all(Some(&last), &reordered) && !is_current(Some(&last), &reordered));
        let staged = Keyring::new(vec![Key::generate().expect("c")]).expect("ring");
        assert!(!holds_all(Some(&last), &staged));
        assert!(!holds_all(None, &ring));
    }
}
