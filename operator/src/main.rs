//! `encstr-operator`: see `encstr-operator --help`.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser as _;
use encstr_operator::cli::{Cli, Command, LogFormat, RunArgs};
use encstr_operator::{controller, crd, http, metrics};
use kube_lease_manager::LeaseManagerBuilder;
use tracing::{error, info, warn};

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_lease_manager=warn"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().flatten_event(true).try_init(),
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crd) => {
            print!("{}", crd::crd_yaml());
            ExitCode::SUCCESS
        }
        Some(Command::Run(args)) => run(args),
        None => run(RunArgs::default()),
    }
}

fn run(args: RunArgs) -> ExitCode {
    init_logging(args.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("encstr-operator: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn serve(args: RunArgs) -> Result<(), String> {
    let client =
        kube::Client::try_default().await.map_err(|e| format!("cannot connect to Kubernetes: {e}"))?;
    let metrics = Arc::new(metrics::Metrics::default());
    let health = Arc::new(http::Health { metrics: metrics.clone(), ..http::Health::default() });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (addr, server) = http::serve(args.listen, health.clone(), wait_stop(stop_rx.clone()))
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    info!(%addr, "serving /metrics, /healthz and /readyz");

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
    let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&lease_ns)
        .with_identity(&identity)
        .with_duration(args.lease_duration)
        .with_grace(args.lease_duration.div_ceil(3).max(1))
        .build()
        .await
        .map_err(|e| format!("leader election (Lease {lease_ns}/{}): {e}", args.lease_name))?;
    let (mut leader, lease_task) = manager.watch().await;
    health.ready.store(true, Ordering::Release);
    info!(identity, lease = %format!("{lease_ns}/{}", args.lease_name), "waiting for leadership");

    let signal = shutdown_signal();
    tokio::pin!(signal);
    let result = loop {
        if *leader.borrow_and_update() {
            break Ok(());
        }
        tokio::select! {
            changed = leader.changed() => if changed.is_err() { break Err("leader election stopped".to_owned()) },
            _ = &mut signal => { info!("shutting down before becoming leader"); break Err(String::new()) },
        }
    };
    let mut outcome = Ok(());
    if result.is_ok() {
        health.leader.store(true, Ordering::Release);
        info!("became leader; starting the controller");
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
        let mut leader_watch = leader.clone();
        let watch_loss = tokio::spawn(async move {
            loop {
                if leader_watch.changed().await.is_err() || !*leader_watch.borrow_and_update() {
                    let _ = lost_tx.send(());
                    return;
                }
            }
        });
        let (ctl_stop_tx, ctl_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let confined = (!args.namespaces.is_empty()).then(|| {
            let mut nss: std::collections::BTreeSet<String> = args.namespaces.iter().cloned().collect();
            nss.insert(lease_ns.clone());
            (lease_ns.clone(), nss)
        });
        if let Some((home, nss)) = &confined {
            info!(home, namespaces = ?nss, "confined to namespaces");
        }
        let ctl = tokio::spawn(controller::run(
            client.clone(),
            metrics.clone(),
            identity.clone(),
            confined,
            args.resync,
            async {
                let _ = ctl_stop_rx.await;
            },
        ));
        tokio::select! {
            _ = &mut signal => info!("SIGTERM: shutting down"),
            _ = lost_rx => {
                warn!("lost leadership; stopping");
                outcome = Err("lost leadership".to_owned());
            }
        }
        let _ = ctl_stop_tx.send(());
        if let Err(e) = tokio::time::timeout(Duration::from_secs(20), ctl).await {
            warn!("controller did not stop in time: {e}");
        }
        watch_loss.abort();
        health.leader.store(false, Ordering::Release);
    } else if let Err(e) = result
        && !e.is_empty()
    {
        outcome = Err(e);
    }
    // Release the lease so a standby takes over at once.
    drop(leader);
    match lease_task.await {
        Ok(Ok(manager)) => {
            if let Err(e) = manager.release().await {
                warn!("cannot release the lease: {e}");
            }
        }
        Ok(Err(e)) => warn!("leader election ended with an error: {e}"),
        Err(e) => warn!("leader election task failed: {e}"),
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    info!("stopped");
    outcome
}
