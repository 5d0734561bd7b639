//! Leader election with a coordination.k8s.io Lease, and fencing.
//!
//! The elector renews the Lease with its resourceVersion as a precondition.
//! The [`Fence`] holds how long this replica may still write: until the
//! start of its last successful renewal plus the renew deadline, which is
//! shorter than the lease duration a standby waits (from when it *saw* that
//! renewal) before taking over. Every attempt of every mutating request of
//! the operator's client passes through `client::FenceLayer`, so a replica that was paused
//! (SIGSTOP, a long GC, a frozen VM) or cut off makes no write once its
//! time is up, even from a reconcile that was already running; the elector
//! then reports the loss and the process exits to restart as a standby.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Request;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tracing::{info, warn};

/// Why a write was refused by the fence.
#[derive(Debug, thiserror::Error)]
#[error("not the leader (the lease may have passed to another replica): write refused")]
pub struct NotLeader;

/// A point in time on the clock that keeps counting while the machine is
/// suspended (`CLOCK_BOOTTIME`): a replica whose VM was frozen past its
/// lease sees the time that passed, where `Instant` (`CLOCK_MONOTONIC`)
/// would not and would let it write on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BootTime(Duration);

impl BootTime {
    /// Now.
    pub fn now() -> BootTime {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        BootTime(Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.clamp(0, 999_999_999) as u32))
    }

    /// How long from `self` to `later` (zero if `later` is earlier).
    pub fn until(self, later: BootTime) -> Duration {
        later.0.saturating_sub(self.0)
    }
}

impl std::ops::Add<Duration> for BootTime {
    type Output = BootTime;

    fn add(self, d: Duration) -> BootTime {
        BootTime(self.0.saturating_add(d))
    }
}

/// How long this replica may write.
#[derive(Debug, Clone)]
pub struct Fence(Arc<FenceState>);

#[derive(Debug)]
struct FenceState {
    until: Mutex<Option<BootTime>>,
    lease_path: String,
}

impl Fence {
    /// A fence that allows nothing yet; requests under `lease_path` (the
    /// election's own) always pass.
    pub fn new(lease_namespace: &str) -> Fence {
        Fence(Arc::new(FenceState {
            until: Mutex::new(None),
            lease_path: format!("/apis/coordination.k8s.io/v1/namespaces/{lease_namespace}/leases"),
        }))
    }

    /// Whether writes are allowed now.
    pub fn valid(&self) -> bool {
        self.remaining().is_some()
    }

    /// Allow writes until `until`.
    pub fn extend(&self, until: BootTime) {
        *self.0.until.lock().expect("lock") = Some(until);
    }

    /// Allow no more writes.
    pub fn revoke(&self) {
        *self.0.until.lock().expect("lock") = None;
    }

    /// How long writes are still allowed, if they are now.
    pub fn remaining(&self) -> Option<Duration> {
        let until = (*self.0.until.lock().expect("lock"))?;
        let left = BootTime::now().until(until);
        (!left.is_zero()).then_some(left)
    }

    /// Whether a request is the election's own (it needs no lease).
    pub fn is_election<B>(&self, req: &Request<B>) -> bool {
        req.uri().path().starts_with(&self.0.lease_path)
    }
}

/// Election settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// This replica's identity.
    pub identity: String,
    /// How long a holder keeps the lease without renewing it.
    pub duration: Duration,
}

impl Settings {
    /// Writes stop this long after the start of the last renewal (two
    /// thirds of the duration, as client-go's renew deadline).
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// How often to renew or retry.
    pub fn retry_period(&self) -> Duration {
        (self.duration / 5).max(Duration::from_millis(200))
    }
}

/// What an observed lease means for this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Take it (absent, released, or expired).
    Acquire,
    /// It is ours: renew it.
    Renew,
    /// Someone else holds it.
    Wait,
}

/// Decide from the lease, when its record last changed as seen here
/// (`observed_at`, local monotonic time: clocks of other machines are not
/// trusted) and now.
pub fn decide(me: &str, spec: Option<&LeaseSpec>, observed_at: Instant, now: Instant) -> Decision {
    let Some(spec) = spec else { return Decision::Acquire };
    match spec.holder_identity.as_deref().filter(|h| !h.is_empty()) {
        None => Decision::Acquire,
        Some(h) if h == me => Decision::Renew,
        Some(_) => {
            let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
            if now.duration_since(observed_at) >= duration { Decision::Acquire } else { Decision::Wait }
        }
    }
}

/// A lease's record (holder, renew time) and when it was first seen here.
type Seen = Option<((Option<String>, Option<Timestamp>), Instant)>;

fn record(spec: Option<&LeaseSpec>) -> (Option<String>, Option<Timestamp>) {
    (spec.and_then(|s| s.holder_identity.clone()), spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0))
}

