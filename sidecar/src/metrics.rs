//! The sidecar's Prometheus metrics (names from the SecretKeyring spec,
//! sidecar section). Labels are bounded: error kinds and results only.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of `encstr_decrypt_failures_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `malformed`, `unsupported_version`, `unknown_key`, `authentication_failed` or `unnamed`.
    pub reason: &'static str,
}

/// Label of `encstr_renders_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `success` or `failure`.
    pub result: &'static str,
}

/// Labels of `encstr_notifications_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotifyLabels {
    /// `signal` or `http`.
    pub method: &'static str,
    /// `success` or `failure`.
    pub result: &'static str,
}

/// Label of `encstr_keyring_primary_key_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyIdLabel {
    /// The primary key's id (public: 8 hex digits).
    pub key_id: String,
}

/// The per-value error kinds: the four decryption errors, `unnamed` and
/// `aliased`, the only values of the `reason` label.
pub const DECRYPT_REASONS: [&str; 6] =
    ["malformed", "unsupported_version", "unknown_key", "authentication_failed", "unnamed", "aliased"];

/// All sidecar metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `encstr_decrypt_failures_total{reason}`.
    pub decrypt_failures: Family<ReasonLabel, Counter>,
    /// `encstr_decryptions_total`.
    pub decryptions: Counter,
    /// `encstr_renders_total{result}`.
    pub renders: Family<ResultLabel, Counter>,
    /// `encstr_render_duration_seconds`.
    pub render_duration: Histogram,
    /// `encstr_last_render_success_timestamp_seconds`.
    pub last_success: Gauge<f64, AtomicU64>,
    /// `encstr_keyring_keys`.
    pub keyring_keys: Gauge,
    /// `encstr_keyring_reloads_total`.
    pub keyring_reloads: Counter,
    /// `encstr_plaintext_values`.
    pub plaintext_values: Gauge,
    /// `encstr_notifications_total{method,result}`.
    pub notifications: Family<NotifyLabels, Counter>,
    /// `encstr_keyring_primary_key_info{key_id}`: 1 for the loaded keyring's primary.
    pub primary_key_info: Family<KeyIdLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            decrypt_failures: Family::default(),
            decryptions: Counter::default(),
            renders: Family::default(),
            render_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            last_success: Gauge::default(),
            keyring_keys: Gauge::default(),
            keyring_reloads: Counter::default(),
            plaintext_values: Gauge::default(),
            notifications: Family::default(),
            primary_key_info: Family::default(),
            registry: Registry::default(),
        };
        // Every series exists from the start, so rate() and absent() work.
        for reason in DECRYPT_REASONS {
            let _ = m.decrypt_failures.get_or_create(&ReasonLabel { reason });
        }
        for result in ["success", "failure"] {
            let _ = m.renders.get_or_create(&ResultLabel { result });
            for method in ["signal", "http"] {
                let _ = m.notifications.get_or_create(&NotifyLabels { method, result });
            }
        }
        registry.register(
            "encstr_decrypt_failures",
            "Values that failed to decrypt, by error kind",
            m.decrypt_failures.clone(),
        );
        registry.register("encstr_decryptions", "Values decrypted", m.decryptions.clone());
        registry.register("encstr_renders", "Renders of the source directory, by result", m.renders.clone());
        registry.register(
            "encstr_render_duration_seconds",
            "Time taken by a render",
            m.render_duration.clone(),
        );
        registry.register(
            "encstr_last_render_success_timestamp_seconds",
            "Unix time of the last successful render",
            m.last_success.clone(),
        );
        registry.register("encstr_keyring_keys", "Keys in the loaded keyring", m.keyring_keys.clone());
        registry.register(
            "encstr_keyring_reloads",
            "Times a changed keyring was loaded",
            m.keyring_reloads.clone(),
        );
        registry.register(
            "encstr_plaintext_values",
            "Values in rendered files whose names look secret but that are not encrypted",
            m.plaintext_values.clone(),
        );
        registry.register(
            "encstr_notifications",
            "Notifications sent to the app after a render changed its files, by method and result",
            m.notifications.clone(),
        );
        registry.register(
            "encstr_keyring_primary_key_info",
            "The primary key of the loaded keyring (its id as a label; the value is 1)",
            m.primary_key_info.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Show `key_id` as the loaded keyring's primary (and no other).
    pub fn set_primary(&self, key_id: &str) {
        self.primary_key_info.clear();
        self.primary_key_info.get_or_create(&KeyIdLabel { key_id: key_id.to_owned() }).set(1);
    }
}

impl Metrics {
    /// The exposition in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        encstr_exposition::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_series_with_total_suffixes() {
        let m = Metrics::default();
        m.decryptions.inc_by(3);
        let text = m.encode();
        for needle in [
            "# TYPE encstr_decryptions_total counter\n",
            "encstr_decryptions_total 3\n",
            "encstr_decrypt_failures_total{reason=\"authentication_failed\"} 0\n",
            "encstr_renders_total{result=\"failure\"} 0\n",
            "# TYPE encstr_render_duration_seconds histogram\n",
            "encstr_last_render_success_timestamp_seconds 0",
            "encstr_keyring_keys 0\n",
            "encstr_keyring_reloads_total 0\n",
            "encstr_plaintext_values 0\n",
            "encstr_notifications_total{method=\"signal\",result=\"failure\"} 0\n",
            "encstr_notifications_total{method=\"http\",result=\"success\"} 0\n",
        ] {
            assert!(text.contains(needle), "{needle:?} missing in\n{text}");
        }
        assert!(!text.contains("# EOF"));
        m.set_primary("07e5a8df");
        m.set_primary("2d353d4a");
        let text = m.encode();
        assert!(text.contains("encstr_keyring_primary_key_info{key_id=\"2d353d4a\"} 1\n"), "{text}");
        assert!(!text.contains("07e5a8df"), "the former primary is gone");
    }
}
