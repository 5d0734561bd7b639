//! Operator metrics (names from the SecretKeyring spec).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::keyring::Id;

/// `result="success|error"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// Outcome.
    pub result: &'static str,
}

/// `kind`, `namespace`, `keyring`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct KeyringLabels {
    /// `SecretKeyring` or `ClusterSecretKeyring`.
    pub kind: &'static str,
    /// Namespace of a SecretKeyring (empty for the cluster kind).
    pub namespace: String,
    /// Its name.
    pub keyring: String,
}

impl KeyringLabels {
    /// The labels of a keyring.
    pub fn of(id: &Id) -> Self {
        KeyringLabels { kind: id.kind.as_str(), namespace: id.namespace.clone(), keyring: id.name.clone() }
    }
}

/// `kind`, `namespace`, `keyring`, `state`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyStateLabels {
    /// `SecretKeyring` or `ClusterSecretKeyring`.
    pub kind: &'static str,
    /// Namespace of a SecretKeyring (empty for the cluster kind).
    pub namespace: String,
    /// Its name.
    pub keyring: String,
    /// `Primary`, `Staged` or `DecryptOnly`.
    pub state: &'static str,
}

/// `kind`, `namespace`, `keyring`, `synced`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// `SecretKeyring` or `ClusterSecretKeyring`.
    pub kind: &'static str,
    /// Namespace of a SecretKeyring (empty for the cluster kind).
    pub namespace: String,
    /// Its name.
    pub keyring: String,
    /// `true` or `false`.
    pub synced: &'static str,
}

/// `kind`, `namespace`, `keyring`, `reason`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GuardLabels {
    /// `SecretKeyring` or `ClusterSecretKeyring`.
    pub kind: &'static str,
    /// Namespace of a SecretKeyring (empty for the cluster kind).
    pub namespace: String,
    /// Its name.
    pub keyring: String,
    /// `MasterMissing`, `KeysMissing` or `SecretNameChanged`.
    pub reason: &'static str,
}

/// The guard reasons, for their gauge.
pub const GUARD_REASONS: [&str; 3] = ["MasterMissing", "KeysMissing", "SecretNameChanged"];

/// The results of webhook requests.
pub const WEBHOOK_RESULTS: [&str; 4] = ["injected", "skipped", "denied", "error"];

