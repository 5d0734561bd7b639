//! Pure functions: validate a spec, read and write the key lifecycle that
//! the master Secret carries, decide the next change to the master, and
//! build the Secrets that should exist. No API calls here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use encstr_core::{Key, KeyId, Keyring};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::crd::*;
use crate::keyring::KeyringResource;

/// Default `rotation.promotionDelay`.
pub const DEFAULT_PROMOTION_DELAY: Duration = Duration::from_secs(120);
/// Default `retention.minDecryptOnlyAge`.
pub const DEFAULT_MIN_DECRYPT_ONLY_AGE: Duration = Duration::from_secs(24 * 3600);
/// How many of its own prunes the master remembers.
pub const PRUNED_MEMORY: usize = 32;

/// A spec that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSpec {
    /// Name of the master (and of every copy).
    pub secret_name: String,
    /// Listed target namespaces (cluster kind).
    pub namespaces: BTreeSet<String>,
    /// Target namespaces by label (cluster kind).
    pub selector: Option<LabelSelector>,
    /// Rotate when the primary is older than this.
    pub every: Option<Duration>,
    /// Wait after distribution before promoting.
    pub promotion_delay: Duration,
    /// Keep at most this many keys.
    pub max_keys: Option<usize>,
    /// Keep a former primary at least this long.
    pub min_decrypt_only_age: Duration,
    /// Retention may remove imported keys too.
    pub prune_imported: bool,
    /// Secret name and key to import from.
    pub import: Option<(String, String)>,
    /// Backups, if configured.
    pub backup: Option<crate::backup::Plan>,
    /// What deletion does.
    pub deletion_policy: DeletionPolicy,
}

/// Why something cannot proceed: a CamelCase reason and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Condition reason / event reason.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

impl Invalid {
    /// Shorthand.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Invalid { reason, message: message.into() }
    }
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

/// A DNS-1123 label (namespace names).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain (Secret names).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn duration(
    field: &str,
    value: Option<&String>,
    default: Option<Duration>,
    min: Duration,
) -> Result<Option<Duration>, Invalid> {
    match value {
        None => Ok(default),
        Some(s) => match parse_duration(s) {
            Some(d) if d >= min => Ok(Some(d)),
            _ => Err(Invalid::new(
                "InvalidDuration",
                format!(
                    "{field} {s:?} is not a duration of at least {}s (like 2160h, 2m, 1h30m)",
                    min.as_secs()
                ),
            )),
        },
    }
}

/// The listed target namespaces and the selector, if valid.
fn validate_targets(t: Option<&Targets>) -> Result<(BTreeSet<String>, Option<LabelSelector>), Invalid> {
    let Some(t) = t else { return Ok((BTreeSet::new(), None)) };
    if let Some(ns) = t.namespaces.iter().find(|n| !is_dns_label(n)) {
        return Err(Invalid::new(
            "InvalidNamespace",
            format!("spec.targets.namespaces: {ns:?} is not a valid namespace name"),
        ));
    }
    let known = |op: &str| matches!(op, "In" | "NotIn" | "Exists" | "DoesNotExist");
    if let Some(e) = t
        .namespace_selector
        .iter()
        .flat_map(|s| s.match_expressions.iter().flatten())
        .find(|e| !known(&e.operator))
    {
        return Err(Invalid::new(
            "InvalidSelector",
            format!("spec.targets.namespaceSelector: unknown operator {:?}", e.operator),
        ));
    }
    Ok((t.namespaces.iter().cloned().collect(), t.namespace_selector.clone()))
}

/// Validate a spec (the CRD schema checks much of the same, but objects can
/// predate it or be stored without validation).
pub fn validate<K: KeyringResource>(k: &K) -> Result<ValidSpec, Invalid> {
    let name = k.name_any();
    if name.len() > MAX_NAME {
        return Err(Invalid::new(
            "InvalidName",
            format!(
                "the name {name:?} has {} characters; it is used as a label value and must be at most {MAX_NAME}",
                name.len()
            ),
        ));
    }
    let c = k.common();
    let secret_name = k.secret_name();
    if !is_dns_subdomain(&secret_name) {
        return Err(Invalid::new(
            "InvalidSecretName",
            format!("spec.secretName {secret_name:?} is not a valid Secret name"),
        ));
    }
    let (namespaces, selector) = validate_targets(k.targets())?;
    let rotation = c.rotation.cloned().unwrap_or_default();
    let every = duration("spec.rotation.every", rotation.every.as_ref(), None, Duration::from_secs(1))?;
    let promotion_delay = duration(
        "spec.rotation.promotionDelay",
        rotation.promotion_delay.as_ref(),
        Some(DEFAULT_PROMOTION_DELAY),
        Duration::ZERO,
    )?
    .unwrap_or(DEFAULT_PROMOTION_DELAY);
    let retention = c.retention.cloned().unwrap_or_default();
    let max_keys = match retention.max_keys {
        Some(0) => return Err(Invalid::new("InvalidRetention", "spec.retention.maxKeys must be at least 1")),
        other => other.map(|n| n as usize),
    };
    let min_decrypt_only_age = duration(
        "spec.retention.minDecryptOnlyAge",
        retention.min_decrypt_only_age.as_ref(),
        Some(DEFAULT_MIN_DECRYPT_ONLY_AGE),
        Duration::ZERO,
    )?
    .unwrap_or(DEFAULT_MIN_DECRYPT_ONLY_AGE);
    let import = c.import_from.map(|i| {
        (i.secret_ref.name.clone(), i.secret_ref.key.clone().unwrap_or_else(|| DATA_KEY.to_owned()))
    });
    if let Some((name, _)) = &import
        && !is_dns_subdomain(name)
    {
        return Err(Invalid::new(
            "InvalidImport",
            format!("spec.importFrom.secretRef.name {name:?} is not a valid Secret name"),
        ));
    }
    let backup = c.backup.map(crate::backup::validate).transpose().map_err(|(r, m)| Invalid::new(r, m))?;
    Ok(ValidSpec {
        backup,
        secret_name,
        namespaces,
        selector,
        every,
        promotion_delay,
        max_keys,
        min_decrypt_only_age,
        prune_imported: retention.prune_imported.unwrap_or(false),
        import,
        deletion_policy: c.deletion_policy,
    })
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
    /// When each key became primary.
    pub promoted: BTreeMap<KeyId, Timestamp>,
    /// When each former primary became decrypt-only.
    pub retired: BTreeMap<KeyId, Timestamp>,
    /// Keys the operator pruned itself, oldest first.
    pub pruned: Vec<KeyId>,
    /// The last `encstr.io/rotate` value handled.
    pub rotate_handled: Option<String>,
    /// When the last rotation started.
    pub last_rotation: Option<Timestamp>,
    /// When keys retention wants gone were last seen in use.
    pub last_used: BTreeMap<KeyId, Timestamp>,
    /// Keys read from `spec.importFrom`.
    pub imported: BTreeSet<KeyId>,
}

