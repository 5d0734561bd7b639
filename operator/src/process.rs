//! The operator process: its HTTP server, the injection webhook (every
//! replica), leader election, and the controllers while it leads; how it
//! stops (a signal releases the lease; a lost lease abandons everything).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::{info, warn};

use crate::cli::RunArgs;
use crate::controller::{self, Scope};
use crate::lease::{self, Fence};
use crate::{backup, context, http, inject, metrics, webhook, webhook_tls};

async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// How waiting for leadership ended.
enum Standby {
    /// This replica leads now.
    Leader,
    /// A signal or a failed election ended it.
    Stopped(Result<(), String>),
}

/// Wait for leadership, a signal, or the election failing.
async fn standby(
    mut leader: tokio::sync::watch::Receiver<bool>,
    election: &mut tokio::task::JoinHandle<Result<(), String>>,
    signal: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Standby {
    loop {
        if *leader.borrow_and_update() {
            return Standby::Leader;
        }
        tokio::select! {
            _ = leader.changed() => {}
            r = &mut *election => {
                let why = r.map_or_else(|e| e.to_string(), |r| r.err().unwrap_or_default());
                return Standby::Stopped(Err(format!("leader election stopped: {why}")));
            }
            _ = signal.as_mut() => {
                info!("shutting down before becoming leader");
                election.abort();
                return Standby::Stopped(Ok(()));
            }
        }
    }
}

/// What the leader runs with.
struct Leading {
    client: kube::Client,
    fence: Fence,
    health: Arc<http::Health>,
    metrics: Arc<metrics::Metrics>,
    settings: lease::Settings,
    identity: String,
    cluster_ns: String,
}

/// How leading ended.
enum Led {
    /// A signal or a failure: the process stops.
    Stopped(Result<(), String>),
    /// The lease was lost: everything in flight was abandoned, and the
    /// replica stands by again (its webhook never stopped serving).
    Lost(String),
}

/// Run the controllers until a signal (graceful: release the lease), the
/// loss of the lease (abandon everything at once) or a failed controller.
async fn lead(
    l: &Leading,
    args: &RunArgs,
    election: &mut tokio::task::JoinHandle<Result<(), String>>,
    signal: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Led {
    l.health.leader.store(true, Ordering::Release);
    let scope = if args.namespaces.is_empty() {
        Scope::Cluster
    } else {
        Scope::Namespaces(args.namespaces.iter().cloned().collect())
    };
    info!(?scope, cluster_resource_namespace = %l.cluster_ns, "became leader; starting the controllers");
    let (ctl_stop_tx, ctl_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let settings = controller::Settings {
        instance: l.identity.clone(),
        scope,
        context: context::Settings {
            cluster_namespace: l.cluster_ns.clone(),
            resync: args.resync,
            scan_interval: args.usage_scan_interval,
            min_rotation_interval: args.min_rotation_interval,
            backup_timeout: args.backup_timeout,
            backup_policy: backup::store::Policy {
                allowed_endpoints: args.backup_allowed_endpoint.clone(),
                namespaced_uses_operator_credentials: args.backup_namespaced_uses_operator_credentials,
                namespaced_prefixes: args.backup_namespaced_prefix.clone(),
            },
        },
    };
    let mut ctl = tokio::spawn(controller::run(l.client.clone(), l.metrics.clone(), settings, async {
        let _ = ctl_stop_rx.await;
    }));
    tokio::select! {
        _ = signal.as_mut() => {
            info!("SIGTERM: shutting down");
            let _ = ctl_stop_tx.send(());
            if tokio::time::timeout(Duration::from_secs(20), &mut ctl).await.is_err() {
                warn!("the controllers did not stop in time");
                ctl.abort();
            }
            election.abort();
            l.fence.revoke();
            if let Err(e) = lease::release(l.client.clone(), &l.settings).await {
                warn!("cannot release the lease: {e}");
            }
            Led::Stopped(Ok(()))
        }
        r = &mut *election => {
            // Writes already stopped (the fence); abandon everything in flight.
            l.fence.revoke();
            ctl.abort();
            let _ = ctl.await;
            l.metrics.forget_keyrings();
            Led::Lost(r.map_or_else(|e| e.to_string(), |r| r.err().unwrap_or_default()))
        }
        r = &mut ctl => {
            l.fence.revoke();
            election.abort();
            l.health.broken.store(true, Ordering::Release);
            Led::Stopped(match r {
                Err(e) if e.is_panic() => Err("a controller task panicked".to_owned()),
                _ => Err("the controllers stopped unexpectedly".to_owned()),
            })
        }
    }
}

/// Completes when the stop flag is set (or its sender is gone).
async fn wait_stop(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Serve the injection webhook (every replica) and keep its certificate,
/// with a client of its own: the fence holds back only the leader's
/// controller writes, and a standby must renew and serve too.
async fn start_webhook(
    args: &RunArgs,
    addr: std::net::SocketAddr,
    namespace: &str,
    health: &Arc<http::Health>,
    metrics: &Arc<metrics::Metrics>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let client =
        kube::Client::try_default().await.map_err(|e| format!("cannot connect to Kubernetes: {e}"))?;
    // Native sidecars (restartPolicy: Always on init containers) need 1.29.
    let native_supported = match client.apiserver_version().await {
        Ok(v) => inject::native_sidecars_supported(&v.major, &v.minor),
        Err(e) => {
            warn!("cannot read the API server's version ({e}); injecting native sidecars by default");
            true
        }
    };
    let defaults = inject::Defaults {
        image: args.sidecar_image.clone(),
        image_pull_policy: args.sidecar_image_pull_policy.clone(),
        resources: args.sidecar_resources.clone(),
        native_supported,
        ..inject::Defaults::default()
    };
    let resolver = Arc::new(webhook_tls::Resolver::default());
    let _ = health.webhook.set(resolver.clone());
    let tls = webhook_tls::Settings {
        namespace: namespace.to_owned(),
        secret: args.webhook_secret.clone(),
        service: args.webhook_service.clone(),
        configuration: (!args.webhook_cert_manager).then(|| args.webhook_configuration.clone()),
        ca_grace: args.webhook_ca_grace,
    };
    tokio::spawn(webhook_tls::keep(
        client,
        tls.clone(),
        resolver.clone(),
        Duration::from_secs(60),
        wait_stop(stop.clone()),
    ));
    let hook = Arc::new(webhook::Webhook { defaults, metrics: metrics.clone() });
    let (bound, task) = webhook::serve(addr, hook, resolver, wait_stop(stop.clone()))
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    info!(addr = %bound, service = %tls.dns(), secret = %format!("{namespace}/{}", tls.secret), native_supported, "serving the injection webhook");
    Ok(task)
}

/// Run until a signal, a lost lease or a failure.
pub async fn serve(args: RunArgs) -> Result<(), String> {
    let identity = args
        .identity
        .clone()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
        .unwrap_or_else(|| "encstr-operator".into());
    let lease_ns = args
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".into());
    let cluster_ns = args.cluster_resource_namespace.clone().unwrap_or_else(|| lease_ns.clone());
    let fence = Fence::new(&lease_ns);
    let client = crate::client::build(&fence).await?;
    let metrics = Arc::new(metrics::Metrics::default());
    let health = Arc::new(http::Health { metrics: metrics.clone(), ..http::Health::default() });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (addr, server) = http::serve(args.listen, health.clone(), wait_stop(stop_rx.clone()))
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    info!(%addr, "serving /metrics, /healthz and /readyz");

    let webhook_task = match args.webhook_listen {
        Some(addr) => Some(start_webhook(&args, addr, &lease_ns, &health, &metrics, &stop_rx).await?),
        None => None,
    };

    let settings = lease::Settings {
        namespace: lease_ns.clone(),
        name: args.lease_name.clone(),
        identity: identity.clone(),
        duration: Duration::from_secs(args.lease_duration.max(3)),
    };
    health.ready.store(true, Ordering::Release);
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let l = Leading { client, fence, health: health.clone(), metrics, settings, identity, cluster_ns };
    // Stand by, lead, and after a lost lease stand by again: the webhook
    // and the metrics endpoint serve throughout.
    let outcome = loop {
        let (leader_tx, leader) = tokio::sync::watch::channel(false);
        let mut election =
            tokio::spawn(lease::run(l.client.clone(), l.settings.clone(), l.fence.clone(), leader_tx));
        info!(identity = %l.identity, lease = %format!("{lease_ns}/{}", args.lease_name), "waiting for leadership");
        match standby(leader, &mut election, &mut signal).await {
            Standby::Leader => match lead(&l, &args, &mut election, &mut signal).await {
                Led::Stopped(r) => break r,
                Led::Lost(why) => {
                    l.health.leader.store(false, Ordering::Release);
                    warn!("lost leadership: {why}; the controllers stopped, standing by");
                }
            },
            Standby::Stopped(r) => break r,
        }
    };
    health.leader.store(false, Ordering::Release);
    let _ = stop_tx.send(true);
    let _ = server.await;
    if let Some(task) = webhook_task {
        let _ = task.await;
    }
    info!("stopped");
    outcome
}