/// Run the election: `leader` is set while this replica holds the lease
/// and the fence is extended on every renewal. Returns (with an error) when
/// leadership is lost; never returns otherwise.
pub async fn run(
    client: kube::Client,
    s: Settings,
    fence: Fence,
    leader: tokio::sync::watch::Sender<bool>,
) -> Result<(), String> {
    let api: Api<Lease> = Api::namespaced(client, &s.namespace);
    let mut seen: Seen = None;
    loop {
        let attempt = Instant::now();
        let attempt_boot = BootTime::now();
        let leading = *leader.borrow();
        let outcome = step(&api, &s, &mut seen, attempt).await;
        match outcome {
            Ok(true) => {
                fence.extend(attempt_boot + s.renew_deadline());
                if !leading {
                    info!(identity = %s.identity, "acquired the lease");
                    let _ = leader.send(true);
                }
            }
            Ok(false) if leading => {
                fence.revoke();
                let _ = leader.send(false);
                return Err("another replica holds the lease now".into());
            }
            Ok(false) => {}
            Err(e) => {
                warn!(error = %e, "leader election: cannot read or renew the lease");
                if leading && !fence.valid() {
                    fence.revoke();
                    let _ = leader.send(false);
                    return Err(format!("the lease could not be renewed in time: {e}"));
                }
            }
        }
        tokio::time::sleep(s.retry_period()).await;
    }
}

/// One round: `Ok(true)` when this replica holds the lease afterwards.
async fn step(api: &Api<Lease>, s: &Settings, seen: &mut Seen, now: Instant) -> Result<bool, kube::Error> {
    let current = api.get_opt(&s.name).await?;
    let spec = current.as_ref().and_then(|l| l.spec.as_ref());
    let rec = record(spec);
    let observed_at = match seen {
        Some((r, at)) if *r == rec => *at,
        _ => {
            *seen = Some((rec, now));
            now
        }
    };
    let decision = decide(&s.identity, spec, observed_at, now);
    let stamp = MicroTime(Timestamp::now());
    let secs = i32::try_from(s.duration.as_secs()).unwrap_or(i32::MAX).max(1);
    let pp = PostParams::default();
    let result = match (decision, current) {
        (Decision::Wait, _) => return Ok(false),
        (_, None) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(s.name.clone()),
                    namespace: Some(s.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(s.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(stamp.clone()),
                    renew_time: Some(stamp),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            api.create(&pp, &lease).await
        }
        (d, Some(mut lease)) => {
            let mut spec = lease.spec.take().unwrap_or_default();
            if d == Decision::Acquire {
                spec.acquire_time = Some(stamp.clone());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.holder_identity = Some(s.identity.clone());
            spec.lease_duration_seconds = Some(secs);
            spec.renew_time = Some(stamp);
            lease.spec = Some(spec);
            // The resourceVersion makes this conditional: a concurrent
            // change (another replica) fails it with 409.
            api.replace(&s.name, &pp, &lease).await
        }
    };
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Give the lease up (graceful shutdown) so a standby takes over at once.
pub async fn release(client: kube::Client, s: &Settings) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(client, &s.namespace);
    let Some(mut lease) = api.get_opt(&s.name).await? else { return Ok(()) };
    let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
    if spec.holder_identity.as_deref() != Some(&s.identity) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    api.replace(&s.name, &PostParams::default(), &lease).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(secs),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn the_lease_is_taken_only_when_free_or_expired_by_local_time() {
        let t0 = Instant::now();
        assert_eq!(decide("a", None, t0, t0), Decision::Acquire);
        assert_eq!(decide("a", Some(&spec(None, 15)), t0, t0), Decision::Acquire, "released");
        assert_eq!(decide("a", Some(&spec(Some("a"), 15)), t0, t0), Decision::Renew);
        assert_eq!(decide("a", Some(&spec(Some("b"), 15)), t0, t0 + Duration::from_secs(14)), Decision::Wait);
        assert_eq!(
            decide("a", Some(&spec(Some("b"), 15)), t0, t0 + Duration::from_secs(15)),
            Decision::Acquire
        );
    }

    #[test]
    fn writes_stop_before_a_standby_may_take_over() {
        let s = Settings {
            namespace: "n".into(),
            name: "l".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
        };
        assert!(s.renew_deadline() < s.duration);
        let fence = Fence::new("n");
        assert!(fence.remaining().is_none());
        fence.extend(BootTime::now() + Duration::from_secs(10));
        assert!(
            fence.remaining().is_some_and(|r| r <= Duration::from_secs(10) && r > Duration::from_secs(9))
        );
        fence.extend(BootTime::now());
        assert!(fence.remaining().is_none(), "expired");
        fence.extend(BootTime::now() + Duration::from_secs(10));
        fence.revoke();
        assert!(fence.remaining().is_none());
        let lease =
            Request::builder().uri("/apis/coordination.k8s.io/v1/namespaces/n/leases/l").body(()).unwrap();
        let other =
            Request::builder().uri("/apis/coordination.k8s.io/v1/namespaces/m/leases/l").body(()).unwrap();
        assert!(fence.is_election(&lease) && !fence.is_election(&other));
    }
}
