//! Observe: read what exists, from the API server where a decision must
//! not rest on a cache (the master, labelled Secrets before a master is
//! created, copies before a promotion) and from the caches otherwise.
//! Nothing here decides or writes.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hasher};
use std::time::{Duration, Instant};

use encstr_core::KeyId;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tracing::warn;

use crate::cache::Phase;
use crate::context::Ctx;
use crate::crd::LABEL_ROLE;
use crate::desired::{self, ValidSpec};
use crate::error::{Error, Result};
use crate::keyring::{KeyringResource, Kind};
use crate::usage::{self, ListKind, NamespaceScan, Usage};

/// Page size of the lists the operator makes.
const PAGE: u32 = 500;

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
    /// A complete count, every namespace's part within its reuse window
    /// (the only one pruning may decide on; a prune is counted again right
    /// before it is written).
    pub fresh: Option<Usage>,
    /// The count to report (the same).
    pub last: Option<Usage>,
    /// Every namespace's count was confirmed by two scans an interval
    /// apart that found the same objects (else nothing is pruned).
    pub confirmed: bool,
    /// Per key found in use, when the newest scan that found it started
    /// (in whole seconds, as the master's annotations record it): it was
    /// in use then. A reused scan gives the same time again, so the record
    /// moves only when a namespace using the key is scanned anew.
    pub seen_at: BTreeMap<KeyId, Timestamp>,
}

/// How fresh a count must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Each namespace's shared result while within its reuse window
    /// ([`usage::reuse_window`]): the scan interval when a keyring is about
    /// to prune, longer while nothing changes.
    Reuse {
        /// A key retention wants gone is quiet long enough to be pruned if
        /// nothing uses it.
        about_to_prune: bool,
        /// Never older than this (the asking keyring's sampling slack,
        /// which its quiet period includes).
        cap: Duration,
    },
    /// Scanned after this call began (the count right before a prune).
    Now,
}

/// The namespaces whose ConfigMaps and Secrets may use a keyring's keys: a
/// SecretKeyring's own namespace only (a label elsewhere is anybody's); a
/// ClusterSecretKeyring's namespace, every active target and every
/// namespace still holding a Secret with its label.
pub fn usage_namespaces<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    master_ns: &str,
    targets: &[Target],
) -> BTreeSet<String> {
    let mut namespaces: BTreeSet<String> = BTreeSet::from([master_ns.to_owned()]);
    if K::KIND == Kind::Cluster {
        namespaces
            .extend(targets.iter().filter(|t| matches!(t, Target::Active(_))).map(|t| t.name().to_owned()));
        namespaces.extend(ctx.secrets.labelled(K::KIND.label(), &k.name_any()).into_iter().map(|(ns, _)| ns));
    }
    namespaces
}

/// Count ENCSTR tokens per key in ConfigMaps and Secrets of
/// [`usage_namespaces`], reusing each namespace's shared result while
/// fresh. No count when a list fails: then nothing is pruned.
pub async fn usage<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    master_ns: &str,
    targets: &[Target],
    about_to_prune: bool,
    cap: Duration,
) -> Scan {
    let Some((usage, seen, confirmed)) =
        counted(k, ctx, master_ns, targets, Freshness::Reuse { about_to_prune, cap }).await
    else {
        return Scan::default();
    };
    let (now, wall) = (Instant::now(), Timestamp::now());
    let seen_at = seen
        .into_iter()
        .map(|(id, at)| {
            let ago = SignedDuration::try_from(now.saturating_duration_since(at)).unwrap_or_default();
            let t = wall - ago;
            (id, Timestamp::from_second(t.as_second()).unwrap_or(t))
        })
        .collect();
    Scan { last: Some(usage.clone()), fresh: Some(usage), seen_at, confirmed }
}

/// Count as fresh as `freshness` asks (`None`: a list failed), and
/// whether every namespace's count is confirmed (see [`Scan::confirmed`]).
pub async fn count<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    master_ns: &str,
    targets: &[Target],
    freshness: Freshness,
) -> Option<(Usage, bool)> {
    counted(k, ctx, master_ns, targets, freshness).await.map(|(usage, _, confirmed)| (usage, confirmed))
}

/// The count, per key found in use when the newest scan that found it
/// started, and whether every namespace's count is confirmed.
async fn counted<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    master_ns: &str,
    targets: &[Target],
    freshness: Freshness,
) -> Option<(Usage, BTreeMap<KeyId, Instant>, bool)> {
    let asked = Instant::now();
    let mut usage = Usage::default();
    let mut confirmed = true;
    let mut seen: BTreeMap<KeyId, Instant> = BTreeMap::new();
    for ns in usage_namespaces(k, ctx, master_ns, targets) {
        match namespace_usage(ctx, &ns, freshness, asked).await {
            Ok((u, at, ok)) => {
                confirmed &= ok;
                usage.merge(&u);
                for id in u.counts.keys() {
                    let t = seen.entry(*id).or_insert(at);
                    *t = (*t).max(at);
                }
            }
            Err(e) => {
                warn!(namespace = %ns, error = %e, "usage scan failed; nothing is pruned");
                return None;
            }
        }
    }
    Some((usage, seen, confirmed))
}

