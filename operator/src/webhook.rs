//! The mutating admission webhook (`POST /inject`): AdmissionReview v1 in,
//! [`inject::decide`] on the pod, the JSON Patch or a denial out. Served
//! over TLS with the certificate [`webhook_tls::Resolver`] holds, by every
//! replica.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use crate::inject::{self, Decision, Defaults};
use crate::metrics::Metrics;
use crate::webhook_tls::Resolver;

/// What the webhook serves with.
#[derive(Debug)]
pub struct Webhook {
    /// The sidecar's defaults (image, resources, mode).
    pub defaults: Defaults,
    /// Request counts and latencies.
    pub metrics: Arc<Metrics>,
}

/// The answer to one review, and its metric label.
pub fn review(w: &Webhook, review: &Value) -> (Value, &'static str) {
    let request = &review["request"];
    let uid = request["uid"].clone();
    let pod = &request["object"];
    let who = format!(
        "{}/{}",
        request["namespace"].as_str().unwrap_or_default(),
        pod["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .or(pod["metadata"]["generateName"].as_str())
            .unwrap_or_default()
    );
    let is_pod_create = request["kind"]["kind"] == "Pod"
        && request["kind"]["group"].as_str().unwrap_or_default().is_empty()
        && request["operation"] == "CREATE"
        && request["subResource"].as_str().unwrap_or_default().is_empty();
    let decision =
        if is_pod_create { inject::decide(pod, &w.defaults) } else { Decision::Skip("not a pod create") };
    let (response, result) = match decision {
        Decision::Skip(why) => {
            info!(pod = %who, reason = why, "not injected");
            (json!({"uid": uid, "allowed": true}), "skipped")
        }
        Decision::Inject(ops) => {
            info!(pod = %who, "sidecar injected");
            let patch = STANDARD.encode(serde_json::to_vec(&ops).expect("json"));
            (json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch}), "injected")
        }
        Decision::Deny(message) => {
            warn!(pod = %who, reason = %message, "pod denied");
            (
                json!({"uid": uid, "allowed": false,
                       "status": {"code": 403, "reason": "Forbidden", "message": format!("encstr: {message}")}}),
                "denied",
            )
        }
    };
    (json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}), result)
}

async fn inject_handler(State(w): State<Arc<Webhook>>, body: Bytes) -> Response {
    let started = Instant::now();
    let (status, body, result) = match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v["kind"] == "AdmissionReview" && v["request"]["uid"].is_string() => {
            let (answer, result) = review(&w, &v);
            (StatusCode::OK, answer.to_string(), result)
        }
        Ok(_) => (StatusCode::BAD_REQUEST, "expected an AdmissionReview with a request".to_owned(), "error"),
        Err(e) => (StatusCode::BAD_REQUEST, format!("the body is not JSON: {e}"), "error"),
    };
    w.metrics.webhook_request(result, started.elapsed().as_secs_f64());
    let ct = if status == StatusCode::OK { "application/json" } else { "text/plain; charset=utf-8" };
    (status, [(header::CONTENT_TYPE, ct)], body).into_response()
}

/// At most this many TLS handshakes run at once; further connections wait
/// in the kernel's accept queue.
pub const MAX_HANDSHAKES: usize = 64;
/// How long a handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A TLS listener for axum: handshakes run concurrently, so a slow or
/// broken client never holds up others, and boundedly: silent connections
/// hold at most `limit` tasks (each for the handshake timeout), never one
/// per connection.
struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
    /// Handshakes in flight.
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the tests"))]
    in_flight: Arc<AtomicUsize>,
}

