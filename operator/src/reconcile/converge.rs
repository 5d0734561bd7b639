//! Converge an existing master and its copies: observe what the next
//! lifecycle step depends on, decide it, act (at most one step on the
//! master, backed up first; a backup of any other change; the copies), then
//! report.

use encstr_core::{KeyId, Keyring};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::info;
use zeroize::Zeroizing;

use super::decide::{self, Master, Timing};
use super::distribute;
use super::escrow::{self, BackupState};
use super::events::{Note, TargetState};
use super::observe::{self, Scan, Target};
use super::publish;
use super::report::{self, Report};
use crate::backup;
use crate::cache::ConfigMapEntry;
use crate::context::Ctx;
use crate::crd::*;
use crate::desired::{self, KeyMeta, Observed, RotationReason, Step, ValidSpec};
use crate::error::Result;
use crate::keyring::{KeyringResource, Kind};
use crate::metrics::KeyringLabels;
use crate::writer;

/// What a reconcile of an existing master decided.
struct Plan {
    /// The lifecycle step to take, if any.
    step: Option<Step>,
    /// Keys retention wants gone.
    candidates: Vec<KeyId>,
    /// Keys retention wants gone but keeps because they were imported.
    kept_imported: Vec<KeyId>,
    /// The usage scan.
    scan: Scan,
    /// A due rotation that waits for the minimum interval, and until when.
    deferred: Option<(RotationReason, Timestamp)>,
}

/// Converge the master `m` and its copies.
pub async fn keyring<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
    m: Master,
    targets: Vec<Target>,
) -> Result<Action> {
    let now = Timestamp::now();
    let mut r = Report { backup: BackupState::of(k, ctx, spec, master_ns), ..Report::default() };
    if spec.import.is_some()
        && k.keyring_status().is_some_and(|s| s.observed_generation != k.meta().generation)
    {
        report::publish(k, ctx, vec![Note::ImportIgnored]).await;
    }
    // Observe and decide.
    let mut m = m;
    let plan = plan(k, ctx, spec, master_ns, &mut m, &targets, now).await?;
    r.usage = plan.scan.last;
    // Act: the master (a keyring with a key no backup holds is backed up
    // first), a backup of any other change, then the copies.
    let stepped = plan.step.is_some();
    let (ring, meta) = write_master(k, ctx, spec, master_ns, m, plan.step, now, &mut r).await?;
    if spec.backup.is_some()
        && r.backup.failure.is_none()
        && !backup::is_current(r.backup.last.as_ref(), &ring)
    {
        escrow::back_up(k, ctx, spec, master_ns, &ring, &mut r.backup, &mut r.notes).await;
    }
    let mut failure = None;
    // What each target's copy holds, for the recipient (cluster kind).
    let mut copies = Vec::new();
    if K::KIND == Kind::Cluster {
        // Only keys a backup holds are distributed.
        let (states, shared) = match decide::distributable(spec, &ring, r.backup.last.as_ref()) {
            Some(shared) => {
                let states;
                (r.targets, states, failure) =
                    distribute::distribute(k, ctx, spec, &targets, &shared, &ring, &mut r.notes).await?;
                (states, shared)
            }
            None => {
                r.targets = targets.iter().map(|t| TargetState::BackupPending.status(t.name())).collect();
                let state = |t: &Target| match t {
                    Target::Active(_) => TargetState::BackupPending,
                    Target::Missing(_) => TargetState::NamespaceNotFound,
                    Target::Terminating(_) => TargetState::NamespaceTerminating,
                };
                (targets.iter().map(state).collect(), ring.clone())
            }
        };
        copies = targets
            .iter()
            .zip(&states)
            .filter_map(|(t, s)| decide::holding(s, &shared).map(|h| (t.name().to_owned(), h)))
            .collect();
    }
    // The recipient, once the copies hold its key.
    let published = publish::recipient(k, ctx, &spec.secret_name, master_ns, &ring, &copies, &mut r).await?;
    failure = failure.or(published);
    // Report. A step held back for a backup is not a step taken.
    let stepped = stepped && r.backup.failure.is_none();
    let (blocked, note) =
        decide::prune_blocked(k.keyring_status(), &plan.candidates, &ring, r.usage.as_ref());
    r.blocked = blocked;
    r.notes.extend(note);
    r.notes.extend(decide::imported_kept(k.keyring_status(), &plan.kept_imported));
    r.kept_imported = plan.kept_imported;
    // A rotation deferred by this reconcile's own step (a promotion, a
    // prune) is looked at again next time.
    r.rotation_deferred = plan.deferred.filter(|_| !stepped);
    r.notes.extend(r.rotation_deferred.as_ref().and_then(|(why, at)| {
        decide::rotation_deferred_note(k.keyring_status(), why, *at, ctx.shared.min_rotation_interval)
    }));
    r.promotion_at = decide::promotion_at(spec, &meta);
    let timing = Timing {
        resync: ctx.shared.resync,
        stepped,
        promotion_at: r.promotion_at,
        backup_retry: r.backup.retry,
        rescan: (!plan.candidates.is_empty()).then_some(ctx.shared.scan_interval),
        rotation_at: r.rotation_deferred.as_ref().map(|(_, at)| *at),
        now,
    };
    report::converged(k, ctx, spec, &ring, &meta, r).await?;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Action::requeue(decide::next_look(spec, &ring, &meta, timing)))
}

