//! What reconciles share: the client, the event recorder, metrics, settings,
//! one memory per keyring (reconcile failures, backup outcomes), forgotten
//! in one call when the keyring goes, and one usage scan per namespace,
//! shared by every keyring that reaches it and forgotten once too old to
//! be used.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::warn;

use crate::backup::store::Policy;
use crate::cache::{ConfigMaps, Namespaces, Secrets};
use crate::crd::LastBackup;
use crate::error::{Error, Result};
use crate::keyring::{Id, KeyringResource};
use crate::metrics::Metrics;
use crate::usage::{self, NamespaceScan};

/// One namespace's last complete usage scan, behind the lock a scan holds
/// while it runs (keyrings that want the namespace meanwhile wait for its
/// result instead of scanning it again).
pub type ScanSlot = Arc<tokio::sync::Mutex<Option<NamespaceScan>>>;

/// Default resync interval when nothing is pending.
pub const RESYNC: Duration = Duration::from_secs(300);
/// Event notes are cut to this many bytes (events.k8s.io allows 1 KiB).
pub const MAX_NOTE: usize = 1024;
/// The longest wait between two backup attempts.
pub const BACKUP_RETRY_CAP: Duration = Duration::from_secs(60);

/// What this process remembers of one keyring between reconciles.
#[derive(Debug, Default)]
struct Memory {
    /// Consecutive failed reconciles.
    failures: u32,
    /// Consecutive failed backups, when the next may be tried, and why the
    /// last failed.
    backup_failure: Option<(u32, Instant, String)>,
    /// The newest backup this process wrote (the cached status lags).
    last_backup: Option<LastBackup>,
}

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
    /// Start a rotation at most this often.
    pub min_rotation_interval: Duration,
    /// The longest one backup write may take.
    pub backup_timeout: Duration,
    /// What namespaced keyrings' backups may use.
    pub backup_policy: Policy,
    /// One page of a usage scan is read at a time in the whole process.
    pub scan_pages: tokio::sync::Semaphore,
    memory: Mutex<BTreeMap<Id, Memory>>,
    scans: Mutex<BTreeMap<String, ScanSlot>>,
    /// When old scans were last forgotten.
    swept: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("cluster_namespace", &self.cluster_namespace).finish_non_exhaustive()
    }
}

/// How reconciles run (besides the client, recorder and metrics).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where ClusterSecretKeyrings keep their masters.
    pub cluster_namespace: String,
    /// Reconcile every keyring this often even without changes.
    pub resync: Duration,
    /// Scan a keyring's token usage at most this often.
    pub scan_interval: Duration,
    /// Start a rotation at most this often.
    pub min_rotation_interval: Duration,
    /// The longest one backup write may take.
    pub backup_timeout: Duration,
    /// What namespaced keyrings' backups may use.
    pub backup_policy: Policy,
}

impl Shared {
    /// Shared state with nothing remembered yet.
    pub fn new(client: Client, recorder: Recorder, metrics: Arc<Metrics>, s: Settings) -> Self {
        Shared {
            client,
            recorder,
            metrics,
            cluster_namespace: s.cluster_namespace,
            resync: s.resync,
            scan_interval: s.scan_interval,
            min_rotation_interval: s.min_rotation_interval,
            backup_timeout: s.backup_timeout,
            backup_policy: s.backup_policy,
            scan_pages: tokio::sync::Semaphore::new(1),
            memory: Mutex::default(),
            scans: Mutex::default(),
            swept: Mutex::default(),
        }
    }

    fn with<T>(&self, id: &Id, f: impl FnOnce(&mut Memory) -> T) -> T {
        let mut memory = self.memory.lock().expect("lock");
        f(memory.entry(id.clone()).or_default())
    }

    /// Forget everything about a keyring that is gone (and every
    /// namespace scan too old to be used by anyone).
    pub fn forget(&self, id: &Id) {
        self.memory.lock().expect("lock").remove(id);
        self.forget_old_scans(Instant::now());
    }