fn parse_times(v: Option<&String>) -> BTreeMap<KeyId, Timestamp> {
    v.map(|v| {
        v.split(',')
            .filter_map(|p| p.split_once('='))
            .filter_map(|(id, t)| Some((id.parse().ok()?, t.parse().ok()?)))
            .collect()
    })
    .unwrap_or_default()
}

fn write_times(
    a: &mut BTreeMap<String, String>,
    key: &str,
    times: &BTreeMap<KeyId, Timestamp>,
    ids: &[KeyId],
) {
    let list: Vec<String> =
        ids.iter().filter_map(|id| times.get(id).map(|t| format!("{id}={}", fmt_time(*t)))).collect();
    if !list.is_empty() {
        a.insert(key.to_owned(), list.join(","));
    }
}

impl KeyMeta {
    /// Read from annotations (unparsable entries are ignored).
    pub fn from_annotations(a: &BTreeMap<String, String>) -> Self {
        let time = |k: &str| a.get(k).and_then(|v| v.parse::<Timestamp>().ok());
        KeyMeta {
            staged: a.get(ANN_STAGED).and_then(|v| v.parse().ok()),
            distributed_at: time(ANN_STAGED_DISTRIBUTED),
            created: parse_times(a.get(ANN_CREATED)),
            promoted: parse_times(a.get(ANN_PROMOTED)),
            retired: parse_times(a.get(ANN_RETIRED)),
            pruned: a
                .get(ANN_PRUNED)
                .map(|v| v.split(',').filter_map(|id| id.parse().ok()).collect())
                .unwrap_or_default(),
            rotate_handled: a.get(ANN_ROTATE_HANDLED).cloned(),
            last_rotation: time(ANN_LAST_ROTATION),
            last_used: parse_times(a.get(ANN_LAST_USED)),
            imported: a
                .get(ANN_IMPORTED)
                .map(|v| v.split(',').filter_map(|id| id.parse().ok()).collect())
                .unwrap_or_default(),
        }
    }

    /// Write as annotations, for the keys of `ring` only.
    pub fn to_annotations(&self, ring: &Keyring) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        a.insert(ANN_KEY_IDS.to_owned(), key_ids(ring));
        let ids = ring.ids();
        if let Some(s) = self.staged.filter(|s| ids.contains(s)) {
            a.insert(ANN_STAGED.to_owned(), s.to_string());
            if let Some(t) = self.distributed_at {
                a.insert(ANN_STAGED_DISTRIBUTED.to_owned(), fmt_time(t));
            }
        }
        write_times(&mut a, ANN_CREATED, &self.created, &ids);
        write_times(&mut a, ANN_PROMOTED, &self.promoted, &ids);
        write_times(&mut a, ANN_RETIRED, &self.retired, &ids);
        write_times(&mut a, ANN_LAST_USED, &self.last_used, &ids);
        let imported: Vec<String> =
            ids.iter().filter(|id| self.imported.contains(id)).map(ToString::to_string).collect();
        if !imported.is_empty() {
            a.insert(ANN_IMPORTED.to_owned(), imported.join(","));
        }
        if !self.pruned.is_empty() {
            a.insert(
                ANN_PRUNED.to_owned(),
                self.pruned.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            );
        }
        if let Some(v) = &self.rotate_handled {
            a.insert(ANN_ROTATE_HANDLED.to_owned(), v.clone());
        }
        if let Some(t) = self.last_rotation {
            a.insert(ANN_LAST_ROTATION.to_owned(), fmt_time(t));
        }
        a
    }

    /// The lifecycle of a new master: every key created now; the primary
    /// promoted now; imported older keys decrypt-only from now.
    pub fn initial(ring: &Keyring, rotate_request: Option<&str>, now: Timestamp) -> Self {
        let primary = ring.primary().id();
        let ids = ring.ids();
        KeyMeta {
            created: ids.iter().map(|id| (*id, now)).collect(),
            promoted: BTreeMap::from([(primary, now)]),
            retired: ids.iter().filter(|id| **id != primary).map(|id| (*id, now)).collect(),
            rotate_handled: rotate_request.map(str::to_owned),
            ..KeyMeta::default()
        }
    }

    /// When the current primary was promoted (or created).
    pub fn primary_since(&self, ring: &Keyring) -> Option<Timestamp> {
        let id = ring.primary().id();
        self.promoted.get(&id).or_else(|| self.created.get(&id)).copied()
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
    /// Whether every target copy is identical to the master, as the API
    /// server (not a cache) says.
    pub all_copies_current: bool,
    /// Whether every target namespace exists and is active (a missing or
    /// terminating one was not scanned: its tokens are unknown).
    pub targets_complete: bool,
    /// Token counts per key id, from a complete scan (`None`: not counted,
    /// or a list failed).
    pub usage: Option<&'a BTreeMap<KeyId, u32>>,
    /// The least time between the starts of two rotations.
    pub min_rotation_interval: Duration,
    /// Keys whose recipient is published (the status, or a recipient
    /// ConfigMap of the keyring's): never pruned, since values sealed to
    /// them may not be deployed yet.
    pub published: &'a [KeyId],
    /// How stale the counts may be ([`sampling_slack`]): added to the
    /// quiet period.
    pub sampling_slack: Duration,
    /// Now.
    pub now: Timestamp,
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or_default()
}

