//! Whether a keyring's backup destinations already hold backups: read
//! only, before a new keyring is generated (a keyring of this name that is
//! gone — a deleted namespace, a rebuilt cluster — may have left them, and
//! its keys may still protect data). The decision is
//! `reconcile::decide::generate`.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::Api;

use super::write::{Destination, store_options};
use super::{Failure, Plan, fail};
use crate::crd;

/// The backup entries a ConfigMap holds (whoever labelled it: a backup
/// under a stripped label is still a backup).
pub fn config_map_entries(cm: &ConfigMap) -> usize {
    cm.data.iter().flatten().filter(|(k, _)| k.ends_with(".age")).count()
}

/// Whether an object name is a backup's (`<time>-<primary id>.age`).
pub fn is_backup_object(name: &str) -> bool {
    name.ends_with(".age")
}

/// Look at every destination of `plan` (each within the timeout): the
/// ones holding backups, described (`configmap NS/NAME: N backup(s)`, the
/// object store URL); or the first that cannot be looked at, and why.
pub async fn existing(client: &Client, plan: &Plan, to: Destination<'_>) -> Result<Vec<String>, Failure> {
    let mut found = Vec::new();
    let late = |dest: &str| fail(dest, format!("no answer within {} s", to.timeout.as_secs()));
    if let Some(name) = &plan.config_map {
        let dest = format!("configmap {}/{name}", to.master_ns);
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), to.master_ns);
        let cm = tokio::time::timeout(to.timeout, api.get_opt(name))
            .await
            .map_err(|_| late(&dest))?
            .map_err(|e| fail(&dest, e))?;
        match cm.map(|cm| config_map_entries(&cm)) {
            Some(n) if n > 0 => found.push(format!("{dest}: {n} backup(s)")),
            _ => {}
        }
    }
    if let Some(os) = &plan.object_store {
        let looked =
            tokio::time::timeout(to.timeout, in_store(client, to, os)).await.map_err(|_| late(&os.url))?;
        found.extend(looked?);
    }
    Ok(found)
}

/// Whether the store holds a backup object under the URL's prefix.
async fn in_store(
    client: &Client,
    to: Destination<'_>,
    os: &crd::ObjectStore,
) -> Result<Option<String>, Failure> {
    let url = url::Url::parse(&os.url).map_err(|e| fail(&os.url, e))?;
    let opts = store_options(client, to, os).await?;
    let (store, prefix) =
        object_store::parse_url_opts(&url, opts).map_err(|e| fail(&os.url, super::store::describe(&e)))?;
    let mut objects = store.list(Some(&prefix));
    while let Some(object) = objects.next().await {
        let object = object.map_err(|e| fail(&os.url, super::store::describe(&e)))?;
        if object.location.filename().is_some_and(is_backup_object) {
            return Ok(Some(format!("{}: backup objects", os.url)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn only_backup_entries_count() {
        let mut cm = ConfigMap::default();
        assert_eq!(config_map_entries(&cm), 0);
        cm.data = Some(BTreeMap::from([
            ("README".to_owned(), "x".to_owned()),
            ("20261123T184501.123Z-2d353d4a.age".to_owned(), "-----BEGIN AGE".to_owned()),
        ]));
        assert_eq!(config_map_entries(&cm), 1);
        assert!(is_backup_object("20261123T184501.123Z-2d353d4a.age"));
        assert!(!is_backup_object("README.md"));
    }
}