impl TlsListener {
    fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        limit: usize,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let permits = Arc::new(tokio::sync::Semaphore::new(limit));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counter = in_flight.clone();
        tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let Ok((tcp, peer)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (acceptor, tx, counter) = (acceptor.clone(), tx.clone(), counter.clone());
                if counter.fetch_add(1, Ordering::SeqCst) + 1 == limit {
                    warn!(limit, "webhook TLS handshakes at their limit: further connections wait");
                }
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(timeout, acceptor.accept(tcp)).await;
                    counter.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                    match handshake {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => warn!(%peer, "webhook TLS handshake failed: {e}"),
                        Err(_) => warn!(%peer, "webhook TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, addr, in_flight })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// Serve the webhook on `addr` until `shutdown`; the bound address and the
/// server task.
pub async fn serve(
    addr: SocketAddr,
    webhook: Arc<Webhook>,
    resolver: Arc<Resolver>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = TlsListener::new(listener, Arc::new(config), MAX_HANDSHAKES, HANDSHAKE_TIMEOUT)?;
    let bound = tls.addr;
    let router = Router::new().route("/inject", axum::routing::post(inject_handler)).with_state(webhook);
    let task = tokio::spawn(async move {
        let _ = axum::serve(tls, router).with_graceful_shutdown(shutdown).await;
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook() -> Webhook {
        Webhook { defaults: Defaults::default(), metrics: Arc::new(Metrics::default()) }
    }

    fn req(pod: Value, operation: &str) -> Value {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": operation,
            "namespace": "apps", "object": pod}})
    }

    #[tokio::test]
    async fn what_is_not_an_admission_review_is_refused_and_counted_as_an_error() {
        let w = Arc::new(webhook());
        for body in ["not json", r#"{"kind": "Pod"}"#] {
            let r = inject_handler(State(w.clone()), Bytes::from(body)).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        }
        let review = req(json!({"metadata": {"name": "p"}}), "CREATE");
        let r = inject_handler(State(w.clone()), Bytes::from(review.to_string())).await;
        assert_eq!(r.status(), StatusCode::OK);
        let text = w.metrics.encode();
        assert!(text.contains("encstr_webhook_requests_total{result=\"error\"} 2"), "{text}");
        assert!(text.contains("encstr_webhook_requests_total{result=\"skipped\"} 1"), "{text}");
        assert!(text.contains("encstr_webhook_request_duration_seconds_count 3"), "{text}");
    }

    /// Connections that never start a handshake occupy at most the limit,
    /// and a real client is served once their time is up.
    #[tokio::test]
    async fn silent_connections_hold_a_bounded_number_of_handshakes() {
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Resolver::default()));
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = TlsListener::new(tcp, Arc::new(config), 4, Duration::from_millis(300)).unwrap();
        let mut silent = Vec::new();
        for _ in 0..20 {
            silent.push(TcpStream::connect(tls.addr).await.unwrap());
        }
        let mut most = 0;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            most = most.max(tls.in_flight.load(Ordering::SeqCst));
        }
        assert_eq!(most, 4, "handshakes in flight for 20 silent connections");
        // They all time out in turn; nothing is left running.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(tls.in_flight.load(Ordering::SeqCst), 0);
        drop(silent);
    }

    #[test]
    fn answers_carry_the_uid_a_patch_or_a_denial() {
        let w = webhook();
        let pod = json!({"metadata": {"name": "p", "labels": {"encstr.io/inject": "true"},
            "annotations": {"encstr.io/keyring-secret": "k", "encstr.io/config-map": "c"}},
            "spec": {"securityContext": {"fsGroup": 65532}, "containers": [{"name": "app"}]}});
        let (a, result) = review(&w, &req(pod.clone(), "CREATE"));
        assert_eq!(
            (result, &a["response"]["uid"], &a["response"]["patchType"]),
            ("injected", &json!("u-1"), &json!("JSONPatch"))
        );
        let ops: Value =
            serde_json::from_slice(&STANDARD.decode(a["response"]["patch"].as_str().unwrap()).unwrap())
                .unwrap();
        assert_eq!(ops[0]["path"], "/spec/initContainers");
        let (a, result) = review(&w, &req(pod.clone(), "UPDATE"));
        assert_eq!((result, &a["response"]["allowed"]), ("skipped", &json!(true)));
        assert!(a["response"].get("patch").is_none());
        let mut bad = pod;
        bad["metadata"]["annotations"] = json!({"encstr.io/keyring-secret": "k"});
        let (a, result) = review(&w, &req(bad, "CREATE"));
        assert_eq!((result, &a["response"]["allowed"]), ("denied", &json!(false)));
        assert_eq!(a["response"]["status"]["code"], 403);
        assert!(
            a["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .starts_with("encstr: annotation encstr.io/config-map is required")
        );
    }
}
