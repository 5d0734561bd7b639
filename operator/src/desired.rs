//! Pure functions: validate a spec, read and write the key lifecycle that
//! the master Secret carries, decide the next change to the master, and
//! build the Secrets that should exist. No API calls here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use encstr_core::{Key, KeyId, Keyring};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;

use crate::crd::*;

/// Default `rotation.promotionDelay`.
pub const DEFAULT_PROMOTION_DELAY: Duration = Duration::from_secs(120);

/// A spec that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSpec {
    /// Secret name in every target.
    pub secret_name: String,
    /// Listed target namespaces.
    pub namespaces: BTreeSet<String>,
    /// Rotate when the primary is older than this.
    pub every: Option<Duration>,
    /// Wait after distribution before promoting.
    pub promotion_delay: Duration,
    /// Keep at most this many keys.
    pub max_keys: Option<usize>,
    /// Secret name and key to import from.
    pub import: Option<(String, String)>,
    /// What deletion does.
    pub deletion_policy: DeletionPolicy,
}

/// Why a spec is invalid: a CamelCase reason and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Condition reason / event reason.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// Parse a Go-style duration (`90s`, `2m`, `1h30m`, `2160h`, `1.5h`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).ok()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Validate a spec (the CRD schema checks the same, but objects can predate
/// it or be stored without validation).
pub fn validate(skr: &SecretKeyring) -> Result<ValidSpec, Invalid> {
    let spec = &skr.spec;
    let invalid = |reason, message: String| Err(Invalid { reason, message });
    let secret_name = skr.secret_name();
    if !is_dns_subdomain(&secret_name) {
        return invalid(
            "InvalidSecretName",
            format!("spec.secretName {secret_name:?} is not a valid Secret name"),
        );
    }
    for ns in &spec.targets.namespaces {
        if !is_dns_label(ns) {
            return invalid(
                "InvalidNamespace",
                format!("spec.targets.namespaces: {ns:?} is not a valid namespace name"),
            );
        }
    }
    if let Some(sel) = &spec.targets.namespace_selector {
        for e in sel.match_expressions.iter().flatten() {
            if !matches!(e.operator.as_str(), "In" | "NotIn" | "Exists" | "DoesNotExist") {
                return invalid(
                    "InvalidSelector",
                    format!("spec.targets.namespaceSelector: unknown operator {:?}", e.operator),
                );
            }
        }
    }
    let rotation = spec.rotation.clone().unwrap_or_default();
    let every = match &rotation.every {
        None => None,
        Some(s) => match parse_duration(s) {
            Some(d) if d >= Duration::from_secs(1) => Some(d),
            _ => {
                return invalid(
                    "InvalidDuration",
                    format!("spec.rotation.every {s:?} is not a duration like 2160h"),
                );
            }
        },
    };
    let promotion_delay = match &rotation.promotion_delay {
        None => DEFAULT_PROMOTION_DELAY,
        Some(s) => match parse_duration(s) {
            Some(d) => d,
            None => {
                return invalid(
                    "InvalidDuration",
                    format!("spec.rotation.promotionDelay {s:?} is not a duration like 2m"),
                );
            }
        },
    };
    let max_keys = match spec.retention.as_ref().and_then(|r| r.max_keys) {
        Some(0) => return invalid("InvalidRetention", "spec.retention.maxKeys must be at least 1".into()),
        other => other.map(|n| n as usize),
    };
    let import = spec.import_from.as_ref().map(|i| {
        (i.secret_ref.name.clone(), i.secret_ref.key.clone().unwrap_or_else(|| DATA_KEY.to_owned()))
    });
    if let Some((name, _)) = &import
        && !is_dns_subdomain(name)
    {
        return invalid(
            "InvalidImport",
            format!("spec.importFrom.secretRef.name {name:?} is not a valid Secret name"),
        );
    }
    Ok(ValidSpec {
        secret_name,
        namespaces: spec.targets.namespaces.iter().cloned().collect(),
        every,
        promotion_delay,
        max_keys,
        import,
        deletion_policy: spec.deletion_policy,
    })
}

