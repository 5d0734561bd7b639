//! The operator's caches: what it keeps of each Namespace, of each
//! Secret carrying a keyring label and of each ConfigMap publishing a
//! keyring's recipient, fed by watchers.
//!
//! A reflector store keeps every object whole: about 2.4 KiB per Secret and
//! 1.2 KiB per Namespace, most of it empty `BTreeMap` nodes and metadata the
//! operator never reads; with 10,000 copies that is most of its memory.
//! These keep what a reconcile reads — a Namespace's labels and phase; a
//! Secret's `encstr.io/` labels, its key-ids annotation and a SHA-256 digest
//! of its keyring — so the caches hold no key material at all. A copy that
//! must be rewritten is read from the API server first.
//!
//! [`Writer::apply`] follows the watcher's events with a reflector's
//! semantics: the initial list fills a buffer that replaces the index when
//! it is complete, so a relist never shows a half-filled index.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::crd::{ANN_KEY_IDS, DATA_KEY, LABEL_PREFIX, LABEL_ROLE, RECIPIENT_KEY};

/// Sorted `(key, value)` pairs: a label set in a tenth of a `BTreeMap`'s
/// memory.
type Pairs = Box<[(Box<str>, Box<str>)]>;

fn pairs<'a>(it: impl Iterator<Item = (&'a String, &'a String)>) -> Pairs {
    // BTreeMap iteration is sorted, so binary search works.
    it.map(|(k, v)| (k.as_str().into(), v.as_str().into())).collect()
}

fn lookup<'a>(p: &'a Pairs, key: &str) -> Option<&'a str> {
    let i = p.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
    Some(&p[i].1)
}

/// The SHA-256 of a keyring's bytes, as the caches keep it.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// An index of `V` by `Key`, readable from any task; cheap to clone.
#[derive(Debug)]
pub struct Index<Key, V> {
    map: Arc<RwLock<HashMap<Key, V>>>,
    ready: watch::Receiver<bool>,
}

impl<Key, V> Clone for Index<Key, V> {
    fn clone(&self) -> Self {
        Self { map: self.map.clone(), ready: self.ready.clone() }
    }
}

/// The write side of an [`Index`], fed by a watcher of `K`.
#[derive(Debug)]
pub struct Writer<K, Key, V> {
    map: Arc<RwLock<HashMap<Key, V>>>,
    buffer: HashMap<Key, V>,
    ready: watch::Sender<bool>,
    entry: fn(&K) -> (Key, V),
}

/// An empty index and its writer; `entry` says what to keep of an object.
pub fn index<K, Key: Eq + Hash, V>(entry: fn(&K) -> (Key, V)) -> (Index<Key, V>, Writer<K, Key, V>) {
    let map = Arc::new(RwLock::new(HashMap::new()));
    let (tx, rx) = watch::channel(false);
    (Index { map: map.clone(), ready: rx }, Writer { map, buffer: HashMap::new(), ready: tx, entry })
}

impl<K, Key: Eq + Hash, V> Writer<K, Key, V> {
    /// Apply one watcher event.
    pub fn apply(&mut self, event: &Event<K>) {
        match event {
            Event::Apply(o) => {
                let (k, v) = (self.entry)(o);
                self.map.write().expect("cache lock").insert(k, v);
            }
            Event::Delete(o) => {
                let (k, _) = (self.entry)(o);
                self.map.write().expect("cache lock").remove(&k);
            }
            Event::Init => self.buffer = HashMap::new(),
            Event::InitApply(o) => {
                let (k, v) = (self.entry)(o);
                self.buffer.insert(k, v);
            }
            Event::InitDone => {
                let mut full = std::mem::take(&mut self.buffer);
                full.shrink_to_fit();
                *self.map.write().expect("cache lock") = full;
                self.ready.send_replace(true);
            }
        }
    }
}