/// Keys `maxKeys` wants gone, oldest first: decrypt-only keys beyond
/// `maxKeys` that have been decrypt-only for `minDecryptOnlyAge`, imported
/// ones included.
fn beyond_max(spec: &ValidSpec, ring: &Keyring, meta: &KeyMeta, now: Timestamp) -> Vec<KeyId> {
    let Some(max) = spec.max_keys else { return Vec::new() };
    let excess = ring.len().saturating_sub(max);
    key_states(ring, meta)
        .into_iter()
        .filter(|(_, s)| *s == KeyState::DecryptOnly)
        .map(|(id, _)| id)
        .take(excess)
        .filter(|id| meta.retired.get(id).is_some_and(|t| elapsed(*t, now) >= spec.min_decrypt_only_age))
        .collect()
}

/// Whether retention keeps `id` because it was imported: its tokens may
/// live outside the cluster, where the usage count cannot see them, so
/// only `retention.pruneImported` lets it go.
fn kept_as_imported(spec: &ValidSpec, meta: &KeyMeta, id: KeyId) -> bool {
    !spec.prune_imported && meta.imported.contains(&id)
}

/// Keys retention wants gone, oldest first: decrypt-only keys beyond
/// `maxKeys` that have been decrypt-only for `minDecryptOnlyAge`, except
/// imported ones without `retention.pruneImported` (they still take their
/// place among the oldest). (Usage is checked afterwards.)
pub fn prune_candidates(spec: &ValidSpec, ring: &Keyring, meta: &KeyMeta, now: Timestamp) -> Vec<KeyId> {
    beyond_max(spec, ring, meta, now).into_iter().filter(|id| !kept_as_imported(spec, meta, *id)).collect()
}

/// Keys `maxKeys` wants gone that retention keeps because they were
/// imported (see [`prune_candidates`]).
pub fn kept_imported(spec: &ValidSpec, ring: &Keyring, meta: &KeyMeta, now: Timestamp) -> Vec<KeyId> {
    beyond_max(spec, ring, meta, now).into_iter().filter(|id| kept_as_imported(spec, meta, *id)).collect()
}

/// When the next key retention wants gone becomes old enough to be pruned
/// (so the keyring is looked at again then).
pub fn next_prune_at(spec: &ValidSpec, ring: &Keyring, meta: &KeyMeta) -> Option<Timestamp> {
    let max = spec.max_keys?;
    let excess = ring.len().saturating_sub(max);
    let age = k8s_openapi::jiff::SignedDuration::try_from(spec.min_decrypt_only_age).ok()?;
    key_states(ring, meta)
        .into_iter()
        .filter(|(_, s)| *s == KeyState::DecryptOnly)
        .take(excess)
        .filter(|(id, _)| !kept_as_imported(spec, meta, *id))
        .filter_map(|(id, _)| meta.retired.get(&id).map(|t| *t + age))
        .min()
}

/// Why a rotation is due (requested or scheduled), if one is and no key
/// is staged.
fn rotation_due(o: &Observed<'_>) -> Option<RotationReason> {
    if o.meta.staged.is_some_and(|s| o.ring.contains(s)) {
        return None;
    }
    if o.rotate_request.is_some_and(|r| Some(r) != o.meta.rotate_handled.as_deref()) {
        return Some(RotationReason::Requested);
    }
    let every = o.spec.every?;
    o.meta
        .primary_since(o.ring)
        .is_none_or(|t| elapsed(t, o.now) >= every)
        .then_some(RotationReason::Scheduled)
}

/// When a due rotation may start, if it must wait: not sooner than the
/// minimum interval after the last rotation started (so an
/// `encstr.io/rotate` annotation bumped in a loop, or a short
/// `rotation.every`, cannot generate keys without bound).
pub fn rotation_deferred(o: &Observed<'_>) -> Option<(RotationReason, Timestamp)> {
    let why = rotation_due(o)?;
    let last = o.meta.last_rotation?;
    let at = last + k8s_openapi::jiff::SignedDuration::try_from(o.min_rotation_interval).ok()?;
    (o.now < at).then_some((why, at))
}