/// Format a time as Kubernetes does (RFC 3339, seconds, UTC).
pub fn fmt_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The key lifecycle stored in the master Secret's annotations, so that a
/// restart resumes exactly where the last write left off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyMeta {
    /// The staged key.
    pub staged: Option<KeyId>,
    /// When every copy first held the staged key.
    pub distributed_at: Option<Timestamp>,
    /// Creation time of each key.
    pub created: BTreeMap<KeyId, Timestamp>,
    /// When the current primary was promoted.
    pub promoted_at: Option<Timestamp>,
    /// The last `encstr.io/rotate` value handled.
    pub rotate_handled: Option<String>,
    /// When the last rotation started.
    pub last_rotation: Option<Timestamp>,
}

impl KeyMeta {
    /// Read from annotations (unparsable entries are ignored).
    pub fn from_annotations(a: &BTreeMap<String, String>) -> Self {
        let time = |k: &str| a.get(k).and_then(|v| v.parse::<Timestamp>().ok());
        KeyMeta {
            staged: a.get(ANN_STAGED).and_then(|v| v.parse().ok()),
            distributed_at: time(ANN_STAGED_DISTRIBUTED),
            created: a
                .get(ANN_CREATED)
                .map(|v| {
                    v.split(',')
                        .filter_map(|p| p.split_once('='))
                        .filter_map(|(id, t)| Some((id.parse().ok()?, t.parse().ok()?)))
                        .collect()
                })
                .unwrap_or_default(),
            promoted_at: time(ANN_PROMOTED),
            rotate_handled: a.get(ANN_ROTATE_HANDLED).cloned(),
            last_rotation: time(ANN_LAST_ROTATION),
        }
    }

    /// Write as annotations, for the keys of `ring` only.
    pub fn to_annotations(&self, ring: &Keyring) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        a.insert(ANN_KEY_IDS.to_owned(), key_ids(ring));
        let ids = ring.ids();
        if let Some(s) = self.staged.filter(|s| ids.contains(s)) {
            a.insert(ANN_STAGED.to_owned(), s.to_string());
        }
        if let (Some(t), Some(_)) = (self.distributed_at, self.staged) {
            a.insert(ANN_STAGED_DISTRIBUTED.to_owned(), fmt_time(t));
        }
        let created: Vec<String> = ids
            .iter()
            .filter_map(|id| self.created.get(id).map(|t| format!("{id}={}", fmt_time(*t))))
            .collect();
        if !created.is_empty() {
            a.insert(ANN_CREATED.to_owned(), created.join(","));
        }
        if let Some(t) = self.promoted_at {
            a.insert(ANN_PROMOTED.to_owned(), fmt_time(t));
        }
        if let Some(v) = &self.rotate_handled {
            a.insert(ANN_ROTATE_HANDLED.to_owned(), v.clone());
        }
        if let Some(t) = self.last_rotation {
            a.insert(ANN_LAST_ROTATION.to_owned(), fmt_time(t));
        }
        a
    }
}

/// `id,id,...` with the primary last.
pub fn key_ids(ring: &Keyring) -> String {
    ring.ids().iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// The lifecycle state of every key, oldest first.
pub fn key_states(ring: &Keyring, meta: &KeyMeta) -> Vec<(KeyId, KeyState)> {
    let primary = ring.primary().id();
    ring.ids()
        .into_iter()
        .map(|id| {
            let state = if id == primary {
                KeyState::Primary
            } else if Some(id) == meta.staged {
                KeyState::Staged
            } else {
                KeyState::DecryptOnly
            };
            (id, state)
        })
        .collect()
}

/// Why a rotation starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationReason {
    /// The `encstr.io/rotate` annotation changed.
    Requested,
    /// `rotation.every` elapsed since the primary was promoted.
    Scheduled,
}

/// The next change to make to the master Secret (one write each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Generate a key and stage it just before the primary.
    Stage(RotationReason),
    /// A rotation request arrived while one is running: it is covered.
    AcknowledgeRequest,
    /// Every copy holds the staged key: start the promotion delay.
    MarkDistributed,
    /// The delay passed: the staged key becomes primary.
    Promote,
    /// Remove unused old keys.
    Prune(Vec<KeyId>),
}

