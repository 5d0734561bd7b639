//! One reconcile: observe (the master from the API server, labelled
//! Secrets and namespaces from caches that already hold the trigger) →
//! decide (the pure functions of `desired`, `guard` and `status`) → apply
//! (through `writer`, the one place that writes Secrets) → report (status,
//! events, metrics).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use encstr_core::{KeyId, Keyring};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Client, ResourceExt};
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::backup;
use crate::cache::{self, Phase};
use crate::controller::{Ctx, remove_annotation};
use crate::crd::*;
use crate::desired::{self, Invalid, KeyMeta, Observed, Step, ValidSpec};
use crate::error::{Error, Result};
use crate::guard::{self, Guard, Restore};
use crate::keyring::{Id, KeyringResource, Kind, is_managed};
use crate::metrics::{KeyStateLabels, KeyringLabels, TargetLabels};
use crate::status;
use crate::usage::Usage;
use crate::writer::{self, Created};

/// Page size of the lists the operator makes.
const PAGE: u32 = 500;

/// Page size of usage scans: ConfigMaps and Secrets may be up to 1 MiB
/// each, and a scan holds one page at a time (see BENCHMARKS.md).
const USAGE_PAGE: u32 = 100;

/// Events collected during a reconcile, published with the status.
type Events = Vec<(EventType, &'static str, String)>;

/// The master as found: parsed, or why it cannot be used.
struct Master {
    secret: Secret,
    ring: Keyring,
    meta: KeyMeta,
}

fn parse_ring(secret: &Secret) -> std::result::Result<Keyring, encstr_core::Error> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .map(|b| Zeroizing::new(b.0.clone()))
        .unwrap_or_default();
    std::str::from_utf8(&bytes).map_err(|_| encstr_core::Error::NotUtf8).and_then(Keyring::parse)
}

/// Read the master from the API server (the source of truth, never a cache).
async fn read_master<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
) -> Result<std::result::Result<Option<Master>, Invalid>> {
    let api: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), master_ns);
    let Some(secret) = api.get_opt(&spec.secret_name).await? else { return Ok(Ok(None)) };
    if secret.labels().get(K::KIND.label()) != Some(&k.name_any()) {
        return Ok(Err(Invalid::new(
            "SecretConflict",
            format!(
                "Secret {master_ns}/{} exists and is not this keyring's master; it is left alone (choose another spec.secretName, or import it with spec.importFrom)",
                spec.secret_name
            ),
        )));
    }
    match parse_ring(&secret) {
        Ok(ring) => {
            // A master put back by hand (from a backup or an offline file)
            // has no lifecycle annotations: take them from the status's
            // record, so that nothing (like an old rotation request) is
            // done twice.
            let restored = !secret.annotations().keys().any(|a| a.starts_with(LABEL_PREFIX));
            let meta = if restored {
                meta_from_status(
                    &ring,
                    k.keyring_status(),
                    k.annotations().get(ANN_ROTATE).map(String::as_str),
                )
            } else {
                KeyMeta::from_annotations(secret.annotations())
            };
            Ok(Ok(Some(Master { secret, ring, meta })))
        }
        Err(e) => Ok(Err(Invalid::new(
            "MasterInvalid",
            format!(
                "the keyring in Secret {master_ns}/{} is not valid ({e}); restore it from a backup",
                spec.secret_name
            ),
        ))),
    }
}

/// Secrets carrying this keyring's label, other than the master itself
/// (`namespace/name`), from the cache.
fn labelled_elsewhere<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    master_ns: &str,
    secret_name: &str,
) -> Vec<String> {
    let name = k.name_any();
    let own_ns = k.namespace();
    let mut out: Vec<String> = ctx
        .secrets
        .labelled(K::KIND.label(), &name)
        .into_iter()
        .filter(|(ns, _)| K::KIND == Kind::Cluster || own_ns.as_deref() == Some(ns.as_str()))
        .filter(|(ns, n)| !(ns == master_ns && n == secret_name))
        .map(|(ns, n)| format!("{ns}/{n}"))
        .collect();
    out.sort();
    out
}

/// Secrets carrying this keyring's label, from the API server (paginated).
async fn list_labelled<K: KeyringResource>(k: &K, client: &Client) -> Result<Vec<Secret>> {
    let api: Api<Secret> = match K::KIND {
        Kind::Namespaced => Api::namespaced(client.clone(), &k.namespace().unwrap_or_default()),
        Kind::Cluster => Api::all(client.clone()),
    };
    let selector = format!("{}={}", K::KIND.label(), k.name_any());
    let mut out = Vec::new();
    let mut lp = ListParams::default().labels(&selector).limit(PAGE);
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => return Ok(out),
        }
    }
}

