//! The paths that make a master: a new keyring (generated or imported,
//! backed up before it exists) and `encstr.io/restore-from` (rebuilt from a
//! complete copy). Each observes, decides with `decide`/`guard`, then acts.

use std::time::Duration;

use encstr_core::Keyring;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::info;
use zeroize::Zeroizing;

use super::decide::{self, Hold};
use super::escrow;
use super::events::{Note, Origin};
use super::observe::{self, Target};
use super::report::{self, Report};
use crate::cache;
use crate::context::Ctx;
use crate::crd::*;
use crate::desired::{self, KeyMeta, ValidSpec};
use crate::error::Result;
use crate::guard::{self, Guard, Restore};
use crate::keyring::{KeyringResource, Kind};
use crate::writer::{self, Created};

/// A new master holding `ring`, its lifecycle in the annotations.
fn new_master<K: KeyringResource>(
    k: &K,
    spec: &ValidSpec,
    master_ns: &str,
    ring: &Keyring,
    meta: &KeyMeta,
) -> Secret {
    let bytes = Zeroizing::new(ring.to_text().as_bytes().to_vec());
    desired::secret(
        None,
        master_ns,
        &spec.secret_name,
        k.managed_labels("master"),
        meta.to_annotations(ring),
        &bytes,
    )
}

/// Create the master of a new keyring (generated or imported), after
/// checking with the API server that no copy of it exists in its targets
/// (keys handed out by a master that is gone).
pub async fn master<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
    targets: &[Target],
) -> Result<Action> {
    let place = format!("{master_ns}/{}", spec.secret_name);
    // Observe, decide: nothing handed out by a master that is gone.
    let labelled = observe::list_labelled(k, &ctx.shared.client).await?;
    let namespaces = observe::copy_namespaces(k, targets);
    let copies: Vec<Secret> = observe::ours::<K>(labelled, &spec.secret_name, master_ns)
        .into_iter()
        .filter(|s| s.namespace().is_some_and(|ns| namespaces.contains(&ns)))
        .collect();
    let labelled = observe::places(&copies);
    if let Err(hold) = decide::create(&place, labelled) {
        ctx.shared.metrics.set_guard(&k.id(), hold.guard().map(Guard::reason));
        return report::held(k, ctx, None, &hold).await;
    }
    // Observe, decide: the keys it starts with.
    let source = match &spec.import {
        Some((name, _)) => observe::secret(&ctx.shared.client, master_ns, name).await?,
        None => None,
    };
    let imported = match decide::import(spec, master_ns, source.as_ref()) {
        Ok(imported) => imported,
        Err(hold) => return report::held(k, ctx, None, &hold).await,
    };
    let ignore = k.annotations().contains_key(ANN_IGNORE_EXISTING_BACKUPS);
    let (ring, origin) = match imported {
        Some(ring) => (ring, Origin::Imported),
        None => {
            // Observe, decide: no fresh keyring over backups of one that is
            // gone (a deleted namespace, a rebuilt cluster).
            let wrote = ctx.shared.last_backup(&k.id(), None).is_some();
            if let Some(plan) = spec.backup.as_ref().filter(|_| decide::look_for_backups(spec, ignore, wrote))
            {
                let mut r = Report::default();
                let Some(found) =
                    escrow::existing(k, ctx, plan, master_ns, &mut r.backup, &mut r.notes).await
                else {
                    report::not_backed_up(k, ctx, &r.backup, r.notes).await?;
                    return Ok(Action::requeue(r.backup.retry.unwrap_or(Duration::from_secs(60))));
                };
                if let Err(hold) = decide::generate(&found) {
                    return report::held(k, ctx, None, &hold).await;
                }
            }
            (Keyring::generate()?, Origin::Generated)
        }
    };
    // Act: backed up before the master exists (no key without an escrow
    // copy), then the master.
    let now = Timestamp::now();
    let mut r = Report::default();
    if !escrow::back_up(k, ctx, spec, master_ns, &ring, &mut r.backup, &mut r.notes).await {
        report::not_backed_up(k, ctx, &r.backup, r.notes).await?;
        return Ok(Action::requeue(r.backup.retry.unwrap_or(Duration::from_secs(60))));
    }
    let mut meta = KeyMeta::initial(&ring, k.annotations().get(ANN_ROTATE).map(String::as_str), now);
    if origin == Origin::Imported {
        // Their tokens may live outside the cluster: never pruned without
        // retention.pruneImported.
        meta.imported = ring.ids().into_iter().collect();
    }
    match writer::create(&ctx.shared.client, &new_master(k, spec, master_ns, &ring, &meta)).await? {
        Created::Yes(_) => {}
        // Created meanwhile (a retry, another replica): read it next time.
        Created::AlreadyExists => return Ok(Action::requeue(Duration::from_millis(100))),
        Created::NoNamespace(why) => {
            let hold = Hold::NamespaceMissing { namespace: master_ns.to_owned(), why };
            return report::held(k, ctx, None, &hold).await;
        }
    }
    let note = Note::MasterCreated { origin, primary: ring.primary().id(), master: place };
    info!(keys = ring.len(), "{}", note.note());
    report::publish(k, ctx, vec![note]).await;
    if ignore {
        writer::remove_annotation(&ctx.shared.client, k, ANN_IGNORE_EXISTING_BACKUPS).await?;
    }
    // Report.
    report::converged(k, ctx, spec, &ring, &meta, r).await?;
    Ok(Action::requeue(Duration::from_millis(50)))
}

