//! The reconciler: one instrumented `reconcile` whose only top-level action
//! is the finalizer helper; `apply` converges the master Secret, the copies
//! and the status to what the pure functions in `desired` and `status` say;
//! `cleanup` applies the deletion policy. Writes use server-side apply with
//! one field manager; the master is written with its resourceVersion as a
//! precondition, one lifecycle step per write, so a crash at any point
//! resumes from what the master says and no key is lost or made twice.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use encstr_core::{KeyId, Keyring};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{Instrument as _, info, info_span, warn};
use zeroize::Zeroizing;

use crate::crd::*;
use crate::desired::{self, Invalid, KeyMeta, Observed, Step, ValidSpec};
use crate::error::{Error, Result};
use crate::metrics::{KeyStateLabels, KeyringLabels, Metrics, ResultLabel, TargetLabels};
use crate::status;
use crate::usage::Usage;

/// Default resync interval when nothing is pending.
pub const RESYNC: Duration = Duration::from_secs(300);

/// Shared state of all reconciles.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Event recorder (one for the process).
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Cluster-wide, or confined to some namespaces.
    pub scope: Scope,
    /// Reconcile every keyring this often even without changes.
    pub resync: Duration,
    /// Consecutive failures per SecretKeyring, for exponential backoff.
    pub failures: std::sync::Mutex<BTreeMap<String, u32>>,
}

/// Where the operator works.
#[derive(Debug)]
pub enum Scope {
    /// Everywhere (a ClusterRole): caches of all Namespaces and of the
    /// Secrets carrying the `encstr.io/keyring` label.
    Cluster {
        /// Every Namespace (targets by selector, existence).
        namespaces: Store<Namespace>,
        /// Labelled Secrets only.
        secrets: Store<Secret>,
    },
    /// Only these namespaces (Roles): SecretKeyrings in the home namespace,
    /// copies only to these; no namespace selectors.
    Confined(BTreeSet<String>),
}

/// Backoff after `n` consecutive failures: 250 ms doubling up to 5 minutes.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1u64 << n.min(11))).min(RESYNC)
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

/// Whether a label set matches a LabelSelector.
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// The target namespaces (list ∪ selector), without the own namespace, and
/// whether each exists (as far as the operator can see; `Err` explains why
/// it may not write there).
fn targets(skr: &SecretKeyring, spec: &ValidSpec, scope: &Scope) -> Vec<(String, Result<bool, String>)> {
    let own = skr.namespace().unwrap_or_default();
    let mut names: BTreeSet<String> = spec.namespaces.clone();
    if let (Some(sel), Scope::Cluster { namespaces, .. }) = (&skr.spec.targets.namespace_selector, scope) {
        for ns in namespaces.state() {
            if selector_matches(sel, ns.labels()) {
                names.insert(ns.name_any());
            }
        }
    }
    names.remove(&own);
    names
        .into_iter()
        .map(|n| {
            let state = match scope {
                Scope::Cluster { namespaces, .. } => Ok(namespaces
                    .get(&ObjectRef::new(&n))
                    .is_some_and(|ns| ns.metadata.deletion_timestamp.is_none())),
                Scope::Confined(allowed) if allowed.contains(&n) => Ok(true),
                Scope::Confined(_) => {
                    Err("not one of the namespaces the operator is confined to (rbac.namespaces)".to_owned())
                }
            };
            (n, state)
        })
        .collect()
}

async fn publish(ctx: &Context, skr: &SecretKeyring, type_: EventType, reason: &str, note: String) {
    let ev =
        Event { type_, reason: reason.into(), note: Some(note), action: "Reconcile".into(), secondary: None };
    if let Err(e) = ctx.recorder.publish(&ev, &skr.object_ref(&())).await {
        warn!(error = %e, "cannot publish event");
    }
}