/// What the planner needs to know.
#[derive(Debug)]
pub struct Observed<'a> {
    /// The validated spec.
    pub spec: &'a ValidSpec,
    /// The master keyring.
    pub ring: &'a Keyring,
    /// Its lifecycle.
    pub meta: &'a KeyMeta,
    /// The current `encstr.io/rotate` annotation value.
    pub rotate_request: Option<&'a str>,
    /// Whether every target copy is identical to the master.
    pub all_copies_current: bool,
    /// Token counts per key id (when counted).
    pub usage: Option<&'a BTreeMap<KeyId, u32>>,
    /// Now.
    pub now: Timestamp,
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or_default()
}

/// Keys retention would remove (oldest decrypt-only beyond the limit),
/// before looking at usage.
pub fn prune_candidates(spec: &ValidSpec, ring: &Keyring, meta: &KeyMeta) -> Vec<KeyId> {
    let Some(max) = spec.max_keys else { return Vec::new() };
    let excess = ring.len().saturating_sub(max);
    key_states(ring, meta)
        .into_iter()
        .filter(|(_, s)| *s == KeyState::DecryptOnly)
        .map(|(id, _)| id)
        .take(excess)
        .collect()
}

/// Decide the next change to the master, if any.
pub fn next_step(o: &Observed<'_>) -> Option<Step> {
    let requested = o.rotate_request.is_some_and(|r| Some(r) != o.meta.rotate_handled.as_deref());
    match o.meta.staged.filter(|s| o.ring.contains(*s)) {
        Some(_) => {
            if requested {
                return Some(Step::AcknowledgeRequest);
            }
            match o.meta.distributed_at {
                None if o.all_copies_current => return Some(Step::MarkDistributed),
                Some(at) if elapsed(at, o.now) >= o.spec.promotion_delay => return Some(Step::Promote),
                _ => {}
            }
        }
        None => {
            if requested {
                return Some(Step::Stage(RotationReason::Requested));
            }
            if let Some(every) = o.spec.every {
                let since =
                    o.meta.promoted_at.or_else(|| o.meta.created.get(&o.ring.primary().id()).copied());
                if since.is_none_or(|t| elapsed(t, o.now) >= every) {
                    return Some(Step::Stage(RotationReason::Scheduled));
                }
            }
        }
    }
    if let Some(usage) = o.usage {
        let removable: Vec<KeyId> = prune_candidates(o.spec, o.ring, o.meta)
            .into_iter()
            .filter(|id| usage.get(id).copied().unwrap_or(0) == 0)
            .collect();
        if !removable.is_empty() {
            return Some(Step::Prune(removable));
        }
    }
    None
}

/// Apply a step to the keyring and its lifecycle (generating a key for
/// `Stage`). Returns ids pruned, if any.
pub fn apply_step(
    step: &Step,
    ring: &mut Keyring,
    meta: &mut KeyMeta,
    rotate_request: Option<&str>,
    now: Timestamp,
) -> Result<(), encstr_core::Error> {
    match step {
        Step::Stage(_) => {
            let key = Key::generate()?;
            let id = key.id();
            ring.stage(key)?;
            meta.staged = Some(id);
            meta.distributed_at = None;
            meta.created.insert(id, now);
            meta.last_rotation = Some(now);
            if let Some(r) = rotate_request {
                meta.rotate_handled = Some(r.to_owned());
            }
        }
        Step::AcknowledgeRequest => meta.rotate_handled = rotate_request.map(str::to_owned),
        Step::MarkDistributed => meta.distributed_at = Some(now),
        Step::Promote => {
            if let Some(id) = meta.staged.take() {
                ring.promote(id)?;
                meta.promoted_at = Some(now);
                meta.distributed_at = None;
            }
        }
        Step::Prune(ids) => {
            for id in ids {
                ring.remove(*id)?;
                meta.created.remove(id);
            }
        }
    }
    Ok(())
}

/// Labels of every Secret the operator manages for `skr`.
pub fn managed_labels(skr: &SecretKeyring, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_KEYRING.to_owned(), skr.label_value()), (LABEL_ROLE.to_owned(), role.to_owned())])
}

/// The master Secret with this keyring and lifecycle.
pub fn master_secret(skr: &SecretKeyring, spec: &ValidSpec, ring: &Keyring, meta: &KeyMeta) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(spec.secret_name.clone()),
            namespace: skr.metadata.namespace.clone(),
            labels: Some(managed_labels(skr, "master")),
            annotations: Some(meta.to_annotations(ring)),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(DATA_KEY.to_owned(), ByteString(ring.to_text().as_bytes().to_vec()))])),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// The copy for one target namespace: byte-identical keyring data.
