//! A small admission webhook server for tests: HTTPS with a certificate for
//! a given DNS name from a CA of its own, answering every AdmissionReview
//! with what the test's function says (the `uid` is filled in), and
//! recording the reviews it was sent. Runs on its own thread, so blocking
//! tests can use it too.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::apiserver::auth::{Tls, TlsListener};

/// What a webhook answers to a review's `request`: the `response` (without
/// `uid`).
pub type Answer = Arc<dyn Fn(&Value) -> Value + Send + Sync>;

/// A running test webhook.
pub struct TestWebhook {
    /// The CA that signed its certificate (PEM), for `caBundle`.
    pub ca_pem: String,
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    reviews: Arc<Mutex<Vec<Value>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for TestWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestWebhook").field("addr", &self.addr).finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct HookState {
    answer: Answer,
    delay: Duration,
    reviews: Arc<Mutex<Vec<Value>>>,
}

async fn review(State(s): State<HookState>, body: Bytes) -> String {
    let review: Value = serde_json::from_slice(&body).unwrap_or_default();
    s.reviews.lock().expect("lock").push(review.clone());
    tokio::time::sleep(s.delay).await;
    let mut response = (s.answer)(&review["request"]);
    response["uid"] = review["request"]["uid"].clone();
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}).to_string()
}

impl TestWebhook {
    /// Serve on 127.0.0.1 with a certificate for `dns`, answering after
    /// `delay` with `answer`, on any path.
    pub fn start(dns: &str, delay: Duration, answer: Answer) -> TestWebhook {
        let tls = Tls::issue(dns, &[dns]);
        let config = tls.server_config();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let reviews = Arc::new(Mutex::new(Vec::new()));
        let state = HookState { answer, delay, reviews: reviews.clone() };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("test-webhook".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    let tls = TlsListener::new(listener, config).expect("tls");
                    let app = axum::Router::new().fallback(axum::routing::post(review)).with_state(state);
                    let _ = axum::serve(tls, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .expect("thread");
        TestWebhook { ca_pem: tls.ca_pem, addr, reviews, _stop: stop }
    }

    /// The reviews sent so far.
    pub fn reviews(&self) -> Vec<Value> {
        self.reviews.lock().expect("lock").clone()
    }
}

/// `{"allowed": true}`.
pub fn allow() -> Value {
    json!({"allowed": true})
}

/// An allowing answer with a JSON Patch.
pub fn patch(ops: Value) -> Value {
    json!({"allowed": true, "patchType": "JSONPatch", "patch": STANDARD.encode(ops.to_string())})
}
