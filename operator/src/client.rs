//! The operator's Kubernetes client: every attempt of every request passes
//! the fence, retries are few and short, and no request waits forever.
//!
//! kube's default stack retries 429, 503 and 504 answers underneath any
//! layer added with `with_layer` (up to 15 times, honouring `Retry-After`
//! without a cap: minutes), so a fence placed there checks a write once and
//! its retries go out whenever they are due, even after the lease passed
//! on. Here kube's retry is off and the stack is, outside in:
//!
//! 1. [`RetryLayer`] with [`Retries`]: 429/503/504 only, at most
//!    [`MAX_RETRIES`] times, each wait the server's `Retry-After` or a short
//!    backoff, capped at [`MAX_WAIT`];
//! 2. [`FenceLayer`]: each attempt is checked against the lease, and a
//!    write may take no longer than the fence still allows (see
//!    [`crate::lease::Fence`]); reads time out after [`READ_TIMEOUT`];
//!    watches have no deadline (the server ends them after
//!    `timeoutSeconds`, and a dead connection is cut by the socket read
//!    timeout below);
//! 3. a buffer (a retry clones the service below it);
//! 4. kube's own stack (authentication, base URI, tracing), with a socket
//!    read timeout of [`SOCKET_READ_TIMEOUT`].
//!
//! A write that lands late cannot undo a newer one either: every write the
//! operator makes carries the resourceVersion it was computed from (see
//! `writer`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use tower::retry::{Policy, RetryLayer};
use tower::{BoxError, Layer, Service};

#[cfg(test)]
use crate::lease::BootTime;
use crate::lease::{Fence, NotLeader};

/// Retries of one request after 429, 503 or 504.
pub const MAX_RETRIES: u32 = 4;
/// The longest wait before a retry, whatever `Retry-After` says.
pub const MAX_WAIT: Duration = Duration::from_secs(5);
/// How long a read (not a watch) may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a connection may stay silent (watches get bookmarks or end
/// well before this).
pub const SOCKET_READ_TIMEOUT: Duration = Duration::from_secs(330);

/// How long a write or a lease request may take at most.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A request that took longer than it may.
#[derive(Debug, thiserror::Error)]
#[error("no answer before the {0}: request abandoned")]
pub struct TimedOut(&'static str);

/// What the fence says of one attempt: refused, or allowed with a
/// deadline (none for watches).
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Refused,
    Until(Option<(std::time::Instant, &'static str)>),
}

fn admit<B>(fence: &Fence, req: &Request<B>) -> Admit {
    let now = std::time::Instant::now();
    let reading = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if reading {
        let watch =
            req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
        return Admit::Until((!watch).then_some((now + READ_TIMEOUT, "read timeout")));
    }
    if fence.is_election(req) {
        return Admit::Until(Some((now + WRITE_TIMEOUT, "write timeout")));
    }
    match fence.remaining() {
        None => Admit::Refused,
        Some(left) if left < WRITE_TIMEOUT => Admit::Until(Some((now + left, "end of this replica's lease"))),
        Some(_) => Admit::Until(Some((now + WRITE_TIMEOUT, "write timeout"))),
    }
}

/// The tower layer checking each attempt against the fence.
#[derive(Debug, Clone)]
pub struct FenceLayer(pub Fence);

impl<S> Layer<S> for FenceLayer {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced { inner, fence: self.0.clone() }
    }
}

/// A fenced service.
#[derive(Debug, Clone)]
pub struct Fenced<S> {
    inner: S,
    fence: Fence,
}

impl<S, B> Service<Request<B>> for Fenced<S>
where
    S: Service<Request<B>>,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let deadline = match admit(&self.fence, &req) {
            Admit::Refused => return Box::pin(std::future::ready(Err(Box::new(NotLeader) as BoxError))),
            Admit::Until(d) => d,
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let Some((until, what)) = deadline else { return fut.await.map_err(Into::into) };
            let left = until.saturating_duration_since(std::time::Instant::now());
            match tokio::time::timeout(left, fut).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(Box::new(TimedOut(what)) as BoxError),
            }
        })
    }
}

/// The retry policy: which answers are retried and how long to wait.
#[derive(Debug, Clone, Default)]
pub struct Retries {
    attempt: u32,
}

impl Retries {
    /// How long to wait before retry number `attempt` (0-based) of an
    /// answer with `status` and `Retry-After` seconds `retry_after`; `None`:
    /// not retried.
    pub fn wait(attempt: u32, status: StatusCode, retry_after: Option<&str>) -> Option<Duration> {
        let retried = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        );
        if !retried || attempt >= MAX_RETRIES {
            return None;
        }
        let backoff = Duration::from_millis(200).saturating_mul(1 << attempt.min(16));
        let asked = retry_after.and_then(|s| s.trim().parse::<u64>().ok()).map(Duration::from_secs);
        Some(asked.unwrap_or(backoff).min(MAX_WAIT))
    }
}

impl<B> Policy<Request<Body>, Response<B>, BoxError> for Retries {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _req: &mut Request<Body>,
        result: &mut Result<Response<B>, BoxError>,
    ) -> Option<Self::Future> {
        let response = result.as_ref().ok()?;
        let retry_after = response.headers().get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok());
        let wait = Retries::wait(self.attempt, response.status(), retry_after)?;
        self.attempt += 1;
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        let body = req.body().try_clone()?;
        let mut copy = Request::new(body);
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }
}