/// All operator metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `encstr_operator_reconciliations_total{result}`.
    pub reconciliations: Family<ResultLabel, Counter>,
    /// `encstr_operator_reconcile_duration_seconds`.
    pub reconcile_duration: Histogram,
    /// `encstr_keyring_keys{kind,namespace,keyring,state}`.
    pub keys: Family<KeyStateLabels, Gauge>,
    /// `encstr_keyring_primary_key_age_seconds{kind,namespace,keyring}`.
    pub primary_age: Family<KeyringLabels, Gauge<f64, AtomicU64>>,
    /// `encstr_keyring_targets{kind,namespace,keyring,synced}`.
    pub targets: Family<TargetLabels, Gauge>,
    /// `encstr_keyring_rotations_total{kind,namespace,keyring}`.
    pub rotations: Family<KeyringLabels, Counter>,
    /// `encstr_keyring_keys_pruned_total{kind,namespace,keyring}`.
    pub pruned: Family<KeyringLabels, Counter>,
    /// `encstr_keyring_prune_blocked_keys{kind,namespace,keyring}`: keys retention
    /// wants gone that are still in use (for the PruneBlocked alert).
    pub prune_blocked: Family<KeyringLabels, Gauge>,
    /// `encstr_keyring_guard{kind,namespace,keyring,reason}`: 1 while a
    /// guard holds writes back.
    pub guard: Family<GuardLabels, Gauge>,
    /// `encstr_keyring_backup_last_success_timestamp_seconds{kind,namespace,keyring}`.
    pub backup_success: Family<KeyringLabels, Gauge<f64, AtomicU64>>,
    /// `encstr_keyring_backup_failures_total{kind,namespace,keyring}`.
    pub backup_failures: Family<KeyringLabels, Counter>,
    /// `encstr_operator_usage_scans_total`: namespaces scanned for tokens
    /// (one scan serves every keyring that reaches the namespace).
    pub namespace_scans: Counter,
    /// `encstr_webhook_requests_total{result="injected|skipped|denied|error"}`.
    pub webhook_requests: Family<ResultLabel, Counter>,
    /// `encstr_webhook_request_duration_seconds`.
    pub webhook_duration: Histogram,
    /// When each keyring's primary was promoted (Unix seconds): the age is
    /// computed when scraped.
    primary_since: Mutex<BTreeMap<KeyringLabels, f64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            reconciliations: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            keys: Family::default(),
            primary_age: Family::default(),
            targets: Family::default(),
            rotations: Family::default(),
            pruned: Family::default(),
            prune_blocked: Family::default(),
            guard: Family::default(),
            backup_success: Family::default(),
            backup_failures: Family::default(),
            namespace_scans: Counter::default(),
            webhook_requests: Family::default(),
            webhook_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            primary_since: Mutex::default(),
        };
        for result in ["success", "error"] {
            let _ = m.reconciliations.get_or_create(&ResultLabel { result });
        }
        for result in WEBHOOK_RESULTS {
            let _ = m.webhook_requests.get_or_create(&ResultLabel { result });
        }
        registry.register(
            "encstr_operator_reconciliations",
            "Reconciliations by result",
            m.reconciliations.clone(),
        );
        registry.register(
            "encstr_operator_reconcile_duration_seconds",
            "Time taken by a reconcile",
            m.reconcile_duration.clone(),
        );
        registry.register("encstr_keyring_keys", "Keys per keyring by lifecycle state", m.keys.clone());
        registry.register(
            "encstr_keyring_primary_key_age_seconds",
            "Age of the primary key since its promotion",
            m.primary_age.clone(),
        );
        registry.register(
            "encstr_keyring_targets",
            "Target namespaces by whether they hold an identical copy",
            m.targets.clone(),
        );
        registry.register("encstr_keyring_rotations", "Rotations started", m.rotations.clone());
        registry.register("encstr_keyring_keys_pruned", "Keys removed by retention", m.pruned.clone());
        registry.register(
            "encstr_keyring_prune_blocked_keys",
            "Keys retention would remove that ConfigMaps still use",
            m.prune_blocked.clone(),
        );
        registry.register(
            "encstr_keyring_guard",
            "1 while a key-loss guard holds back every write of the keyring's key material",
            m.guard.clone(),
        );
        registry.register(
            "encstr_keyring_backup_last_success_timestamp_seconds",
            "When the keyring was last backed up (Unix seconds)",
            m.backup_success.clone(),
        );
        registry.register(
            "encstr_keyring_backup_failures",
            "Backups that could not be written",
            m.backup_failures.clone(),
        );
        registry.register(
            "encstr_operator_usage_scans",
            "Namespaces scanned for ENCSTR tokens (each scan serves every keyring that reaches the namespace)",
            m.namespace_scans.clone(),
        );
        registry.register(
            "encstr_webhook_requests",
            "Admission requests to the sidecar injection webhook by result",
            m.webhook_requests.clone(),
        );
        registry.register(
            "encstr_webhook_request_duration_seconds",
            "Time taken to answer an admission request",
            m.webhook_duration.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The exposition in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        for (labels, since) in self.primary_since.lock().expect("lock").iter() {
            self.primary_age.get_or_create(labels).set((now - since).max(0.0));
        }
        encstr_exposition::encode(&self.registry)
    }

    /// Count a webhook request and its latency.
    pub fn webhook_request(&self, result: &'static str, seconds: f64) {
        self.webhook_requests.get_or_create(&ResultLabel { result }).inc();
        self.webhook_duration.observe(seconds);
    }

    /// Record when a keyring's primary was promoted (Unix seconds).
    pub fn set_primary_since(&self, id: &Id, unix_seconds: f64) {
        self.primary_since.lock().expect("lock").insert(KeyringLabels::of(id), unix_seconds);
    }

    /// Set the guard gauge: 1 for `reason` (if any), 0 for the others.
    pub fn set_guard(&self, id: &Id, reason: Option<&str>) {
        for r in GUARD_REASONS {
            let labels = GuardLabels {
                kind: id.kind.as_str(),
                namespace: id.namespace.clone(),
                keyring: id.name.clone(),
                reason: r,
            };
            self.guard.get_or_create(&labels).set(i64::from(reason == Some(r)));
        }
    }

    /// Forget every keyring's state gauges (this replica lost the lease:
    /// the leader reports them now). Counters stay: they count what this
    /// replica did.
    pub fn forget_keyrings(&self) {
        self.primary_since.lock().expect("lock").clear();
        self.keys.clear();
        self.primary_age.clear();
        self.targets.clear();
        self.prune_blocked.clear();
        self.guard.clear();
        self.backup_success.clear();
    }

    /// Forget every per-keyring series of a deleted keyring (gauges and
    /// counters alike: a series of a keyring that is gone is never
    /// exported again).
    pub fn forget(&self, id: &Id) {
        let kl = KeyringLabels::of(id);
        self.primary_since.lock().expect("lock").remove(&kl);
        self.prune_blocked.remove(&kl);
        self.primary_age.remove(&kl);
        self.rotations.remove(&kl);
        self.pruned.remove(&kl);
        self.backup_success.remove(&kl);
        self.backup_failures.remove(&kl);
        let (kind, namespace, keyring) = (id.kind.as_str(), id.namespace.clone(), id.name.clone());
        for state in ["Primary", "Staged", "DecryptOnly"] {
            self.keys.remove(&KeyStateLabels {
                kind,
                namespace: namespace.clone(),
                keyring: keyring.clone(),
                state,
            });
        }
        for synced in ["true", "false"] {
            self.targets.remove(&TargetLabels {
                kind,
                namespace: namespace.clone(),
                keyring: keyring.clone(),
                synced,
            });
        }
        for reason in GUARD_REASONS {
            self.guard.remove(&GuardLabels {
                kind,
                namespace: namespace.clone(),
                keyring: keyring.clone(),
                reason,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::Kind;

    #[test]
    fn a_forgotten_keyring_has_no_series_left() {
        let m = Metrics::default();
        let gone = Id { kind: Kind::Cluster, namespace: String::new(), name: "gone".into() };
        let kept = Id { kind: Kind::Namespaced, namespace: "a".into(), name: "kept".into() };
        for id in [&gone, &kept] {
            let kl = KeyringLabels::of(id);
            let (kind, namespace, keyring) = (id.kind.as_str(), id.namespace.clone(), id.name.clone());
            m.keys
                .get_or_create(&KeyStateLabels {
                    kind,
                    namespace: namespace.clone(),
                    keyring: keyring.clone(),
                    state: "Primary",
                })
                .set(1);
            m.set_primary_since(id, 1.0);
            m.targets.get_or_create(&TargetLabels { kind, namespace, keyring, synced: "true" }).set(1);
            m.rotations.get_or_create(&kl).inc();
            m.pruned.get_or_create(&kl).inc();
            m.prune_blocked.get_or_create(&kl).set(1);
            m.set_guard(id, None);
            m.backup_success.get_or_create(&kl).set(1.0);
            m.backup_failures.get_or_create(&kl).inc();
        }
        assert!(m.encode().contains("keyring=\"gone\""));
        m.forget(&gone);
        let text = m.encode();
        let left: Vec<&str> = text.lines().filter(|l| l.contains("keyring=\"gone\"")).collect();
        assert!(left.is_empty(), "series of a deleted keyring: {left:?}");
        for family in [
            "encstr_keyring_keys{",
            "encstr_keyring_primary_key_age_seconds{",
            "encstr_keyring_targets{",
            "encstr_keyring_rotations_total{",
            "encstr_keyring_keys_pruned_total{",
            "encstr_keyring_prune_blocked_keys{",
            "encstr_keyring_guard{",
            "encstr_keyring_backup_last_success_timestamp_seconds{",
            "encstr_keyring_backup_failures_total{",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(family) && l.contains("keyring=\"kept\"")),
                "{family} of the other keyring stays"
            );
        }
    }
}
