//! `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// What the endpoints report.
#[derive(Debug, Default)]
pub struct Health {
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Set once connected to the API server (leader or standby).
    pub ready: AtomicBool,
    /// Whether this replica leads.
    pub leader: AtomicBool,
    /// Cleared when a controller task panicked: `/healthz` fails.
    pub broken: AtomicBool,
    /// The webhook's certificate, when it serves one: not ready until loaded.
    pub webhook: std::sync::OnceLock<Arc<crate::webhook_tls::Resolver>>,
}

async fn metrics(State(h): State<Arc<Health>>) -> impl IntoResponse {
    let mut body = h.metrics.encode();
    let leader = u8::from(h.leader.load(Ordering::Acquire));
    body.push_str(&format!(
        "# HELP encstr_operator_leader Whether this replica holds the leader lease.\n# TYPE encstr_operator_leader gauge\nencstr_operator_leader {leader}\n"
    ));
    ([(header::CONTENT_TYPE, encstr_exposition::CONTENT_TYPE)], body)
}

async fn healthz(State(h): State<Arc<Health>>) -> impl IntoResponse {
    if h.broken.load(Ordering::Acquire) {
        (StatusCode::INTERNAL_SERVER_ERROR, "a controller task failed\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn readyz(State(h): State<Arc<Health>>) -> impl IntoResponse {
    if !h.ready.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    } else if h.webhook.get().is_some_and(|r| !r.ready()) {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: no webhook certificate yet\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

/// Serve until `shutdown` completes; returns the bound address and the task.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((
        bound,
        tokio::spawn(async move { axum::serve(listener, router).with_graceful_shutdown(shutdown).await }),
    ))
}