/// Decide the next change to the master, if any.
pub fn next_step(o: &Observed<'_>) -> Option<Step> {
    // No key staged: a rotation that is due starts, unless the minimum
    // interval defers it (`rotation_deferred`).
    if rotation_deferred(o).is_none()
        && let Some(why) = rotation_due(o)
    {
        return Some(Step::Stage(why));
    }
    if o.meta.staged.is_some_and(|s| o.ring.contains(s)) {
        let requested = o.rotate_request.is_some_and(|r| Some(r) != o.meta.rotate_handled.as_deref());
        if requested {
            return Some(Step::AcknowledgeRequest);
        }
        match o.meta.distributed_at {
            None if o.all_copies_current => return Some(Step::MarkDistributed),
            Some(at) if o.all_copies_current && elapsed(at, o.now) >= o.spec.promotion_delay => {
                return Some(Step::Promote);
            }
            _ => {}
        }
    }
    // Pruning needs a complete count of every target, and a quiet period
    // since the key was last seen in use (a namespace deleted and made
    // again with its config must not lose the key meanwhile).
    let usage = o.usage.filter(|_| o.targets_complete)?;
    let removable: Vec<KeyId> = prune_candidates(o.spec, o.ring, o.meta, o.now)
        .into_iter()
        .filter(|id| usage.get(id).copied().unwrap_or(0) == 0)
        .filter(|id| quiet(o.spec, o.meta, *id, o.now, o.sampling_slack))
        .filter(|id| !o.published.contains(id))
        .collect();
    (!removable.is_empty()).then_some(Step::Prune(removable))
}

/// How stale a recorded last use may be before it is written again (so a
/// blocked key costs at most one master write per this interval): a
/// quarter of `minDecryptOnlyAge`, at most an hour.
pub fn last_used_granularity(spec: &ValidSpec) -> Duration {
    (spec.min_decrypt_only_age / 4).min(Duration::from_secs(3600))
}

/// The longest a usage count used for this keyring's decisions may be
/// reused (a shared scan backs off while nothing changes): the recording's
/// granularity, at least the scan interval. A token removed unseen may
/// have been in use that much after the last scan that found it.
pub fn sampling_slack(spec: &ValidSpec, scan_interval: Duration) -> Duration {
    last_used_granularity(spec).max(scan_interval)
}

/// Whether `id` has not been seen in use for `minDecryptOnlyAge`, plus the
/// recording's granularity and `slack` (how stale the counts that did not
/// find it may be), so the quiet period is never shorter.
fn quiet(spec: &ValidSpec, meta: &KeyMeta, id: KeyId, now: Timestamp, slack: Duration) -> bool {
    meta.last_used
        .get(&id)
        .is_none_or(|t| elapsed(*t, now) >= spec.min_decrypt_only_age + last_used_granularity(spec) + slack)
}

/// Whether any of `candidates` has been quiet long enough to be pruned if
/// nothing uses it now.
pub fn any_quiet(
    spec: &ValidSpec,
    meta: &KeyMeta,
    candidates: &[KeyId],
    now: Timestamp,
    slack: Duration,
) -> bool {
    candidates.iter().any(|id| quiet(spec, meta, *id, now, slack))
}

/// Record when keys retention wants gone were last seen in use: now, if a
/// scan finds them in use (and the record is older than the granularity),
/// and now too for a candidate with no record at all — nothing says it was
/// unused before (a namespace that used it may have just gone), so its
/// quiet period starts now. Whether `meta` changed.
pub fn record_use(
    spec: &ValidSpec,
    meta: &mut KeyMeta,
    candidates: &[KeyId],
    usage: &BTreeMap<KeyId, u32>,
    now: Timestamp,
) -> bool {
    let mut changed = false;
    for id in candidates {
        let used = usage.get(id).copied().unwrap_or(0) > 0;
        let stale = match meta.last_used.get(id) {
            None => true,
            Some(t) => used && elapsed(*t, now) >= last_used_granularity(spec),
        };
        if stale {
            meta.last_used.insert(*id, now);
            changed = true;
        }
    }
    changed
}

/// How many keys [`fresh_key`] draws before it gives up (a collision of
/// 4-byte ids is a one in millions event; many in a row mean a broken
/// generator).
const KEY_DRAWS: usize = 16;

/// A new key from `generate` whose id no key of `ring` has, and that the
/// operator did not prune itself: two keys of one id would make promotion,
/// pruning and the lifecycle ambiguous, and a pruned id coming back would
/// confuse tokens and the guards. A colliding key is dropped and another
/// drawn.
pub fn fresh_key(
    ring: &Keyring,
    meta: &KeyMeta,
    mut generate: impl FnMut() -> Result<Key, encstr_core::Error>,
) -> Result<Key, encstr_core::Error> {
    let mut last = None;
    for _ in 0..KEY_DRAWS {
        let key = generate()?;
        let id = key.id();
        if !ring.contains(id) && !meta.pruned.contains(&id) {
            return Ok(key);
        }
        last = Some(id);
    }
    Err(encstr_core::Error::DuplicateKey { line: ring.len() + 1, key_id: last.expect("drawn") })
}

/// Apply a step to the keyring and its lifecycle (generating a key for
/// `Stage`).
pub fn apply_step(
    step: &Step,
    ring: &mut Keyring,
    meta: &mut KeyMeta,
    rotate_request: Option<&str>,
    now: Timestamp,
) -> Result<(), encstr_core::Error> {
    apply_step_with(step, ring, meta, rotate_request, now, Key::generate)
}

/// [`apply_step`] with the key generator given.
pub fn apply_step_with(
    step: &Step,
    ring: &mut Keyring,
    meta: &mut KeyMeta,
    rotate_request: Option<&str>,
    now: Timestamp,
    generate: impl FnMut() -> Result<Key, encstr_core::Error>,
) -> Result<(), encstr_core::Error> {
    match step {
        Step::Stage(_) => {
            let key = fresh_key(ring, meta, generate)?;
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
                let former = ring.primary().id();
                ring.promote(id)?;
                meta.promoted.insert(id, now);
                meta.retired.insert(former, now);
                meta.distributed_at = None;
            }
        }
        Step::Prune(ids) => {
            for id in ids {
                ring.remove(*id)?;
                meta.created.remove(id);
                meta.promoted.remove(id);
                meta.retired.remove(id);
                meta.imported.remove(id);
                meta.pruned.push(*id);
            }
            let excess = meta.pruned.len().saturating_sub(PRUNED_MEMORY);
            meta.pruned.drain(..excess);
        }
    }
    Ok(())
}