/// Reconcile a keyring that is not being deleted.
pub async fn apply<K: KeyringResource>(k: &K, ctx: &Ctx) -> Result<Action> {
    let spec = match desired::validate(k) {
        Ok(s) => s,
        Err(inv) => return blocked(k, ctx, None, &inv, None).await,
    };
    ctx.synced().await?;
    let master_ns = k.master_namespace(&ctx.shared.cluster_namespace);
    let master = match read_master(k, ctx, &spec, &master_ns).await? {
        Ok(m) => m,
        Err(inv) => return blocked(k, ctx, None, &inv, None).await,
    };
    let elsewhere = labelled_elsewhere(k, ctx, &master_ns, &spec.secret_name);
    let mut accepted = Vec::new();
    let guard_input = |accepted: &[KeyId]| {
        guard::check(&guard::Input {
            secret_name: &spec.secret_name,
            status: k.keyring_status(),
            master: master.as_ref().map(|m| (&m.ring, &m.meta)),
            labelled: &elsewhere,
            accepted,
        })
    };
    let mut guard = guard_input(&[]);
    if let Some(ns) = k.annotations().get(ANN_RESTORE_FROM) {
        return restore(k, ctx, &spec, &master_ns, guard.as_ref(), ns).await;
    }
    if let Some(value) = k.annotations().get(ANN_ACCEPT_MISSING) {
        match guard::accept(guard.as_ref(), value) {
            Ok(ids) => {
                let list = guard::ids(&ids);
                ctx.shared.publish(k, EventType::Warning, "KeysAccepted", format!("the loss of key(s) {list} was acknowledged with encstr.io/accept-missing-keys; they are dropped from the record")).await;
                accepted = ids;
                guard = guard_input(&accepted);
            }
            Err(why) => {
                ctx.shared.publish(k, EventType::Warning, "AcceptRefused", why).await;
                remove_annotation(k, ctx, ANN_ACCEPT_MISSING).await?;
            }
        }
    }
    ctx.shared.metrics.set_guard(&k.id(), guard.as_ref().map(Guard::reason));
    if let Some(g) = guard {
        let inv = Invalid::new(g.reason(), g.message(&format!("{master_ns}/{}", spec.secret_name)));
        return blocked(k, ctx, master.as_ref(), &inv, Some(&g)).await;
    }
    let action = match master {
        None => create_master(k, ctx, &spec, &master_ns).await?,
        Some(m) => converge(k, ctx, &spec, &master_ns, m).await?,
    };
    if !accepted.is_empty() {
        remove_annotation(k, ctx, ANN_ACCEPT_MISSING).await?;
    }
    Ok(action)
}

/// Nothing can be written (invalid spec, a guard, a foreign or broken
/// master): status and a Warning event when the reason or message changes.
async fn blocked<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    master: Option<&Master>,
    inv: &Invalid,
    guard: Option<&Guard>,
) -> Result<Action> {
    warn!(reason = inv.reason, message = %inv.message, "holding back");
    let previous = k.keyring_status().and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::READY));
    if previous.is_none_or(|c| c.reason != inv.reason || c.message != inv.message) {
        ctx.shared.publish(k, EventType::Warning, inv.reason, inv.message.clone()).await;
    }
    // A guard keeps the record of handed-out keys as it was.
    let shown = if guard.is_some() { None } else { master.map(|m| (&m.ring, &m.meta)) };
    let st = status::compute(
        k.keyring_status(),
        &status::Input {
            master: shown,
            secret_name: None,
            cluster: K::KIND == Kind::Cluster,
            usage: None,
            blocked: &[],
            targets: k.keyring_status().map(|s| s.targets.clone()).unwrap_or_default(),
            invalid: Some(inv),
            generation: k.meta().generation,
            backup: status::BackupInput::Carry,
            promotion_at: None,
            now: Timestamp::now(),
        },
    );
    write_status(k, ctx, st).await?;
    Ok(if guard.is_some() { Action::requeue(ctx.shared.resync) } else { Action::await_change() })
}

/// Write the status (server-side apply of the status subresource) if it
/// changed.
pub async fn write_status<K: KeyringResource>(k: &K, ctx: &Ctx, st: KeyringStatus) -> Result<()> {
    if k.keyring_status() == Some(&st) {
        return Ok(());
    }
    // Serialized straight from the struct: with 10,000 targets a JSON
    // value tree of the status would be megabytes of small allocations.
    let body = StatusApply { api_version: "encstr.io/v1alpha1", kind: K::KIND.as_str(), status: &st };
    K::api(ctx.shared.client.clone(), &k.namespace().unwrap_or_default())
        .patch_status(&k.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(body))
        .await?;
    Ok(())
}

/// The body of a status apply.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusApply<'a> {
    api_version: &'static str,
    kind: &'static str,
    status: &'a KeyringStatus,
}

/// The keyring for a new master: imported or freshly generated.
async fn initial_keyring(
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
) -> Result<std::result::Result<(Keyring, &'static str), Invalid>> {
    let Some((name, key)) = &spec.import else {
        return Ok(Ok((Keyring::generate()?, "KeyringGenerated")));
    };
    let api: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), master_ns);
    let Some(source) = api.get_opt(name).await? else {
        return Ok(Err(Invalid::new(
            "ImportNotFound",
            format!("spec.importFrom: Secret {name:?} not found in namespace {master_ns}"),
        )));
    };
    if is_managed(source.labels()) {
        return Ok(Err(Invalid::new(
            "ImportOfManagedSecret",
            format!(
                "spec.importFrom: Secret {master_ns}/{name} carries encstr.io labels (another keyring's master or copy) and is never imported"
            ),
        )));
    }
    let Some(bytes) = source.data.as_ref().and_then(|d| d.get(key)) else {
        return Ok(Err(Invalid::new(
            "ImportInvalid",
            format!("spec.importFrom: Secret {name:?} has no key {key:?}"),
        )));
    };
    let text = Zeroizing::new(String::from_utf8_lossy(&bytes.0).into_owned());
    Ok(match Keyring::parse(&text) {
        Ok(ring) => Ok((ring, "KeyringImported")),
        Err(e) => Err(Invalid::new(
            "ImportInvalid",
            format!("spec.importFrom: Secret {name:?} key {key:?} is not a valid keyring: {e}"),
        )),
    })
}

