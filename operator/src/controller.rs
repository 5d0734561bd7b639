//! Wiring: one controller per kind, each driven by its reflectors' own
//! streams (a reconcile never runs before the caches hold the change that
//! triggered it): the keyrings, the Secrets carrying the kind's label, and
//! for the cluster kind the Namespaces (labels and phase, see `namespaces`). The finalizer,
//! events, backoff and metrics around each reconcile; the reconcile itself
//! is in `reconcile`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tracing::{Instrument as _, debug, info_span, warn};

use crate::cache::{self, Namespaces, Secrets};
use crate::crd::*;
use crate::error::{Error, Result};
use crate::keyring::{Id, KeyringResource, Kind, owner_of};
use crate::metrics::{Metrics, ResultLabel};
use crate::reconcile;
use crate::usage::Usage;

/// Default resync interval when nothing is pending.
pub const RESYNC: Duration = Duration::from_secs(300);
/// Event notes are cut to this many bytes (events.k8s.io allows 1 KiB).
pub const MAX_NOTE: usize = 1024;

/// What every reconcile shares.
pub struct Shared {
    /// API client (fenced: see `lease`).
    pub client: Client,
    /// Event recorder (one for the process).
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Where ClusterSecretKeyrings keep their masters.
    pub cluster_namespace: String,
    /// Reconcile every keyring this often even without changes.
    pub resync: Duration,
    /// Scan a keyring's token usage at most this often.
    pub scan_interval: Duration,
    /// The longest one backup write may take.
    pub backup_timeout: Duration,
    /// What namespaced keyrings' backups may use.
    pub backup_policy: crate::backup::store::Policy,
    failures: Mutex<BTreeMap<Id, u32>>,
    backup_failures: Mutex<BTreeMap<Id, (u32, Instant, String)>>,
    last_backups: Mutex<BTreeMap<Id, LastBackup>>,
    scans: Mutex<BTreeMap<Id, (Instant, Option<Usage>)>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("cluster_namespace", &self.cluster_namespace).finish_non_exhaustive()
    }
}

impl Shared {
    /// Whether a usage scan of `id` may run now (and record that it does);
    /// `Err` holds the last complete scan's result when it may not.
    pub fn may_scan(&self, id: &Id) -> Result<(), Option<Usage>> {
        let mut scans = self.scans.lock().expect("lock");
        let now = Instant::now();
        if let Some((t, last)) = scans.get(id)
            && now.duration_since(*t) < self.scan_interval
        {
            return Err(last.clone());
        }
        let last = scans.get(id).and_then(|(_, u)| u.clone());
        scans.insert(id.clone(), (now, last));
        Ok(())
    }

    /// Record a backup's outcome; after a failure, when to try again: 1 s
    /// doubling, capped at a minute.
    pub fn backed_up(&self, id: &Id, failure: Option<&str>) -> Option<Duration> {
        let mut f = self.backup_failures.lock().expect("lock");
        let Some(failure) = failure else {
            f.remove(id);
            return None;
        };
        let n = f.get(id).map_or(0, |e| e.0);
        let wait = backup_backoff(n);
        f.insert(id.clone(), (n + 1, Instant::now() + wait, failure.to_owned()));
        Some(wait)
    }

    /// The newest backup this process wrote for `id` (the status in the
    /// cache may not show it yet), or else `from_status`.
    pub fn last_backup(&self, id: &Id, from_status: Option<&LastBackup>) -> Option<LastBackup> {
        let mine = self.last_backups.lock().expect("lock").get(id).cloned();
        mine.or_else(|| from_status.cloned())
    }

    /// Remember the newest backup written for `id`.
    pub fn wrote_backup(&self, id: &Id, last: &LastBackup) {
        self.last_backups.lock().expect("lock").insert(id.clone(), last.clone());
    }

    /// Forget what was written for a keyring that is gone.
    pub fn forget_backup(&self, id: &Id) {
        self.last_backups.lock().expect("lock").remove(id);
        self.backup_failures.lock().expect("lock").remove(id);
    }

    /// Whether a backup of `id` may be attempted now; if not, the last
    /// failure and how long until the next attempt.
    pub fn may_back_up(&self, id: &Id) -> Result<(), (String, Duration)> {
        let f = self.backup_failures.lock().expect("lock");
        match f.get(id) {
            Some((_, at, why)) if *at > Instant::now() => {
                Err((why.clone(), at.duration_since(Instant::now())))
            }
            _ => Ok(()),
        }
    }