/// Observe what the next step depends on (copies from the API server while
/// a key is staged, usage when retention wants keys gone) and decide it.
/// Keys retention wants gone that are seen in use are recorded in `m`'s
/// lifecycle (written with the master); a prune is counted again right
/// before it is written.
async fn plan<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
    m: &mut Master,
    targets: &[Target],
    now: Timestamp,
) -> Result<Plan> {
    let bytes = Zeroizing::new(m.ring.to_text().as_bytes().to_vec());
    let all_current = if m.meta.staged.is_some() {
        let needed = decide::promotion_targets(targets, k.keyring_status());
        observe::copies_current_on_server(k, ctx, &needed, &bytes, &desired::key_ids(&m.ring)).await?
    } else {
        true
    };
    let candidates = desired::prune_candidates(spec, &m.ring, &m.meta, now);
    let kept_imported = desired::kept_imported(spec, &m.ring, &m.meta, now);
    let targets_complete = targets.iter().all(|t| matches!(t, Target::Active(_)));
    let slack = desired::sampling_slack(spec, ctx.shared.scan_interval);
    let scan = if candidates.is_empty() {
        Scan::default()
    } else {
        // Shared scans back off while nothing changes, unless a key is
        // quiet long enough to be pruned if nothing uses it.
        let about_to_prune = targets_complete && desired::any_quiet(spec, &m.meta, &candidates, now, slack);
        observe::usage(k, ctx, master_ns, targets, about_to_prune, slack).await
    };
    if let Some(fresh) = &scan.fresh {
        // A candidate with no record starts its quiet period now; a key
        // found in use was in use when the (shared) scan ran.
        let unrecorded: Vec<KeyId> =
            candidates.iter().filter(|id| !m.meta.last_used.contains_key(id)).copied().collect();
        desired::record_use(spec, &mut m.meta, &unrecorded, &fresh.counts, now);
        for id in &candidates {
            let seen_at = scan.seen_at.get(id).copied().unwrap_or(now).min(now);
            desired::record_use(spec, &mut m.meta, &[*id], &fresh.counts, seen_at);
        }
    }
    let observed = Observed {
        spec,
        ring: &m.ring,
        meta: &m.meta,
        rotate_request: k.annotations().get(ANN_ROTATE).map(String::as_str),
        all_copies_current: all_current,
        targets_complete,
        // An ENCSTR occurrence whose key id cannot be read could be any
        // key's: then nothing is pruned.
        // Nor on a namespace whose objects were not seen the same twice,
        // an interval apart (one being filled with its config).
        usage: scan.fresh.as_ref().filter(|u| u.unreadable == 0 && scan.confirmed).map(|u| &u.counts),
        min_rotation_interval: ctx.shared.min_rotation_interval,
        published: &published_keys(k, ctx, spec, master_ns, &m.ring, targets),
        sampling_slack: slack,
        now,
    };
    let mut step = desired::next_step(&observed);
    let deferred = desired::rotation_deferred(&observed);
    if let Some(Step::Prune(ids)) = &step {
        // The same decision on a count made just now: a token written since
        // the scan keeps its key.
        let again = observe::count(k, ctx, master_ns, targets, observe::Freshness::Now).await;
        if again.as_ref().is_none_or(|(u, confirmed)| {
            !confirmed || u.unreadable > 0 || ids.iter().any(|id| u.count(*id) > 0)
        }) {
            info!("a key to prune is in use again (or the count failed); kept");
            step = None;
        }
    }
    Ok(Plan { step, candidates, kept_imported, scan, deferred })
}

