//! One reconcile of a keyring, as four steps:
//! - **observe** ([`observe`]): the master from the API server, labelled
//!   Secrets and namespaces from caches that already hold the trigger;
//! - **decide** ([`decide`], with `desired`, `guard` and `status`): pure
//!   functions from what was seen to one [`decide::Decision`];
//! - **act** ([`create`], [`converge`], [`distribute`], [`escrow`]): the
//!   only writes, each conditional on what was observed, through `writer`;
//! - **report** ([`report`]): status, events ([`events`] holds all their
//!   wording) and metrics.

pub mod converge;
pub mod create;
pub mod decide;
pub mod distribute;
pub mod escrow;
pub mod events;
pub mod observe;
pub mod report;

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

/// Reconcile a keyring that is not being deleted.
pub async fn apply<K: KeyringResource>(k: &K, ctx: &Ctx) -> Result<Action> {
    let spec = match desired::validate(k) {
        Ok(s) => s,
        Err(inv) => return report::held(k, ctx, None, &Hold::Spec(inv)).await,
    };
    ctx.synced().await?;
    // Observe.
    let master_ns = k.master_namespace(&ctx.shared.cluster_namespace);
    let place = format!("{master_ns}/{}", spec.secret_name);
    let secret = observe::secret(&ctx.shared.client, &master_ns, &spec.secret_name).await?;
    let master = match decide::master(k, &place, secret, k8s_openapi::jiff::Timestamp::now()) {
        Ok(m) => m,
        Err(hold) => return report::held(k, ctx, None, &hold).await,
    };
    let labelled = observe::labelled_elsewhere(k, ctx, &master_ns, &spec.secret_name);
    // Decide.
    let decision = decide::keyring(&Seen {
        secret_name: &spec.secret_name,
        place: &place,
        master: master.as_ref(),
        status: k.keyring_status(),
        labelled: &labelled,
        restore_from: k.annotations().get(ANN_RESTORE_FROM).map(String::as_str),
        accept_missing: k.annotations().get(ANN_ACCEPT_MISSING).map(String::as_str),
    });
    // Act and report.
    match &decision.accept {
        Accept::Absent => {}
        Accept::Accepted(ids) => report::publish(k, ctx, vec![Note::KeysAccepted(ids.clone())]).await,
        Accept::Refused(why) => {
            report::publish(k, ctx, vec![Note::AcceptRefused(why.clone())]).await;
            writer::remove_annotation(&ctx.shared.client, k, ANN_ACCEPT_MISSING).await?;
        }
    }
    if let Some(gauge) = decision.guard_gauge() {
        ctx.shared.metrics.set_guard(&k.id(), gauge);
    }
    let action = match decision.next {
        Next::Hold(hold) => return report::held(k, ctx, master.as_ref(), &hold).await,
        Next::Restore { from, guard } => {
            return create::restore(k, ctx, &spec, &master_ns, guard.as_ref(), &from).await;
        }
        Next::Create => create::master(k, ctx, &spec, &master_ns).await?,
        Next::Converge => {
            let m = master.expect("converge decides on an existing master");
            converge::keyring(k, ctx, &spec, &master_ns, m).await?
        }
    };
    if let Accept::Accepted(_) = decision.accept {
        writer::remove_annotation(&ctx.shared.client, k, ANN_ACCEPT_MISSING).await?;
    }
    Ok(action)
}

/// Deletion: `Delete` removes the copies and the master; `Retain` leaves
/// them without the keyring's labels. Idempotent. Everything the process
/// remembers of the keyring is forgotten.
pub async fn cleanup<K: KeyringResource>(k: &K, ctx: &Ctx) -> Result<()> {
    ctx.shared.forget(&k.id());
    let managed = observe::list_labelled(k, &ctx.shared.client).await?;
    let policy = k.common().deletion_policy;
    for s in &managed {
        match policy {
            DeletionPolicy::Delete => writer::delete(&ctx.shared.client, s).await?,
            DeletionPolicy::Retain => writer::release(&ctx.shared.client, s).await?,
        }
    }
    info!(secrets = ?observe::places(&managed), "{}", cleanup_verb(policy));
    report::publish(k, ctx, vec![Note::Cleanup { policy, secrets: managed.len() }]).await;
    ctx.shared.metrics.forget(&k.id());
    Ok(())
}