/// Reconcile one SecretKeyring.
pub async fn reconcile(skr: Arc<SecretKeyring>, ctx: Arc<Context>) -> Result<Action> {
    let ns = skr.namespace().ok_or(Error::MissingObjectKey)?;
    let span = info_span!("reconcile", namespace = %ns, keyring = %skr.name_any());
    async {
        let started = Instant::now();
        let api: Api<SecretKeyring> = Api::namespaced(ctx.client.clone(), &ns);
        let api_name = skr.name_any();
        let result = finalizer(&api, FINALIZER, skr, |event| async {
            match event {
                Finalizer::Apply(skr) => apply(&skr, &ctx).await,
                Finalizer::Cleanup(skr) => cleanup(&skr, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)));
        ctx.metrics.reconcile_duration.observe(started.elapsed().as_secs_f64());
        let label = if result.is_ok() { "success" } else { "error" };
        if result.is_ok() {
            ctx.failures.lock().expect("lock").remove(&key_of(&ns, &api_name));
        }
        ctx.metrics.reconciliations.get_or_create(&ResultLabel { result: label }).inc();
        result
    }
    .instrument(span)
    .await
}

fn key_of(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// Transient errors requeue with exponential backoff and a Warning event.
pub fn error_policy(skr: Arc<SecretKeyring>, error: &Error, ctx: Arc<Context>) -> Action {
    let attempts = {
        let mut f = ctx.failures.lock().expect("lock");
        let n = f.entry(key_of(&skr.namespace().unwrap_or_default(), &skr.name_any())).or_default();
        *n += 1;
        *n
    };
    warn!(namespace = ?skr.namespace(), keyring = %skr.name_any(), reason = error.reason(), error = %error, "reconcile failed; retrying");
    let note = error.to_string();
    let reason = error.reason();
    tokio::spawn(async move {
        publish(&ctx, &skr, EventType::Warning, &format!("ReconcileFailed{reason}"), note).await;
    });
    Action::requeue(backoff(attempts - 1))
}

/// A spec (or master, or import) that cannot be used: status and a Warning
/// event; nothing is generated, overwritten or deleted. Waits for a change.
async fn invalid(skr: &SecretKeyring, ctx: &Context, inv: Invalid) -> Result<Action> {
    warn!(reason = inv.reason, message = %inv.message, "cannot reconcile");
    let previous_ready =
        skr.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::READY)).cloned();
    let targets = skr.status.as_ref().map(|s| s.targets.clone()).unwrap_or_default();
    let st = status::compute(
        skr.status.as_ref(),
        &status::Input {
            master: None,
            usage: None,
            blocked: &[],
            targets,
            invalid: Some(&inv),
            generation: skr.metadata.generation,
            promotion_at: None,
            now: Timestamp::now(),
        },
    );
    if previous_ready.is_none_or(|c| c.reason != inv.reason || c.message != inv.message) {
        publish(ctx, skr, EventType::Warning, inv.reason, inv.message.clone()).await;
    }
    write_status(skr, ctx, st).await?;
    Ok(Action::await_change())
}

async fn write_status(skr: &SecretKeyring, ctx: &Context, st: SecretKeyringStatus) -> Result<()> {
    if skr.status.as_ref() == Some(&st) {
        return Ok(());
    }
    let api: Api<SecretKeyring> = Api::namespaced(ctx.client.clone(), &skr.namespace().unwrap_or_default());
    let body = serde_json::json!({"apiVersion": "encstr.io/v1alpha1", "kind": "SecretKeyring", "status": st});
    api.patch_status(&skr.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(body))
        .await?;
    Ok(())
}

/// The keyring for a new master: imported or freshly generated.
async fn initial_keyring(
    spec: &ValidSpec,
    secrets: &Api<Secret>,
) -> Result<Result<(Keyring, &'static str), Invalid>> {
    let Some((name, key)) = &spec.import else {
        return Ok(Ok((Keyring::generate()?, "KeyringGenerated")));
    };
    let Some(source) = secrets.get_opt(name).await? else {
        return Ok(Err(Invalid {
            reason: "ImportNotFound",
            message: format!("spec.importFrom: Secret {name:?} not found in this namespace"),
        }));
    };
    let Some(bytes) = source.data.as_ref().and_then(|d| d.get(key)) else {
        return Ok(Err(Invalid {
            reason: "ImportInvalid",
            message: format!("spec.importFrom: Secret {name:?} has no key {key:?}"),
        }));
    };
    let text = Zeroizing::new(String::from_utf8_lossy(&bytes.0).into_owned());
    Ok(match Keyring::parse(&text) {
        Ok(ring) => Ok((ring, "KeyringImported")),
        Err(e) => Err(Invalid {
            reason: "ImportInvalid",
            message: format!("spec.importFrom: Secret {name:?} key {key:?} is not a valid keyring: {e}"),
        }),
    })
}

