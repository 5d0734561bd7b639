//! Backups: the keyring encrypted to the spec's age recipients and written
//! to a ConfigMap in the master's namespace and/or an object store, before
//! the keyring is written anywhere else (see `reconcile`).
//!
//! The pure parts decide (entry names, which entries a ConfigMap keeps,
//! whether a keyring is backed up); the rest writes. A destination that
//! cannot be reached fails within the operator's `--backup-timeout`.
//! What an object store client may be given is decided in `store`.

pub mod store;

use std::collections::BTreeMap;
use std::time::Duration;

use encstr_core::backup::{self as age_backup, IDS_ANNOTATION_PREFIX};
use encstr_core::{KeyId, Keyring};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::{Timestamp, tz::TimeZone};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use crate::crd::{self, LastBackup};
use crate::desired::fmt_time;
use store::{Policy, Writer};

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

fn fail(destination: &str, reason: impl std::fmt::Display) -> Failure {
    Failure { destination: destination.to_owned(), reason: reason.to_string(), kind: FailureKind::Failed }
}

/// Who writes the backup: the keyring's labels for the ConfigMap.
#[derive(Debug)]
pub struct Owner {
    /// The labels a managed backup ConfigMap carries.
    pub labels: BTreeMap<String, String>,
    /// The keyring label's key and value (ownership check).
    pub label: (String, String),
}

/// Where and how a backup is written.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// The master's namespace (ConfigMap and credentials Secret).
    pub master_ns: &'a str,
    /// Who wrote the keyring.
    pub writer: Writer,
    /// What the admin allows.
    pub policy: &'a Policy,
    /// The longest one destination may take.
    pub timeout: Duration,
}

/// Encrypt `ring` and write it to every destination of `plan`.
pub async fn write(
    client: &Client,
    plan: &Plan,
    to: Destination<'_>,
    owner: &Owner,
    ring: &Keyring,
    now: Timestamp,
) -> Result<LastBackup, Failure> {
    let (master_ns, timeout) = (to.master_ns, to.timeout);
    let recipients: Vec<age_backup::Recipient> = plan
        .recipients
        .iter()
        .map(|r| age_backup::parse_recipient(r))
        .collect::<Result<_, _>>()
        .map_err(|e| fail("spec.backup.recipients", e))?;
    let armored = age_backup::encrypt(ring, &recipients).map_err(|e| fail("encryption", e))?;
    let key_ids = ids(ring);
    let mut locations = Vec::new();
    let mut at = now;
    if let Some(name) = &plan.config_map {
        let dest = format!("configmap {master_ns}/{name}");
        let entry = tokio::time::timeout(
            timeout,
            to_config_map(client, master_ns, name, plan.keep, owner, &armored, &key_ids, ring, now),
        )
        .await
        .map_err(|_| fail(&dest, format!("no answer within {} s", timeout.as_secs())))??;
        locations.push(format!("configmap:{master_ns}/{name}#{}", entry.0));
        at = entry.1;
    }
    if let Some(os) = &plan.object_store {
        let url = tokio::time::timeout(timeout, to_object_store(client, to, os, &armored, ring, at))
            .await
            .map_err(|_| fail(&os.url, format!("no answer within {} s", timeout.as_secs())))??;
        locations.push(url);
    }
    Ok(LastBackup { time: fmt_time(at), key_ids, location: locations.join(" ") })
}

