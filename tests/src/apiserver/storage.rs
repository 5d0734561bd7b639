//! The storage layer: the objects, the resourceVersion, the change history
//! that watches and consistent lists replay, and the broadcast of every
//! change. Every write of the server goes through [`Storage::put`] or
//! [`Storage::delete`]; nothing else bumps the resourceVersion.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::errors::{ApiError, ApiResult};

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

/// The objects and their history.
#[derive(Debug)]
pub struct Storage {
    rv: u64,
    objects: BTreeMap<ObjKey, Value>,
    history: VecDeque<Arc<Change>>,
    /// Changes after this resourceVersion are all in `history`.
    oldest: u64,
    history_max: usize,
    tx: broadcast::Sender<Arc<Change>>,
}

impl Default for Storage {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(65_536);
        Storage {
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            oldest: 1,
            history_max: DEFAULT_HISTORY,
            tx,
        }
    }
}

fn gone(rv: u64, oldest: u64) -> ApiError {
    ApiError::new(410, "Expired", format!("too old resource version: {rv} ({oldest})"))
}

impl Storage {
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

    /// Drop the change history: watches and lists from any earlier
    /// resourceVersion get 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest = self.rv;
    }

    /// Subscribe to changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// The stored object of a key.
    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Every stored object, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&ObjKey, &Value)> {
        self.objects.iter()
    }

    fn record(&mut self, key: ObjKey, kind: ChangeKind, object: Value, old: Option<Value>) {
        let change = Arc::new(Change { rv: self.rv, key, kind, object, old, at: Instant::now() });
        self.history.push_back(change.clone());
        self.trim_history();
        let _ = self.tx.send(change);
    }

    /// Store an object (created or changed) at a new resourceVersion,
    /// record and broadcast the change. Returns it as stored.
    pub fn put(&mut self, key: &ObjKey, mut obj: Value) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let old = self.objects.insert(key.clone(), obj.clone());
        let kind = if old.is_some() { ChangeKind::Modified } else { ChangeKind::Added };
        self.record(key.clone(), kind, obj.clone(), old);
        obj
    }

    /// Remove an object at a new resourceVersion (`last`: its final state,
    /// else the stored one), record and broadcast the deletion. Returns it
    /// as it was last.
    pub fn delete(&mut self, key: &ObjKey, last: Option<Value>) -> Option<Value> {
        let stored = self.objects.remove(key);
        let mut obj = last.or(stored)?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(key.clone(), ChangeKind::Deleted, obj.clone(), None);
        Some(obj)
    }

    /// The objects of one (group, plural), of one namespace or all, as
    /// stored, at the current resourceVersion or (`at`) an earlier one
    /// still in history; only those whose key `keep` accepts are cloned.
    pub fn list_at(
        &self,
        (group, plural): (&str, &str),
        ns: Option<&str>,
        at: Option<u64>,
        keep: impl Fn(&ObjKey) -> bool,
    ) -> ApiResult<Vec<(ObjKey, Value)>> {
        let of_type =
            |k: &ObjKey| k.group == group && k.plural == plural && ns.is_none_or(|n| k.namespace == n);
        // Keys sort by group, plural, namespace, name: one range holds the type.
        let first = ObjKey {
            group: group.to_owned(),
            plural: plural.to_owned(),
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
                return Err(gone(rv, self.oldest));
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

    /// Changes after `rv` (for watches), or `Gone` if they are no longer
    /// known.
    pub fn changes_since(&self, rv: u64) -> ApiResult<Vec<Arc<Change>>> {
        if rv < self.oldest {
            return Err(gone(rv, self.oldest));
        }
        Ok(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }
}
