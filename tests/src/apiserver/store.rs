//! The object store and its one write path, in kube-apiserver's shape:
//! decode (prune unknown fields: strict, warn or ignore), prepare (the
//! kind's strategy), default, admission (between `prepare_*` and
//! `commit`, outside the lock, so webhooks may be called), validate, field
//! ownership (server-side apply and updates), then storage with a
//! resourceVersion precondition and a change record that watches replay.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::auth::{Authenticator, UserInfo};
use super::errors::FieldError;
pub use super::errors::{ApiError, ApiResult};
use super::fields::{self, ManagerId};
use super::resources::{self, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::{patch, rbac, schema, smp, strategy};

/// Changes kept for watches and consistent lists at older resourceVersions.
pub const DEFAULT_HISTORY: usize = 10_000;

/// Identity of a stored object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    /// Storage group.
    pub group: String,
    /// Storage plural.
    pub plural: String,
    /// Namespace (`""` when cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Kind of a change, as in watch events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

/// One change of one object.
#[derive(Debug, Clone)]
pub struct Change {
    /// resourceVersion after the change.
    pub rv: u64,
    /// Which object.
    pub key: ObjKey,
    /// What happened.
    pub kind: ChangeKind,
    /// The object after (or, for deletions, as it was last), stored form.
    pub object: Value,
    /// The object before (modifications only).
    pub old: Option<Value>,
    /// When it happened (for watch delivery delays).
    pub at: Instant,
}

/// How a write was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// The main resource endpoint.
    Main,
    /// The `/status` subresource.
    Status,
}

/// Patch flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/json-patch+json`.
    Json,
    /// `application/apply-patch+yaml`.
    Apply {
        /// `force=true`.
        force: bool,
    },
}

/// `fieldValidation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop them and warn (the server's default).
    #[default]
    Warn,
    /// Refuse the request.
    Strict,
}

/// Per-request options of a write.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Who.
    pub user: UserInfo,
    /// Field manager.
    pub manager: String,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// Unknown fields.
    pub validation: FieldValidation,
    /// Main resource or status.
    pub sub: Sub,
}

impl Opts {
    /// Options for the server's own writes.
    pub fn system(manager: &str) -> Opts {
        Opts {
            user: UserInfo::system(manager),
            manager: manager.into(),
            dry_run: false,
            validation: FieldValidation::Ignore,
            sub: Sub::Main,
        }
    }
}

/// What a write is, before admission and commit.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The type written.
    pub t: Arc<ResourceType>,
    /// The object's key.
    pub key: ObjKey,
    /// The new object (stored form), as admission sees and changes it.
    pub obj: Value,
    /// The current object (updates).
    pub old: Option<Value>,
    /// `CREATE` or `UPDATE`.
    pub operation: &'static str,
    /// The request.
    pub opts: Opts,
    /// Warnings to return (unknown fields).
    pub warnings: Vec<String>,
    /// Ownership computed by an apply (`None`: an update, computed on commit).
    pub managed: Option<Vec<fields::Managed>>,
    /// The manager identity of this write.
    pub id: ManagerId,
}

/// A committed write.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The object as served.
    pub obj: Value,
    /// Warnings for the `Warning` header.
    pub warnings: Vec<String>,
    /// Whether it was created.
    pub created: bool,
}

/// Why a commit did not happen.
#[derive(Debug)]
pub enum CommitError {
    /// The object changed since it was prepared: prepare again.
    Retry,
    /// An API error.
    Api(ApiError),
}

impl From<ApiError> for CommitError {
    fn from(e: ApiError) -> Self {
        CommitError::Api(e)
    }
}

/// DeleteOptions that matter here.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `Orphan`, `Background` or `Foreground`.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// The store.
#[derive(Debug)]
pub struct Store {
    rv: u64,
    types: Vec<Arc<ResourceType>>,
    objects: BTreeMap<ObjKey, Value>,
    history: VecDeque<Arc<Change>>,
    /// Changes after this resourceVersion are all in `history`.
    oldest: u64,
    history_max: usize,
    tx: broadcast::Sender<Arc<Change>>,
    /// Tokens and identities.
    pub auth: Authenticator,
}

/// Now as RFC 3339 (seconds).
pub fn now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    rfc3339(secs)
}

/// Now as RFC 3339 with microseconds (MicroTime).
pub fn now_micro() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let base = rfc3339(d.as_secs());
    format!("{}.{:06}Z", &base[..base.len() - 1], d.subsec_micros())
}

/// Seconds since the epoch as `YYYY-MM-DDThh:mm:ssZ`.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// A random uid (v4).
pub fn uid() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut b = [0u8; 5];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect()
}

fn strip_type(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
}

fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default()
}

impl Default for Store {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(65_536);
        let mut s = Store {
            rv: 1,
            types: resources::builtins().into_iter().map(Arc::new).collect(),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            oldest: 1,
            history_max: DEFAULT_HISTORY,
            tx,
            auth: Authenticator::default(),
        };
        s.bootstrap();
        s
    }
}