/// Create the master of a new keyring (generated or imported), after
/// checking with the API server that no Secret carries its label (keys
/// handed out by a master that is gone).
async fn create_master<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
) -> Result<Action> {
    let labelled = list_labelled(k, &ctx.shared.client).await?;
    if !labelled.is_empty() {
        let copies: Vec<String> = labelled
            .iter()
            .map(|s| format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()))
            .collect();
        let g = Guard::MasterMissing { copies };
        ctx.shared.metrics.set_guard(&k.id(), Some(g.reason()));
        let inv = Invalid::new(g.reason(), g.message(&format!("{master_ns}/{}", spec.secret_name)));
        return blocked(k, ctx, None, &inv, Some(&g)).await;
    }
    let (ring, reason) = match initial_keyring(ctx, spec, master_ns).await? {
        Ok(r) => r,
        Err(inv) => return blocked(k, ctx, None, &inv, None).await,
    };
    let now = Timestamp::now();
    let mut r = Report::default();
    // Backed up before the master exists: no key without an escrow copy.
    if !back_up(k, ctx, spec, master_ns, &ring, &mut r.backup, &mut r.events).await {
        for (type_, reason, note) in r.events {
            ctx.shared.publish(k, type_, reason, note).await;
        }
        let st = status::compute(
            k.keyring_status(),
            &status::Input {
                master: None,
                secret_name: None,
                cluster: K::KIND == Kind::Cluster,
                usage: None,
                blocked: &[],
                targets: Vec::new(),
                invalid: None,
                generation: k.meta().generation,
                backup: status::BackupInput::On { last: None, failure: r.backup.failure.as_deref() },
                promotion_at: None,
                now,
            },
        );
        write_status(k, ctx, st).await?;
        return Ok(Action::requeue(r.backup.retry.unwrap_or(Duration::from_secs(60))));
    }
    let meta = KeyMeta::initial(&ring, k.annotations().get(ANN_ROTATE).map(String::as_str), now);
    match writer::create(&ctx.shared.client, &new_master(k, spec, master_ns, &ring, &meta)).await? {
        Created::Yes(_) => {}
        // Created meanwhile (a retry, another replica): read it next time.
        Created::AlreadyExists => return Ok(Action::requeue(Duration::from_millis(100))),
        Created::NoNamespace(why) => {
            let inv = Invalid::new(
                "MasterNamespaceMissing",
                format!("cannot create the master in namespace {master_ns}: {why}"),
            );
            return blocked(k, ctx, None, &inv, None).await;
        }
    }
    let verb = if reason == "KeyringImported" { "imported" } else { "generated" };
    let note = format!(
        "{verb} keyring with primary key {} in Secret {master_ns}/{}",
        ring.primary().id(),
        spec.secret_name
    );
    info!(keys = ring.len(), "{note}");
    ctx.shared.publish(k, EventType::Normal, reason, note).await;
    report(k, ctx, spec, &ring, &meta, r).await?;
    Ok(Action::requeue(Duration::from_millis(50)))
}

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

/// `encstr.io/restore-from=<namespace>`: rebuild a missing master from the
/// copy there (only a complete one), or say why not; the annotation goes
/// either way.
async fn restore<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
    guard: Option<&Guard>,
    ns: &str,
) -> Result<Action> {
    let copy = if K::KIND == Kind::Cluster && desired::is_dns_label(ns) {
        let api: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), ns);
        api.get_opt(&spec.secret_name)
            .await?
            .filter(|s| s.labels().get(K::KIND.label()) == Some(&k.name_any()))
    } else {
        None
    };
    let ring = copy.as_ref().and_then(|s| parse_ring(s).ok());
    match guard::restore(guard, ns, K::KIND == Kind::Namespaced, ring.as_ref(), k.keyring_status()) {
        Restore::From(from) => {
            let ring = ring.expect("a complete copy");
            let meta = meta_from_status(
                &ring,
                k.keyring_status(),
                k.annotations().get(ANN_ROTATE).map(String::as_str),
            );
            let secret = new_master(k, spec, master_ns, &ring, &meta);
            if let Created::Yes(_) = writer::create(&ctx.shared.client, &secret).await? {
                let note = format!(
                    "rebuilt the master {master_ns}/{} from the copy in namespace {from} (keys {})",
                    spec.secret_name,
                    desired::key_ids(&ring)
                );
                ctx.shared.publish(k, EventType::Normal, "MasterRestored", note).await;
            }
        }
        Restore::Refused(why) => ctx.shared.publish(k, EventType::Warning, "RestoreRefused", why).await,
    }
    remove_annotation(k, ctx, ANN_RESTORE_FROM).await?;
    Ok(Action::requeue(Duration::from_millis(50)))
}

/// The lifecycle of a restored master, from the status's record.
fn meta_from_status(ring: &Keyring, st: Option<&KeyringStatus>, rotate: Option<&str>) -> KeyMeta {
    let now = Timestamp::now();
    let mut meta = KeyMeta::initial(ring, rotate, now);
    let time = |t: &Option<String>| t.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
    for k in st.into_iter().flat_map(|s| &s.keys) {
        let Ok(id) = k.id.parse::<KeyId>() else { continue };
        if !ring.contains(id) {
            continue;
        }
        if let Some(t) = time(&k.created_at) {
            meta.created.insert(id, t);
        }
        if let Some(t) = time(&k.promoted_at) {
            meta.promoted.insert(id, t);
        }
        if let Some(t) = time(&k.retired_at) {
            meta.retired.insert(id, t);
        }
        if k.state == KeyState::Staged && id != ring.primary().id() {
            meta.staged = Some(id);
            meta.retired.remove(&id);
        }
    }
    meta
}

/// A target namespace and whether a copy can go there.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Active(String),
    Missing(String),
    Terminating(String),
}

impl Target {
    fn name(&self) -> &str {
        match self {
            Target::Active(n) | Target::Missing(n) | Target::Terminating(n) => n,
        }
    }
}

