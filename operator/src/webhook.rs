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
pub const MAX_HANDSHAKES: usize = 1024;
/// At most this many handshakes from one address at once; more are closed
/// at once (the API server needs a few; a pod opening silent connections
/// cannot hold the webhook's capacity).
pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 8;
/// How long a handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many handshakes may run: in all, and per client address.
#[derive(Debug, Clone, Copy)]
struct Limits {
    total: usize,
    per_address: usize,
    timeout: Duration,
}

/// Handshakes in flight per client address.
#[derive(Debug, Default)]
struct PerAddress(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

impl PerAddress {
    /// Count one more from `ip` unless it has `max` already.
    fn take(&self, ip: std::net::IpAddr, max: usize) -> bool {
        let mut m = self.0.lock().expect("lock");
        let n = m.entry(ip).or_default();
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn give_back(&self, ip: std::net::IpAddr) {
        let mut m = self.0.lock().expect("lock");
        if let Some(n) = m.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }
}

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
        limits: Limits,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let permits = Arc::new(tokio::sync::Semaphore::new(limits.total));
        let per_address = Arc::new(PerAddress::default());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counter = in_flight.clone();
        tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let Ok((tcp, peer)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                if !per_address.take(peer.ip(), limits.per_address) {
                    // Closed at once: one client cannot hold the capacity.
                    drop(tcp);
                    continue;
                }
                let (acceptor, tx, counter, per_address) =
                    (acceptor.clone(), tx.clone(), counter.clone(), per_address.clone());
                if counter.fetch_add(1, Ordering::SeqCst) + 1 == limits.total {
                    warn!(
                        limit = limits.total,
                        "webhook TLS handshakes at their limit: further connections wait"
                    );
                }
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(limits.timeout, acceptor.accept(tcp)).await;
                    counter.fetch_sub(1, Ordering::SeqCst);
                    per_address.give_back(peer.ip());
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
    let limits =
        Limits { total: MAX_HANDSHAKES, per_address: MAX_HANDSHAKES_PER_ADDRESS, timeout: HANDSHAKE_TIMEOUT };
    let tls = TlsListener::new(listener, Arc::new(config), limits)?;
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

    /// Connections that never start a handshake occupy at most the limit
    /// per address (more from that address are closed at once) and in all;
    /// another address still gets its handshakes; nothing is left running.
    #[tokio::test]
    async fn silent_connections_hold_a_bounded_number_of_handshakes_per_address() {
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Resolver::default()));
        let tcp = TcpListener::bind("0.0.0.0:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        let limits = Limits { total: 6, per_address: 4, timeout: Duration::from_millis(400) };
        let tls = TlsListener::new(tcp, Arc::new(config), limits).unwrap();
        let from = |ip: [u8; 4]| async move {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(SocketAddr::from((ip, 0))).unwrap();
            s.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap()
        };
        let mut silent = Vec::new();
        for _ in 0..20 {
            silent.push(from([127, 0, 0, 1]).await);
        }
        let most = |tls: &TlsListener| {
            let tls_in_flight = tls.in_flight.clone();
            async move {
                let mut most = 0;
                for _ in 0..15 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    most = most.max(tls_in_flight.load(Ordering::SeqCst));
                }
                most
            }
        };
        assert_eq!(most(&tls).await, 4, "handshakes in flight for 20 silent connections from one address");
        let other = from([127, 0, 0, 2]).await;
        assert_eq!(most(&tls).await, 5, "another address is not held back");
        // They time out; nothing is left running.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(tls.in_flight.load(Ordering::SeqCst), 0);
        drop((silent, other));
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