/// Token usage in the ConfigMaps of the given namespaces (read on demand,
/// never cached).
async fn count_usage(client: &Client, namespaces: &[String]) -> Result<Usage> {
    let mut usage = Usage::default();
    for ns in namespaces {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        for cm in api.list(&ListParams::default()).await? {
            if let Some(data) = &cm.data {
                usage.add_configmap(ns, &cm.name_any(), data);
            }
        }
    }
    Ok(usage)
}

/// State of one target's copy.
enum Copy {
    /// Identical to the master.
    Current,
    /// Ours (or absent) and to be written.
    Stale,
    /// Another Secret of that name, not managed by encstr.
    Unmanaged,
    /// The namespace does not exist.
    NoNamespace,
    /// The operator may not write there.
    OutOfScope(String),
}

async fn copy_state(
    ctx: &Context,
    skr: &SecretKeyring,
    spec: &ValidSpec,
    ns: &str,
    exists: &Result<bool, String>,
    bytes: &[u8],
    ids: &str,
) -> Result<Copy> {
    match exists {
        Ok(true) => {}
        Ok(false) => return Ok(Copy::NoNamespace),
        Err(why) => return Ok(Copy::OutOfScope(why.clone())),
    }
    let label = skr.label_value();
    let cached = match &ctx.scope {
        Scope::Cluster { secrets, .. } => secrets.get(&ObjectRef::new(&spec.secret_name).within(ns)),
        Scope::Confined(_) => None,
    };
    if let Some(cached) = cached {
        if cached.labels().get(LABEL_KEYRING) != Some(&label) {
            return Ok(Copy::Unmanaged);
        }
        return Ok(if desired::copy_is_current(&cached, bytes, ids, &label) {
            Copy::Current
        } else {
            Copy::Stale
        });
    }
    // Not in the label-selected cache: absent, or someone else's Secret.
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    Ok(match api.get_opt(&spec.secret_name).await? {
        None => Copy::Stale,
        Some(s) if s.labels().get(LABEL_KEYRING) == Some(&label) => {
            if desired::copy_is_current(&s, bytes, ids, &label) { Copy::Current } else { Copy::Stale }
        }
        Some(_) => Copy::Unmanaged,
    })
}