/// The target namespaces (list ∪ selector matches), without the master's.
fn targets(ctx: &Ctx, spec: &ValidSpec, master_ns: &str) -> Vec<Target> {
    let Some(index) = &ctx.namespaces else { return Vec::new() };
    let mut names: BTreeSet<String> = spec.namespaces.clone();
    if let Some(sel) = &spec.selector {
        names.extend(index.matching(sel));
    }
    names.remove(master_ns);
    names
        .into_iter()
        .map(|n| match index.phase(&n) {
            None => Target::Missing(n),
            Some(Phase::Terminating) => Target::Terminating(n),
            Some(Phase::Active) => Target::Active(n),
        })
        .collect()
}

/// Whether every active target's copy is identical to the master, as the
/// API server (not the cache) says.
async fn copies_current_on_server<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    targets: &[Target],
    bytes: &[u8],
    ids: &str,
) -> Result<bool> {
    let labels = k.managed_labels("copy");
    let copies: BTreeMap<String, Secret> = list_labelled(k, &ctx.shared.client)
        .await?
        .into_iter()
        .map(|s| (s.namespace().unwrap_or_default(), s))
        .collect();
    Ok(targets.iter().all(|t| match t {
        Target::Active(ns) => {
            copies.get(ns).is_some_and(|s| desired::copy_is_current(s, bytes, ids, &labels))
        }
        Target::Missing(_) | Target::Terminating(_) => true,
    }))
}

/// Everything `report` needs besides the keyring.
#[derive(Debug, Default)]
struct Report {
    backup: BackupState,
    targets: Vec<TargetStatus>,
    usage: Option<Usage>,
    blocked: Vec<KeyId>,
    events: Events,
    promotion_at: Option<Timestamp>,
}

/// Backups during one reconcile: the newest written and the last failure.
#[derive(Debug, Default)]
struct BackupState {
    last: Option<LastBackup>,
    failure: Option<String>,
    retry: Option<Duration>,
}

impl BackupState {
    fn of<K: KeyringResource>(k: &K, ctx: &Ctx) -> Self {
        let from_status = k.keyring_status().and_then(|s| s.last_backup.as_ref());
        BackupState { last: ctx.shared.last_backup(&k.id(), from_status), ..Default::default() }
    }
}

/// Back `ring` up to every destination (when the spec asks for backups):
/// events, metrics and the retry delay follow the outcome. Whether every
/// key of `ring` is now in a backup.
async fn back_up<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
    ring: &Keyring,
    b: &mut BackupState,
    events: &mut Events,
) -> bool {
    let Some(plan) = &spec.backup else { return true };
    if let Err((why, wait)) = ctx.shared.may_back_up(&k.id()) {
        // Backing off after a failure.
        b.failure = Some(why);
        b.retry = Some(wait.max(Duration::from_millis(100)));
        return false;
    }
    let owner = backup::Owner {
        labels: k.managed_labels("backup"),
        label: (K::KIND.label().to_owned(), k.name_any()),
    };
    let kl = KeyringLabels::of(&k.id());
    let ids = backup::ids(ring).join(",");
    let to = backup::Destination {
        master_ns,
        writer: match K::KIND {
            Kind::Namespaced => backup::store::Writer::Tenant,
            Kind::Cluster => backup::store::Writer::Admin,
        },
        policy: &ctx.shared.backup_policy,
        timeout: ctx.shared.backup_timeout,
    };
    match backup::write(&ctx.shared.client, plan, to, &owner, ring, Timestamp::now()).await {
        Ok(last) => {
            ctx.shared.backed_up(&k.id(), None);
            ctx.shared.wrote_backup(&k.id(), &last);
            let now = Timestamp::now().as_millisecond() as f64 / 1000.0;
            ctx.shared.metrics.backup_success.get_or_create(&kl).set(now);
            info!(keys = %ids, location = %last.location, "backup written");
            events.push((
                EventType::Normal,
                "BackupWritten",
                format!("backed up keys {ids} to {}", last.location),
            ));
            b.last = Some(last);
            b.failure = None;
            b.retry = None;
            true
        }
        Err(f) => {
            ctx.shared.metrics.backup_failures.get_or_create(&kl).inc();
            b.retry = ctx.shared.backed_up(&k.id(), Some(&f.to_string()));
            warn!(keys = %ids, error = %f, "backup failed");
            let reason = f.kind.reason();
            events.push((
                EventType::Warning,
                reason,
                format!(
                    "backup of keys {ids} to {f}; keys not yet backed up are neither distributed nor promoted"
                ),
            ));
            b.failure = Some(f.to_string());
            false
        }
    }
}

/// The part of `ring` that backups hold (what may be distributed), or
/// `None` if no key of it is backed up.
fn backed_up_part(ring: &Keyring, last: Option<&LastBackup>) -> Option<Keyring> {
    let last = last?;
    let keys: Vec<_> =
        ring.keys().filter(|key| last.key_ids.contains(&key.id().to_string())).cloned().collect();
    Keyring::new(keys).ok()
}

