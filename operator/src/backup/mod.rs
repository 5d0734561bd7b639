//! Backups: the keyring encrypted to the spec's age recipients and written
//! to a ConfigMap in the master's namespace and/or an object store, before
//! the keyring is written anywhere else (see `reconcile`).
//!
//! The pure parts decide (entry names, which entries a ConfigMap keeps,
//! whether a keyring is backed up); the rest writes. A destination that
//! cannot be reached fails within the operator's `--backup-timeout`.
//! What an object store client may be given is decided in `store`; the
//! writes are in `write`.

pub mod existing;
pub mod store;
pub mod write;

use std::collections::BTreeMap;

use encstr_core::backup as age_backup;
use encstr_core::{KeyId, Keyring};
use k8s_openapi::jiff::{SignedDuration, Timestamp, tz::TimeZone};

use crate::crd::{self, LastBackup};
pub use existing::existing;
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

/// The time an object written now is named with: after the previous
/// backup's, so that a clock stepped back does not make the newest object
/// sort before older ones (`LastBackup.time` has whole seconds).
pub fn object_time(now: Timestamp, previous: Option<&LastBackup>) -> Timestamp {
    let after = previous
        .and_then(|l| l.time.parse::<Timestamp>().ok())
        .and_then(|t| t.checked_add(SignedDuration::from_secs(1)).ok());
    match after {
        Some(t) if t > now => t,
        _ => now,
    }
}

/// Whether a backup was written to every destination `plan` names (a
/// backup recorded for other destinations, before `spec.backup` changed,
/// does not count).
pub fn written_to(plan: &Plan, master_ns: &str, last: &LastBackup) -> bool {
    let places: Vec<&str> = last.location.split(' ').collect();
    let config_map_ok = plan.config_map.as_ref().is_none_or(|name| {
        let prefix = format!("configmap:{master_ns}/{name}#");
        places.iter().any(|p| p.starts_with(&prefix))
    });
    let store_ok = plan.object_store.as_ref().is_none_or(|os| {
        let prefix = format!("{}/", os.url.trim_end_matches('/'));
        places.iter().any(|p| p.starts_with(&prefix))
    });
    config_map_ok && store_ok
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

/// The time an entry name starts with, if it is one of ours.
fn entry_time(name: &str) -> Option<Timestamp> {
    let stamp = name.get(..20)?;
    let civil = k8s_openapi::jiff::civil::DateTime::strptime("%Y%m%dT%H%M%S%.fZ", stamp).ok()?;
    civil.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp())
}

/// The name and time of a new entry in a ConfigMap holding `existing`,
/// written at `now`: later than every entry there, so that neither a clock
/// stepped back nor entries dated in the future make the newest backup
/// sort first (and be trimmed); entry names are a sequence that only grows.
pub fn next_entry(
    existing: &BTreeMap<String, String>,
    now: Timestamp,
    primary: KeyId,
) -> (String, Timestamp) {
    let newest = existing.keys().filter_map(|k| entry_time(k)).max();
    // Checked: an entry dated at the end of time (anyone who may edit the
    // ConfigMap can write one) must not overflow; past it, the first free
    // name before `now` — the entry just written is never trimmed anyway.
    let start = match newest {
        Some(t) if t >= now => t.checked_add(SignedDuration::from_millis(1)).unwrap_or(now),
        _ => now,
    };
    let free = |t: &Timestamp| !existing.contains_key(&entry_name(*t, primary));
    let step = |k: i64| SignedDuration::from_millis(k);
    let later = (0..).map_while(|k| start.checked_add(step(k)).ok()).find(free);
    let at = later.or_else(|| (1..).map_while(|k| now.checked_sub(step(k)).ok()).find(free)).unwrap_or(now);
    let entry = entry_name(at, primary);
    (entry, at)
}