/// The operator's client (see the module docs).
pub async fn build(fence: &Fence) -> Result<kube::Client, String> {
    let mut config =
        kube::Config::infer().await.map_err(|e| format!("cannot configure the Kubernetes client: {e}"))?;
    config.default_retry = false;
    config.read_timeout = Some(SOCKET_READ_TIMEOUT);
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| format!("cannot connect to Kubernetes: {e}"))?;
    Ok(builder.with_layer(&layers(fence).into_inner()).build())
}

/// The layers over kube's stack: retries outside, the fence on every
/// attempt, and a buffer (a retry needs a service it can clone).
pub fn layers(fence: &Fence) -> tower::ServiceBuilder<Layers> {
    tower::ServiceBuilder::new()
        .layer(RetryLayer::new(Retries::default()))
        .layer(FenceLayer(fence.clone()))
        .layer(tower::buffer::BufferLayer::new(1024))
}

/// The type of [`layers`].
pub type Layers = tower::layer::util::Stack<
    tower::buffer::BufferLayer<Request<Body>>,
    tower::layer::util::Stack<
        FenceLayer,
        tower::layer::util::Stack<RetryLayer<Retries>, tower::layer::util::Identity>,
    >,
>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    use tower::{Layer, ServiceExt};

    use super::*;

    #[test]
    fn only_overload_answers_are_retried_a_few_times_and_never_long() {
        let s = StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(Retries::wait(0, s, None), Some(Duration::from_millis(200)));
        assert_eq!(Retries::wait(2, s, None), Some(Duration::from_millis(800)));
        assert_eq!(Retries::wait(0, s, Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(Retries::wait(0, s, Some("3600")), Some(MAX_WAIT));
        assert_eq!(Retries::wait(0, s, Some("soon")), Some(Duration::from_millis(200)));
        assert_eq!(Retries::wait(MAX_RETRIES, s, None), None);
        for other in [StatusCode::CONFLICT, StatusCode::INTERNAL_SERVER_ERROR, StatusCode::OK] {
            assert_eq!(Retries::wait(0, other, None), None, "{other}");
        }
        assert!(Retries::wait(0, StatusCode::TOO_MANY_REQUESTS, None).is_some());
        assert!(Retries::wait(0, StatusCode::GATEWAY_TIMEOUT, None).is_some());
    }

    /// A server answering writes with 503 and `Retry-After`, whose first
    /// answer ends the lease: the retry must not reach it.
    #[tokio::test]
    async fn a_retry_after_the_fence_closed_is_not_sent() {
        let fence = Fence::new("encstr");
        fence.extend(BootTime::now() + Duration::from_secs(60));
        let calls = Arc::new(AtomicU32::new(0));
        let inner = {
            let (calls, fence) = (calls.clone(), fence.clone());
            tower::service_fn(move |_req: Request<Body>| {
                calls.fetch_add(1, Ordering::SeqCst);
                fence.revoke();
                let answer = Response::builder().status(503).header("Retry-After", "0").body(()).unwrap();
                std::future::ready(Ok::<_, BoxError>(answer))
            })
        };
        // The client's own layers, as `build` stacks them.
        let svc = layers(&fence).service(inner);
        let req = Request::builder().method("PATCH").uri("/apis/x").body(Body::from(b"{}".to_vec())).unwrap();
        let err = svc.oneshot(req).await.expect_err("the retry is refused");
        assert!(err.is::<NotLeader>(), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one attempt reached the server");
    }

    #[test]
    fn every_attempt_is_admitted_by_the_fence_with_a_deadline() {
        let fence = Fence::new("n");
        let req = |m: Method, uri: &str| Request::builder().method(m).uri(uri).body(()).unwrap();
        let write = req(Method::PATCH, "/api/v1/namespaces/x/secrets/s");
        let lease = req(Method::PUT, "/apis/coordination.k8s.io/v1/namespaces/n/leases/l");
        assert_eq!(admit(&fence, &write), Admit::Refused);
        assert!(matches!(admit(&fence, &lease), Admit::Until(Some(_))), "the election needs no lease");
        let watch = req(Method::GET, "/api/v1/secrets?labelSelector=a&watch=true&timeoutSeconds=290");
        assert_eq!(admit(&fence, &watch), Admit::Until(None));
        let Admit::Until(Some((_, what))) = admit(&fence, &req(Method::GET, "/api/v1/secrets")) else {
            panic!("a read has a deadline")
        };
        assert_eq!(what, "read timeout");
        fence.extend(BootTime::now() + Duration::from_secs(5));
        let Admit::Until(Some((until, what))) = admit(&fence, &write) else { panic!("admitted") };
        assert_eq!(what, "end of this replica's lease");
        assert!(
            until <= Instant::now() + Duration::from_secs(5)
                && until > Instant::now() + Duration::from_secs(4)
        );
        fence.revoke();
        assert_eq!(admit(&fence, &write), Admit::Refused);
    }

    #[tokio::test]
    async fn a_write_cannot_outlive_the_fence() {
        let fence = Fence::new("encstr");
        fence.extend(BootTime::now() + Duration::from_millis(200));
        let inner = tower::service_fn(|_req: Request<Body>| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, BoxError>(Response::new(()))
        });
        let svc = FenceLayer(fence).layer(inner);
        let req = Request::builder().method("PUT").uri("/api/v1/x").body(Body::empty()).unwrap();
        let err = svc.oneshot(req).await.expect_err("timed out");
        assert!(err.to_string().contains("end of this replica's lease"), "{err}");
    }
}