/// Converge an existing master and its copies: at most one lifecycle step
/// on the master, then distribution, then the report.
async fn converge<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
    m: Master,
) -> Result<Action> {
    let now = Timestamp::now();
    if spec.import.is_some()
        && k.keyring_status().is_some_and(|s| s.observed_generation != k.meta().generation)
    {
        let note =
            "spec.importFrom is read only when the master is first created; the existing master is kept";
        ctx.shared.publish(k, EventType::Normal, "ImportIgnored", note.into()).await;
    }
    // Observe and decide.
    let targets = targets(ctx, spec, master_ns);
    let plan = plan(k, ctx, spec, master_ns, &m, &targets, now).await?;
    let mut r = Report { usage: plan.scan.last, backup: BackupState::of(k, ctx), ..Report::default() };
    // Apply: the master (a keyring with a key no backup holds is backed up
    // first), a backup of any other change, then the copies.
    let stepped = plan.step.is_some();
    let (ring, meta) = write_master(k, ctx, spec, master_ns, m, plan.step, now, &mut r).await?;
    if spec.backup.is_some()
        && r.backup.failure.is_none()
        && !backup::is_current(r.backup.last.as_ref(), &ring)
    {
        back_up(k, ctx, spec, master_ns, &ring, &mut r.backup, &mut r.events).await;
    }
    let mut failure = None;
    if K::KIND == Kind::Cluster {
        // Only keys a backup holds are distributed.
        let shared = match &spec.backup {
            Some(_) if !backup::holds_all(r.backup.last.as_ref(), &ring) => {
                backed_up_part(&ring, r.backup.last.as_ref())
            }
            _ => Some(ring.clone()),
        };
        match shared {
            Some(shared) => {
                (r.targets, failure) = distribute(k, ctx, spec, &targets, &shared, &mut r.events).await?;
            }
            None => {
                let why =
                    "no key of the keyring is backed up yet; nothing is distributed before a backup holds it";
                r.targets = targets
                    .iter()
                    .map(|t| target_status(t.name(), false, Some("BackupPending"), Some(why.into())))
                    .collect();
            }
        }
    }
    let backup_retry = r.backup.retry;
    // A step held back for a backup is not a step taken.
    let stepped = stepped && r.backup.failure.is_none();
    // Report.
    r.blocked = prune_blocked(k, &plan.candidates, &ring, r.usage.as_ref(), &mut r.events);
    r.promotion_at = meta
        .staged
        .and(meta.distributed_at)
        .map(|at| at + SignedDuration::try_from(spec.promotion_delay).unwrap_or_default());
    let promotion_at = r.promotion_at;
    report(k, ctx, spec, &ring, &meta, r).await?;
    if let Some(e) = failure {
        return Err(e);
    }
    let mut wait = next_look(ctx, spec, &ring, &meta, stepped, promotion_at, now);
    if let Some(retry) = backup_retry {
        wait = wait.min(retry);
    }
    // Keys retention wants gone are looked at again after the scan interval
    // (ConfigMaps and Secrets are not watched).
    if !plan.candidates.is_empty() {
        wait = wait.min(ctx.shared.scan_interval.max(Duration::from_millis(200)));
    }
    Ok(Action::requeue(wait))
}

/// What a reconcile of an existing master decided.
struct Plan {
    /// The lifecycle step to take, if any.
    step: Option<Step>,
    /// Keys retention wants gone.
    candidates: Vec<KeyId>,
    /// The usage scan.
    scan: Scan,
}

/// Observe what the next step depends on (copies from the API server while
/// a key is staged, usage when retention wants keys gone) and decide it.
async fn plan<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    master_ns: &str,
    m: &Master,
    targets: &[Target],
    now: Timestamp,
) -> Result<Plan> {
    let bytes = Zeroizing::new(m.ring.to_text().as_bytes().to_vec());
    let all_current = if m.meta.staged.is_some() {
        copies_current_on_server(k, ctx, targets, &bytes, &desired::key_ids(&m.ring)).await?
    } else {
        true
    };
    let candidates = desired::prune_candidates(spec, &m.ring, &m.meta, now);
    let scan =
        if candidates.is_empty() { Scan::default() } else { scan_usage(k, ctx, master_ns, targets).await };
    let step = desired::next_step(&Observed {
        spec,
        ring: &m.ring,
        meta: &m.meta,
        rotate_request: k.annotations().get(ANN_ROTATE).map(String::as_str),
        all_copies_current: all_current,
        usage: scan.fresh.as_ref().map(|u| &u.counts),
        now,
    });
    Ok(Plan { step, candidates, scan })
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
        && !back_up(k, ctx, spec, master_ns, &new_ring, &mut r.backup, &mut r.events).await
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
            // Said at once, not after distribution: a crash in between
            // would lose the record of the step.
            let mut said = Vec::new();
            step_event(ctx, &k.id(), step, &ring, &new_ring, &new_meta, &mut said);
            for (type_, reason, note) in said {
                ctx.shared.publish(k, type_, reason, note).await;
            }
        }
        None => info!("master annotations brought up to date"),
    }
    Ok((new_ring, new_meta))
}

/// Keys retention wants gone that are still used (with a Warning event
/// when that is news).
fn prune_blocked<K: KeyringResource>(
    k: &K,
    candidates: &[KeyId],
    ring: &Keyring,
    usage: Option<&Usage>,
    events: &mut Events,
) -> Vec<KeyId> {
    let Some(u) = usage else { return Vec::new() };
    let blocked: Vec<KeyId> =
        candidates.iter().filter(|c| ring.contains(**c) && u.count(**c) > 0).copied().collect();
    let was =
        k.keyring_status().and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::PRUNE_BLOCKED));
    let places: Vec<String> =
        blocked.iter().flat_map(|id| u.places.get(id).cloned().unwrap_or_default()).take(5).collect();
    let news =
        was.is_none_or(|c| c.status != "True" || !places.iter().all(|p| c.message.contains(p.as_str())));
    if !blocked.is_empty() && news {
        let note = format!(
            "key(s) {} exceed retention.maxKeys but are still used: {}",
            guard::ids(&blocked),
            places.join(", ")
        );
        events.push((EventType::Warning, "PruneBlocked", note));
    }
    blocked
}