pub fn copy_secret(
    skr: &SecretKeyring,
    spec: &ValidSpec,
    namespace: &str,
    keyring_bytes: &[u8],
    ids: &str,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(spec.secret_name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(managed_labels(skr, "copy")),
            annotations: Some(BTreeMap::from([(ANN_KEY_IDS.to_owned(), ids.to_owned())])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(DATA_KEY.to_owned(), ByteString(keyring_bytes.to_vec()))])),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// Whether an existing copy already is what `copy_secret` would write.
pub fn copy_is_current(existing: &Secret, keyring_bytes: &[u8], ids: &str, label: &str) -> bool {
    existing.data.as_ref().and_then(|d| d.get(DATA_KEY)).is_some_and(|b| b.0 == keyring_bytes)
        && existing.metadata.annotations.as_ref().and_then(|a| a.get(ANN_KEY_IDS)).is_some_and(|v| v == ids)
        && existing.metadata.labels.as_ref().and_then(|l| l.get(LABEL_KEYRING)).is_some_and(|v| v == label)
}

#[cfg(test)]
mod tests {
    use encstr_core::Seed;

    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn skr(spec: SecretKeyringSpec) -> SecretKeyring {
        let mut s = SecretKeyring::new("payments", spec);
        s.metadata.namespace = Some("platform".into());
        s
    }

    fn key(b: u8) -> Key {
        Key::from_seed(Seed::from_bytes([b; 32]))
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2160h"), Some(Duration::from_secs(2160 * 3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        for bad in ["", "5", "h", "5d", "1h-3m", "soon"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn validation_reports_the_field() {
        let mut spec = SecretKeyringSpec {
            rotation: Some(Rotation { every: Some("90 days".into()), promotion_delay: None }),
            ..SecretKeyringSpec::default()
        };
        assert_eq!(validate(&skr(spec.clone())).unwrap_err().reason, "InvalidDuration");
        spec.rotation = None;
        spec.targets.namespaces = vec!["Bad_NS".into()];
        assert_eq!(validate(&skr(spec.clone())).unwrap_err().reason, "InvalidNamespace");
        spec.targets.namespaces = vec!["ok-ns".into()];
        spec.retention = Some(Retention { max_keys: Some(0) });
        assert_eq!(validate(&skr(spec.clone())).unwrap_err().reason, "InvalidRetention");
        spec.retention = None;
        let v = validate(&skr(spec)).unwrap();
        assert_eq!((v.secret_name.as_str(), v.promotion_delay), ("payments", DEFAULT_PROMOTION_DELAY));
    }

    #[test]
    fn lifecycle_round_trips_through_annotations() {
        let ring = Keyring::new(vec![key(1), key(2), key(3)]).unwrap();
        let meta = KeyMeta {
            staged: Some(key(2).id()),
            distributed_at: Some(t("2026-11-23T09:00:00Z")),
            created: BTreeMap::from([
                (key(1).id(), t("2026-01-01T00:00:00Z")),
                (key(2).id(), t("2026-11-23T08:00:00Z")),
            ]),
            promoted_at: Some(t("2026-06-01T00:00:00Z")),
            rotate_handled: Some("17".into()),
            last_rotation: Some(t("2026-11-23T08:00:00Z")),
        };
        let ann = meta.to_annotations(&ring);
        assert_eq!(ann[ANN_KEY_IDS], format!("{},{},{}", key(1).id(), key(2).id(), key(3).id()));
        assert_eq!(KeyMeta::from_annotations(&ann), meta);
        assert!(!ann.values().any(|v| v.contains(key(1).seed().to_base64().as_str())));
    }

