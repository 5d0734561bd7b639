//! Write a backup: the keyring encrypted to the plan's recipients, to a
//! ConfigMap in the master's namespace and/or an object store.

use std::collections::BTreeMap;
use std::time::Duration;

use encstr_core::Keyring;
use encstr_core::backup::{self as age_backup, IDS_ANNOTATION_PREFIX};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use super::store::{self, Policy, Writer};
use super::{Failure, FailureKind, Plan, entry_name, fail, ids, next_entry, trimmed};
use crate::crd::{self, LastBackup, fmt_time};

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

/// Encrypt `ring` and write it to every destination of `plan` (`previous`:
/// the last backup, whose time new object names come after).
pub async fn write(
    client: &Client,
    plan: &Plan,
    to: Destination<'_>,
    owner: &Owner,
    ring: &Keyring,
    now: Timestamp,
    previous: Option<&LastBackup>,
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
        let named = super::object_time(now, previous);
        at = at.max(named);
        let url = tokio::time::timeout(timeout, to_object_store(client, to, os, &armored, ring, named))
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
    let (entry, at) = next_entry(data, now, ring.primary().id());
    data.insert(entry.clone(), armored.to_owned());
    let gone = trimmed(data, keep, &entry);
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
    let stored = result.map_err(|e| fail(&dest, e))?;
    // Success only if what the API server stored holds the entry.
    if stored.data.as_ref().and_then(|d| d.get(&entry)).map(String::as_str) != Some(armored) {
        return Err(fail(&dest, format!("the stored ConfigMap does not hold the new entry {entry}")));
    }
    Ok((entry, at))
}

/// Options for `object_store`, as `store::options` allows them, from the
/// operator's environment and the credentials Secret.
pub(super) async fn store_options(
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
    store::options(to.writer, to.policy, os, to.master_ns, &env, secret).map_err(|r| Failure {
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