fn step_event(
    ctx: &Ctx,
    id: &Id,
    step: &Step,
    before: &Keyring,
    after: &Keyring,
    meta: &KeyMeta,
    events: &mut Events,
) {
    let kl = KeyringLabels::of(id);
    match step {
        Step::Stage(reason) => {
            ctx.shared.metrics.rotations.get_or_create(&kl).inc();
            let why = match reason {
                desired::RotationReason::Requested => "requested with the encstr.io/rotate annotation",
                desired::RotationReason::Scheduled => "scheduled by spec.rotation.every",
            };
            let staged = meta.staged.map(|k| k.to_string()).unwrap_or_default();
            events.push((
                EventType::Normal,
                "KeyStaged",
                format!(
                    "rotation {why}: staged key {staged} (primary stays {} until every target holds it)",
                    after.primary().id()
                ),
            ));
        }
        Step::Promote => events.push((
            EventType::Normal,
            "KeyPromoted",
            format!("key {} is now primary; {} is decrypt-only", after.primary().id(), before.primary().id()),
        )),
        Step::Prune(removed) => {
            ctx.shared.metrics.pruned.get_or_create(&kl).inc_by(removed.len() as u64);
            events.push((
                EventType::Normal,
                "KeysPruned",
                format!("removed unused key(s) {} (retention.maxKeys)", guard::ids(removed)),
            ));
        }
        Step::MarkDistributed | Step::AcknowledgeRequest => {}
    }
}

/// When to look again.
fn next_look(
    ctx: &Ctx,
    spec: &ValidSpec,
    ring: &Keyring,
    meta: &KeyMeta,
    stepped: bool,
    promotion_at: Option<Timestamp>,
    now: Timestamp,
) -> Duration {
    let ring_prune_due = |spec: &ValidSpec, meta: &KeyMeta| desired::next_prune_at(spec, ring, meta);
    let resync = ctx.shared.resync;
    if stepped {
        Duration::from_millis(50)
    } else if let Some(at) = promotion_at {
        let wait = Duration::try_from(now.duration_until(at)).unwrap_or_default();
        wait.clamp(Duration::from_millis(100), resync.max(Duration::from_millis(100)))
    } else if meta.staged.is_some() {
        Duration::from_secs(2)
    } else {
        let rotation_due = spec.every.map(|every| {
            let since = meta.promoted.values().max().copied().unwrap_or(now);
            since + SignedDuration::try_from(every).unwrap_or_default()
        });
        let prune_due = ring_prune_due(spec, meta);
        match [rotation_due, prune_due].into_iter().flatten().min() {
            Some(due) => {
                let wait = Duration::try_from(now.duration_until(due)).unwrap_or_default();
                wait.clamp(Duration::from_millis(200), resync.max(Duration::from_millis(200)))
            }
            None => resync,
        }
    }
}

/// Make every active target hold a copy identical to the master: create
/// missing ones, replace stale ones of ours (resourceVersion precondition),
/// leave anybody else's alone. A failed write is reported per target and
/// returned, so the keyring is retried with backoff after its status is
/// written.
async fn distribute<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    targets: &[Target],
    ring: &Keyring,
    events: &mut Events,
) -> Result<(Vec<TargetStatus>, Option<Error>)> {
    let bytes = Zeroizing::new(ring.to_text().as_bytes().to_vec());
    let copy = Copy {
        digest: cache::digest(&bytes),
        bytes,
        ids: desired::key_ids(ring),
        labels: k.managed_labels("copy"),
    };
    let previous: BTreeMap<String, Option<String>> = k
        .keyring_status()
        .map(|s| s.targets.iter().map(|t| (t.namespace.clone(), t.reason.clone())).collect())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(targets.len());
    let mut written = Vec::new();
    let mut failure = None;
    // A few targets at a time (a copy is one round trip): results in order.
    // Futures are made as the window moves (10,000 made up front would hold
    // megabytes), from indices (a closure over `&Target` is not Send here).
    let copy = &copy;
    let mut results = futures::stream::iter(0..targets.len())
        .map(|i| sync_one(k, ctx, spec, &targets[i], copy))
        .buffered(DISTRIBUTE_CONCURRENCY);
    while let Some((t, result)) = results.next().await {
        let ns = t.name().to_owned();
        let st = match result {
            Ok((st, wrote)) => {
                if wrote {
                    written.push(ns.clone());
                }
                st
            }
            Err(e) if e.is_not_leader() => return Err(e),
            Err(e) => {
                let st =
                    target_status(&ns, false, Some(e.reason()), Some(format!("cannot write the copy: {e}")));
                failure = Some(e);
                st
            }
        };
        if st.reason.as_deref() == Some("SecretConflict") && previous.get(&ns) != Some(&st.reason) {
            let note = format!("namespace {ns}: {}", st.message.clone().unwrap_or_default());
            events.push((EventType::Warning, "SecretConflict", note));
        }
        out.push(st);
    }
    if !written.is_empty() {
        info!(namespaces = ?written, "copies written");
    }
    Ok((out, failure))
}

/// Copies written at the same time.
const DISTRIBUTE_CONCURRENCY: usize = 8;

/// What every copy holds.
struct Copy {
    bytes: Zeroizing<Vec<u8>>,
    digest: [u8; 32],
    ids: String,
    labels: BTreeMap<String, String>,
}

impl Copy {
    /// The copy to write in `ns`: `existing` (if any) with this keyring.
    fn secret(&self, existing: Option<&Secret>, ns: &str, name: &str) -> Secret {
        let annotations = BTreeMap::from([(ANN_KEY_IDS.to_owned(), self.ids.clone())]);
        desired::secret(existing, ns, name, self.labels.clone(), annotations, &self.bytes)
    }
}

fn target_status(ns: &str, synced: bool, reason: Option<&str>, message: Option<String>) -> TargetStatus {
    TargetStatus { namespace: ns.to_owned(), synced, reason: reason.map(str::to_owned), message }
}