async fn apply(skr: &SecretKeyring, ctx: &Context) -> Result<Action> {
    let now = Timestamp::now();
    let ns = skr.namespace().ok_or(Error::MissingObjectKey)?;
    let spec = match desired::validate(skr) {
        Ok(s) => s,
        Err(inv) => return invalid(skr, ctx, inv).await,
    };
    match &ctx.scope {
        Scope::Cluster { namespaces, secrets } => {
            let _ = namespaces.wait_until_ready().await;
            let _ = secrets.wait_until_ready().await;
        }
        Scope::Confined(_) if skr.spec.targets.namespace_selector.is_some() => {
            let message = "spec.targets.namespaceSelector needs the operator to run cluster-wide; it is confined to listed namespaces (rbac.namespaces)".to_owned();
            return invalid(skr, ctx, Invalid { reason: "SelectorUnavailable", message }).await;
        }
        Scope::Confined(_) => {}
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let label = skr.label_value();
    let rotate_request = skr.annotations().get(ANN_ROTATE).map(String::as_str);
    let mut events: Vec<(EventType, &'static str, String)> = Vec::new();

    // 1. The master: the source of truth.
    let (mut ring, mut meta, master_rv) = match secrets.get_opt(&spec.secret_name).await? {
        None => {
            let (ring, reason) = match initial_keyring(&spec, &secrets).await? {
                Ok(r) => r,
                Err(inv) => return invalid(skr, ctx, inv).await,
            };
            let meta = KeyMeta {
                created: ring.ids().into_iter().map(|id| (id, now)).collect(),
                promoted_at: Some(now),
                rotate_handled: rotate_request.map(str::to_owned),
                ..KeyMeta::default()
            };
            let secret = desired::master_secret(skr, &spec, &ring, &meta);
            let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() };
            let created = match secrets.create(&pp, &secret).await {
                Ok(s) => s,
                // Created meanwhile (another replica, or a retry): read it next time.
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    return Ok(Action::requeue(Duration::from_millis(100)));
                }
                Err(e) => return Err(e.into()),
            };
            let verb = if reason == "KeyringImported" { "imported" } else { "generated" };
            events.push((
                EventType::Normal,
                reason,
                format!(
                    "{verb} keyring with primary key {} in Secret {ns}/{}",
                    ring.primary().id(),
                    spec.secret_name
                ),
            ));
            (ring, meta, created.metadata.resource_version)
        }
        Some(secret) => {
            if secret.labels().get(LABEL_KEYRING) != Some(&label) {
                return invalid(
                    skr,
                    ctx,
                    Invalid {
                        reason: "SecretConflict",
                        message: format!(
                            "Secret {ns}/{} exists and is not managed by this SecretKeyring; it is left alone (choose another spec.secretName, or import it with spec.importFrom)",
                            spec.secret_name
                        ),
                    },
                )
                .await;
            }
            let bytes = secret
                .data
                .as_ref()
                .and_then(|d| d.get(DATA_KEY))
                .map(|b| Zeroizing::new(b.0.clone()))
                .unwrap_or_default();
            let ring = match std::str::from_utf8(&bytes)
                .map_err(|_| encstr_core::Error::NotUtf8)
                .and_then(Keyring::parse)
            {
                Ok(r) => r,
                Err(e) => {
                    return invalid(
                        skr,
                        ctx,
                        Invalid {
                            reason: "MasterInvalid",
                            message: format!(
                                "the keyring in Secret {ns}/{} is not valid ({e}); restore it from a backup",
                                spec.secret_name
                            ),
                        },
                    )
                    .await;
                }
            };
            let meta = KeyMeta::from_annotations(secret.annotations());
            (ring, meta, secret.metadata.resource_version)
        }
    };

    // 2. Targets and their copies.
    let target_list = targets(skr, &spec, &ctx.scope);
    let mut master_bytes = Zeroizing::new(ring.to_text().as_bytes().to_vec());
    let mut ids = desired::key_ids(&ring);
    let mut states = Vec::with_capacity(target_list.len());
    for (t, exists) in &target_list {
        states.push(copy_state(ctx, skr, &spec, t, exists, &master_bytes, &ids).await?);
    }
    let all_current = states.iter().all(|s| !matches!(s, Copy::Stale));

    // 3. At most one lifecycle step on the master.
    let candidates = desired::prune_candidates(&spec, &ring, &meta);
    let usage = if candidates.is_empty() {
        None
    } else {
        let mut scope: Vec<String> =
            target_list.iter().filter(|(_, e)| *e == Ok(true)).map(|(n, _)| n.clone()).collect();
        scope.push(ns.clone());
        Some(count_usage(&ctx.client, &scope).await?)
    };
    let step = desired::next_step(&Observed {
        spec: &spec,
        ring: &ring,
        meta: &meta,
        rotate_request,
        all_copies_current: all_current,
        usage: usage.as_ref().map(|u| &u.counts),
        now,
    });
    let mut stepped = false;
    if let Some(step) = &step {
        let (mut new_ring, mut new_meta) = (ring.clone(), meta.clone());
        desired::apply_step(step, &mut new_ring, &mut new_meta, rotate_request, now)?;
        let mut secret = desired::master_secret(skr, &spec, &new_ring, &new_meta);
        // The resourceVersion makes the write conditional: a concurrent change fails it (409).
        secret.metadata.resource_version = master_rv;
        secrets
            .patch(&spec.secret_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&secret))
            .await?;
        let kl = KeyringLabels { namespace: ns.clone(), keyring: skr.name_any() };
        match step {
            Step::Stage(reason) => {
                ctx.metrics.rotations.get_or_create(&kl).inc();
                let why = match reason {
                    desired::RotationReason::Requested => "requested with the encstr.io/rotate annotation",
                    desired::RotationReason::Scheduled => "scheduled by spec.rotation.every",
                };
                events.push((
                    EventType::Normal,
                    "KeyStaged",
                    format!(
                        "rotation {why}: staged key {} (primary stays {} until every target holds it)",
                        new_meta.staged.map(|k| k.to_string()).unwrap_or_default(),
                        new_ring.primary().id()
                    ),
                ));
            }
            Step::Promote => events.push((
                EventType::Normal,
                "KeyPromoted",
                format!(
                    "key {} is now primary; {} is decrypt-only",
                    new_ring.primary().id(),
                    ring.primary().id()
                ),
            )),
            Step::Prune(removed) => {
                ctx.metrics.pruned.get_or_create(&kl).inc_by(removed.len() as u64);
                let list: Vec<String> = removed.iter().map(ToString::to_string).collect();
                events.push((
                    EventType::Normal,
                    "KeysPruned",
                    format!("removed unused key(s) {} (retention.maxKeys)", list.join(", ")),
                ));
            }
            Step::MarkDistributed | Step::AcknowledgeRequest => {}
        }
        info!(step = ?step, keys = new_ring.len(), "master updated");
        ring = new_ring;
        meta = new_meta;
        stepped = true;
        master_bytes = Zeroizing::new(ring.to_text().as_bytes().to_vec());
        ids = desired::key_ids(&ring);
    }

    // 4. Distribute: every managed (or missing) copy becomes identical to the master.
    let previous: BTreeMap<String, Option<String>> = skr
        .status
        .as_ref()
        .map(|s| s.targets.iter().map(|t| (t.namespace.clone(), t.message.clone())).collect())
        .unwrap_or_default();
    let mut target_status = Vec::with_capacity(target_list.len());
    let mut written = Vec::new();
    let mut failure = None;
    for ((t, _), state) in target_list.iter().zip(states) {
        let state = if stepped && matches!(state, Copy::Current) { Copy::Stale } else { state };
        let (synced, message) = match state {
            Copy::NoNamespace => (false, Some("namespace not found".to_owned())),
            Copy::OutOfScope(why) => (false, Some(why)),
            Copy::Unmanaged => {
                let msg = format!(
                    "a Secret named {} exists and is not managed by encstr; it is left alone",
                    spec.secret_name
                );
                if previous.get(t) != Some(&Some(msg.clone())) {
                    events.push((EventType::Warning, "SecretConflict", format!("namespace {t}: {msg}")));
                }
                (false, Some(msg))
            }
            Copy::Current => (true, None),
            Copy::Stale => {
                let copy = desired::copy_secret(skr, &spec, t, &master_bytes, &ids);
                let api: Api<Secret> = Api::namespaced(ctx.client.clone(), t);
                match api
                    .patch(
                        &spec.secret_name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&copy),
                    )
                    .await
                {
                    Ok(_) => {
                        written.push(t.clone());
                        (true, None)
                    }
                    // A confined operator cannot see namespaces: a missing one shows here.
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        (false, Some("namespace not found".to_owned()))
                    }
                    Err(e) => {
                        let msg = format!("cannot write the copy: {e}");
                        failure = Some(Error::Kube(e));
                        (false, Some(msg))
                    }
                }
            }
        };
        target_status.push(TargetStatus { namespace: t.clone(), synced, message });
    }
    if !written.is_empty() {
        info!(namespaces = ?written, "copies written");
    }

    // 5. Status, events, metrics.
    let blocked: Vec<KeyId> = match &usage {
        Some(u) => candidates
            .iter()
            .filter(|id| ring.contains(**id) && u.counts.get(id).copied().unwrap_or(0) > 0)
            .copied()
            .collect(),
        None => Vec::new(),
    };
    if !blocked.is_empty() {
        let was_blocked = skr
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::PRUNE_BLOCKED))
            .is_some_and(|c| c.status == "True");
        if !was_blocked {
            let list: Vec<String> = blocked.iter().map(ToString::to_string).collect();
            events.push((EventType::Warning, "PruneBlocked", format!("key(s) {} exceed retention.maxKeys but are still used by ConfigMaps; re-encrypt them first", list.join(", "))));
        }
    }
    let promotion_at = meta
        .staged
        .and(meta.distributed_at)
        .map(|at| at + SignedDuration::try_from(spec.promotion_delay).unwrap_or_default());
    let st = status::compute(
        skr.status.as_ref(),
        &status::Input {
            master: Some((&ring, &meta)),
            usage: usage.as_ref(),
            blocked: &blocked,
            targets: target_status,
            invalid: None,
            generation: skr.metadata.generation,
            promotion_at,
            now,
        },
    );
    record_metrics(ctx, skr, &ring, &meta, &st);
    ctx.metrics
        .prune_blocked
        .get_or_create(&KeyringLabels { namespace: ns.clone(), keyring: skr.name_any() })
        .set(blocked.len() as i64);
    for (type_, reason, note) in events {
        publish(ctx, skr, type_, reason, note).await;
    }
    write_status(skr, ctx, st).await?;
    if let Some(e) = failure {
        return Err(e);
    }

    // 6. When to look again.
    Ok(if stepped {
        Action::requeue(Duration::from_millis(50))
    } else if let Some(at) = promotion_at {
        let wait = Duration::try_from(now.duration_until(at)).unwrap_or_default();
        Action::requeue(wait.clamp(Duration::from_millis(100), ctx.resync.max(Duration::from_millis(100))))
    } else if meta.staged.is_some() {
        Action::requeue(Duration::from_secs(2))
    } else if let Some(every) = spec.every {
        let since = meta.promoted_at.unwrap_or(now);
        let due = since + SignedDuration::try_from(every).unwrap_or_default();
        let wait = Duration::try_from(now.duration_until(due)).unwrap_or_default();
        Action::requeue(wait.clamp(Duration::from_secs(1), ctx.resync.max(Duration::from_secs(1))))
    } else {
        Action::requeue(ctx.resync)
    })
}