/// Annotations the operator owns on the master and copies.
fn ours(key: &str) -> bool {
    key.starts_with(LABEL_PREFIX) && !matches!(key, ANN_ROTATE | ANN_RESTORE_FROM | ANN_ACCEPT_MISSING)
}

/// The Secret to write: `existing` (if any) with our labels, annotations
/// and keyring data; other owners' labels and annotations are kept.
pub fn secret(
    existing: Option<&Secret>,
    namespace: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    keyring_bytes: &[u8],
) -> Secret {
    let mut s = existing.cloned().unwrap_or_default();
    s.metadata.name = Some(name.to_owned());
    s.metadata.namespace = Some(namespace.to_owned());
    s.metadata.managed_fields = None;
    let mut l = s.metadata.labels.take().unwrap_or_default();
    l.retain(|k, _| !k.starts_with(LABEL_PREFIX));
    l.extend(labels);
    s.metadata.labels = Some(l);
    let mut a = s.metadata.annotations.take().unwrap_or_default();
    a.retain(|k, _| !ours(k));
    a.extend(annotations);
    s.metadata.annotations = Some(a);
    let mut data = s.data.take().unwrap_or_default();
    data.insert(DATA_KEY.to_owned(), ByteString(keyring_bytes.to_vec()));
    s.data = Some(data);
    s.string_data = None;
    if s.type_.is_none() {
        s.type_ = Some("Opaque".into());
    }
    s
}

