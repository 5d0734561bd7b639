//! The generic store and its one write path, in kube-apiserver's shape
//! (`k8s.io/apiserver/pkg/registry/generic/registry.Store`): decode and
//! prepare (`prepare.rs`: the kind's
//! [`Strategy`](super::strategy::Strategy) and defaults), then, in this
//! order, authorize (escalation), built-in admission, mutating admission,
//! validate, validating admission, and commit to [`Storage`] with a
//! resourceVersion precondition and field ownership. The async write loop
//! (with the webhooks) is `handlers::write`; [`Store::commit`] is the same
//! path for the server's own writes. No kind is named here: what differs
//! per kind is in `kinds/`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::auth::{Authenticator, UserInfo};
pub use super::errors::{ApiError, ApiResult};
use super::fields::{self, ManagerId};
use super::resources::{self, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::storage::Storage;
pub use super::storage::{Change, ChangeKind, DEFAULT_HISTORY, ObjKey};
use super::{kinds, strategy};

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

/// The store: the types served, their objects in [`Storage`], identities.
#[derive(Debug)]
pub struct Store {
    storage: Storage,
    types: Vec<Arc<ResourceType>>,
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

fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default()
}

impl Default for Store {
    fn default() -> Self {
        let mut s = Store {
            storage: Storage::default(),
            types: resources::builtins().into_iter().map(Arc::new).collect(),
            auth: Authenticator::default(),
        };
        kinds::bootstrap(&mut s);
        s
    }
}

/// Storage and the types: reads.
impl Store {
    /// The types served.
    pub fn types(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    /// Replace the types of one (group, plural) (those a definition
    /// registers, as it changes or goes).
    pub fn replace_types(&mut self, group: &str, plural: &str, types: Vec<ResourceType>) {
        self.types.retain(|t| !(t.group == group && t.plural == plural));
        self.types.extend(types.into_iter().map(Arc::new));
    }

    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.storage.rv()
    }

    /// The oldest resourceVersion watches and lists can start from.
    pub fn oldest(&self) -> u64 {
        self.storage.oldest()
    }

    /// Keep this many changes.
    pub fn set_history(&mut self, n: usize) {
        self.storage.set_history(n);
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
        self.storage.subscribe()
    }

    /// Drop the change history: watches and lists from any earlier
    /// resourceVersion get 410 Gone.
    pub fn compact(&mut self) {
        self.storage.compact();
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
        self.storage.get(key)
    }

    /// The stored objects of one (storage group, plural), of one namespace
    /// or all, in key order.
    pub fn stored(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<(ObjKey, Value)> {
        self.storage.list_at((group, plural), ns, None, |_| true).unwrap_or_default()
    }

    /// Get one object as served for `t`.
    pub fn get(&self, t: &ResourceType, ns: &str, name: &str) -> ApiResult<Value> {
        self.raw(&Self::key(t, ns, name))
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
        self.storage.list_at((&t.storage.0, &t.storage.1), ns, at, keep)
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
        (items, self.rv())
    }

    /// Changes after `rv` (for watches), or `Gone` if they are no longer
    /// known.
    pub fn changes_since(&self, rv: u64) -> ApiResult<Vec<Arc<Change>>> {
        self.storage.changes_since(rv)
    }

    /// Every stored object, for dumps.
    pub fn dump(&self) -> Vec<Value> {
        self.storage
            .iter()
            .map(|(k, v)| match self.type_for_key(k) {
                Some(t) => strategy::from_storage(&t, v.clone()),
                None => v.clone(),
            })
            .collect()
    }

    /// Every stored key, for the controllers.
    pub fn keys(&self) -> Vec<ObjKey> {
        self.storage.iter().map(|(k, _)| k.clone()).collect()
    }
}

/// The write path: authorize, admit, validate, commit.
impl Store {
    /// Authorization beyond the request's verb: the kind's escalation
    /// checks.
    pub fn authorize(&self, p: &Prepared) -> ApiResult<()> {
        p.t.strategy.check_escalation(self, p)
    }

    /// The built-in admission of a write (before the webhooks).
    pub fn admit(&self, p: &Prepared) -> ApiResult<()> {
        if p.old.is_none() { kinds::admit_create(self, &p.t, &p.key) } else { Ok(()) }
    }

    /// Validation of a prepared write (metadata, then the kind's rules).
    pub fn validate(p: &Prepared) -> ApiResult<()> {
        let errs = strategy::validate(&p.t, &p.obj, p.old.as_ref());
        if errs.is_empty() {
            return Ok(());
        }
        let name = p.obj["metadata"]["name"].as_str().unwrap_or_default();
        Err(ApiError::invalid(&p.t.group, &p.t.kind, name, &errs))
    }

    /// The server's own writes (no webhooks): authorize, admit, validate
    /// and persist a prepared write.
    pub fn commit(&mut self, p: Prepared) -> Result<Outcome, CommitError> {
        self.authorize(&p)?;
        self.admit(&p)?;
        Self::validate(&p)?;
        self.persist(p)
    }

    /// Create an object for the server itself (bootstrap).
    pub fn system_create(&mut self, t: &Arc<ResourceType>, ns: &str, obj: Value, opts: Opts) {
        let p = self.prepare_create(t, ns, obj, opts).expect("bootstrap object");
        self.commit(p).map_err(|_| ()).expect("bootstrap commit");
    }

    /// Store a prepared, admitted and validated write: the resourceVersion
    /// precondition (`Retry` when the object changed since it was
    /// prepared), a name not taken, field ownership, then storage.
    pub fn persist(&mut self, p: Prepared) -> Result<Outcome, CommitError> {
        let current = self.raw(&p.key).cloned();
        match (&p.old, &current) {
            (Some(o), Some(c)) if rv_of(o) != rv_of(c) => return Err(CommitError::Retry),
            (Some(_), None) => return Err(CommitError::Retry),
            // Storage refuses a second object of a name.
            (None, Some(_)) => {
                return Err(ApiError::already_exists(&p.t.group, &p.t.plural, &p.key.name).into());
            }
            _ => {}
        }
        let stamp = now();
        let Prepared { t, mut key, mut obj, old, opts, warnings, managed, id, .. } = p;
        // generateName may have collided: names are fixed now.
        if key.name.is_empty() {
            key.name = obj["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        }
        record_ownership(&t, old.as_ref(), &mut obj, managed, &id, &stamp);
        let created = old.is_none();
        if opts.dry_run {
            if created {
                obj["metadata"]["uid"] = json!(uid());
                obj["metadata"]["creationTimestamp"] = json!(stamp);
            }
            return Ok(Outcome { obj: strategy::from_storage(&t, obj), warnings, created });
        }
        let stored = match old {
            None => self.store_create(&t, &key, obj, &stamp),
            Some(old) => self.store_update(&t, &key, obj, old, &stamp)?,
        };
        Ok(Outcome { obj: strategy::from_storage(&t, stored), warnings, created })
    }

    fn store_create(&mut self, t: &ResourceType, key: &ObjKey, mut obj: Value, stamp: &str) -> Value {
        let m = obj["metadata"].as_object_mut().expect("object");
        m.insert("uid".into(), json!(uid()));
        m.insert("creationTimestamp".into(), json!(stamp));
        t.strategy.canonicalize(&mut obj, None, stamp);
        let stored = self.storage.put(key, obj);
        t.strategy.after_commit(self, &stored);
        stored
    }

    /// Store an update (or, when it finished a deletion, remove the
    /// object). Returns the object as stored (or as it was last).
    fn store_update(
        &mut self,
        t: &ResourceType,
        key: &ObjKey,
        mut obj: Value,
        old: Value,
        stamp: &str,
    ) -> ApiResult<Value> {
        t.strategy.canonicalize(&mut obj, Some(&old), stamp);
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if obj == old {
            // A no-op write changes nothing, not even the resourceVersion.
            return Ok(old);
        }
        if deletion_finished(t, &obj) {
            return self.remove_stored(t, key, Some(obj));
        }
        let stored = self.storage.put(key, obj);
        t.strategy.after_commit(self, &stored);
        Ok(stored)
    }
}

/// Whether a write leaves an object being deleted with nothing holding it.
fn deletion_finished(t: &ResourceType, obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
        && obj["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty)
        && t.strategy.finalized(obj)
}

/// Field ownership of a write: an apply's computed entries, or the
/// update's changes for its manager; timestamps of changed entries.
fn record_ownership(
    t: &ResourceType,
    old: Option<&Value>,
    obj: &mut Value,
    managed: Option<Vec<fields::Managed>>,
    id: &ManagerId,
    stamp: &str,
) {
    let mut entries = managed.unwrap_or_else(|| {
        let mut m = old.map(fields::read_managed).unwrap_or_default();
        let mut before = old.cloned().unwrap_or(json!({}));
        if let Some(meta) = before["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
        fields::update(&before, obj, Some(&t.schema), id, &mut m);
        m
    });
    let previous = old.map(fields::read_managed).unwrap_or_default();
    for e in entries.iter_mut() {
        match previous.iter().find(|p| p.id == e.id) {
            Some(p) if p.fields == e.fields => {
                e.time = p.time.clone();
                e.api_version = p.api_version.clone();
            }
            _ => {
                e.time = stamp.to_owned();
                e.api_version = t.api_version();
            }
        }
    }
    fields::write_managed(obj, &entries);
}

/// Deletion and the server's own writes.
impl Store {
    /// Delete an object: preconditions, propagation, finalizers.
    pub fn delete(
        &mut self,
        t: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<Value> {
        let key = Self::key(t, ns, name);
        let obj = self.raw(&key).cloned().ok_or_else(|| ApiError::not_found(&t.group, &t.plural, name))?;
        delete_preconditions(&obj, opts)?;
        t.strategy.check_delete(name)?;
        if opts.dry_run {
            return Ok(strategy::from_storage(t, obj));
        }
        let mut finalizers: Vec<Value> =
            obj["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
        let already_deleting = obj["metadata"]["deletionTimestamp"].is_string();
        if !already_deleting {
            let added = match opts.propagation.as_deref().unwrap_or("Background") {
                "Orphan" => Some("orphan"),
                "Foreground" => Some("foregroundDeletion"),
                _ => None,
            };
            if let Some(f) = added.filter(|f| !finalizers.iter().any(|x| x == f)) {
                finalizers.push(json!(f));
            }
        }
        if finalizers.is_empty() && !t.strategy.graceful_delete() {
            return self.remove(t, &key);
        }
        if already_deleting {
            return Ok(strategy::from_storage(t, obj));
        }
        let mut new = obj;
        let stamp = now();
        new["metadata"]["deletionTimestamp"] = json!(stamp);
        new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        new["metadata"]["finalizers"] = Value::Array(finalizers);
        t.strategy.prepare_for_delete(&mut new, &stamp);
        let stored = self.storage.put(&key, new);
        Ok(strategy::from_storage(t, stored))
    }

    /// Remove an object for good.
    pub fn remove(&mut self, t: &ResourceType, key: &ObjKey) -> ApiResult<Value> {
        self.remove_stored(t, key, None).map(|o| strategy::from_storage(t, o))
    }

    /// Remove an object (`last`: its final state), then the kind's hooks.
    fn remove_stored(&mut self, t: &ResourceType, key: &ObjKey, last: Option<Value>) -> ApiResult<Value> {
        let obj = self
            .storage
            .delete(key, last)
            .ok_or_else(|| ApiError::not_found(&t.group, &t.plural, &key.name))?;
        t.strategy.after_remove(self, &obj);
        Ok(obj)
    }

    /// A server-side write of a new state of a stored object (no
    /// validation, no admission, no hooks): stored at a new
    /// resourceVersion, or removed when that finishes its deletion.
    /// Returns it as stored (or as it was last); `None` when unchanged or
    /// absent.
    pub fn system_write(&mut self, key: &ObjKey, new: Value) -> Option<Value> {
        let old = self.raw(key)?;
        let t = self.type_for_key(key)?;
        if new == *old {
            return None;
        }
        if deletion_finished(&t, &new) {
            return self.remove_stored(&t, key, Some(new)).ok();
        }
        Some(self.storage.put(key, new))
    }

    /// A server-side write of the controllers: apply `change` to the stored
    /// object (see [`Store::system_write`]).
    pub fn system_update(&mut self, key: &ObjKey, change: impl FnOnce(&mut Value)) {
        let Some(mut new) = self.raw(key).cloned() else { return };
        change(&mut new);
        self.system_write(key, new);
    }

    /// Delete for the controllers (background propagation, no checks).
    pub fn system_delete(&mut self, key: &ObjKey) {
        let Some(t) = self.type_for_key(key) else { return };
        let _ = self.delete(&t, &key.namespace, &key.name, &DeleteOpts::default());
    }
}

/// DeleteOptions `preconditions`: uid and resourceVersion.
fn delete_preconditions(obj: &Value, opts: &DeleteOpts) -> ApiResult<()> {
    let meta = &obj["metadata"];
    let checks = [("UID", "uid", &opts.uid), ("ResourceVersion", "resourceVersion", &opts.resource_version)];
    for (label, field, want) in checks {
        if let Some(want) = want
            && meta[field].as_str() != Some(want.as_str())
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: {label} in precondition: {want}, {label} in object meta: {}",
                    meta[field].as_str().unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::rbac;

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