/// One namespace's count: its shared result when fresh enough, else a scan
/// (one at a time per namespace: a keyring that wants it meanwhile waits
/// and takes that scan's result). A failed scan leaves no result.
async fn namespace_usage(
    ctx: &Ctx,
    ns: &str,
    freshness: Freshness,
    asked: Instant,
) -> Result<(Usage, Instant, bool)> {
    let slot = ctx.shared.scan_slot(ns);
    let mut last = slot.lock().await;
    let interval = ctx.shared.scan_interval;
    let usable = last.as_ref().is_some_and(|s| match freshness {
        Freshness::Reuse { about_to_prune, cap } => {
            s.usable(Instant::now(), interval, about_to_prune)
                && Instant::now().saturating_duration_since(s.at) < cap
        }
        Freshness::Now => s.at >= asked,
    });
    if let Some(s) = last.as_ref().filter(|_| usable) {
        return Ok((s.usage.clone(), s.at, s.confirmed(interval)));
    }
    let started = Instant::now();
    match scan_namespace(ctx, ns).await {
        Ok((usage, fingerprint)) => {
            let scan = NamespaceScan::after(last.as_ref(), usage, fingerprint, started);
            ctx.shared.metrics.namespace_scans.inc();
            let (usage, confirmed) = (scan.usage.clone(), scan.confirmed(interval));
            *last = Some(scan);
            Ok((usage, started, confirmed))
        }
        Err(e) => {
            *last = None;
            Err(e)
        }
    }
}

/// Scan one namespace: its ConfigMaps then its Secrets, [`usage::SCAN_PAGE`]
/// objects a page, one page at a time in the process, each read as it
/// arrives keeping only key ids; the count and the namespace's
/// fingerprint.
async fn scan_namespace(ctx: &Ctx, ns: &str) -> Result<(Usage, u64)> {
    let mut usage = Usage::default();
    let mut fingerprint = usage::fingerprint_hasher();
    for (kind, plural) in [(ListKind::ConfigMap, "configmaps"), (ListKind::Secret, "secrets")] {
        let request = kube::core::Request::new(format!("/api/v1/namespaces/{ns}/{plural}"));
        let mut lp = ListParams::default().limit(usage::SCAN_PAGE);
        loop {
            let _page = ctx.shared.scan_pages.acquire().await.map_err(|_| Error::NotSynced)?;
            let req = request.list(&lp).map_err(kube::Error::BuildRequest)?;
            let body = ctx.shared.client.request_stream(req).await?;
            // Every Secret: keyring Secrets hold base64 key lines, never a
            // token, and a label is no reason to skip one.
            let next;
            (usage, fingerprint, next) = read_page(ns, kind, body, usage, fingerprint).await?;
            match next {
                Some(c) => lp = lp.continue_token(&c),
                None => break,
            }
        }
    }
    Ok((usage, fingerprint.finish()))
}

/// Chunks of a response body in flight between the connection and the
/// parser.
const BODY_CHUNKS: usize = 4;

/// Count one page as it arrives: the body's chunks go through a short
/// channel to the JSON parser on a blocking thread (it reads
/// synchronously), so at most a few chunks and one value are held.
async fn read_page(
    ns: &str,
    kind: ListKind,
    body: impl futures::AsyncBufRead,
    usage: Usage,
    fingerprint: DefaultHasher,
) -> Result<(Usage, DefaultHasher, Option<String>)> {
    use futures::AsyncBufReadExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(BODY_CHUNKS);
    let namespace = ns.to_owned();
    let parser = tokio::task::spawn_blocking(move || {
        let (mut usage, mut fingerprint) = (usage, fingerprint);
        let reader = ChunkReader { rx, chunk: Vec::new(), at: 0 };
        let next = usage::count_page(&namespace, kind, reader, &mut usage, &mut fingerprint);
        next.map(|next| (usage, fingerprint, next))
    });
    let mut body = std::pin::pin!(body);
    loop {
        let chunk = match body.as_mut().fill_buf().await {
            Ok([]) => break,
            Ok(bytes) => Ok(bytes.to_vec()),
            Err(e) => Err(e),
        };
        let n = chunk.as_ref().map_or(0, Vec::len);
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            break; // the parser stopped (it reports why), or the body failed
        }
        body.as_mut().consume(n);
    }
    drop(tx);
    let result = parser.await.map_err(|e| kube::Error::Service(Box::new(e)))?;
    Ok(result.map_err(kube::Error::SerdeError)?)
}

/// A synchronous reader of the chunks [`read_page`] sends.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => (self.chunk, self.at) = (chunk?, 0),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