    /// Record a complete scan's result (for reporting between scans).
    pub fn scanned(&self, id: &Id, usage: &Usage) {
        if let Some(entry) = self.scans.lock().expect("lock").get_mut(id) {
            entry.1 = Some(usage.clone());
        }
    }

    /// Publish an event about a keyring (notes cut to 1 KiB).
    pub async fn publish<K: KeyringResource>(&self, k: &K, type_: EventType, reason: &str, note: String) {
        let mut note = note;
        if note.len() > MAX_NOTE {
            let mut cut = MAX_NOTE - 3;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
            note.push_str("...");
        }
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &k.object_ref(&())).await {
            warn!(error = %e, "cannot publish event");
        }
    }
}

/// The context of one kind's controller.
#[derive(Debug)]
pub struct Ctx {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Secrets carrying the kind's label (labels, key ids, digest).
    pub secrets: Secrets,
    /// Namespaces: labels and phase (cluster kind).
    pub namespaces: Option<Namespaces>,
}

impl Ctx {
    /// Wait until the caches hold the initial lists.
    pub async fn synced(&self) -> Result<()> {
        let wait = async {
            self.secrets.wait_until_ready().await.map_err(|_| Error::NotSynced)?;
            if let Some(n) = &self.namespaces {
                n.wait_until_ready().await.map_err(|_| Error::NotSynced)?;
            }
            Ok(())
        };
        tokio::time::timeout(Duration::from_secs(30), wait).await.unwrap_or(Err(Error::NotSynced))
    }
}

/// Backoff after `n` consecutive failures: 250 ms doubling up to 5 minutes.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1u64 << n.min(11))).min(RESYNC)
}

/// Wait after `n` consecutive backup failures: [`backoff`] from 1 s,
/// capped at a minute.
pub fn backup_backoff(n: u32) -> Duration {
    backoff(n.saturating_add(2)).min(BACKUP_RETRY_CAP)
}

/// The longest wait between two backup attempts.
pub const BACKUP_RETRY_CAP: Duration = Duration::from_secs(60);