/// The keys whose recipient the keyring publishes: in its status, or in a
/// recipient ConfigMap of its own (name, role and keyring label) in its
/// namespace or a target.
fn published_keys<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
    ring: &Keyring,
    targets: &[Target],
) -> Vec<KeyId> {
    let name = desired::recipient_config_map_name(&spec.secret_name);
    let kind = k.name_any();
    let ours: Vec<ConfigMapEntry> = match K::KIND {
        Kind::Namespaced => vec![master_ns.to_owned()],
        Kind::Cluster => targets.iter().map(|t| t.name().to_owned()).collect(),
    }
    .iter()
    .filter_map(|ns| ctx.config_maps.get(ns, &name))
    .filter(|c| {
        c.label(K::KIND.label()) == Some(kind.as_str()) && c.label(LABEL_ROLE) == Some(ROLE_RECIPIENT)
    })
    .collect();
    let status = k.keyring_status().and_then(|s| s.recipient.as_deref());
    ring.keys()
        .filter(|key| {
            let text = key.recipient().to_string();
            status == Some(text.as_str()) || ours.iter().any(|c| c.publishes(&text))
        })
        .map(|key| key.id())
        .collect()
}

/// Write the master: the step (with the resourceVersion it was computed
/// from, so a concurrent change fails it), or its annotations when they no
/// longer follow its keys (a hand edit that was accepted, a restore).
#[allow(clippy::too_many_arguments)]
async fn write_master<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
    m: Master,
    step: Option<Step>,
    now: Timestamp,
    r: &mut Report,
) -> Result<(Keyring, KeyMeta)> {
    let Master { secret, ring, meta } = m;
    let (mut new_ring, mut new_meta) = (ring.clone(), meta.clone());
    if let Some(step) = &step {
        desired::apply_step(
            step,
            &mut new_ring,
            &mut new_meta,
            k.annotations().get(ANN_ROTATE).map(String::as_str),
            now,
        )?;
    }
    // No key reaches the master (which the namespace's pods mount, for a
    // SecretKeyring) before a backup holds it.
    if spec.backup.is_some()
        && !backup::holds_all(r.backup.last.as_ref(), &new_ring)
        && !escrow::back_up(k, ctx, spec, master_ns, &new_ring, &mut r.backup, &mut r.notes).await
        && step.is_some()
    {
        return Ok((ring, meta));
    }
    let bytes = Zeroizing::new(new_ring.to_text().as_bytes().to_vec());
    let (labels, annotations) = (k.managed_labels("master"), new_meta.to_annotations(&new_ring));
    if step.is_none() && desired::master_is_current(&secret, &bytes, &labels, &annotations) {
        return Ok((new_ring, new_meta));
    }
    let master = desired::secret(Some(&secret), master_ns, &spec.secret_name, labels, annotations, &bytes);
    writer::replace(&ctx.shared.client, &master).await?;
    match &step {
        Some(step) => {
            info!(step = ?step, keys = new_ring.len(), "master updated");
            count_step(ctx, &k.id(), step);
            // Said at once, not after distribution: a crash in between
            // would lose the record of the step.
            let note = decide::step_note(step, &ring, &new_ring, &new_meta);
            report::publish(k, ctx, note.into_iter().collect()).await;
        }
        None => info!("master annotations brought up to date"),
    }
    Ok((new_ring, new_meta))
}

/// The rotation and pruning counters.
fn count_step(ctx: &Ctx, id: &crate::keyring::Id, step: &Step) {
    let kl = KeyringLabels::of(id);
    match step {
        Step::Stage(_) => ctx.shared.metrics.rotations.get_or_create(&kl).inc(),
        Step::Prune(removed) => ctx.shared.metrics.pruned.get_or_create(&kl).inc_by(removed.len() as u64),
        Step::Promote | Step::MarkDistributed | Step::AcknowledgeRequest => return,
    };
}