impl Store {
    /// The namespaces and RBAC policy a new cluster has.
    fn bootstrap(&mut self) {
        let ns = self.type_of("", "v1", "namespaces").expect("builtin");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.system_create(&ns, "", json!({"metadata": {"name": name}}));
        }
        let (roles, bindings) = rbac::bootstrap();
        let cr = self.type_of(rbac::GROUP, "v1", "clusterroles").expect("builtin");
        for r in roles {
            self.system_create(&cr, "", r);
        }
        let crb = self.type_of(rbac::GROUP, "v1", "clusterrolebindings").expect("builtin");
        for b in bindings {
            self.system_create(&crb, "", b);
        }
        self.aggregate_cluster_roles();
        self.aggregate_cluster_roles();
    }

    fn system_create(&mut self, t: &Arc<ResourceType>, ns: &str, obj: Value) {
        let p = self.prepare_create(t, ns, obj, Opts::system("kube-apiserver")).expect("bootstrap object");
        self.commit(p).map_err(|_| ()).expect("bootstrap commit");
    }

    /// The types served.
    pub fn types(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion watches and lists can start from.
    pub fn oldest(&self) -> u64 {
        self.oldest
    }

    /// Keep this many changes.
    pub fn set_history(&mut self, n: usize) {
        self.history_max = n.max(1);
        self.trim_history();
    }

    fn trim_history(&mut self) {
        while self.history.len() > self.history_max {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest = dropped.rv;
            }
        }
    }

    /// A type by group, version and plural (or short name / singular).
    pub fn type_of(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| {
                t.group == group
                    && t.version == version
                    && (t.plural == resource
                        || t.singular == resource
                        || t.short_names.iter().any(|s| s == resource))
            })
            .cloned()
    }

    /// The type serving a stored object's preferred version.
    pub fn type_for_key(&self, key: &ObjKey) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.storage == (key.group.clone(), key.plural.clone()) && t.group == key.group)
            .cloned()
    }

    /// Subscribe to changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Drop the change history: watches and lists from any earlier
    /// resourceVersion get 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest = self.rv;
    }

    /// The key of an object of type `t`.
    pub fn key(t: &ResourceType, ns: &str, name: &str) -> ObjKey {
        ObjKey {
            group: t.storage.0.clone(),
            plural: t.storage.1.clone(),
            namespace: if t.namespaced { ns.to_owned() } else { String::new() },
            name: name.to_owned(),
        }
    }

    /// The stored object of a key.
    pub fn raw(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key)
    }

    fn record(&mut self, key: ObjKey, kind: ChangeKind, object: Value, old: Option<Value>) {
        let change = Arc::new(Change { rv: self.rv, key, kind, object, old, at: Instant::now() });
        self.history.push_back(change.clone());
        self.trim_history();
        let _ = self.tx.send(change);
    }

    fn check_namespace(&self, t: &ResourceType, ns: &str, name: &str) -> ApiResult<()> {
        if !t.namespaced {
            return Ok(());
        }
        let key = ObjKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: ns.into(),
        };
        match self.objects.get(&key) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(s) if s["metadata"]["deletionTimestamp"].is_string() => {
                let msg =
                    format!("unable to create new content in namespace {ns} because it is being terminated");
                let object =
                    if name.is_empty() { t.qualified() } else { format!("{} {name:?}", t.qualified()) };
                Err(ApiError::forbidden(
                    format!("{object} is forbidden: {msg}"),
                    Some(json!({"name": name, "group": t.group, "kind": t.plural,
                        "causes": [{"reason": "NamespaceTerminating", "message": msg, "field": "metadata.namespace"}]})),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// Get one object as served for `t`.
    pub fn get(&self, t: &ResourceType, ns: &str, name: &str) -> ApiResult<Value> {
        self.objects
            .get(&Self::key(t, ns, name))
            .map(|o| strategy::from_storage(t, o.clone()))
            .ok_or_else(|| ApiError::not_found(&t.group, &t.plural, name))
    }

    /// The objects of a type (one namespace or all), as stored, at the
    /// current resourceVersion or (`at`) an earlier one still in history.
    pub fn list_at(
        &self,
        t: &ResourceType,
        ns: Option<&str>,
        at: Option<u64>,
    ) -> ApiResult<Vec<(ObjKey, Value)>> {
        self.list_at_from(t, ns, at, |_| true)
    }

    /// [`Store::list_at`], cloning only the objects whose key `keep`
    /// accepts (a continued list skips what earlier pages served).
    pub fn list_at_from(
        &self,
        t: &ResourceType,
        ns: Option<&str>,
        at: Option<u64>,
        keep: impl Fn(&ObjKey) -> bool,
    ) -> ApiResult<Vec<(ObjKey, Value)>> {
        let (g, p) = &t.storage;
        let of_type = |k: &ObjKey| &k.group == g && &k.plural == p && ns.is_none_or(|n| k.namespace == n);
        // Keys sort by group, plural, namespace, name: one range holds the type.
        let first = ObjKey {
            group: g.clone(),
            plural: p.clone(),
            namespace: ns.unwrap_or_default().to_owned(),
            name: String::new(),
        };
        let mut state: BTreeMap<ObjKey, Value> = self
            .objects
            .range(first..)
            .take_while(|(k, _)| of_type(k))
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(rv) = at.filter(|rv| *rv < self.rv) {
            if rv < self.oldest {
                return Err(ApiError::new(
                    410,
                    "Expired",
                    format!("too old resource version: {rv} ({})", self.oldest),
                ));
            }
            for c in self.history.iter().rev().take_while(|c| c.rv > rv) {
                if !of_type(&c.key) || !keep(&c.key) {
                    continue;
                }
                match c.kind {
                    ChangeKind::Added => {
                        state.remove(&c.key);
                    }
                    ChangeKind::Modified => {
                        if let Some(old) = &c.old {
                            state.insert(c.key.clone(), old.clone());
                        }
                    }
                    ChangeKind::Deleted => {
                        state.insert(c.key.clone(), c.object.clone());
                    }
                }
            }
        }
        Ok(state.into_iter().collect())
    }

    /// List objects as served, with label and field selectors.
    pub fn list(
        &self,
        t: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Value>, u64) {
        let items = self
            .list_at(t, ns, None)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, o)| strategy::from_storage(t, o))
            .filter(|o| labels.matches(o) && fields.matches(o))
            .collect();
        (items, self.rv)
    }

    /// Changes after `rv` (for watches), or `Gone` if they are no longer
    /// known.
    pub fn changes_since(&self, rv: u64) -> ApiResult<Vec<Arc<Change>>> {
        if rv < self.oldest {
            return Err(ApiError::new(
                410,
                "Expired",
                format!("too old resource version: {rv} ({})", self.oldest),
            ));
        }
        Ok(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// Unknown fields of a body: pruned, and refused or warned about.
    fn decode(t: &ResourceType, body: &mut Value, v: FieldValidation) -> ApiResult<Vec<String>> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "Object '{}' is missing in '{}'",
                "Kind",
                body.to_string().chars().take(60).collect::<String>()
            )));
        }
        let mut unknown = schema::unknown_metadata_fields(body);
        unknown.extend(schema::prune(body, &t.schema, true));
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        let messages: Vec<String> = unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
        match v {
            FieldValidation::Strict => {
                Err(ApiError::bad_request(format!("strict decoding error: {}", messages.join(", "))))
            }
            FieldValidation::Warn => Ok(messages),
            FieldValidation::Ignore => Ok(Vec::new()),
        }
    }

    /// Prepare a create (POST, or an apply of an absent object).
    pub fn prepare_create(
        &self,
        t: &Arc<ResourceType>,
        ns: &str,
        mut body: Value,
        opts: Opts,
    ) -> ApiResult<Prepared> {
        let warnings = Self::decode(t, &mut body, opts.validation)?;
        let mut obj = strategy::to_storage(t, body);
        strip_type(&mut obj);
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let meta = &obj["metadata"];
        if let Some(body_ns) = meta["namespace"].as_str()
            && t.namespaced
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let name = match (meta["name"].as_str(), meta["generateName"].as_str()) {
            (Some(n), _) if !n.is_empty() => n.to_owned(),
            (_, Some(g)) if !g.is_empty() => format!("{g}{}", random_suffix()),
            _ => String::new(),
        };
        if t.is_review() {
            return Err(ApiError::new(405, "MethodNotAllowed", "reviews are not stored"));
        }
        strategy::prepare_create(t, &mut obj)?;
        strategy::default(t, &mut obj);
        {
            let m = obj["metadata"].as_object_mut().expect("object");
            if !name.is_empty() {
                m.insert("name".into(), json!(name));
            }
            if t.namespaced {
                m.insert("namespace".into(), json!(ns));
            }
            for k in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "selfLink",
            ] {
                m.remove(k);
            }
            if t.generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        let id = ManagerId { manager: opts.manager.clone(), operation: "Update", subresource: String::new() };
        Ok(Prepared {
            t: t.clone(),
            key: Self::key(t, ns, &name),
            obj,
            old: None,
            operation: "CREATE",
            opts,
            warnings,
            managed: None,
            id,
        })
    }

    /// Prepare an update (PUT) of an existing object.
    pub fn prepare_update(
        &self,
        t: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        mut body: Value,
        opts: Opts,
    ) -> ApiResult<Prepared> {
        if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request("the name of the object does not match the name on the URL"));
        }
        let key = Self::key(t, ns, name);
        let old =
            self.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(&t.group, &t.plural, name))?;
        let warnings = Self::decode(t, &mut body, opts.validation)?;
        let mut new = strategy::to_storage(t, body);
        strip_type(&mut new);
        let given_rv = new["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_owned();
        if given_rv.is_empty() {
            // Custom resources and CRDs refuse unconditional updates (as
            // the registry words it: the resource as the kind, RV 0);
            // built-ins take the stored resourceVersion.
            if t.custom || t.is_crd() {
                return Err(ApiError::invalid(
                    &t.group,
                    &t.plural,
                    name,
                    &[FieldError::invalid(
                        "metadata.resourceVersion",
                        &json!(0),
                        "must be specified for an update",
                    )],
                ));
            }
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        } else if given_rv != old["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
            return Err(ApiError::conflict(&t.group, &t.plural, name));
        }
        self.finish_update(t, key, old, new, opts, warnings, None)
    }

    /// Prepare a patch (merge, strategic, JSON, or apply, which creates an
    /// absent object).
    pub fn prepare_patch(
        &self,
        t: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        kind: PatchType,
        body: &Value,
        opts: Opts,
    ) -> ApiResult<Prepared> {
        let key = Self::key(t, ns, name);
        if kind == PatchType::Strategic && (t.custom || t.is_crd()) {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let Some(current) = self.objects.get(&key).cloned() else {
            return match kind {
                PatchType::Apply { .. } if opts.sub == Sub::Main => {
                    let mut obj = body.clone();
                    if obj["metadata"]["name"].as_str().is_some_and(|n| n != name) {
                        return Err(ApiError::bad_request(
                            "the name of the object does not match the name on the URL",
                        ));
                    }
                    obj["metadata"]["name"] = json!(name);
                    let mut p = self.prepare_create(t, ns, obj.clone(), opts.clone())?;
                    let id = ManagerId {
                        manager: opts.manager.clone(),
                        operation: "Apply",
                        subresource: String::new(),
                    };
                    let mut managed = Vec::new();
                    let mut config = obj;
                    strip_type(&mut config);
                    schema::prune(&mut config, &t.schema, true);
                    let _ = fields::apply(
                        &json!({}),
                        &strategy::to_storage(t, config),
                        Some(&t.schema),
                        &id,
                        &mut managed,
                        true,
                    );
                    p.managed = Some(managed);
                    p.id = id;
                    Ok(p)
                }
                _ => Err(ApiError::not_found(&t.group, &t.plural, name)),
            };
        };
        let served = strategy::from_storage(t, current.clone());
        match kind {
            PatchType::Merge | PatchType::Strategic | PatchType::Json => {
                let mut new = served;
                match kind {
                    PatchType::Merge => patch::merge_patch(&mut new, body),
                    PatchType::Strategic => {
                        smp::apply(&mut new, body, Some(&t.schema)).map_err(ApiError::bad_request)?
                    }
                    _ => patch::json_patch(&mut new, body).map_err(|e| ApiError::new(422, "Invalid", e))?,
                }
                // A patch without a resourceVersion applies to what is there.
                if new["metadata"]["resourceVersion"].as_str().is_none_or(str::is_empty) {
                    new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
                } else if new["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                    return Err(ApiError::conflict(&t.group, &t.plural, name));
                }
                let warnings = Self::decode(t, &mut new, opts.validation)?;
                let mut new = strategy::to_storage(t, new);
                strip_type(&mut new);
                self.finish_update(t, key, current, new, opts, warnings, None)
            }
            PatchType::Apply { force } => {
                if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
                    return Err(ApiError::bad_request(
                        "the name of the object does not match the name on the URL",
                    ));
                }
                let mut config = body.clone();
                let warnings = Self::decode(t, &mut config, opts.validation)?;
                let mut config = strategy::to_storage(t, config);
                strip_type(&mut config);
                if let Some(rv) = config["metadata"]["resourceVersion"].as_str()
                    && !rv.is_empty()
                    && Some(rv) != current["metadata"]["resourceVersion"].as_str()
                {
                    return Err(ApiError::conflict(&t.group, &t.plural, name));
                }
                if let Some(m) = config["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
                // Status belongs to its subresource.
                if t.status
                    && let Some(m) = config.as_object_mut()
                {
                    match opts.sub {
                        Sub::Main => {
                            m.remove("status");
                        }
                        Sub::Status => m.retain(|k, _| matches!(k.as_str(), "status" | "metadata")),
                    }
                    if opts.sub == Sub::Status
                        && let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut)
                    {
                        meta.retain(|k, _| matches!(k.as_str(), "name" | "namespace"));
                    }
                }
                let id = ManagerId {
                    manager: opts.manager.clone(),
                    operation: "Apply",
                    subresource: if opts.sub == Sub::Status { "status".into() } else { String::new() },
                };
                let mut managed = fields::read_managed(&current);
                let mut live = current.clone();
                if let Some(m) = live["metadata"].as_object_mut() {
                    m.remove("managedFields");
                }
                let merged = fields::apply(&live, &config, Some(&t.schema), &id, &mut managed, force).map_err(|conflicts| {
                    let causes: Vec<Value> = conflicts
                        .iter()
                        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", c.manager.manager, c.api_version), "field": fields::show_path(&c.path)}))
                        .collect();
                    ApiError {
                        code: 409,
                        reason: "Conflict",
                        message: fields::conflict_message(&conflicts),
                        details: Some(json!({"name": name, "group": t.group, "kind": t.plural, "causes": causes})),
                        list_continue: None,
                    }
                })?;
                let mut new = merged;
                new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
                self.finish_update(t, key, current, new, opts, warnings, Some((managed, id)))
            }
        }
    }

    /// The common end of update, patch and apply: status split, the kind's
    /// update preparation, defaults, fixed metadata, generation.
    #[allow(clippy::too_many_arguments)]
    fn finish_update(
        &self,
        t: &Arc<ResourceType>,
        key: ObjKey,
        old: Value,
        mut new: Value,
        opts: Opts,
        warnings: Vec<String>,
        applied: Option<(Vec<fields::Managed>, ManagerId)>,
    ) -> ApiResult<Prepared> {
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        if t.status {
            match opts.sub {
                Sub::Main => match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        new.as_object_mut().map(|m| m.remove("status"));
                    }
                },
                Sub::Status => {
                    let status = new.get("status").cloned();
                    let rv = new["metadata"]["resourceVersion"].clone();
                    new = old.clone();
                    new["metadata"]["resourceVersion"] = rv;
                    match status {
                        Some(s) => new["status"] = s,
                        None => {
                            new.as_object_mut().map(|m| m.remove("status"));
                        }
                    }
                }
            }
        } else if opts.sub == Sub::Status {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!(
                    "the server could not find the requested resource ({} {}/status)",
                    t.qualified(),
                    key.name
                ),
            ));
        }
        strategy::prepare_update(t, &mut new, &old)?;
        strategy::default(t, &mut new);
        {
            let m = new["metadata"]
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
            for k in
                ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"]
            {
                match old["metadata"].get(k) {
                    Some(v) => m.insert(k.into(), v.clone()),
                    None => m.remove(k),
                };
            }
            // Name and namespace come from the URL (a body that differs was refused).
            m.insert("name".into(), old["metadata"]["name"].clone());
            if t.namespaced {
                m.insert("namespace".into(), old["metadata"]["namespace"].clone());
            }
            m.remove("managedFields");
            m.remove("selfLink");
        }
        if t.generation && strategy::spec_part(&new) != strategy::spec_part(&old) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            new["metadata"]["generation"] = json!(g);
        }
        let (managed, id) = match applied {
            Some((m, id)) => (Some(m), id),
            None => (
                None,
                ManagerId {
                    manager: opts.manager.clone(),
                    operation: "Update",
                    subresource: if opts.sub == Sub::Status { "status".into() } else { String::new() },
                },
            ),
        };
        Ok(Prepared {
            t: t.clone(),
            key,
            obj: new,
            old: Some(old),
            operation: "UPDATE",
            opts,
            warnings,
            managed,
            id,
        })
    }

    /// Validate and store a prepared write. `Retry` when the object changed
    /// since it was prepared.
    pub fn commit(&mut self, p: Prepared) -> Result<Outcome, CommitError> {
        let Prepared { t, mut key, mut obj, old, opts, warnings, managed, id, .. } = p;
        let current = self.objects.get(&key).cloned();
        match (&old, &current) {
            (Some(o), Some(c)) if rv_of(o) != rv_of(c) => return Err(CommitError::Retry),
            (Some(_), None) => return Err(CommitError::Retry),
            _ => {}
        }
        if old.is_none() {
            if t.is_review() {
                return Err(ApiError::new(405, "MethodNotAllowed", "not stored").into());
            }
            self.check_namespace(&t, &key.namespace, &key.name)?;
            if t.custom && self.crd_terminating(&t) {
                return Err(ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "create not allowed while custom resource definition is terminating",
                )
                .into());
            }
        }
        // generateName may have collided: names are fixed now.
        if key.name.is_empty() {
            key.name = obj["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        }
        let errs = strategy::validate(&t, &obj, old.as_ref());
        if !errs.is_empty() {
            let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            return Err(ApiError::invalid(&t.group, &t.kind, &name, &errs).into());
        }
        if let Some(o) = &old
            && o["metadata"]["deletionTimestamp"].is_string()
            && let Err(e) = self.no_new_finalizers(&t, o, &obj)
        {
            return Err(e.into());
        }
        // Storage refuses a second object of a name after validation.
        if old.is_none() && current.is_some() {
            return Err(ApiError::already_exists(&t.group, &t.plural, &key.name).into());
        }
        // Field ownership.
        let api_version = t.api_version();
        let stamp = now();
        let mut entries = match managed {
            Some(m) => m,
            None => {
                let mut m = old.as_ref().map(fields::read_managed).unwrap_or_default();
                let mut before = old.clone().unwrap_or(json!({}));
                if let Some(meta) = before["metadata"].as_object_mut() {
                    meta.remove("managedFields");
                }
                fields::update(&before, &obj, Some(&t.schema), &id, &mut m);
                m
            }
        };
        let previous = old.as_ref().map(fields::read_managed).unwrap_or_default();
        for e in entries.iter_mut() {
            match previous.iter().find(|p| p.id == e.id) {
                Some(p) if p.fields == e.fields => {
                    e.time = p.time.clone();
                    e.api_version = p.api_version.clone();
                }
                _ => {
                    e.time = stamp.clone();
                    e.api_version = api_version.clone();
                }
            }
        }
        fields::write_managed(&mut obj, &entries);
        if opts.dry_run {
            if old.is_none() {
                obj["metadata"]["uid"] = json!(uid());
                obj["metadata"]["creationTimestamp"] = json!(stamp);
            }
            return Ok(Outcome { obj: strategy::from_storage(&t, obj), warnings, created: old.is_none() });
        }
        match old {
            None => {
                self.rv += 1;
                {
                    let m = obj["metadata"].as_object_mut().expect("object");
                    m.insert("uid".into(), json!(uid()));
                    m.insert("resourceVersion".into(), json!(self.rv.to_string()));
                    m.insert("creationTimestamp".into(), json!(stamp));
                }
                if t.is_crd() {
                    obj["status"] = strategy::crd_status(&obj, &stamp);
                    self.register_crd(&obj);
                }
                self.objects.insert(key.clone(), obj.clone());
                self.record(key, ChangeKind::Added, obj.clone(), None);
                self.after_write(&t);
                Ok(Outcome { obj: strategy::from_storage(&t, obj), warnings, created: true })
            }
            Some(old) => {
                if t.is_crd() {
                    obj["status"] = strategy::crd_status(&obj, &stamp);
                    if let (Some(a), Some(b)) =
                        (old["status"]["conditions"].as_array(), obj["status"]["conditions"].as_array_mut())
                    {
                        for c in b.iter_mut() {
                            if let Some(prev) =
                                a.iter().find(|p| p["type"] == c["type"] && p["status"] == c["status"])
                            {
                                c["lastTransitionTime"] = prev["lastTransitionTime"].clone();
                            }
                        }
                    }
                }
                obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
                if obj == old {
                    // A no-op write changes nothing, not even the resourceVersion.
                    return Ok(Outcome { obj: strategy::from_storage(&t, old), warnings, created: false });
                }
                let finalizers_empty = obj["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
                let namespace_finalized =
                    !t.is_namespace() || obj["spec"]["finalizers"].as_array().is_none_or(Vec::is_empty);
                if obj["metadata"]["deletionTimestamp"].is_string() && finalizers_empty && namespace_finalized
                {
                    self.objects.insert(key.clone(), obj.clone());
                    return self
                        .remove(&t, &key)
                        .map(|o| Outcome { obj: o, warnings, created: false })
                        .map_err(Into::into);
                }
                if t.is_crd() {
                    self.register_crd(&obj);
                }
                self.rv += 1;
                obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                self.objects.insert(key.clone(), obj.clone());
                self.record(key, ChangeKind::Modified, obj.clone(), Some(old));
                self.after_write(&t);
                Ok(Outcome { obj: strategy::from_storage(&t, obj), warnings, created: false })
            }
        }
    }

    fn no_new_finalizers(&self, t: &ResourceType, old: &Value, new: &Value) -> ApiResult<()> {
        let before: BTreeSet<&str> = old["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let added: Vec<&str> = new["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|f| !before.contains(f))
            .collect();
        if added.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
        Err(ApiError::invalid(
            &t.group,
            &t.kind,
            new["metadata"]["name"].as_str().unwrap_or_default(),
            &[FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            )],
        ))
    }

    /// Whether the CRD of a custom resource type is being deleted.
    fn crd_terminating(&self, t: &ResourceType) -> bool {
        let key = ObjKey {
            group: "apiextensions.k8s.io".into(),
            plural: "customresourcedefinitions".into(),
            namespace: String::new(),
            name: format!("{}.{}", t.plural, t.group),
        };
        self.objects.get(&key).is_some_and(|c| c["metadata"]["deletionTimestamp"].is_string())
    }

    /// Side effects of a write on the server's own state.
    fn after_write(&mut self, t: &ResourceType) {
        if t.group == rbac::GROUP && t.plural == "clusterroles" {
            self.aggregate_cluster_roles();
        }
    }

    /// ClusterRole aggregation (what the clusterrole-aggregation controller
    /// does): each aggregated role's rules become the union of the roles
    /// its selectors match.
    pub fn aggregate_cluster_roles(&mut self) {
        let Some(t) = self.type_of(rbac::GROUP, "v1", "clusterroles") else { return };
        for _ in 0..3 {
            let all: Vec<Value> =
                self.list_at(&t, None, None).unwrap_or_default().into_iter().map(|(_, v)| v).collect();
            let mut changed = false;
            for role in &all {
                let Some(rules) = rbac::aggregate(role, &all) else { continue };
                if role["rules"].as_array().is_some_and(|r| *r == rules)
                    || (rules.is_empty() && role["rules"].is_null())
                {
                    continue;
                }
                let key = Self::key(&t, "", role["metadata"]["name"].as_str().unwrap_or_default());
                let old = role.clone();
                let mut new = role.clone();
                new["rules"] = json!(rules);
                self.rv += 1;
                new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                self.objects.insert(key.clone(), new.clone());
                self.record(key, ChangeKind::Modified, new, Some(old));
                changed = true;
            }
            if !changed {
                break;
            }
        }
    }

    fn register_crd(&mut self, crd: &Value) {
        let new_types = resources::from_crd(crd);
        let group = crd["spec"]["group"].as_str().unwrap_or_default();
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
        self.types.retain(|t| !(t.group == group && t.plural == plural));
        self.types.extend(new_types.into_iter().map(Arc::new));
    }

    /// Delete an object: preconditions, propagation, finalizers.
    pub fn delete(
        &mut self,
        t: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<Value> {
        let key = Self::key(t, ns, name);
        let obj =
            self.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(&t.group, &t.plural, name))?;
        if let Some(uid) = &opts.uid
            && obj["metadata"]["uid"].as_str() != Some(uid.as_str())
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    obj["metadata"]["uid"].as_str().unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && obj["metadata"]["resourceVersion"].as_str() != Some(rv.as_str())
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    obj["metadata"]["resourceVersion"].as_str().unwrap_or_default()
                ),
            ));
        }
        if t.is_namespace() && matches!(name, "default" | "kube-system" | "kube-public") {
            return Err(ApiError::forbidden(
                format!("namespaces {name:?} is forbidden: this namespace may not be deleted"),
                Some(json!({"name": name, "kind": "namespaces"})),
            ));
        }
        if opts.dry_run {
            return Ok(strategy::from_storage(t, obj));
        }
        let mut finalizers: Vec<Value> =
            obj["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
        let policy = opts.propagation.as_deref().unwrap_or("Background");
        let already_deleting = obj["metadata"]["deletionTimestamp"].is_string();
        if !already_deleting {
            match policy {
                "Orphan" if !finalizers.iter().any(|f| f == "orphan") => finalizers.push(json!("orphan")),
                "Foreground" if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                    finalizers.push(json!("foregroundDeletion"))
                }
                _ => {}
            }
        }
        let graceful = !finalizers.is_empty() || t.is_namespace() || t.is_crd();
        if !graceful {
            return self.remove(t, &key);
        }
        if already_deleting {
            return Ok(strategy::from_storage(t, obj));
        }
        let old = obj.clone();
        let mut new = obj;
        self.rv += 1;
        new["metadata"]["deletionTimestamp"] = json!(now());
        new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        new["metadata"]["finalizers"] = Value::Array(finalizers);
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if t.custom {
            // Setting deletionTimestamp bumps a custom resource's generation.
            let g = new["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            new["metadata"]["generation"] = json!(g);
        }
        if t.is_namespace() {
            new["status"]["phase"] = json!("Terminating");
        }
        if t.is_crd() {
            new["status"] = strategy::crd_status(&new, &now());
        }
        self.objects.insert(key.clone(), new.clone());
        self.record(key, ChangeKind::Modified, new.clone(), Some(old));
        Ok(strategy::from_storage(t, new))
    }

    /// Remove an object for good (a CRD's types go with it).
    pub fn remove(&mut self, t: &ResourceType, key: &ObjKey) -> ApiResult<Value> {
        let mut obj =
            self.objects.remove(key).ok_or_else(|| ApiError::not_found(&t.group, &t.plural, &key.name))?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(key.clone(), ChangeKind::Deleted, obj.clone(), None);
        if t.is_crd() {
            let group = obj["spec"]["group"].as_str().unwrap_or_default().to_owned();
            let plural = obj["spec"]["names"]["plural"].as_str().unwrap_or_default().to_owned();
            self.types.retain(|x| !(x.group == group && x.plural == plural));
        }
        if t.group == rbac::GROUP && t.plural == "clusterroles" {
            self.aggregate_cluster_roles();
        }
        Ok(strategy::from_storage(t, obj))
    }

    /// `PUT namespaces/{name}/finalize`: replace `spec.finalizers` (and
    /// nothing else). A terminating namespace without finalizers goes.
    pub fn finalize_namespace(&mut self, name: &str, body: &Value, dry_run: bool) -> ApiResult<Value> {
        let t = self.type_of("", "v1", "namespaces").expect("builtin");
        let key = Self::key(&t, "", name);
        let old =
            self.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found("", "namespaces", name))?;
        if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                body["metadata"]["name"].as_str().unwrap_or_default()
            )));
        }
        if let Some(rv) = body["metadata"]["resourceVersion"].as_str().filter(|r| !r.is_empty())
            && Some(rv) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict("", "namespaces", name));
        }
        let mut new = old.clone();
        new["spec"]["finalizers"] = body["spec"]["finalizers"].clone();
        if new["spec"]["finalizers"].is_null() {
            new["spec"]["finalizers"] = json!([]);
        }
        let errs = super::validation::builtin("Namespace", "", &new, Some(&old));
        if !errs.is_empty() {
            return Err(ApiError::invalid("", "Namespace", name, &errs));
        }
        if dry_run || new == old {
            return Ok(strategy::from_storage(&t, new));
        }
        let done = new["spec"]["finalizers"].as_array().is_none_or(Vec::is_empty)
            && new["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
        if new["metadata"]["deletionTimestamp"].is_string() && done {
            self.objects.insert(key.clone(), new);
            return self.remove(&t, &key);
        }
        self.rv += 1;
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key.clone(), new.clone());
        self.record(key, ChangeKind::Modified, new.clone(), Some(old));
        Ok(strategy::from_storage(&t, new))
    }

    /// Every stored object, for dumps.
    pub fn dump(&self) -> Vec<Value> {
        self.objects
            .iter()
            .map(|(k, v)| match self.type_for_key(k) {
                Some(t) => strategy::from_storage(&t, v.clone()),
                None => v.clone(),
            })
            .collect()
    }

    /// Every stored key, for the controllers.
    pub fn keys(&self) -> Vec<ObjKey> {
        self.objects.keys().cloned().collect()
    }

    /// A ServiceAccount's uid, if it exists.
    pub fn service_account_uid(&self, ns: &str, name: &str) -> Option<String> {
        let key = ObjKey {
            group: String::new(),
            plural: "serviceaccounts".into(),
            namespace: ns.into(),
            name: name.into(),
        };
        self.objects.get(&key).and_then(|sa| sa["metadata"]["uid"].as_str().map(str::to_owned))
    }

    /// A server-side write of the controllers: apply `change` to the stored
    /// object (no validation, no admission), bumping the resourceVersion.
    pub fn system_update(&mut self, key: &ObjKey, change: impl FnOnce(&mut Value)) {
        let Some(old) = self.objects.get(key).cloned() else { return };
        let Some(t) = self.type_for_key(key) else { return };
        let mut new = old.clone();
        change(&mut new);
        if new == old {
            return;
        }
        let finalizers_empty = new["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
        let namespace_finalized =
            !t.is_namespace() || new["spec"]["finalizers"].as_array().is_none_or(Vec::is_empty);
        if new["metadata"]["deletionTimestamp"].is_string() && finalizers_empty && namespace_finalized {
            self.objects.insert(key.clone(), new);
            let _ = self.remove(&t, key);
            return;
        }
        self.rv += 1;
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key.clone(), new.clone());
        self.record(key.clone(), ChangeKind::Modified, new, Some(old));
    }

    /// Delete for the controllers (background propagation, no checks).
    pub fn system_delete(&mut self, key: &ObjKey) {
        let Some(t) = self.type_for_key(key) else { return };
        let _ = self.delete(&t, &key.namespace, &key.name, &DeleteOpts::default());
    }
}

