//! Wiring: one controller per kind, each driven by its reflectors' own
//! streams (a reconcile never runs before the caches hold the change that
//! triggered it): the keyrings, the Secrets carrying the kind's label, the
//! ConfigMaps publishing its recipients, and for the cluster kind the
//! Namespaces (labels and phase, see `cache`). The
//! finalizer, backoff and metrics around each reconcile; the reconcile
//! itself is in `reconcile`, what reconciles share in `context`.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tracing::{Instrument as _, debug, info_span, warn};

use crate::cache;
use crate::context::{self, Ctx, Shared, backoff};
use crate::crd::*;
use crate::error::{Error, Result};
use crate::keyring::{KeyringResource, Kind, owner_of};
use crate::metrics::{Metrics, ResultLabel};
use crate::reconcile;
use crate::writer;

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
                Ok(None) => reconcile::apply(&*k, &ctx).await,
                // Go on with the keyring as written (its resourceVersion is
                // every later write's precondition).
                Ok(Some(rv)) => reconcile::apply(&k.at_version(rv), &ctx).await,
                Err(e) => Err(e),
            }
        };
        let m = &ctx.shared.metrics;
        m.reconcile_duration.observe(started.elapsed().as_secs_f64());
        let label = if result.is_ok() { "success" } else { "error" };
        if result.is_ok() {
            ctx.shared.succeeded(&id);
        }
        m.reconciliations.get_or_create(&ResultLabel { result: label }).inc();
        result
    }
    .instrument(span)
    .await
}

/// Add the finalizer if missing; the keyring's new resourceVersion if it
/// was written.
async fn ensure_finalizer<K: KeyringResource>(k: &K, ctx: &Ctx) -> Result<Option<Option<String>>> {
    if k.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(None);
    }
    let mut list = k.finalizers().to_vec();
    list.push(FINALIZER.to_owned());
    writer::set_finalizers(&ctx.shared.client, k, &list).await.map(Some)
}

async fn finalize<K: KeyringResource>(k: &K, ctx: &Ctx) -> Result<Action> {
    if !k.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    reconcile::cleanup(k, ctx).await?;
    let list: Vec<String> = k.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
    writer::set_finalizers(&ctx.shared.client, k, &list).await?;
    Ok(Action::await_change())
}

/// When a keyring whose write the fence refused is tried again.
pub const NOT_LEADER_RETRY: std::time::Duration = std::time::Duration::from_secs(15);

/// Transient errors requeue with exponential backoff and a Warning event
/// carrying the real reason. A write the fence refused is tried again after
/// a lease's time, without an event: if the lease was lost the controllers
/// stop before then; if its renewal was only slow (the fence lapsed while
/// the lease was kept), the keyring must not wait for a change that may
/// never come.
pub fn error_policy<K: KeyringResource>(k: Arc<K>, error: &Error, ctx: Arc<Ctx>) -> Action {
    let id = k.id();
    if error.is_not_leader() {
        warn!(%id, "write refused: not the leader (or the lease's renewal is late); trying again");
        return Action::requeue(NOT_LEADER_RETRY);
    }
    let attempts = ctx.shared.failed(&id);
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

fn config_map_mapper<K: KeyringResource>(cm: ConfigMap) -> Option<ObjectRef<K>> {
    let id = owner_of(&cm.namespace().unwrap_or_default(), cm.labels())?;
    (id.kind == K::KIND).then(|| match K::KIND {
        Kind::Namespaced => ObjectRef::new(&id.name).within(&id.namespace),
        Kind::Cluster => ObjectRef::new(&id.name),
    })
}

/// The label selector of the ConfigMaps a kind's controller watches: its
/// label and role `recipient` (a label is only a claim: each is matched by
/// name, role and place before it is written).
pub fn config_map_selector(kind: Kind) -> String {
    format!("{},{LABEL_ROLE}={ROLE_RECIPIENT}", kind.label())
}

/// Run one kind's controller until `shutdown` completes.
#[allow(clippy::too_many_arguments)]
async fn run_kind<K: KeyringResource>(
    shared: Arc<Shared>,
    keyrings: Api<K>,
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
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
    let (c_reader, mut c_writer) = cache::index(cache::config_map_entry);
    let c_stream = watcher(config_maps, config.clone().labels(&config_map_selector(K::KIND)))
        .default_backoff()
        .inspect_ok(move |event| c_writer.apply(event))
        .touched_objects();
    let mut controller = Controller::for_stream(k_stream, k_reader.clone())
        .watches_stream(s_stream, secret_mapper::<K>)
        .watches_stream(c_stream, config_map_mapper::<K>);
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
    let ctx = Arc::new(Ctx { shared, secrets: s_reader, config_maps: c_reader, namespaces: ns_store });
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
    /// Cluster-wide or confined.
    pub scope: Scope,
    /// What reconciles run with.
    pub context: context::Settings,
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
    let shared = Arc::new(Shared::new(client.clone(), recorder, metrics, s.context));
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
                Api::all(client.clone()),
                None,
                stop(),
            )));
            runs.push(Box::pin(run_kind::<ClusterSecretKeyring>(
                shared.clone(),
                Api::all(client.clone()),
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
    use std::collections::BTreeMap;

    use super::*;

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
