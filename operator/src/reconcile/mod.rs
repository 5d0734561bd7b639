//! One reconcile of a keyring, as four steps:
//! - **observe** ([`observe`]): the master from the API server, labelled
//!   Secrets and namespaces from caches that already hold the trigger;
//! - **decide** ([`decide`], with `desired`, `guard` and `status`): pure
//!   functions from what was seen to one [`decide::Decision`];
//! - **act** ([`create`], [`converge`], [`distribute`], [`escrow`],
//!   [`publish`]): the only writes, each conditional on what was
//!   observed, through `writer`;
//! - **report** ([`report`]): status, events ([`events`] holds all their
//!   wording) and metrics.

pub mod converge;
pub mod create;
pub mod decide;
pub mod distribute;
pub mod escrow;
pub mod events;
pub mod observe;
pub mod publish;
pub mod report;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::info;

use crate::context::Ctx;
use crate::crd::*;
use crate::desired;
use crate::error::Result;
use crate::keyring::KeyringResource;
use crate::writer;
use decide::{Accept, Hold, Next, Seen};
use events::{Note, cleanup_verb};

/// What a reconcile observed of a keyring whose spec is valid and whose
/// master (if any) is its own and parses.
struct Observed {
    spec: desired::ValidSpec,
    master_ns: String,
    place: String,
    master: Option<decide::Master>,
    targets: Vec<observe::Target>,
    copies: Vec<String>,
}

impl Observed {
    fn seen<'a, K: KeyringResource>(&'a self, k: &'a K, with_annotations: bool) -> Seen<'a> {
        let annotation = |key| k.annotations().get(key).map(String::as_str).filter(|_| with_annotations);
        Seen {
            secret_name: &self.spec.secret_name,
            place: &self.place,
            master: self.master.as_ref(),
            status: k.keyring_status(),
            labelled: &self.copies,
            restore_from: annotation(ANN_RESTORE_FROM),
            accept_missing: annotation(ANN_ACCEPT_MISSING),
        }
    }
}

/// Observe a keyring: its spec, its master from the API server, its
/// targets and copies from the caches; or why it is held before anything
/// else is looked at.
async fn observe<K: KeyringResource>(k: &K, ctx: &Ctx) -> Result<std::result::Result<Observed, Hold>> {
    let spec = match desired::validate(k) {
        Ok(s) => s,
        Err(inv) => return Ok(Err(Hold::Spec(inv))),
    };
    ctx.synced().await?;
    let master_ns = k.master_namespace(&ctx.shared.cluster_namespace);
    let place = format!("{master_ns}/{}", spec.secret_name);
    let secret = observe::secret(&ctx.shared.client, &master_ns, &spec.secret_name).await?;
    let master = match decide::master(k, &place, secret, Timestamp::now()) {
        Ok(m) => m,
        Err(hold) => return Ok(Err(hold)),
    };
    let targets = observe::targets(ctx, &spec, &master_ns);
    let copies = observe::copies(k, ctx, &spec, &targets);
    Ok(Ok(Observed { spec, master_ns, place, master, targets, copies }))
}

/// Reconcile a keyring that is not being deleted.
pub async fn apply<K: KeyringResource>(k: &K, ctx: &Ctx) -> Result<Action> {
    let seen = match observe(k, ctx).await? {
        Ok(seen) => seen,
        Err(hold) => return report::held(k, ctx, None, &hold).await,
    };
    let decision = decide::keyring(&seen.seen(k, true));
    // Act and report.
    let refreshed;
    let k = match &decision.accept {
        Accept::Absent => k,
        Accept::Accepted(ids) => {
            report::publish(k, ctx, vec![Note::KeysAccepted(ids.clone())]).await;
            k
        }
        Accept::Refused(why) => {
            report::publish(k, ctx, vec![Note::AcceptRefused(why.clone())]).await;
            match writer::remove_annotation(&ctx.shared.client, k, ANN_ACCEPT_MISSING).await? {
                Some(rv) => {
                    refreshed = k.at_version(Some(rv));
                    &refreshed
                }
                None => k,
            }
        }
    };
    if let Some(gauge) = decision.guard_gauge() {
        ctx.shared.metrics.set_guard(&k.id(), gauge);
    }
    let Observed { spec, master_ns, master, targets, .. } = seen;
    let action = match decision.next {
        Next::Hold(hold) => return report::held(k, ctx, master.as_ref(), &hold).await,
        Next::Restore { from, guard } => {
            return create::restore(k, ctx, &spec, &master_ns, &targets, guard.as_ref(), &from).await;
        }
        Next::Create => create::master(k, ctx, &spec, &master_ns, &targets).await?,
        Next::Converge => {
            let m = master.expect("converge decides on an existing master");
            converge::keyring(k, ctx, &spec, &master_ns, m, targets).await?
        }
    };
    if let Accept::Accepted(_) = decision.accept {
        writer::remove_annotation(&ctx.shared.client, k, ANN_ACCEPT_MISSING).await?;
    }
    Ok(action)
}