/// Whether a label set matches a LabelSelector.
pub fn selector_matches<'a>(sel: &LabelSelector, label: impl Fn(&str) -> Option<&'a str>) -> bool {
    let labels_ok = sel.match_labels.iter().flatten().all(|(k, v)| label(k) == Some(v.as_str()));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let has = |v: &str| values.iter().any(|x| x == v);
        match e.operator.as_str() {
            "In" => label(&e.key).is_some_and(has),
            "NotIn" => label(&e.key).is_none_or(|v| !has(v)),
            "Exists" => label(&e.key).is_some(),
            "DoesNotExist" => label(&e.key).is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// Reconcile one keyring: the finalizer, then `reconcile::apply` (or the
/// deletion policy), with metrics.
pub async fn reconcile<K: KeyringResource>(k: Arc<K>, ctx: Arc<Ctx>) -> Result<Action> {
    let id = k.id();
    let span =
        info_span!("reconcile", kind = id.kind.as_str(), namespace = %id.namespace, keyring = %id.name);
    async {
        let started = Instant::now();
        let result = if k.meta().deletion_timestamp.is_some() {
            finalize(&*k, &ctx).await
        } else {
            match ensure_finalizer(&*k, &ctx).await {
                Ok(()) => reconcile::apply(&*k, &ctx).await,
                Err(e) => Err(e),
            }
        };
        let m = &ctx.shared.metrics;
        m.reconcile_duration.observe(started.elapsed().as_secs_f64());
        let label = if result.is_ok() { "success" } else { "error" };
        if result.is_ok() {
            ctx.shared.failures.lock().expect("lock").remove(&id);
        }
        m.reconciliations.get_or_create(&ResultLabel { result: label }).inc();
        result
    }
    .instrument(span)
    .await
}

fn api<K: KeyringResource>(client: &Client, k: &K) -> Api<K> {
    K::api(client.clone(), &k.namespace().unwrap_or_default())
}

/// A merge patch of the keyring's metadata with its resourceVersion as a
/// precondition.
async fn patch_meta<K: KeyringResource>(k: &K, ctx: &Ctx, meta: serde_json::Value) -> Result<()> {
    let mut body = serde_json::json!({"metadata": meta});
    body["metadata"]["resourceVersion"] = serde_json::json!(k.resource_version());
    api(&ctx.shared.client, k).patch(&k.name_any(), &PatchParams::default(), &Patch::Merge(body)).await?;
    Ok(())
}

/// Remove a one-shot annotation (`restore-from`, `accept-missing-keys`).
pub async fn remove_annotation<K: KeyringResource>(k: &K, ctx: &Ctx, key: &str) -> Result<()> {
    let body = serde_json::json!({"metadata": {"annotations": {key: null}}});
    api(&ctx.shared.client, k).patch(&k.name_any(), &PatchParams::default(), &Patch::Merge(body)).await?;
    Ok(())
}

async fn ensure_finalizer<K: KeyringResource>(k: &K, ctx: &Ctx) -> Result<()> {
    if k.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let mut list = k.finalizers().to_vec();
    list.push(FINALIZER.to_owned());
    patch_meta(k, ctx, serde_json::json!({"finalizers": list})).await
}

async fn finalize<K: KeyringResource>(k: &K, ctx: &Ctx) -> Result<Action> {
    if !k.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    reconcile::cleanup(k, ctx).await?;
    let list: Vec<&String> = k.finalizers().iter().filter(|f| *f != FINALIZER).collect();
    patch_meta(k, ctx, serde_json::json!({"finalizers": list})).await?;
    Ok(Action::await_change())
}

/// Transient errors requeue with exponential backoff and a Warning event
/// carrying the real reason. A write the fence refused is not retried
/// here: the process is about to exit.
pub fn error_policy<K: KeyringResource>(k: Arc<K>, error: &Error, ctx: Arc<Ctx>) -> Action {
    let id = k.id();
    if error.is_not_leader() {
        warn!(%id, "write refused: not the leader");
        return Action::await_change();
    }
    let attempts = {
        let mut f = ctx.shared.failures.lock().expect("lock");
        let n = f.entry(id.clone()).or_default();
        *n += 1;
        *n
    };
    warn!(%id, reason = error.reason(), error = %error, "reconcile failed; retrying");
    let (note, reason) = (error.to_string(), error.reason());
    tokio::spawn(async move {
        ctx.shared.publish(&*k, EventType::Warning, reason, note).await;
    });
    Action::requeue(backoff(attempts - 1))
}

fn secret_mapper<K: KeyringResource>(s: Secret) -> Option<ObjectRef<K>> {
    let id = owner_of(&s.namespace().unwrap_or_default(), s.labels())?;
    (id.kind == K::KIND).then(|| match K::KIND {
        Kind::Namespaced => ObjectRef::new(&id.name).within(&id.namespace),
        Kind::Cluster => ObjectRef::new(&id.name),
    })
}

/// Run one kind's controller until `shutdown` completes.
async fn run_kind<K: KeyringResource>(
    shared: Arc<Shared>,
    keyrings: Api<K>,
    secrets: Api<Secret>,
    namespaces: Option<Api<PartialObjectMeta<Namespace>>>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let config = watcher::Config::default();
    let (k_reader, k_writer) = reflector::store::<K>();
    let k_stream = watcher(keyrings, config.clone())
        .default_backoff()
        .modify(|k: &mut K| k.meta_mut().managed_fields = None)
        .reflect(k_writer)
        .applied_objects();
    let (s_reader, mut s_writer) = cache::index(cache::secret_entry);
    let s_stream = watcher(secrets, config.clone().labels(K::KIND.label()))
        .default_backoff()
        .inspect_ok(move |event| s_writer.apply(event))
        .touched_objects();
    let mut controller =
        Controller::for_stream(k_stream, k_reader.clone()).watches_stream(s_stream, secret_mapper::<K>);
    let ns_store = match namespaces {
        Some(api) => {
            let (index, mut n_writer) = cache::index(cache::namespace_entry);
            let n_stream = watcher(api, config)
                .default_backoff()
                .inspect_ok(move |event| n_writer.apply(event))
                .touched_objects();
            let keyrings = k_reader.clone();
            controller = controller.watches_stream(n_stream, move |ns: PartialObjectMeta<Namespace>| {
                let name = ns.name_any();
                keyrings
                    .state()
                    .iter()
                    .filter(|k| {
                        k.targets()
                            .is_some_and(|t| t.namespace_selector.is_some() || t.namespaces.contains(&name))
                    })
                    .map(|k| ObjectRef::from_obj(k.as_ref()))
                    .collect::<Vec<_>>()
            });
            Some(index)
        }
        None => None,
    };
    let ctx = Arc::new(Ctx { shared, secrets: s_reader, namespaces: ns_store });
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                debug!(error = %e, "controller event");
            }
        })
        .await;
}