impl<Key: Eq + Hash, V> Index<Key, V> {
    /// How many objects the index holds.
    pub fn len(&self) -> usize {
        self.map.read().expect("cache lock").len()
    }

    /// Whether the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wait until the first complete list is in.
    pub async fn wait_until_ready(&self) -> Result<(), watch::error::RecvError> {
        self.ready.clone().wait_for(|r| *r).await.map(|_| ())
    }
}

fn name_of(m: &ObjectMeta) -> Box<str> {
    m.name.as_deref().unwrap_or_default().into()
}

// ---- Namespaces ----

/// What the operator keeps of a Namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceEntry {
    labels: Pairs,
    terminating: bool,
}

/// Where a namespace stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// It exists and is not being deleted.
    Active,
    /// It is being deleted.
    Terminating,
}

/// Namespaces by name.
pub type Namespaces = Index<Box<str>, NamespaceEntry>;

/// The entry of a Namespace (for [`index`]).
pub fn namespace_entry(ns: &PartialObjectMeta<Namespace>) -> (Box<str>, NamespaceEntry) {
    let m = &ns.metadata;
    (
        name_of(m),
        NamespaceEntry {
            labels: pairs(m.labels.iter().flatten()),
            terminating: m.deletion_timestamp.is_some(),
        },
    )
}

impl Namespaces {
    /// Where `name` stands, or `None` if it does not exist.
    pub fn phase(&self, name: &str) -> Option<Phase> {
        let map = self.map.read().expect("cache lock");
        map.get(name).map(|e| if e.terminating { Phase::Terminating } else { Phase::Active })
    }

    /// The names of the namespaces whose labels `selector` matches.
    pub fn matching(&self, selector: &LabelSelector) -> Vec<String> {
        let map = self.map.read().expect("cache lock");
        map.iter()
            .filter(|(_, e)| selector_matches(selector, |k| lookup(&e.labels, k)))
            .map(|(n, _)| n.to_string())
            .collect()
    }
}

// ---- Secrets ----

/// What the operator keeps of a Secret carrying a keyring label: its
/// `encstr.io/` labels, its key-ids annotation and the digest of its
/// keyring. Never key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEntry {
    labels: Pairs,
    key_ids: Option<Box<str>>,
    keyring: Option<[u8; 32]>,
}

/// Secrets by `(namespace, name)`.
pub type Secrets = Index<(Box<str>, Box<str>), SecretEntry>;

/// The entry of a Secret (for [`index`]).
pub fn secret_entry(s: &Secret) -> ((Box<str>, Box<str>), SecretEntry) {
    let m = &s.metadata;
    let ns: Box<str> = m.namespace.as_deref().unwrap_or_default().into();
    let entry = SecretEntry {
        labels: pairs(m.labels.iter().flatten().filter(|(k, _)| k.starts_with(LABEL_PREFIX))),
        key_ids: m.annotations.as_ref().and_then(|a| a.get(ANN_KEY_IDS)).map(|v| v.as_str().into()),
        keyring: s.data.as_ref().and_then(|d| d.get(DATA_KEY)).map(|b| digest(&b.0)),
    };
    ((ns, name_of(m)), entry)
}

impl SecretEntry {
    /// One of its `encstr.io/` labels.
    pub fn label(&self, key: &str) -> Option<&str> {
        lookup(&self.labels, key)
    }

    /// Whether it already is the copy that `desired::secret` would write:
    /// the keyring whose digest is `keyring`, these key ids and labels.
    pub fn is_current<'a>(
        &self,
        keyring: &[u8; 32],
        ids: &str,
        mut labels: impl Iterator<Item = (&'a String, &'a String)>,
    ) -> bool {
        self.keyring.as_ref() == Some(keyring)
            && self.key_ids.as_deref() == Some(ids)
            && labels.all(|(k, v)| self.label(k) == Some(v.as_str()))
    }
}