    /// The scan slot of a namespace (made empty if there is none). Once a
    /// scan interval, scans too old to be used are forgotten first: the
    /// map holds only the namespaces scanned within the longest reuse
    /// window (and one interval).
    pub fn scan_slot(&self, namespace: &str) -> ScanSlot {
        let now = Instant::now();
        let sweep = {
            let mut swept = self.swept.lock().expect("lock");
            let due = swept.is_none_or(|t| now.saturating_duration_since(t) >= self.scan_interval);
            if due {
                *swept = Some(now);
            }
            due
        };
        if sweep {
            self.forget_old_scans(now);
        }
        self.scans.lock().expect("lock").entry(namespace.to_owned()).or_default().clone()
    }

    /// Forget the namespace scans no keyring may use any more at `now`
    /// (older than the longest reuse window, or empty), unless a scan runs.
    pub fn forget_old_scans(&self, now: Instant) {
        let longest = usage::reuse_window(self.scan_interval, u32::MAX, false);
        self.scans.lock().expect("lock").retain(|_, slot| {
            let Ok(scan) = slot.try_lock() else { return true };
            Arc::strong_count(slot) > 1
                || scan.as_ref().is_some_and(|s| now.saturating_duration_since(s.at) < longest)
        });
    }

    /// The namespaces whose scans are remembered.
    pub fn scanned_namespaces(&self) -> Vec<String> {
        self.scans.lock().expect("lock").keys().cloned().collect()
    }

    /// Count a failed reconcile; how many failed in a row.
    pub fn failed(&self, id: &Id) -> u32 {
        self.with(id, |m| {
            m.failures += 1;
            m.failures
        })
    }

    /// A reconcile succeeded.
    pub fn succeeded(&self, id: &Id) {
        self.with(id, |m| m.failures = 0);
    }

    /// Record a backup's outcome; after a failure, when to try again: 1 s
    /// doubling, capped at a minute.
    pub fn backed_up(&self, id: &Id, failure: Option<&str>) -> Option<Duration> {
        self.with(id, |m| {
            let Some(failure) = failure else {
                m.backup_failure = None;
                return None;
            };
            let n = m.backup_failure.as_ref().map_or(0, |e| e.0);
            let wait = backup_backoff(n);
            m.backup_failure = Some((n + 1, Instant::now() + wait, failure.to_owned()));
            Some(wait)
        })
    }

    /// Whether a backup of `id` may be attempted now; if not, the last
    /// failure and how long until the next attempt.
    pub fn may_back_up(&self, id: &Id) -> Result<(), (String, Duration)> {
        self.with(id, |m| match &m.backup_failure {
            Some((_, at, why)) if *at > Instant::now() => {
                Err((why.clone(), at.duration_since(Instant::now())))
            }
            _ => Ok(()),
        })
    }

    /// The newest backup this process wrote for `id` (the status in the
    /// cache may not show it yet), or else `from_status`.
    pub fn last_backup(&self, id: &Id, from_status: Option<&LastBackup>) -> Option<LastBackup> {
        self.with(id, |m| m.last_backup.clone()).or_else(|| from_status.cloned())
    }

    /// Remember the newest backup written for `id`.
    pub fn wrote_backup(&self, id: &Id, last: &LastBackup) {
        self.with(id, |m| m.last_backup = Some(last.clone()));
    }

    /// Publish an event about a keyring (notes cut to 1 KiB).
    pub async fn publish<K: KeyringResource>(&self, k: &K, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(cut_note(note)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &event_reference(k, &self.cluster_namespace)).await {
            warn!(error = %e, "cannot publish event");
        }
    }
}

/// What an event about `k` refers to, which is also where it is created: a
/// SecretKeyring and its namespace; a ClusterSecretKeyring (which has no
/// namespace) in the cluster resource namespace, beside its master —
/// not in `default`, where every reader of events would see its notes.
pub fn event_reference<K: KeyringResource>(
    k: &K,
    cluster_namespace: &str,
) -> k8s_openapi::api::core::v1::ObjectReference {
    let mut r = k.object_ref(&());
    if r.namespace.as_deref().is_none_or(str::is_empty) {
        r.namespace = Some(cluster_namespace.to_owned());
    }
    r
}

/// A note cut to [`MAX_NOTE`] bytes on a character boundary.
fn cut_note(note: String) -> String {
    cut(note, MAX_NOTE)
}