    #[test]
    fn staged_rotation_goes_stage_distribute_delay_promote() {
        let spec = validate(&skr(SecretKeyringSpec {
            rotation: Some(Rotation { every: None, promotion_delay: Some("2m".into()) }),
            ..SecretKeyringSpec::default()
        }))
        .unwrap();
        let mut ring = Keyring::new(vec![key(1)]).unwrap();
        let mut meta = KeyMeta::default();
        let now = t("2026-11-23T09:00:00Z");
        let obs = |ring: &Keyring, meta: &KeyMeta, req: Option<&str>, current: bool, now: Timestamp| {
            next_step(&Observed {
                spec: &spec,
                ring,
                meta,
                rotate_request: req,
                all_copies_current: current,
                usage: None,
                now,
            })
        };
        assert_eq!(obs(&ring, &meta, None, true, now), None);
        let step = obs(&ring, &meta, Some("1"), true, now).unwrap();
        assert_eq!(step, Step::Stage(RotationReason::Requested));
        apply_step(&step, &mut ring, &mut meta, Some("1"), now).unwrap();
        let staged = meta.staged.unwrap();
        assert_eq!(ring.ids(), vec![staged, key(1).id()], "staged just before the primary");
        assert_eq!(obs(&ring, &meta, Some("1"), false, now), None, "waits for distribution");
        assert_eq!(obs(&ring, &meta, Some("2"), false, now), Some(Step::AcknowledgeRequest));
        let step = obs(&ring, &meta, Some("1"), true, now).unwrap();
        assert_eq!(step, Step::MarkDistributed);
        apply_step(&step, &mut ring, &mut meta, Some("1"), now).unwrap();
        assert_eq!(obs(&ring, &meta, Some("1"), true, t("2026-11-23T09:01:59Z")), None, "promotionDelay");
        let later = t("2026-11-23T09:02:00Z");
        let step = obs(&ring, &meta, Some("1"), true, later).unwrap();
        assert_eq!(step, Step::Promote);
        apply_step(&step, &mut ring, &mut meta, Some("1"), later).unwrap();
        assert_eq!(ring.primary().id(), staged);
        assert_eq!(
            key_states(&ring, &meta),
            vec![(key(1).id(), KeyState::DecryptOnly), (staged, KeyState::Primary)]
        );
        assert_eq!(obs(&ring, &meta, Some("1"), true, later), None, "a handled request is not repeated");
    }

    #[test]
    fn scheduled_rotation_and_safe_pruning() {
        let spec = validate(&skr(SecretKeyringSpec {
            rotation: Some(Rotation { every: Some("24h".into()), promotion_delay: None }),
            retention: Some(Retention { max_keys: Some(2) }),
            ..SecretKeyringSpec::default()
        }))
        .unwrap();
        let ring = Keyring::new(vec![key(1), key(2), key(3), key(4)]).unwrap();
        let meta = KeyMeta { promoted_at: Some(t("2026-11-23T00:00:00Z")), ..KeyMeta::default() };
        let usage = BTreeMap::from([(key(1).id(), 3)]);
        let o = |now, usage| Observed {
            spec: &spec,
            ring: &ring,
            meta: &meta,
            rotate_request: None,
            all_copies_current: true,
            usage,
            now,
        };
        assert_eq!(
            next_step(&o(t("2026-11-24T00:00:00Z"), None)),
            Some(Step::Stage(RotationReason::Scheduled))
        );
        assert_eq!(prune_candidates(&spec, &ring, &meta), vec![key(1).id(), key(2).id()]);
        assert_eq!(
            next_step(&o(t("2026-11-23T01:00:00Z"), Some(&usage))),
            Some(Step::Prune(vec![key(2).id()])),
            "key 1 is in use"
        );
        assert_eq!(next_step(&o(t("2026-11-23T01:00:00Z"), None)), None, "no usage counted, nothing pruned");
    }

    #[test]
    fn copies_are_byte_identical_and_labelled() {
        let s = skr(SecretKeyringSpec::default());
        let spec = validate(&s).unwrap();
        let ring = Keyring::new(vec![key(1)]).unwrap();
        let bytes = ring.to_text().as_bytes().to_vec();
        let copy = copy_secret(&s, &spec, "team-a", &bytes, &key_ids(&ring));
        assert_eq!(copy.metadata.labels.as_ref().unwrap()[LABEL_KEYRING], "platform.payments");
        assert!(copy_is_current(&copy, &bytes, &key_ids(&ring), "platform.payments"));
        assert!(!copy_is_current(&copy, b"other", &key_ids(&ring), "platform.payments"));
    }
}