impl Secrets {
    /// The Secret `namespace/name`, if cached.
    pub fn get(&self, namespace: &str, name: &str) -> Option<SecretEntry> {
        let map = self.map.read().expect("cache lock");
        map.get(&(namespace.into(), name.into())).cloned()
    }

    /// The copies of a keyring as the operator writes them: named
    /// `secret_name`, its label `key` = `value` and role `copy`; each
    /// namespace with the digest of the keyring it holds.
    pub fn copies(&self, key: &str, value: &str, secret_name: &str) -> Vec<(String, Option<[u8; 32]>)> {
        let map = self.map.read().expect("cache lock");
        let mut out: Vec<(String, Option<[u8; 32]>)> = map
            .iter()
            .filter(|((_, n), e)| {
                &**n == secret_name && e.label(key) == Some(value) && e.label(LABEL_ROLE) == Some("copy")
            })
            .map(|((ns, _), e)| (ns.to_string(), e.keyring))
            .collect();
        out.sort();
        out
    }

    /// `(namespace, name)` of every cached Secret whose label `key` is `value`.
    pub fn labelled(&self, key: &str, value: &str) -> Vec<(String, String)> {
        let map = self.map.read().expect("cache lock");
        map.iter()
            .filter(|(_, e)| e.label(key) == Some(value))
            .map(|((ns, n), _)| (ns.to_string(), n.to_string()))
            .collect()
    }
}

// ---- ConfigMaps publishing recipients ----

/// What the operator keeps of a ConfigMap carrying role `recipient`: its
/// `encstr.io/` labels and a SHA-256 digest of its `recipient` value (a
/// label is only a claim: whoever labels a ConfigMap chooses its size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMapEntry {
    labels: Pairs,
    recipient: Option<[u8; 32]>,
}

/// Recipient ConfigMaps by `(namespace, name)`.
pub type ConfigMaps = Index<(Box<str>, Box<str>), ConfigMapEntry>;

/// The entry of a ConfigMap (for [`index`]).
pub fn config_map_entry(cm: &ConfigMap) -> ((Box<str>, Box<str>), ConfigMapEntry) {
    let m = &cm.metadata;
    let ns: Box<str> = m.namespace.as_deref().unwrap_or_default().into();
    let entry = ConfigMapEntry {
        labels: pairs(m.labels.iter().flatten().filter(|(k, _)| k.starts_with(LABEL_PREFIX))),
        recipient: cm.data.as_ref().and_then(|d| d.get(RECIPIENT_KEY)).map(|v| digest(v.as_bytes())),
    };
    ((ns, name_of(m)), entry)
}

impl ConfigMapEntry {
    /// One of its `encstr.io/` labels.
    pub fn label(&self, key: &str) -> Option<&str> {
        lookup(&self.labels, key)
    }

    /// Whether it publishes `recipient` (whatever its labels).
    pub fn publishes(&self, recipient: &str) -> bool {
        self.recipient == Some(digest(recipient.as_bytes()))
    }

    /// Whether it already publishes `recipient` with these labels.
    pub fn is_current<'a>(
        &self,
        recipient: &str,
        mut labels: impl Iterator<Item = (&'a String, &'a String)>,
    ) -> bool {
        self.recipient == Some(digest(recipient.as_bytes()))
            && labels.all(|(k, v)| self.label(k) == Some(v.as_str()))
    }
}

impl ConfigMaps {
    /// The ConfigMap `namespace/name`, if cached.
    pub fn get(&self, namespace: &str, name: &str) -> Option<ConfigMapEntry> {
        let map = self.map.read().expect("cache lock");
        map.get(&(namespace.into(), name.into())).cloned()
    }
}