fn record_metrics(
    ctx: &Context,
    skr: &SecretKeyring,
    ring: &Keyring,
    meta: &KeyMeta,
    st: &SecretKeyringStatus,
) {
    let (namespace, keyring) = (skr.namespace().unwrap_or_default(), skr.name_any());
    for state in [KeyState::Primary, KeyState::Staged, KeyState::DecryptOnly] {
        let n = desired::key_states(ring, meta).iter().filter(|(_, s)| *s == state).count();
        ctx.metrics
            .keys
            .get_or_create(&KeyStateLabels {
                namespace: namespace.clone(),
                keyring: keyring.clone(),
                state: state.as_str(),
            })
            .set(n as i64);
    }
    if let Some(p) = meta.promoted_at.or_else(|| meta.created.get(&ring.primary().id()).copied()) {
        ctx.metrics.set_primary_since(&namespace, &keyring, p.as_second() as f64);
    }

    let synced = st.targets.iter().filter(|t| t.synced).count() as i64;
    let total = st.targets.len() as i64;
    ctx.metrics
        .targets
        .get_or_create(&TargetLabels {
            namespace: namespace.clone(),
            keyring: keyring.clone(),
            synced: "true",
        })
        .set(synced);
    ctx.metrics
        .targets
        .get_or_create(&TargetLabels { namespace, keyring, synced: "false" })
        .set(total - synced);
}

