//! Observe: read what exists, from the API server where a decision must
//! not rest on a cache (the master, labelled Secrets before a master is
//! created, copies before a promotion) and from the caches otherwise.
//! Nothing here decides or writes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tracing::warn;

use crate::cache::Phase;
use crate::context::Ctx;
use crate::crd::LABEL_ROLE;
use crate::desired::{self, ValidSpec};
use crate::error::Result;
use crate::keyring::{KeyringResource, Kind};
use crate::usage::Usage;

/// Page size of the lists the operator makes.
const PAGE: u32 = 500;

/// Page size of usage scans: ConfigMaps and Secrets may be up to 1 MiB
/// each, and a scan holds one page at a time (see BENCHMARKS.md).
const USAGE_PAGE: u32 = 100;

/// A Secret by namespace and name, from the API server.
pub async fn secret(client: &Client, ns: &str, name: &str) -> Result<Option<Secret>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    Ok(api.get_opt(name).await?)
}

/// The namespaces where copies are evidence of keys handed out: the
/// targets, and the targets the status last reported (a namespace that
/// stopped being a target keeps its copy).
pub fn copy_namespaces<K: KeyringResource>(k: &K, targets: &[Target]) -> BTreeSet<String> {
    let reported = k.keyring_status().into_iter().flat_map(|s| s.targets.iter().map(|t| t.namespace.clone()));
    targets.iter().map(|t| t.name().to_owned()).chain(reported).collect()
}

/// The keyring's copies (`namespace/name`), from the cache: Secrets named
/// `spec.secretName` with the keyring's label and role `copy`, in
/// [`copy_namespaces`]. A label alone is not a copy: a clone under another
/// name, or a Secret labelled in a namespace that is no target, is not
/// evidence of keys handed out.
pub fn copies<K: KeyringResource>(k: &K, ctx: &Ctx, spec: &ValidSpec, targets: &[Target]) -> Vec<String> {
    let namespaces = copy_namespaces(k, targets);
    ctx.secrets
        .copies(K::KIND.label(), &k.name_any(), &spec.secret_name)
        .into_iter()
        .filter(|(ns, _)| namespaces.contains(ns))
        .map(|(ns, _)| format!("{ns}/{}", spec.secret_name))
        .collect()
}

/// Of the Secrets carrying the keyring's label, those the operator wrote:
/// named `secret_name`, the master (role `master`) in the master's
/// namespace, a copy (role `copy`) elsewhere.
pub fn ours<K: KeyringResource>(secrets: Vec<Secret>, secret_name: &str, master_ns: &str) -> Vec<Secret> {
    secrets
        .into_iter()
        .filter(|s| {
            let role = if s.namespace().as_deref() == Some(master_ns) { "master" } else { "copy" };
            s.name_any() == secret_name && s.labels().get(LABEL_ROLE).map(String::as_str) == Some(role)
        })
        .collect()
}

/// Secrets carrying this keyring's label, from the API server (paginated).
pub async fn list_labelled<K: KeyringResource>(k: &K, client: &Client) -> Result<Vec<Secret>> {
    let api: Api<Secret> = match K::KIND {
        Kind::Namespaced => Api::namespaced(client.clone(), &k.namespace().unwrap_or_default()),
        Kind::Cluster => Api::all(client.clone()),
    };
    let selector = format!("{}={}", K::KIND.label(), k.name_any());
    let mut out = Vec::new();
    let mut lp = ListParams::default().labels(&selector).limit(PAGE);
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => return Ok(out),
        }
    }
}

/// `namespace/name` of each Secret.
pub fn places(secrets: &[Secret]) -> Vec<String> {
    secrets.iter().map(|s| format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any())).collect()
}

/// A target namespace and whether a copy can go there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// It exists.
    Active(String),
    /// It does not exist.
    Missing(String),
    /// It is being deleted.
    Terminating(String),
}

impl Target {
    /// The namespace.
    pub fn name(&self) -> &str {
        match self {
            Target::Active(n) | Target::Missing(n) | Target::Terminating(n) => n,
        }
    }
}

/// The target namespaces (list ∪ selector matches), without the master's,
/// from the namespace cache.
pub fn targets(ctx: &Ctx, spec: &ValidSpec, master_ns: &str) -> Vec<Target> {
    let Some(index) = &ctx.namespaces else { return Vec::new() };
    let mut names: BTreeSet<String> = spec.namespaces.clone();
    if let Some(sel) = &spec.selector {
        names.extend(index.matching(sel));
    }
    names.remove(master_ns);
    names
        .into_iter()
        .map(|n| match index.phase(&n) {
            None => Target::Missing(n),
            Some(Phase::Terminating) => Target::Terminating(n),
            Some(Phase::Active) => Target::Active(n),
        })
        .collect()
}