/// Text cut to `max` bytes on a character boundary (`...` marks the cut).
pub fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut at = max.saturating_sub(3);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push_str("...");
    }
    text
}

/// The context of one kind's controller.
#[derive(Debug)]
pub struct Ctx {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Secrets carrying the kind's label (labels, key ids, digest).
    pub secrets: Secrets,
    /// ConfigMaps carrying the kind's label and role `recipient` (labels,
    /// recipient).
    pub config_maps: ConfigMaps,
    /// Namespaces: labels and phase (cluster kind).
    pub namespaces: Option<Namespaces>,
}

impl Ctx {
    /// Wait until the caches hold the initial lists.
    pub async fn synced(&self) -> Result<()> {
        let wait = async {
            self.secrets.wait_until_ready().await.map_err(|_| Error::NotSynced)?;
            self.config_maps.wait_until_ready().await.map_err(|_| Error::NotSynced)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::Kind;

    #[test]
    fn backup_retries_back_off_from_a_second_to_at_most_a_minute() {
        let waits: Vec<u64> = (0..10).map(|n| backup_backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(backup_backoff(u32::MAX), BACKUP_RETRY_CAP);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(30), RESYNC);
    }

    #[test]
    fn cluster_keyring_events_go_to_the_cluster_resource_namespace() {
        use crate::crd::{ClusterSecretKeyring, SecretKeyring};
        let c = ClusterSecretKeyring::new("payments", Default::default());
        let r = event_reference(&c, "encstr");
        assert_eq!((r.namespace.as_deref(), r.name.as_deref()), (Some("encstr"), Some("payments")));
        assert_eq!(r.kind.as_deref(), Some("ClusterSecretKeyring"));
        let mut n = SecretKeyring::new("agents", Default::default());
        n.metadata.namespace = Some("print".into());
        assert_eq!(event_reference(&n, "encstr").namespace.as_deref(), Some("print"));
    }

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(cut_note("short".into()), "short");
        let cut = cut_note("é".repeat(1000));
        assert!(cut.len() <= MAX_NOTE && cut.ends_with("...") && cut.is_char_boundary(cut.len() - 3));
    }

    /// Shared state with a client that reaches nothing.
    fn shared() -> Shared {
        let client = Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap())).unwrap();
        let recorder = Recorder::new(client.clone(), "test".into());
        let settings = Settings {
            cluster_namespace: "encstr".into(),
            resync: RESYNC,
            scan_interval: Duration::from_secs(60),
            min_rotation_interval: Duration::from_secs(300),
            backup_timeout: Duration::from_secs(1),
            backup_policy: Policy::default(),
        };
        Shared::new(client, recorder, Arc::new(Metrics::default()), settings)
    }

    #[tokio::test]
    async fn a_keyring_that_goes_is_forgotten_whole() {
        let shared = shared();
        let id = Id { kind: Kind::Namespaced, namespace: "a".into(), name: "k".into() };
        assert_eq!(shared.failed(&id), 1);
        assert!(shared.backed_up(&id, Some("down")).is_some());
        assert!(shared.may_back_up(&id).is_err());
        shared.wrote_backup(&id, &LastBackup::default());
        shared.forget(&id);
        assert_eq!(shared.failed(&id), 1, "the failure count starts again");
        assert!(shared.may_back_up(&id).is_ok());
        assert_eq!(shared.last_backup(&id, None), None);
    }

    #[tokio::test]
    async fn namespace_scans_are_forgotten_once_too_old_to_be_used() {
        let shared = shared();
        let now = Instant::now();
        *shared.scan_slot("a").lock().await =
            Some(NamespaceScan::after(None, usage::Usage::default(), 1, now));
        let held = shared.scan_slot("b");
        let _ = shared.scan_slot("c");
        shared.forget_old_scans(now);
        assert_eq!(shared.scanned_namespaces(), ["a", "b"], "an empty slot nobody holds goes");
        drop(held);
        shared.forget_old_scans(now + Duration::from_secs(16 * 60 - 1));
        assert_eq!(shared.scanned_namespaces(), ["a"], "still usable after 16 unchanged intervals");
        shared.forget_old_scans(now + Duration::from_secs(16 * 60));
        assert!(shared.scanned_namespaces().is_empty());
    }
}