/// [`sync_target`], with the target it was for.
async fn sync_one<'a, K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    t: &'a Target,
    copy: &Copy,
) -> (&'a Target, Result<(TargetStatus, bool)>) {
    (t, sync_target(k, ctx, spec, t, copy).await)
}

/// One target: its status and whether a copy was written.
async fn sync_target<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    t: &Target,
    copy: &Copy,
) -> Result<(TargetStatus, bool)> {
    let ns = t.name();
    match t {
        Target::Missing(_) => {
            return Ok((
                target_status(ns, false, Some("NamespaceNotFound"), Some("namespace not found".into())),
                false,
            ));
        }
        Target::Terminating(_) => {
            return Ok((
                target_status(
                    ns,
                    false,
                    Some("NamespaceTerminating"),
                    Some("namespace is terminating".into()),
                ),
                false,
            ));
        }
        Target::Active(_) => {}
    }
    let name = k.name_any();
    let cached =
        ctx.secrets.get(ns, &spec.secret_name).filter(|c| c.label(K::KIND.label()) == Some(name.as_str()));
    let mut written = false;
    let (synced, reason, message) = match cached {
        Some(c) if c.is_current(&copy.digest, &copy.ids, copy.labels.iter()) => (true, None, None),
        Some(_) => refresh_copy(k, ctx, spec, ns, copy, &mut written).await?,
        None => create_copy(k, ctx, spec, ns, copy, &mut written).await?,
    };
    Ok((target_status(ns, synced, reason, message), written))
}

/// Whether a target is synced, and if not, why.
type Outcome = (bool, Option<&'static str>, Option<String>);

/// A copy the cache does not hold: create it; if a Secret of that name
/// exists (the cache lags), it is refreshed as below.
async fn create_copy<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    ns: &str,
    copy: &Copy,
    written: &mut bool,
) -> Result<Outcome> {
    match writer::create(&ctx.shared.client, &copy.secret(None, ns, &spec.secret_name)).await? {
        Created::Yes(_) => {
            *written = true;
            Ok((true, None, None))
        }
        Created::NoNamespace(_) => Ok((false, Some("NamespaceNotFound"), Some("namespace not found".into()))),
        Created::AlreadyExists => refresh_copy(k, ctx, spec, ns, copy, written).await,
    }
}

/// A copy that is stale, or exists unknown to the cache: read it from the
/// API server (the cache keeps only a digest) and, if it is this keyring's
/// and not current, replace it with its other labels, annotations and data
/// kept; somebody else's Secret is left alone.
async fn refresh_copy<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    ns: &str,
    copy: &Copy,
    written: &mut bool,
) -> Result<Outcome> {
    let api: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), ns);
    match api.get_opt(&spec.secret_name).await? {
        Some(s) if s.labels().get(K::KIND.label()) == Some(&k.name_any()) => {
            if !desired::copy_is_current(&s, &copy.bytes, &copy.ids, &copy.labels) {
                let new = copy.secret(Some(&s), ns, &spec.secret_name);
                writer::replace(&ctx.shared.client, &new).await?;
                *written = true;
            }
            Ok((true, None, None))
        }
        Some(_) => Ok((
            false,
            Some("SecretConflict"),
            Some(format!(
                "a Secret named {} exists and is not managed by this keyring; it is left alone",
                spec.secret_name
            )),
        )),
        None => Ok((
            false,
            Some("WriteConflict"),
            Some("the Secret changed while it was being written; retrying".into()),
        )),
    }
}

/// A usage scan's outcome.
#[derive(Debug, Default)]
struct Scan {
    /// A complete count made now (the only one pruning may use).
    fresh: Option<Usage>,
    /// The last complete count (for reporting between rate-limited scans).
    last: Option<Usage>,
}

/// Count ENCSTR tokens per key in ConfigMaps and Secrets (other than
/// keyring Secrets) of the master's namespace, every target and every
/// namespace still holding a copy. No fresh count when a list fails or the
/// last scan was too recent: then nothing is pruned.
async fn scan_usage<K: KeyringResource>(k: &K, ctx: &Ctx, master_ns: &str, targets: &[Target]) -> Scan {
    if let Err(last) = ctx.shared.may_scan(&k.id()) {
        return Scan { fresh: None, last };
    }
    let usage = count_usage(k, ctx, master_ns, targets).await;
    if let Some(u) = &usage {
        ctx.shared.scanned(&k.id(), u);
    }
    Scan { last: usage.clone(), fresh: usage }
}

async fn count_usage<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    master_ns: &str,
    targets: &[Target],
) -> Option<Usage> {
    let mut namespaces: BTreeSet<String> = BTreeSet::from([master_ns.to_owned()]);
    namespaces.extend(targets.iter().filter(|t| matches!(t, Target::Active(_))).map(|t| t.name().to_owned()));
    namespaces.extend(ctx.secrets.labelled(K::KIND.label(), &k.name_any()).into_iter().map(|(ns, _)| ns));
    let mut usage = Usage::default();
    for ns in &namespaces {
        if let Err(e) = scan_namespace(&ctx.shared.client, ns, &mut usage).await {
            warn!(namespace = %ns, error = %e, "usage scan failed; nothing is pruned");
            return None;
        }
    }
    Some(usage)
}