/// Whether an existing master already carries exactly this keyring and
/// these operator annotations (a master edited by hand, or restored, is
/// rewritten once it is accepted).
pub fn master_is_current(
    existing: &Secret,
    keyring_bytes: &[u8],
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> bool {
    let l = existing.labels();
    let mine: BTreeMap<&String, &String> = existing.annotations().iter().filter(|(k, _)| ours(k)).collect();
    let want: BTreeMap<&String, &String> = annotations.iter().collect();
    existing.data.as_ref().and_then(|d| d.get(DATA_KEY)).is_some_and(|b| b.0 == keyring_bytes)
        && labels.iter().all(|(k, v)| l.get(k) == Some(v))
        && mine == want
}

/// Whether an existing copy already is what [`secret`] would write.
pub fn copy_is_current(
    existing: &Secret,
    keyring_bytes: &[u8],
    ids: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let l = existing.labels();
    existing.data.as_ref().and_then(|d| d.get(DATA_KEY)).is_some_and(|b| b.0 == keyring_bytes)
        && existing.annotations().get(ANN_KEY_IDS).is_some_and(|v| v == ids)
        && labels.iter().all(|(k, v)| l.get(k) == Some(v))
}

/// The name of the ConfigMap publishing a keyring's recipient.
pub fn recipient_config_map_name(secret_name: &str) -> String {
    format!("{secret_name}{RECIPIENT_SUFFIX}")
}

/// The ConfigMap publishing `recipient` (public text): `existing` (if any)
/// with the keyring's labels and its data key `recipient`; the others'
/// labels, annotations and data are kept.
pub fn recipient_config_map(
    existing: Option<&ConfigMap>,
    namespace: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    recipient: &str,
) -> ConfigMap {
    let mut c = existing.cloned().unwrap_or_default();
    c.metadata.name = Some(name.to_owned());
    c.metadata.namespace = Some(namespace.to_owned());
    c.metadata.managed_fields = None;
    let mut l = c.metadata.labels.take().unwrap_or_default();
    l.retain(|k, _| !k.starts_with(LABEL_PREFIX));
    l.extend(labels);
    c.metadata.labels = Some(l);
    let mut data = c.data.take().unwrap_or_default();
    data.insert(RECIPIENT_KEY.to_owned(), recipient.to_owned());
    c.data = Some(data);
    c
}

/// Whether an existing recipient ConfigMap already publishes `recipient`
/// with these labels.
pub fn recipient_is_current(
    existing: &ConfigMap,
    recipient: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let l = existing.labels();
    existing.data.as_ref().and_then(|d| d.get(RECIPIENT_KEY)).is_some_and(|r| r == recipient)
        && labels.iter().all(|(k, v)| l.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use encstr_core::Seed;

    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cskr(spec: ClusterSecretKeyringSpec) -> ClusterSecretKeyring {
        ClusterSecretKeyring::new("payments", spec)
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
        let mut spec = ClusterSecretKeyringSpec {
            rotation: Some(Rotation { every: Some("500ms".into()), promotion_delay: None }),
            ..Default::default()
        };
        assert_eq!(validate(&cskr(spec.clone())).unwrap_err().reason, "InvalidDuration");
        spec.rotation = None;
        spec.targets.namespaces = vec!["Bad_NS".into()];
        assert_eq!(validate(&cskr(spec.clone())).unwrap_err().reason, "InvalidNamespace");
        spec.targets.namespaces = vec!["ok-ns".into()];
        spec.retention = Some(Retention { max_keys: Some(0), ..Default::default() });
        assert_eq!(validate(&cskr(spec.clone())).unwrap_err().reason, "InvalidRetention");
        spec.retention = Some(Retention {
            max_keys: Some(2),
            min_decrypt_only_age: Some("forever".into()),
            ..Default::default()
        });
        assert_eq!(validate(&cskr(spec.clone())).unwrap_err().reason, "InvalidDuration");
        spec.retention = None;
        let v = validate(&cskr(spec.clone())).unwrap();
        assert_eq!(
            (v.secret_name.as_str(), v.promotion_delay, v.min_decrypt_only_age),
            ("payments", DEFAULT_PROMOTION_DELAY, DEFAULT_MIN_DECRYPT_ONLY_AGE)
        );
        let long = ClusterSecretKeyring::new(&"x".repeat(64), spec);
        assert_eq!(validate(&long).unwrap_err().reason, "InvalidName");
        let mut skr = SecretKeyring::new(&"y".repeat(63), SecretKeyringSpec::default());
        skr.metadata.namespace = Some("n".repeat(63));
        assert!(validate(&skr).is_ok(), "63 characters are fine");
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
            promoted: BTreeMap::from([(key(3).id(), t("2026-06-01T00:00:00Z"))]),
            retired: BTreeMap::from([(key(1).id(), t("2026-06-01T00:00:00Z"))]),
            last_used: BTreeMap::from([(key(1).id(), t("2026-11-20T00:00:00Z"))]),
            imported: BTreeSet::from([key(1).id()]),
            pruned: vec![key(9).id()],
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
        let spec = validate(&cskr(ClusterSecretKeyringSpec {
            rotation: Some(Rotation { every: None, promotion_delay: Some("2m".into()) }),
            ..Default::default()
        }))
        .unwrap();
        let mut ring = Keyring::new(vec![key(1)]).unwrap();
        let now = t("2026-11-23T09:00:00Z");
        let mut meta = KeyMeta::initial(&ring, None, now);
        let obs = |ring: &Keyring, meta: &KeyMeta, req: Option<&str>, current: bool, now: Timestamp| {
            next_step(&Observed {
                spec: &spec,
                ring,
                meta,
                rotate_request: req,
                all_copies_current: current,
                targets_complete: true,
                usage: None,
                min_rotation_interval: Duration::ZERO,
                published: &[],
                sampling_slack: Duration::ZERO,
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
        assert_eq!(obs(&ring, &meta, Some("1"), false, later), None, "a copy went stale: no promotion");
        let step = obs(&ring, &meta, Some("1"), true, later).unwrap();
        assert_eq!(step, Step::Promote);
        apply_step(&step, &mut ring, &mut meta, Some("1"), later).unwrap();
        assert_eq!(ring.primary().id(), staged);
        assert_eq!(
            key_states(&ring, &meta),
            vec![(key(1).id(), KeyState::DecryptOnly), (staged, KeyState::Primary)]
        );
        assert_eq!(meta.retired[&key(1).id()], later);
        assert_eq!(obs(&ring, &meta, Some("1"), true, later), None, "a handled request is not repeated");
    }

    #[test]
    fn scheduled_rotation_and_safe_pruning() {
        let spec = validate(&cskr(ClusterSecretKeyringSpec {
            rotation: Some(Rotation { every: Some("24h".into()), promotion_delay: None }),
            retention: Some(Retention {
                max_keys: Some(2),
                min_decrypt_only_age: Some("1h".into()),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .unwrap();
        let ring = Keyring::new(vec![key(1), key(2), key(3), key(4)]).unwrap();
        let retired_at = t("2026-11-23T00:00:00Z");
        let meta = KeyMeta {
            promoted: BTreeMap::from([(key(4).id(), retired_at)]),
            retired: [1, 2, 3].map(|b| (key(b).id(), retired_at)).into_iter().collect(),
            ..KeyMeta::default()
        };
        let usage = BTreeMap::from([(key(1).id(), 3)]);
        let o = |now, usage| Observed {
            spec: &spec,
            ring: &ring,
            meta: &meta,
            rotate_request: None,
            all_copies_current: true,
            targets_complete: true,
            usage,
            min_rotation_interval: Duration::ZERO,
            published: &[],
            sampling_slack: Duration::ZERO,
            now,
        };
        assert_eq!(
            next_step(&o(t("2026-11-24T00:00:00Z"), None)),
            Some(Step::Stage(RotationReason::Scheduled))
        );
        assert!(
            prune_candidates(&spec, &ring, &meta, t("2026-11-23T00:59:59Z")).is_empty(),
            "minDecryptOnlyAge"
        );
        let later = t("2026-11-23T01:00:00Z");
        assert_eq!(prune_candidates(&spec, &ring, &meta, later), vec![key(1).id(), key(2).id()]);
        assert_eq!(next_prune_at(&spec, &ring, &meta), Some(later), "looked at again when old enough");
        assert_eq!(
            next_step(&o(later, Some(&usage))),
            Some(Step::Prune(vec![key(2).id()])),
            "key 1 is in use"
        );
        assert_eq!(next_step(&o(later, None)), None, "no complete count, nothing pruned");
        // A key whose recipient is still published (a copy that never took
        // the new primary keeps the former one advertised) is kept: values
        // sealed to it may not be deployed yet.
        let published = [key(2).id()];
        assert_eq!(
            next_step(&Observed { published: &published, ..o(later, Some(&usage)) }),
            None,
            "published"
        );
        let mut r = ring.clone();
        let mut m = meta.clone();
        apply_step(&Step::Prune(vec![key(2).id()]), &mut r, &mut m, None, later).unwrap();
        assert_eq!(m.pruned, vec![key(2).id()], "the master remembers what the operator pruned");
        assert!(!m.retired.contains_key(&key(2).id()));
    }

    fn observed<'a>(
        spec: &'a ValidSpec,
        ring: &'a Keyring,
        meta: &'a KeyMeta,
        usage: &'a BTreeMap<KeyId, u32>,
        now: Timestamp,
    ) -> Observed<'a> {
        Observed {
            spec,
            ring,
            meta,
            rotate_request: None,
            all_copies_current: true,
            targets_complete: true,
            usage: Some(usage),
            min_rotation_interval: Duration::ZERO,
            published: &[],
            sampling_slack: Duration::ZERO,
            now,
        }
    }

    #[test]
    fn a_key_seen_in_use_is_pruned_only_after_a_quiet_period_and_a_complete_count() {
        let spec = validate(&cskr(ClusterSecretKeyringSpec {
            retention: Some(Retention {
                max_keys: Some(1),
                min_decrypt_only_age: Some("4h".into()),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .unwrap();
        let ring = Keyring::new(vec![key(1), key(2)]).unwrap();
        let start = t("2026-11-23T00:00:00Z");
        let mut meta = KeyMeta {
            promoted: BTreeMap::from([(key(2).id(), start)]),
            retired: BTreeMap::from([(key(1).id(), start)]),
            ..KeyMeta::default()
        };
        let old = key(1).id();
        let used = BTreeMap::from([(old, 1)]);
        let unused = BTreeMap::new();
        let step = |meta: &KeyMeta, usage, complete, now| {
            next_step(&Observed {
                spec: &spec,
                ring: &ring,
                meta,
                rotate_request: None,
                all_copies_current: true,
                targets_complete: complete,
                usage: Some(usage),
                min_rotation_interval: Duration::ZERO,
                published: &[],
                sampling_slack: Duration::ZERO,
                now,
            })
        };
        let seen = t("2026-11-23T05:00:00Z");
        assert!(record_use(&spec, &mut meta, &[old], &used, seen));
        assert!(
            !record_use(&spec, &mut meta, &[old], &used, t("2026-11-23T05:59:59Z")),
            "within the granularity"
        );
        assert!(record_use(&spec, &mut meta, &[old], &used, t("2026-11-23T06:00:00Z")), "an hour later");
        assert!(!record_use(&spec, &mut meta, &[old], &unused, t("2026-11-23T07:00:00Z")), "unused: kept");
        // A candidate never seen: its quiet period starts at the first scan.
        let mut fresh = meta.clone();
        fresh.last_used.clear();
        assert!(record_use(&spec, &mut fresh, &[old], &unused, t("2026-11-23T07:00:00Z")));
        assert_eq!(fresh.last_used[&old], t("2026-11-23T07:00:00Z"));
        meta.last_used.insert(old, seen);
        // Unused now, but seen 4 h + 1 h ago at most: kept.
        assert_eq!(step(&meta, &unused, true, t("2026-11-23T09:59:59Z")), None, "quiet period");
        let later = t("2026-11-23T10:00:00Z");
        assert_eq!(step(&meta, &unused, true, later), Some(Step::Prune(vec![old])));
        assert_eq!(step(&meta, &unused, false, later), None, "a target was not scanned");
        assert_eq!(step(&meta, &used, true, later), None, "in use");
        // Counts reused for up to 20 min (a shared scan backing off) may
        // have missed the key in use that much after `seen`: the quiet
        // period waits that much longer.
        let slack = sampling_slack(&spec, Duration::from_secs(20 * 60));
        assert_eq!(slack, Duration::from_secs(3600), "the granularity (1 h) is the larger");
        let slow = |now| {
            next_step(&Observed { sampling_slack: slack, ..observed(&spec, &ring, &meta, &unused, now) })
        };
        assert_eq!(slow(later), None, "quiet plus the slack");
        assert_eq!(slow(t("2026-11-23T11:00:00Z")), Some(Step::Prune(vec![old])));
        let ann = meta.to_annotations(&ring);
        assert_eq!(KeyMeta::from_annotations(&ann).last_used, meta.last_used, "kept in the master");
    }

    #[test]
    fn a_staged_key_never_shares_an_id_with_a_key_of_the_keyring_or_a_pruned_one() {
        let mut ring = Keyring::new(vec![key(1), key(2)]).unwrap();
        let now = t("2026-11-23T09:00:00Z");
        let mut meta = KeyMeta { pruned: vec![key(3).id()], ..KeyMeta::initial(&ring, None, now) };
        // The generator draws a key of the keyring, a pruned one, then a new one.
        let mut draws = vec![key(1), key(3), key(4)].into_iter();
        let step = Step::Stage(RotationReason::Requested);
        apply_step_with(&step, &mut ring, &mut meta, Some("1"), now, || Ok(draws.next().unwrap())).unwrap();
        assert_eq!(meta.staged, Some(key(4).id()));
        assert_eq!(ring.ids(), vec![key(1).id(), key(4).id(), key(2).id()]);
        // A generator that only collides is stopped, not looped on.
        let mut n = 0;
        let stuck = fresh_key(&ring, &meta, || {
            n += 1;
            Ok(key(2))
        });
        assert!(stuck.is_err() && n == KEY_DRAWS, "{n}");
    }

    #[test]
    fn rotations_start_at_most_once_per_minimum_interval() {
        let spec = validate(&cskr(ClusterSecretKeyringSpec {
            rotation: Some(Rotation { every: Some("1s".into()), promotion_delay: Some("0s".into()) }),
            ..Default::default()
        }))
        .unwrap();
        let mut ring = Keyring::new(vec![key(1)]).unwrap();
        let start = t("2026-11-23T09:00:00Z");
        let mut meta = KeyMeta::initial(&ring, None, start);
        let interval = Duration::from_secs(300);
        let decide = |ring: &Keyring, meta: &KeyMeta, req: Option<&str>, now: Timestamp| {
            let o = Observed {
                spec: &spec,
                ring,
                meta,
                rotate_request: req,
                all_copies_current: true,
                targets_complete: true,
                usage: None,
                min_rotation_interval: interval,
                published: &[],
                sampling_slack: Duration::ZERO,
                now,
            };
            (next_step(&o), rotation_deferred(&o))
        };
        // Never rotated: the first rotation is not deferred.
        let now = t("2026-11-23T09:00:02Z");
        assert_eq!(
            decide(&ring, &meta, Some("1"), now),
            (Some(Step::Stage(RotationReason::Requested)), None)
        );
        for step in [Step::Stage(RotationReason::Requested), Step::MarkDistributed, Step::Promote] {
            apply_step(&step, &mut ring, &mut meta, Some("1"), now).unwrap();
        }
        // Asked again at once (an annotation bumped in a loop), and the
        // schedule (every 1s) due too: deferred until the interval ends.
        let soon = t("2026-11-23T09:00:12Z");
        let until = t("2026-11-23T09:05:02Z");
        assert_eq!(decide(&ring, &meta, Some("2"), soon), (None, Some((RotationReason::Requested, until))));
        assert_eq!(decide(&ring, &meta, Some("1"), soon), (None, Some((RotationReason::Scheduled, until))));
        assert_eq!(
            decide(&ring, &meta, Some("2"), until),
            (Some(Step::Stage(RotationReason::Requested)), None),
            "then it starts"
        );
        // A request while a key is staged is still covered by that rotation.
        let mut staged = meta.clone();
        apply_step(&Step::Stage(RotationReason::Requested), &mut ring, &mut staged, Some("2"), until)
            .unwrap();
        let later = t("2026-11-23T09:05:03Z");
        assert_eq!(decide(&ring, &staged, Some("3"), later), (Some(Step::AcknowledgeRequest), None));
    }

    #[test]
    fn imported_keys_are_pruned_only_with_the_opt_in() {
        let spec_with = |opt_in| {
            validate(&cskr(ClusterSecretKeyringSpec {
                retention: Some(Retention {
                    max_keys: Some(1),
                    min_decrypt_only_age: Some("1h".into()),
                    prune_imported: opt_in,
                }),
                ..Default::default()
            }))
            .unwrap()
        };
        // Imported: keys 1 and 2; generated by a rotation since: 3, then 4.
        let ring = Keyring::new(vec![key(1), key(2), key(3), key(4)]).unwrap();
        let start = t("2026-11-23T00:00:00Z");
        let meta = KeyMeta {
            promoted: BTreeMap::from([(key(4).id(), start)]),
            retired: [1, 2, 3].map(|b| (key(b).id(), start)).into_iter().collect(),
            imported: BTreeSet::from([key(1).id(), key(2).id()]),
            ..KeyMeta::default()
        };
        let later = t("2026-11-23T05:00:00Z");
        let unused = BTreeMap::new();
        let step = |spec: &ValidSpec| {
            next_step(&Observed {
                spec,
                ring: &ring,
                meta: &meta,
                rotate_request: None,
                all_copies_current: true,
                targets_complete: true,
                usage: Some(&unused),
                min_rotation_interval: Duration::ZERO,
                published: &[],
                sampling_slack: Duration::ZERO,
                now: later,
            })
        };
        for opt_in in [None, Some(false)] {
            let spec = spec_with(opt_in);
            assert_eq!(prune_candidates(&spec, &ring, &meta, later), vec![key(3).id()], "{opt_in:?}");
            assert_eq!(kept_imported(&spec, &ring, &meta, later), vec![key(1).id(), key(2).id()]);
            assert_eq!(step(&spec), Some(Step::Prune(vec![key(3).id()])), "the generated key goes");
            assert_eq!(next_prune_at(&spec, &ring, &meta), Some(t("2026-11-23T01:00:00Z")));
        }
        let spec = spec_with(Some(true));
        let all = vec![key(1).id(), key(2).id(), key(3).id()];
        assert_eq!(prune_candidates(&spec, &ring, &meta, later), all);
        assert!(kept_imported(&spec, &ring, &meta, later).is_empty());
        assert_eq!(step(&spec), Some(Step::Prune(all)));
        // Only imported keys beyond maxKeys: no look is scheduled for them.
        let two = Keyring::new(vec![key(1), key(4)]).unwrap();
        assert_eq!(next_prune_at(&spec_with(None), &two, &meta), None);
        let (mut r, mut m) = (ring.clone(), meta.clone());
        apply_step(&Step::Prune(vec![key(1).id()]), &mut r, &mut m, None, later).unwrap();
        assert_eq!(m.imported, BTreeSet::from([key(2).id()]));
    }

    #[test]
    fn secrets_keep_other_owners_fields_and_copies_are_byte_identical() {
        let c = cskr(ClusterSecretKeyringSpec::default());
        let ring = Keyring::new(vec![key(1)]).unwrap();
        let bytes = ring.to_text().as_bytes().to_vec();
        let mut existing = Secret::default();
        existing.metadata.labels =
            Some(BTreeMap::from([("app".into(), "x".into()), (LABEL_ROLE.into(), "stale".into())]));
        existing.metadata.annotations =
            Some(BTreeMap::from([("note".into(), "keep".into()), (ANN_STAGED.into(), "deadbeef".into())]));
        let labels = c.managed_labels("copy");
        let ann = BTreeMap::from([(ANN_KEY_IDS.to_owned(), key_ids(&ring))]);
        let copy = secret(Some(&existing), "team-a", "payments", labels.clone(), ann, &bytes);
        let l = copy.metadata.labels.as_ref().unwrap();
        assert_eq!(
            (l["app"].as_str(), l[LABEL_CLUSTER_KEYRING].as_str(), l[LABEL_ROLE].as_str()),
            ("x", "payments", "copy")
        );
        let a = copy.metadata.annotations.as_ref().unwrap();
        assert_eq!(a["note"], "keep");
        assert!(!a.contains_key(ANN_STAGED), "stale operator annotations go");
        assert!(copy_is_current(&copy, &bytes, &key_ids(&ring), &labels));
        assert!(!copy_is_current(&copy, b"other", &key_ids(&ring), &labels));
    }
}