/// Deletion: `Delete` removes the copies and the master; `Retain` leaves
/// them, unlabelled from the operator's management. Idempotent.
async fn cleanup(skr: &SecretKeyring, ctx: &Context) -> Result<Action> {
    let label = skr.label_value();
    let lp = ListParams::default().labels(&format!("{LABEL_KEYRING}={label}"));
    let managed: Vec<Secret> = match &ctx.scope {
        Scope::Cluster { .. } => Api::<Secret>::all(ctx.client.clone()).list(&lp).await?.items,
        Scope::Confined(nss) => {
            let mut all = Vec::new();
            for ns in nss {
                all.extend(Api::<Secret>::namespaced(ctx.client.clone(), ns).list(&lp).await?.items);
            }
            all
        }
    };
    let delete = skr.spec.deletion_policy == DeletionPolicy::Delete;
    let mut done = Vec::new();
    for s in managed {
        let (ns, name) = (s.namespace().unwrap_or_default(), s.name_any());
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        if delete {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        } else {
            let unlabel =
                serde_json::json!({"metadata": {"labels": {LABEL_KEYRING: null, LABEL_ROLE: null}}});
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(unlabel)).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        done.push(format!("{ns}/{name}"));
    }
    let verb = if delete { "deleted" } else { "retained (no longer managed)" };
    info!(secrets = ?done, "{verb}");
    publish(
        ctx,
        skr,
        EventType::Normal,
        "Cleanup",
        format!("deletionPolicy {:?}: {} Secret(s) {verb}", skr.spec.deletion_policy, done.len()),
    )
    .await;
    ctx.metrics.forget(&skr.namespace().unwrap_or_default(), &skr.name_any());
    Ok(Action::await_change())
}