/// Deletion: `Delete` removes the copies, the recipient ConfigMaps and the
/// master; `Retain` leaves them without the keyring's labels — and so does
/// `Delete` while anything holds the keyring's writes (a guard, an invalid
/// spec or master): those Secrets may be the last holders of its keys. Only
/// objects the operator wrote (name, role, label) are touched. Idempotent. Everything the
/// process remembers of the keyring is forgotten.
pub async fn cleanup<K: KeyringResource>(k: &K, ctx: &Ctx) -> Result<()> {
    let hold = match k.common().deletion_policy {
        DeletionPolicy::Retain => None,
        DeletionPolicy::Delete => deletion_hold(k, ctx).await?,
    };
    let (policy, note) = decide::deletion(k.common().deletion_policy, hold.as_ref());
    let master_ns = k.master_namespace(&ctx.shared.cluster_namespace);
    // Under the name in the spec and the one the master was created with
    // (they differ while SecretNameChanged holds).
    let mut names = vec![k.secret_name()];
    names.extend(k.keyring_status().and_then(|s| s.secret_name.clone()).filter(|n| *n != names[0]));
    let labelled = observe::list_labelled(k, &ctx.shared.client).await?;
    let managed: Vec<_> = labelled
        .into_iter()
        .filter(|s| names.iter().any(|n| !observe::ours::<K>(vec![s.clone()], n, &master_ns).is_empty()))
        .collect();
    for s in &managed {
        match policy {
            DeletionPolicy::Delete => writer::delete(&ctx.shared.client, s).await?,
            DeletionPolicy::Retain => writer::release(&ctx.shared.client, s).await?,
        }
    }
    info!(secrets = ?observe::places(&managed), "{}", cleanup_verb(policy));
    // The recipient ConfigMaps follow the copies.
    let published = publish::ours_on_server(k, &ctx.shared.client, &names).await?;
    for c in &published {
        match policy {
            DeletionPolicy::Delete => writer::delete(&ctx.shared.client, c).await?,
            DeletionPolicy::Retain => writer::release(&ctx.shared.client, c).await?,
        }
    }
    if !published.is_empty() {
        let places: Vec<String> = published
            .iter()
            .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
            .collect();
        info!(config_maps = ?places, "recipient ConfigMaps {}", cleanup_verb(policy));
    }
    let notes = note.into_iter().chain([Note::Cleanup { policy, secrets: managed.len() }]).collect();
    report::publish(k, ctx, notes).await;
    ctx.shared.forget(&k.id());
    ctx.shared.metrics.forget(&k.id());
    Ok(())
}

/// What keeps `Delete` from applying: a hold, or keys no backup holds.
async fn deletion_hold<K: KeyringResource>(k: &K, ctx: &Ctx) -> Result<Option<Hold>> {
    let seen = match observe(k, ctx).await? {
        Err(hold) => return Ok(Some(hold)),
        Ok(seen) => seen,
    };
    if let Next::Hold(hold) = decide::keyring(&seen.seen(k, false)).next {
        return Ok(Some(hold));
    }
    let last = escrow::BackupState::of(k, ctx, &seen.spec, &seen.master_ns).last;
    Ok(seen.master.as_ref().and_then(|m| decide::not_backed_up(&seen.spec, &m.ring, last.as_ref())))
}