/// Where the operator works.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Cluster-wide: both kinds, every namespace.
    Cluster,
    /// Confined to these namespaces (Roles): SecretKeyrings there only.
    Namespaces(BTreeSet<String>),
}

/// How the controllers run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This replica's identity (events' reporting instance).
    pub instance: String,
    /// Where ClusterSecretKeyrings keep their masters.
    pub cluster_namespace: String,
    /// Cluster-wide or confined.
    pub scope: Scope,
    /// Reconcile every keyring this often even without changes.
    pub resync: Duration,
    /// Scan a keyring's token usage at most this often.
    pub scan_interval: Duration,
    /// The longest one backup write may take.
    pub backup_timeout: Duration,
    /// What namespaced keyrings' backups may use.
    pub backup_policy: crate::backup::store::Policy,
}

/// Run the controllers until `shutdown` completes.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    s: Settings,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter { controller: FIELD_MANAGER.into(), instance: Some(s.instance) },
    );
    let shared = Arc::new(Shared {
        client: client.clone(),
        recorder,
        metrics,
        cluster_namespace: s.cluster_namespace,
        resync: s.resync,
        scan_interval: s.scan_interval,
        backup_timeout: s.backup_timeout,
        backup_policy: s.backup_policy,
        failures: Mutex::default(),
        backup_failures: Mutex::default(),
        last_backups: Mutex::default(),
        scans: Mutex::default(),
    });
    let scope = s.scope;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut runs: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
    match scope {
        Scope::Cluster => {
            runs.push(Box::pin(run_kind::<SecretKeyring>(
                shared.clone(),
                Api::all(client.clone()),
                Api::all(client.clone()),
                None,
                stop(),
            )));
            runs.push(Box::pin(run_kind::<ClusterSecretKeyring>(
                shared.clone(),
                Api::all(client.clone()),
                Api::all(client.clone()),
                Some(Api::all(client.clone())),
                stop(),
            )));
        }
        Scope::Namespaces(nss) => {
            for ns in nss {
                runs.push(Box::pin(run_kind::<SecretKeyring>(
                    shared.clone(),
                    Api::namespaced(client.clone(), &ns),
                    Api::namespaced(client.clone(), &ns),
                    None,
                    stop(),
                )));
            }
        }
    }
    let all = futures::future::join_all(runs);
    tokio::pin!(all);
    tokio::select! {
        _ = &mut all => {}
        _ = shutdown => {
            let _ = stop_tx.send(true);
            all.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    #[test]
    fn backup_retries_back_off_from_a_second_to_at_most_a_minute() {
        let waits: Vec<u64> = (0..10).map(|n| backup_backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(backup_backoff(u32::MAX), BACKUP_RETRY_CAP);
    }

    #[test]
    fn label_selectors_match_like_kubernetes() {
        let labels =
            BTreeMap::from([("team".to_owned(), "payments".to_owned()), ("tier".to_owned(), "a".to_owned())]);
        let mut sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("team".into(), "payments".into())])),
            match_expressions: None,
        };
        assert!(selector_matches(&sel, |k| labels.get(k).map(String::as_str)));
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "NotIn".into(),
            values: Some(vec!["a".into()]),
        }]);
        assert!(!selector_matches(&sel, |k| labels.get(k).map(String::as_str)));
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "zone".into(),
            operator: "DoesNotExist".into(),
            values: None,
        }]);
        assert!(selector_matches(&sel, |k| labels.get(k).map(String::as_str)));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(30), RESYNC);
    }

    #[test]
    fn secrets_trigger_their_own_kind_only() {
        let mut s = Secret::default();
        s.metadata.namespace = Some("team-a".into());
        s.metadata.labels = Some(BTreeMap::from([(LABEL_CLUSTER_KEYRING.to_owned(), "payments".to_owned())]));
        assert_eq!(secret_mapper::<ClusterSecretKeyring>(s.clone()), Some(ObjectRef::new("payments")));
        assert_eq!(secret_mapper::<SecretKeyring>(s), None);
        let mut n = Secret::default();
        n.metadata.namespace = Some("print".into());
        n.metadata.labels = Some(BTreeMap::from([(LABEL_KEYRING.to_owned(), "agents".to_owned())]));
        assert_eq!(secret_mapper::<SecretKeyring>(n), Some(ObjectRef::new("agents").within("print")));
    }
}