/// The SecretKeyring a labelled Secret belongs to.
fn owner_of(secret: &Secret) -> Option<ObjectRef<SecretKeyring>> {
    let (ns, name) = secret.labels().get(LABEL_KEYRING)?.split_once('.')?;
    Some(ObjectRef::new(name).within(ns))
}

/// Run the controller until `shutdown` completes.
///
/// Cluster-wide (`confined` is `None`) it watches SecretKeyrings, Namespaces
/// (selector targets) and only the Secrets carrying the `encstr.io/keyring`
/// label (a label-selected watch, so memory does not grow with the
/// cluster's Secrets); the latter two are also cached for the reconciler.
/// Confined to namespaces, it watches SecretKeyrings in `home` and labelled
/// Secrets in each of those namespaces, and caches nothing.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    instance: String,
    confined: Option<(String, BTreeSet<String>)>,
    resync: Duration,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let sec_config = watcher::Config::default().labels(LABEL_KEYRING);
    let recorder = Recorder::new(
        client.clone(),
        Reporter { controller: FIELD_MANAGER.into(), instance: Some(instance) },
    );
    let (controller, scope, caches) = match confined {
        None => {
            let ns_api = Api::<Namespace>::all(client.clone());
            let sec_api = Api::<Secret>::all(client.clone());
            let (namespaces, ns_writer) = reflector::store::<Namespace>();
            let (secrets, sec_writer) = reflector::store::<Secret>();
            let caches = tokio::spawn(futures::future::join(
                reflector::reflector(ns_writer, watcher(ns_api.clone(), watcher::Config::default()))
                    .default_backoff()
                    .for_each(|_| async {}),
                reflector::reflector(sec_writer, watcher(sec_api.clone(), sec_config.clone()))
                    .default_backoff()
                    .for_each(|_| async {}),
            ));
            let controller =
                Controller::new(Api::<SecretKeyring>::all(client.clone()), watcher::Config::default());
            let keyrings = controller.store();
            let controller = controller.watches(sec_api, sec_config, |s: Secret| owner_of(&s)).watches(
                ns_api,
                watcher::Config::default(),
                move |ns: Namespace| {
                    keyrings
                        .state()
                        .iter()
                        .filter(|k| {
                            k.spec.targets.namespace_selector.is_some()
                                || k.spec.targets.namespaces.contains(&ns.name_any())
                        })
                        .map(|k| ObjectRef::from_obj(k.as_ref()))
                        .collect::<Vec<_>>()
                },
            );
            (controller, Scope::Cluster { namespaces, secrets }, Some(caches))
        }
        Some((home, namespaces)) => {
            let mut controller = Controller::new(
                Api::<SecretKeyring>::namespaced(client.clone(), &home),
                watcher::Config::default(),
            );
            for ns in &namespaces {
                controller = controller.watches(
                    Api::<Secret>::namespaced(client.clone(), ns),
                    sec_config.clone(),
                    |s: Secret| owner_of(&s),
                );
            }
            (controller, Scope::Confined(namespaces), None)
        }
    };
    let ctx = Arc::new(Context { client, recorder, metrics, scope, resync, failures: Default::default() });
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
    if let Some(c) = caches {
        c.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    #[test]
    fn label_selectors_match_like_kubernetes() {
        let labels = BTreeMap::from([
            ("encstr.io/keyring".to_owned(), "payments".to_owned()),
            ("tier".to_owned(), "a".to_owned()),
        ]);
        let mut sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("encstr.io/keyring".into(), "payments".into())])),
            match_expressions: None,
        };
        assert!(selector_matches(&sel, &labels));
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "NotIn".into(),
            values: Some(vec!["a".into()]),
        }]);
        assert!(!selector_matches(&sel, &labels));
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "zone".into(),
            operator: "DoesNotExist".into(),
            values: None,
        }]);
        assert!(selector_matches(&sel, &labels));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(30), RESYNC);
    }

    #[test]
    fn copies_map_back_to_their_keyring() {
        let mut s = Secret::default();
        s.metadata.labels =
            Some(BTreeMap::from([(LABEL_KEYRING.to_owned(), "platform.payments".to_owned())]));
        assert_eq!(owner_of(&s), Some(ObjectRef::new("payments").within("platform")));
    }
}