/// Whether every target in `needed` holds a copy identical to the master:
/// first as the cache says (a stale copy there answers no without a
/// request), then as the API server says (a LIST, only when the cache
/// says yes).
pub async fn copies_current_on_server<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    needed: &[&str],
    bytes: &[u8],
    ids: &str,
) -> Result<bool> {
    let labels = k.managed_labels("copy");
    let digest = crate::cache::digest(bytes);
    let (name, secret_name) = (k.name_any(), k.secret_name());
    let cached_current = needed.iter().all(|ns| {
        ctx.secrets.get(ns, &secret_name).is_some_and(|c| {
            c.label(K::KIND.label()) == Some(name.as_str()) && c.is_current(&digest, ids, labels.iter())
        })
    });
    if !cached_current {
        return Ok(false);
    }
    let master_ns = k.master_namespace(&ctx.shared.cluster_namespace);
    let labelled = list_labelled(k, &ctx.shared.client).await?;
    let copies: BTreeMap<String, Secret> = ours::<K>(labelled, &secret_name, &master_ns)
        .into_iter()
        .map(|s| (s.namespace().unwrap_or_default(), s))
        .collect();
    Ok(needed
        .iter()
        .all(|ns| copies.get(*ns).is_some_and(|s| desired::copy_is_current(s, bytes, ids, &labels))))
}

/// A usage scan's outcome.
#[derive(Debug, Default)]
pub struct Scan {
    /// A complete count made now (the only one pruning may use).
    pub fresh: Option<Usage>,
    /// The last complete count (for reporting between rate-limited scans).
    pub last: Option<Usage>,
}

/// Count ENCSTR tokens per key in ConfigMaps and Secrets (other than
/// keyring Secrets) of the master's namespace, every target and every
/// namespace still holding a copy. No fresh count when a list fails or the
/// last scan was too recent: then nothing is pruned.
pub async fn usage<K: KeyringResource>(k: &K, ctx: &Ctx, master_ns: &str, targets: &[Target]) -> Scan {
    if let Err(last) = ctx.shared.may_scan(&k.id()) {
        return Scan { fresh: None, last };
    }
    let Some(usage) = count(k, ctx, master_ns, targets).await else { return Scan::default() };
    ctx.shared.scanned(&k.id(), &usage);
    Scan { last: Some(usage.clone()), fresh: Some(usage) }
}

/// Count now, whatever the scan interval (`None`: a list failed).
pub async fn count<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    master_ns: &str,
    targets: &[Target],
) -> Option<Usage> {
    let mut namespaces: BTreeSet<String> = BTreeSet::from([master_ns.to_owned()]);
    namespaces.extend(targets.iter().filter(|t| matches!(t, Target::Active(_))).map(|t| t.name().to_owned()));
    namespaces.extend(ctx.secrets.labelled(K::KIND.label(), &k.name_any()).into_iter().map(|(ns, _)| ns));
    let mut usage = Usage::default();
    for ns in &namespaces {
        if let Err(e) = scan_namespace(&ctx.shared.client, ns, &mut usage).await {
            warn!(namespace = %ns, error = %e, "usage scan failed; nothing is pruned");
            return None;
        }
    }
    Some(usage)
}

async fn scan_namespace(client: &Client, ns: &str, usage: &mut Usage) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut lp = ListParams::default().limit(USAGE_PAGE);
    loop {
        let page = cms.list(&lp).await?;
        for cm in &page.items {
            let name = cm.name_any();
            for (key, v) in cm.data.iter().flatten() {
                usage.add(ns, "ConfigMap", &name, key, v.as_bytes());
            }
            for (key, v) in cm.binary_data.iter().flatten() {
                usage.add(ns, "ConfigMap", &name, key, &v.0);
            }
        }
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut lp = ListParams::default().limit(USAGE_PAGE);
    loop {
        let page = secrets.list(&lp).await?;
        // Every Secret: keyring Secrets hold base64 key lines, never a
        // token, and a label is no reason to skip one.
        for s in &page.items {
            let name = s.name_any();
            for (key, v) in s.data.iter().flatten() {
                usage.add(ns, "Secret", &name, key, &v.0);
            }
        }
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => return Ok(()),
        }
    }
}