/// Add an entry to the backup ConfigMap (creating it), keeping the newest
/// `keep`; returns the entry name and its time.
#[allow(clippy::too_many_arguments)]
async fn to_config_map(
    client: &Client,
    ns: &str,
    name: &str,
    keep: usize,
    owner: &Owner,
    armored: &str,
    key_ids: &[String],
    ring: &Keyring,
    now: Timestamp,
) -> Result<(String, Timestamp), Failure> {
    let dest = format!("configmap {ns}/{name}");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let existing = api.get_opt(name).await.map_err(|e| fail(&dest, e))?;
    let mut cm = match existing {
        Some(cm) => {
            if cm.labels().get(&owner.label.0) != Some(&owner.label.1) {
                return Err(Failure {
                    destination: dest,
                    reason: "exists and is not managed by this keyring; it is left alone (choose another spec.backup.configMap.name)".into(),
                    kind: FailureKind::Conflict,
                });
            }
            cm
        }
        None => ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(ns.to_owned()),
                labels: Some(owner.labels.clone()),
                ..Default::default()
            },
            ..Default::default()
        },
    };
    let data = cm.data.get_or_insert_with(BTreeMap::new);
    // Unique even for two backups in one millisecond.
    let mut at = now;
    let mut entry = entry_name(at, ring.primary().id());
    while data.contains_key(&entry) {
        at += Duration::from_millis(1);
        entry = entry_name(at, ring.primary().id());
    }
    data.insert(entry.clone(), armored.to_owned());
    let gone = trimmed(data, keep);
    for g in &gone {
        data.remove(g);
    }
    let annotations = cm.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for g in &gone {
        annotations.remove(&format!("{IDS_ANNOTATION_PREFIX}{g}"));
    }
    annotations.insert(format!("{IDS_ANNOTATION_PREFIX}{entry}"), key_ids.join(","));
    cm.metadata.managed_fields = None;
    let result = if cm.metadata.resource_version.is_some() {
        api.replace(
            name,
            &PostParams { field_manager: Some(crd::FIELD_MANAGER.into()), ..Default::default() },
            &cm,
        )
        .await
    } else {
        api.create(&PostParams { field_manager: Some(crd::FIELD_MANAGER.into()), ..Default::default() }, &cm)
            .await
    };
    result.map_err(|e| fail(&dest, e))?;
    Ok((entry, at))
}

/// Options for `object_store`, as `store::options` allows them, from the
/// operator's environment and the credentials Secret.
async fn store_options(
    client: &Client,
    to: Destination<'_>,
    os: &crd::ObjectStore,
) -> Result<Vec<(String, String)>, Failure> {
    let ns = to.master_ns;
    let secret = match &os.credentials_secret_ref {
        None => None,
        Some(r) => {
            let api: Api<Secret> = Api::namespaced(client.clone(), ns);
            let s = api
                .get_opt(&r.name)
                .await
                .map_err(|e| fail(&os.url, format!("reading credentials Secret {ns}/{}: {e}", r.name)))?
                .ok_or_else(|| fail(&os.url, format!("credentials Secret {ns}/{} not found", r.name)))?;
            let mut data = BTreeMap::new();
            for (k, v) in s.data.unwrap_or_default() {
                let v = String::from_utf8(v.0).map_err(|_| {
                    fail(&os.url, format!("credentials Secret {ns}/{}: key {k} is not text", r.name))
                })?;
                data.insert(k, v);
            }
            Some(data)
        }
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    let named = os.credentials_secret_ref.as_ref().map(|r| format!("{ns}/{}", r.name));
    let secret = named.as_deref().zip(secret.as_ref());
    store::options(to.writer, to.policy, os, &env, secret).map_err(|r| Failure {
        destination: os.url.clone(),
        reason: r.0,
        kind: FailureKind::Refused,
    })
}

/// Write a new object (never overwriting); returns its URL.
async fn to_object_store(
    client: &Client,
    to: Destination<'_>,
    os: &crd::ObjectStore,
    armored: &str,
    ring: &Keyring,
    now: Timestamp,
) -> Result<String, Failure> {
    let url = url::Url::parse(&os.url).map_err(|e| fail(&os.url, e))?;
    let opts = store_options(client, to, os).await?;
    let (store, prefix) =
        object_store::parse_url_opts(&url, opts).map_err(|e| fail(&os.url, store::describe(&e)))?;
    let mut at = now;
    for _ in 0..5 {
        let entry = entry_name(at, ring.primary().id());
        let path = prefix.clone().join(entry.as_str());
        let put = PutOptions { mode: PutMode::Create, ..Default::default() };
        match store.put_opts(&path, PutPayload::from(armored.as_bytes().to_vec()), put).await {
            Ok(_) => return Ok(format!("{}/{}", os.url.trim_end_matches('/'), entry)),
            Err(object_store::Error::AlreadyExists { .. }) => at += Duration::from_millis(1),
            Err(e) => return Err(fail(&os.url, store::describe(&e))),
        }
    }
    Err(fail(&os.url, "five object names in a row already exist"))
}

#[cfg(test)]
mod tests {
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