/// `encstr.io/restore-from=<namespace>`: rebuild a missing master from the
/// copy there (only a complete one), or say why not; the annotation goes
/// either way.
pub async fn restore<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
    targets: &[Target],
    guard: Option<&Guard>,
    ns: &str,
) -> Result<Action> {
    // Observe: the copy there, if it is this keyring's (label, name, role).
    let copy = if K::KIND == Kind::Cluster && desired::is_dns_label(ns) {
        let found = observe::secret(&ctx.shared.client, ns, &spec.secret_name).await?;
        let labelled = found.into_iter().filter(|s| s.labels().get(K::KIND.label()) == Some(&k.name_any()));
        observe::ours::<K>(labelled.collect(), &spec.secret_name, master_ns).pop()
    } else {
        None
    };
    let ring = copy.as_ref().and_then(|s| decide::parse_ring(s).ok());
    // Decide, then act.
    let mut decision =
        guard::restore(guard, ns, K::KIND == Kind::Namespaced, ring.as_ref(), k.keyring_status());
    if let (Restore::From(_), Some(ring)) = (&decision, &ring) {
        let digest = cache::digest(ring.to_text().as_bytes());
        let cached = ctx.secrets.copies(K::KIND.label(), &k.name_any(), &spec.secret_name);
        if let Err(why) = decide::restore_source(ns, targets, digest, &cached) {
            decision = Restore::Refused(why);
        }
    }
    let note = match decision {
        Restore::From(from) => {
            let ring = ring.expect("a complete copy");
            let rotate = k.annotations().get(ANN_ROTATE).map(String::as_str);
            let meta = decide::meta_from_status(&ring, k.keyring_status(), rotate, Timestamp::now());
            let secret = new_master(k, spec, master_ns, &ring, &meta);
            match writer::create(&ctx.shared.client, &secret).await? {
                Created::Yes(_) => Some(Note::MasterRestored {
                    master: format!("{master_ns}/{}", spec.secret_name),
                    from,
                    keys: desired::key_ids(&ring),
                }),
                Created::AlreadyExists | Created::NoNamespace(_) => None,
            }
        }
        Restore::Refused(why) => Some(Note::RestoreRefused(why)),
    };
    report::publish(k, ctx, note.into_iter().collect()).await;
    // Looked at again at once when the request is consumed; if it could
    // not be removed (changed meanwhile, or refused), not in a loop.
    Ok(match writer::remove_annotation(&ctx.shared.client, k, ANN_RESTORE_FROM).await? {
        Some(_) => Action::requeue(Duration::from_millis(50)),
        None => Action::requeue(ctx.shared.resync.min(Duration::from_secs(60))),
    })
}