/// The entries a ConfigMap drops once `written` is added: all but the
/// newest `keep` (names start with their time, so they sort by age), and
/// never `written` itself.
pub fn trimmed(existing: &BTreeMap<String, String>, keep: usize, written: &str) -> Vec<String> {
    let entries: Vec<&String> = existing.keys().filter(|k| k.ends_with(".age")).collect();
    let drop = entries.len().saturating_sub(keep.max(1));
    entries.into_iter().filter(|e| *e != written).take(drop).cloned().collect()
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
            trimmed(&data, 3, "none"),
            vec!["20261100T000000.000Z-2d353d4a.age", "20261101T000000.000Z-2d353d4a.age"]
        );
        assert!(trimmed(&data, 10, "none").is_empty());
    }

    #[test]
    fn a_new_entry_comes_after_every_entry_and_is_never_trimmed() {
        let id: KeyId = "2d353d4a".parse().expect("id");
        let now: Timestamp = "2026-11-23T18:45:01.123Z".parse().expect("time");
        // Entries from the future (a clock that was ahead, or stepped back).
        let mut data: BTreeMap<String, String> =
            (0..3).map(|i| (format!("2099010{}T000000.000Z-2d353d4a.age", i + 1), String::new())).collect();
        let (entry, at) = next_entry(&data, now, id);
        assert_eq!(entry, "20990103T000000.001Z-2d353d4a.age");
        assert!(at > now);
        data.insert(entry.clone(), String::new());
        let gone = trimmed(&data, 3, &entry);
        assert_eq!(gone, vec!["20990101T000000.000Z-2d353d4a.age"], "the oldest goes, not the new one");
        // A name that sorts after everything is kept apart from the new entry.
        let mut odd = BTreeMap::from([("zz-not-a-time.age".to_owned(), String::new())]);
        let (entry, at) = next_entry(&odd, now, id);
        assert_eq!(at, now, "no entry dated later: now");
        odd.insert(entry.clone(), String::new());
        assert_eq!(trimmed(&odd, 1, &entry), vec!["zz-not-a-time.age"]);
        // In order: a second backup in the same millisecond comes after.
        let one = BTreeMap::from([(entry_name(now, id), String::new())]);
        assert_eq!(next_entry(&one, now, id).1, now + Duration::from_millis(1));
    }

    #[test]
    fn an_entry_at_the_end_of_time_does_not_overflow() {
        let id: KeyId = "2d353d4a".parse().expect("id");
        let now: Timestamp = "2026-11-23T18:45:01.123Z".parse().expect("time");
        let end = BTreeMap::from([("99991230T220000.999Z-00000000.age".to_owned(), String::new())]);
        assert_eq!(entry_time("99991230T220000.999Z-00000000.age").map(|t| t > now), Some(true));
        let (entry, at) = next_entry(&end, now, id);
        assert_eq!(at, now, "no later time exists: now");
        assert!(trimmed(&BTreeMap::from([(entry.clone(), String::new())]), 1, &entry).is_empty());
        // A name that is exactly the last one we could make, already taken.
        let last = Timestamp::MAX;
        let taken = BTreeMap::from([(entry_name(last, id), String::new())]);
        let (entry, _) = next_entry(&taken, last, id);
        assert!(!taken.contains_key(&entry), "a free name");
    }

    #[test]
    fn objects_are_named_after_the_previous_backup() {
        let now: Timestamp = "2026-11-23T18:45:01Z".parse().expect("time");
        let last = |t: &str| LastBackup { time: t.into(), ..LastBackup::default() };
        assert_eq!(object_time(now, None), now);
        assert_eq!(object_time(now, Some(&last("2026-11-20T00:00:00Z"))), now);
        let ahead = last("2027-01-01T00:00:00Z");
        assert_eq!(object_time(now, Some(&ahead)), "2027-01-01T00:00:01Z".parse::<Timestamp>().unwrap());
        assert_eq!(object_time(now, Some(&last("not a time"))), now);
    }

    #[test]
    fn a_backup_counts_only_for_the_destinations_it_was_written_to() {
        let mut plan = validate(&spec()).expect("valid");
        let last = |location: &str| LastBackup { location: location.into(), ..LastBackup::default() };
        assert!(written_to(&plan, "encstr", &last("configmap:encstr/b#20261123T184501.123Z-2d353d4a.age")));
        assert!(!written_to(&plan, "encstr", &last("configmap:encstr/old#x.age")), "another ConfigMap");
        assert!(!written_to(&plan, "other", &last("configmap:encstr/b#x.age")), "another namespace");
        plan.object_store = Some(crd::ObjectStore { url: "s3://bucket/p/".into(), ..Default::default() });
        assert!(!written_to(&plan, "encstr", &last("configmap:encstr/b#x.age")), "the store is new");
        assert!(written_to(&plan, "encstr", &last("configmap:encstr/b#x.age s3://bucket/p/x.age")));
        assert!(!written_to(&plan, "encstr", &last("configmap:encstr/b#x.age s3://bucket/pp/x.age")));
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