impl rbac::Policy for Store {
    fn cluster_role_bindings(&self) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| k.group == rbac::GROUP && k.plural == "clusterrolebindings")
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn role_bindings(&self, ns: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| k.group == rbac::GROUP && k.plural == "rolebindings" && k.namespace == ns)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn cluster_role(&self, name: &str) -> Option<Value> {
        let key = ObjKey {
            group: rbac::GROUP.into(),
            plural: "clusterroles".into(),
            namespace: String::new(),
            name: name.into(),
        };
        self.objects.get(&key).cloned()
    }

    fn role(&self, ns: &str, name: &str) -> Option<Value> {
        let key = ObjKey {
            group: rbac::GROUP.into(),
            plural: "roles".into(),
            namespace: ns.into(),
            name: name.into(),
        };
        self.objects.get(&key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &Store, group: &str, res: &str) -> Arc<ResourceType> {
        s.type_of(group, "v1", res).unwrap()
    }

    fn create(s: &mut Store, ty: &Arc<ResourceType>, ns: &str, obj: Value) -> ApiResult<Value> {
        let p = s.prepare_create(ty, ns, obj, Opts::system("test"))?;
        s.commit(p).map(|o| o.obj).map_err(|e| match e {
            CommitError::Api(e) => e,
            CommitError::Retry => ApiError::new(500, "Retry", "retry"),
        })
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_424_759), "2026-11-23T09:05:59Z");
    }

    #[test]
    fn create_validates_and_records_ownership() {
        let mut s = Store::default();
        let secrets = t(&s, "", "secrets");
        let created = create(
            &mut s,
            &secrets,
            "default",
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "stringData": {"k": "v"}}),
        )
        .unwrap();
        assert_eq!(created["data"]["k"], "dg==");
        assert_eq!(created["metadata"]["managedFields"][0]["manager"], "test");
        assert_eq!(created["metadata"]["managedFields"][0]["operation"], "Update");
        let long = "v".repeat(64);
        let err =
            create(&mut s, &secrets, "default", json!({"metadata": {"name": "b", "labels": {"x": long}}}))
                .unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message.starts_with("Secret \"b\" is invalid: metadata.labels: Invalid value:"),
            "{}",
            err.message
        );
        let ns = t(&s, "", "namespaces");
        let err = s.delete(&ns, "", "default", &DeleteOpts::default()).unwrap_err();
        assert_eq!(err.code, 403);
    }

    #[test]
    fn bootstrap_policy_is_aggregated() {
        let s = Store::default();
        let edit = rbac::Policy::cluster_role(&s, "edit").unwrap();
        assert!(edit["rules"].as_array().unwrap().len() > 5, "{edit}");
        let ns = t(&s, "", "namespaces");
        assert_eq!(
            s.get(&ns, "", "default").unwrap()["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "default"
        );
    }
}