async fn scan_namespace(client: &Client, ns: &str, usage: &mut Usage) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut lp = ListParams::default().limit(USAGE_PAGE);
    loop {
        let page = cms.list(&lp).await?;
        for cm in &page.items {
            let name = cm.name_any();
            for (key, v) in cm.data.iter().flatten() {
                usage.add(ns, "ConfigMap", &name, key, v.as_bytes());
            }
            for (key, v) in cm.binary_data.iter().flatten() {
                usage.add(ns, "ConfigMap", &name, key, &v.0);
            }
        }
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut lp = ListParams::default().limit(USAGE_PAGE);
    loop {
        let page = secrets.list(&lp).await?;
        for s in page.items.iter().filter(|s| !is_managed(s.labels())) {
            let name = s.name_any();
            for (key, v) in s.data.iter().flatten() {
                usage.add(ns, "Secret", &name, key, &v.0);
            }
        }
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => return Ok(()),
        }
    }
}

/// Status, events and metrics of a usable master.
async fn report<K: KeyringResource>(
    k: &K,
    ctx: &Ctx,
    spec: &ValidSpec,
    ring: &Keyring,
    meta: &KeyMeta,
    r: Report,
) -> Result<()> {
    let id = k.id();
    let st = status::compute(
        k.keyring_status(),
        &status::Input {
            master: Some((ring, meta)),
            secret_name: Some(&spec.secret_name),
            cluster: K::KIND == Kind::Cluster,
            usage: r.usage.as_ref(),
            blocked: &r.blocked,
            targets: r.targets,
            invalid: None,
            generation: k.meta().generation,
            backup: match &spec.backup {
                Some(_) => status::BackupInput::On {
                    last: r.backup.last.as_ref(),
                    failure: r.backup.failure.as_deref(),
                },
                None => status::BackupInput::Off,
            },
            promotion_at: r.promotion_at,
            now: Timestamp::now(),
        },
    );
    record_metrics(ctx, &id, ring, meta, &st, r.blocked.len());
    for (type_, reason, note) in r.events {
        ctx.shared.publish(k, type_, reason, note).await;
    }
    write_status(k, ctx, st).await
}

fn record_metrics(ctx: &Ctx, id: &Id, ring: &Keyring, meta: &KeyMeta, st: &KeyringStatus, blocked: usize) {
    let m = &ctx.shared.metrics;
    let (kind, namespace, keyring) = (id.kind.as_str(), id.namespace.clone(), id.name.clone());
    let states = desired::key_states(ring, meta);
    for state in [KeyState::Primary, KeyState::Staged, KeyState::DecryptOnly] {
        let n = states.iter().filter(|(_, s)| *s == state).count();
        m.keys
            .get_or_create(&KeyStateLabels {
                kind,
                namespace: namespace.clone(),
                keyring: keyring.clone(),
                state: state.as_str(),
            })
            .set(n as i64);
    }
    if let Some(p) = meta.primary_since(ring) {
        m.set_primary_since(id, p.as_second() as f64);
    }
    if id.kind == Kind::Cluster {
        let synced = st.targets.iter().filter(|t| t.synced).count() as i64;
        let total = st.targets.len() as i64;
        m.targets
            .get_or_create(&TargetLabels {
                kind,
                namespace: namespace.clone(),
                keyring: keyring.clone(),
                synced: "true",
            })
            .set(synced);
        m.targets
            .get_or_create(&TargetLabels { kind, namespace, keyring, synced: "false" })
            .set(total - synced);
    }
    m.prune_blocked.get_or_create(&KeyringLabels::of(id)).set(blocked as i64);
}

/// Deletion: `Delete` removes the copies and the master; `Retain` leaves
/// them without the keyring's labels. Idempotent.
pub async fn cleanup<K: KeyringResource>(k: &K, ctx: &Ctx) -> Result<()> {
    ctx.shared.forget_backup(&k.id());
    let managed = list_labelled(k, &ctx.shared.client).await?;
    let delete = k.common().deletion_policy == DeletionPolicy::Delete;
    let mut done = Vec::new();
    for s in &managed {
        if delete {
            writer::delete(&ctx.shared.client, s).await?;
        } else {
            writer::release(&ctx.shared.client, s).await?;
        }
        done.push(format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()));
    }
    let verb = if delete { "deleted" } else { "retained (no longer managed)" };
    info!(secrets = ?done, "{verb}");
    let note = format!("deletionPolicy {:?}: {} Secret(s) {verb}", k.common().deletion_policy, done.len());
    ctx.shared.publish(k, EventType::Normal, "Cleanup", note).await;
    ctx.shared.metrics.forget(&k.id());
    Ok(())
}

#[cfg(test)]
mod tests {
    use encstr_core::{Key, Seed};

    use super::*;

    #[test]
    fn a_restored_master_keeps_the_recorded_lifecycle() {
        let k1 = Key::from_seed(Seed::from_bytes([1; 32]));
        let k2 = Key::from_seed(Seed::from_bytes([2; 32]));
        let ring = Keyring::new(vec![k1.clone(), k2.clone()]).unwrap();
        let st = KeyringStatus {
            keys: vec![
                KeyStatus {
                    id: k1.id().to_string(),
                    state: KeyState::DecryptOnly,
                    created_at: Some("2026-01-01T00:00:00Z".into()),
                    promoted_at: None,
                    retired_at: Some("2026-06-01T00:00:00Z".into()),
                    in_use: None,
                },
                KeyStatus {
                    id: k2.id().to_string(),
                    state: KeyState::Primary,
                    created_at: Some("2026-05-01T00:00:00Z".into()),
                    promoted_at: Some("2026-06-01T00:00:00Z".into()),
                    retired_at: None,
                    in_use: None,
                },
            ],
            ..KeyringStatus::default()
        };
        let meta = meta_from_status(&ring, Some(&st), Some("7"));
        assert_eq!(meta.retired[&k1.id()], "2026-06-01T00:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(meta.promoted[&k2.id()], "2026-06-01T00:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(meta.rotate_handled.as_deref(), Some("7"), "a restore does not start a rotation");
        assert_eq!(meta.staged, None);
    }
}