/// Whether a label set matches a LabelSelector.
pub fn selector_matches<'a>(sel: &LabelSelector, label: impl Fn(&str) -> Option<&'a str>) -> bool {
    let labels_ok = sel.match_labels.iter().flatten().all(|(k, v)| label(k) == Some(v.as_str()));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let has = |v: &str| values.iter().any(|x| x == v);
        match e.operator.as_str() {
            "In" => label(&e.key).is_some_and(has),
            "NotIn" => label(&e.key).is_none_or(|v| !has(v)),
            "Exists" => label(&e.key).is_some(),
            "DoesNotExist" => label(&e.key).is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};
    use kube::core::TypeMeta;

    use super::*;

    #[test]
    fn label_selectors_match_like_kubernetes() {
        let labels =
            BTreeMap::from([("team".to_owned(), "payments".to_owned()), ("tier".to_owned(), "a".to_owned())]);
        let mut sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("team".into(), "payments".into())])),
            match_expressions: None,
        };
        assert!(selector_matches(&sel, |k| labels.get(k).map(String::as_str)));
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "NotIn".into(),
            values: Some(vec!["a".into()]),
        }]);
        assert!(!selector_matches(&sel, |k| labels.get(k).map(String::as_str)));
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "zone".into(),
            operator: "DoesNotExist".into(),
            values: None,
        }]);
        assert!(selector_matches(&sel, |k| labels.get(k).map(String::as_str)));
    }

    fn ns(name: &str, labels: &[(&str, &str)], terminating: bool) -> PartialObjectMeta<Namespace> {
        PartialObjectMeta {
            types: Some(TypeMeta { api_version: "v1".into(), kind: "Namespace".into() }),
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
                deletion_timestamp: terminating.then(|| Time(Default::default())),
                ..Default::default()
            },
            _phantom: Default::default(),
        }
    }

    fn team(t: &str) -> LabelSelector {
        LabelSelector {
            match_labels: Some(BTreeMap::from([("team".into(), t.into())])),
            match_expressions: None,
        }
    }

    #[test]
    fn namespaces_follow_the_watcher_like_a_reflector() {
        let (index, mut w) = index(namespace_entry);
        w.apply(&Event::Init);
        w.apply(&Event::InitApply(ns("a", &[("team", "x"), ("env", "prod")], false)));
        w.apply(&Event::InitApply(ns("b", &[("team", "y")], true)));
        assert!(index.is_empty(), "a partial initial list is not visible");
        w.apply(&Event::InitDone);
        assert_eq!(index.len(), 2);
        assert_eq!(index.phase("a"), Some(Phase::Active));
        assert_eq!(index.phase("b"), Some(Phase::Terminating));
        assert_eq!(index.phase("c"), None);
        assert_eq!(index.matching(&team("x")), vec!["a".to_owned()]);

        // Labels change, a namespace goes, one comes.
        w.apply(&Event::Apply(ns("a", &[("team", "y")], false)));
        w.apply(&Event::Delete(ns("b", &[], true)));
        w.apply(&Event::Apply(ns("c", &[("team", "y")], false)));
        assert!(index.matching(&team("x")).is_empty());
        let mut y = index.matching(&team("y"));
        y.sort();
        assert_eq!(y, vec!["a".to_owned(), "c".to_owned()]);
        assert_eq!(index.phase("b"), None);

        // A relist replaces everything at once.
        w.apply(&Event::Init);
        w.apply(&Event::InitApply(ns("d", &[], false)));
        assert_eq!(index.len(), 2, "the old index serves until the relist is complete");
        w.apply(&Event::InitDone);
        assert_eq!(index.len(), 1);
        assert_eq!(index.phase("a"), None);
    }

    fn secret(ns: &str, labels: &[(&str, &str)], ids: Option<&str>, keyring: Option<&[u8]>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("ring".into()),
                namespace: Some(ns.into()),
                labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
                annotations: ids.map(|i| BTreeMap::from([(ANN_KEY_IDS.to_owned(), i.to_owned())])),
                ..Default::default()
            },
            data: keyring.map(|b| BTreeMap::from([(DATA_KEY.to_owned(), ByteString(b.to_vec()))])),
            ..Default::default()
        }
    }

    #[test]
    fn secrets_keep_our_labels_key_ids_and_a_digest_only() {
        let (index, mut w) = index(secret_entry);
        let labels = [("encstr.io/role", "copy"), ("encstr.io/cluster-keyring", "pay"), ("app", "x")];
        w.apply(&Event::Init);
        w.apply(&Event::InitApply(secret("a", &labels, Some("k1,k2"), Some(b"ring-bytes"))));
        w.apply(&Event::InitApply(secret("b", &labels[..1], None, None)));
        w.apply(&Event::InitDone);

        let a = index.get("a", "ring").expect("cached");
        assert_eq!(a.label("encstr.io/role"), Some("copy"));
        assert_eq!(a.label("app"), None, "other owners' labels are not kept");
        assert!(!format!("{a:?}").contains("ring-bytes"), "no key material in the cache");
        let want = BTreeMap::from([
            ("encstr.io/role".to_owned(), "copy".to_owned()),
            ("encstr.io/cluster-keyring".to_owned(), "pay".to_owned()),
        ]);
        assert!(a.is_current(&digest(b"ring-bytes"), "k1,k2", want.iter()));
        assert!(!a.is_current(&digest(b"other-bytes"), "k1,k2", want.iter()), "another keyring");
        assert!(!a.is_current(&digest(b"ring-bytes"), "k1", want.iter()), "other key ids");
        let more = BTreeMap::from([("encstr.io/role".to_owned(), "master".to_owned())]);
        assert!(!a.is_current(&digest(b"ring-bytes"), "k1,k2", more.iter()), "a label differs");
        assert!(!index.get("b", "ring").expect("cached").is_current(&digest(b""), "", std::iter::empty()));

        assert_eq!(
            index.labelled("encstr.io/cluster-keyring", "pay"),
            vec![("a".to_owned(), "ring".to_owned())]
        );
        w.apply(&Event::Delete(secret("a", &[], None, None)));
        assert_eq!(index.get("a", "ring"), None);
    }

    #[test]
    fn recipient_config_maps_keep_our_labels_and_a_digest_only() {
        let (index, mut w) = index(config_map_entry);
        let cm = |recipient: &str| ConfigMap {
            metadata: ObjectMeta {
                name: Some("ring-recipient".into()),
                namespace: Some("a".into()),
                labels: Some(BTreeMap::from([
                    ("encstr.io/role".to_owned(), "recipient".to_owned()),
                    ("encstr.io/keyring".to_owned(), "ring".to_owned()),
                    ("app".to_owned(), "x".to_owned()),
                ])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(RECIPIENT_KEY.to_owned(), recipient.to_owned())])),
            ..Default::default()
        };
        w.apply(&Event::Init);
        w.apply(&Event::InitApply(cm(&"R".repeat(4096))));
        w.apply(&Event::InitDone);
        let e = index.get("a", "ring-recipient").expect("cached");
        assert_eq!((e.label("encstr.io/role"), e.label("app")), (Some("recipient"), None));
        assert!(!format!("{e:?}").contains("RRRR"), "a digest, whatever its size");
        let ours = BTreeMap::from([("encstr.io/keyring".to_owned(), "ring".to_owned())]);
        assert!(e.is_current(&"R".repeat(4096), ours.iter()));
        assert!(!e.is_current("ENCSTR-RECIPIENT:x", ours.iter()), "another recipient");
        let other = BTreeMap::from([("encstr.io/keyring".to_owned(), "other".to_owned())]);
        assert!(!e.is_current(&"R".repeat(4096), other.iter()), "another keyring's labels");
    }

    #[tokio::test]
    async fn ready_after_the_first_list() {
        let (index, mut w) = index(namespace_entry);
        let waiting = tokio::spawn({
            let index = index.clone();
            async move { index.wait_until_ready().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        w.apply(&Event::Init);
        w.apply(&Event::InitDone);
        waiting.await.expect("join").expect("ready");
    }
}
