//! The controllers of a cluster's control plane that the product meets,
//! run asynchronously after writes (and on a short tick), each pass one
//! small step, as the real ones do:
//!
//! - namespace lifecycle: a terminating namespace's content is deleted
//!   (objects with finalizers stay until those are removed), its
//!   conditions say what remains, then the `kubernetes` finalizer goes and
//!   the namespace with it;
//! - service accounts and root CA: every active namespace gets a `default`
//!   ServiceAccount and the `kube-root-ca.crt` ConfigMap;
//! - garbage collection: dependents whose owners are all absent (gone,
//!   replaced by another uid, or in another namespace) are deleted;
//!   `foregroundDeletion` owners wait for their blocking dependents;
//!   `orphan` owners release theirs;
//! - CRD cleanup: a deleted CRD's custom resources are deleted, then the
//!   CRD's finalizer is removed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::kinds::crd::{self, CRD_FINALIZER};
use super::kinds::namespace::{self, NAMESPACE_FINALIZER};
use super::store::{DeleteOpts, ObjKey, Opts, Store, now};

/// The ConfigMap every namespace gets.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

fn is_deleting(o: &Value) -> bool {
    o["metadata"]["deletionTimestamp"].is_string()
}

fn finalizers(o: &Value) -> Vec<String> {
    o["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect()
}

fn without_finalizer(o: &mut Value, f: &str) {
    if let Some(a) = o["metadata"]["finalizers"].as_array_mut() {
        a.retain(|x| x != f);
    }
}

/// Run every controller once. Returns whether anything changed.
pub fn run_once(s: &mut Store, ca_pem: &str) -> bool {
    let before = s.rv();
    namespaces(s, ca_pem);
    garbage_collect(s);
    crd_cleanup(s);
    s.rv() != before
}

fn namespaces(s: &mut Store, ca_pem: &str) {
    let names: Vec<String> =
        s.keys().into_iter().filter(|k| *k == namespace::key(&k.name)).map(|k| k.name).collect();
    for name in names {
        let Some(deleting) = s.raw(&namespace::key(&name)).map(is_deleting) else { continue };
        if deleting {
            let Some(ns) = s.raw(&namespace::key(&name)).cloned() else { continue };
            finalize_namespace(s, &name, &ns);
        } else {
            populate_namespace(s, &name, ca_pem);
        }
    }
}

fn populate_namespace(s: &mut Store, ns: &str, ca_pem: &str) {
    let want = [
        ("", "v1", "serviceaccounts", json!({"metadata": {"name": "default"}})),
        (
            "",
            "v1",
            "configmaps",
            json!({"metadata": {"name": ROOT_CA_CONFIGMAP, "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}}, "data": {"ca.crt": ca_pem}}),
        ),
    ];
    for (group, version, plural, obj) in want {
        let Some(t) = s.type_of(group, version, plural) else { continue };
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        if s.raw(&Store::key(&t, ns, &name)).is_some() {
            continue;
        }
        if let Ok(p) = s.prepare_create(&t, ns, obj, Opts::system("kube-controller-manager")) {
            let _ = s.commit(p);
        }
    }
}

/// One step of deleting a namespace: delete its content, report what
/// remains, and when nothing does, drop the `kubernetes` finalizer.
fn finalize_namespace(s: &mut Store, name: &str, ns: &Value) {
    let content: Vec<ObjKey> = s.keys().into_iter().filter(|k| k.namespace == name).collect();
    let mut remaining: BTreeMap<String, usize> = BTreeMap::new();
    let mut with_finalizers: BTreeMap<String, usize> = BTreeMap::new();
    for key in &content {
        let Some(obj) = s.raw(key).cloned() else { continue };
        let Some(t) = s.type_for_key(key) else { continue };
        if !is_deleting(&obj) {
            let _ = s.delete(&t, &key.namespace, &key.name, &DeleteOpts::default());
        }
        if let Some(obj) = s.raw(key) {
            *remaining.entry(t.qualified()).or_default() += 1;
            for f in finalizers(obj) {
                *with_finalizers.entry(f).or_default() += 1;
            }
        }
    }
    let stamp = now();
    let condition = |ty: &str, on: bool, reason: &str, message: String| {
        json!({"type": ty, "status": if on { "True" } else { "False" }, "lastTransitionTime": stamp,
            "reason": if on { reason } else { "ContentDeleted" }, "message": if on { message } else { "All content successfully deleted, may be waiting on finalization".to_owned() }})
    };
    let content_msg = format!(
        "Some resources are remaining: {}",
        remaining
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let fin_msg = format!(
        "Some content in the namespace has finalizers remaining: {}",
        with_finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let conditions = vec![
        json!({"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "lastTransitionTime": stamp, "reason": "ResourcesDiscovered", "message": "All resources successfully discovered"}),
        json!({"type": "NamespaceDeletionGroupVersionParsingFailure", "status": "False", "lastTransitionTime": stamp, "reason": "ParsedGroupVersions", "message": "All legacy kube types successfully parsed"}),
        json!({"type": "NamespaceDeletionContentFailure", "status": "False", "lastTransitionTime": stamp, "reason": "ContentDeleted", "message": "All content successfully deleted, may be waiting on finalization"}),
        condition("NamespaceContentRemaining", !remaining.is_empty(), "SomeResourcesRemain", content_msg),
        condition(
            "NamespaceFinalizersRemaining",
            !with_finalizers.is_empty(),
            "SomeFinalizersRemain",
            fin_msg,
        ),
    ];
    let same = |a: &Value, b: &Value| {
        a["type"] == b["type"] && a["status"] == b["status"] && a["message"] == b["message"]
    };
    let old = ns["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let unchanged = old.len() == conditions.len() && old.iter().zip(&conditions).all(|(a, b)| same(a, b));
    let done = remaining.is_empty();
    if unchanged && !done {
        return;
    }
    s.system_update(&namespace::key(name), |n| {
        if !unchanged {
            n["status"]["conditions"] = Value::Array(conditions.clone());
        }
        if done && let Some(f) = n["spec"]["finalizers"].as_array_mut() {
            f.retain(|x| x != NAMESPACE_FINALIZER);
        }
    });
}

/// The key of the owner an owner reference points at, if its type is known.
fn owner_key(s: &Store, dependent: &ObjKey, r: &Value) -> Option<ObjKey> {
    let api_version = r["apiVersion"].as_str()?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = r["kind"].as_str()?;
    let t = s.types().iter().find(|t| t.group == group && t.version == version && t.kind == kind)?.clone();
    // A namespaced owner must be in the dependent's namespace: a reference
    // across namespaces (or from a cluster-scoped dependent) is absent.
    let namespace = if t.namespaced { dependent.namespace.clone() } else { String::new() };
    Some(ObjKey {
        group: t.storage.0.clone(),
        plural: t.storage.1.clone(),
        namespace,
        name: r["name"].as_str()?.to_owned(),
    })
}

/// Whether an owner reference resolves to an existing owner: `Some(owner)`
/// when it does, `None` when it is absent. References to kinds the server
/// does not serve cannot be resolved and count as present (the real
/// collector retries them).
fn resolve(s: &Store, dependent: &ObjKey, r: &Value) -> Result<Option<Value>, ()> {
    let Some(key) = owner_key(s, dependent, r) else { return Err(()) };
    let owner_scope_ok = !dependent.namespace.is_empty() || key.namespace.is_empty();
    Ok(s.raw(&key).filter(|o| owner_scope_ok && o["metadata"]["uid"] == r["uid"]).cloned())
}

fn garbage_collect(s: &mut Store) {
    let keys = s.keys();
    let (foreground, orphaning) = deleting_owners(s, &keys);
    let mut blocking: BTreeSet<String> = BTreeSet::new();
    for k in &keys {
        // Only objects with owners are looked at (and copied).
        let Some((refs, deleting)) = s.raw(k).and_then(|o| {
            let refs = o["metadata"]["ownerReferences"].as_array().filter(|r| !r.is_empty())?;
            Some((refs.clone(), is_deleting(o)))
        }) else {
            continue;
        };
        // Orphaning owners release their dependents.
        let released: Vec<&Value> =
            refs.iter().filter(|r| r["uid"].as_str().is_some_and(|u| orphaning.contains_key(u))).collect();
        if !released.is_empty() {
            let uids: BTreeSet<String> =
                released.iter().filter_map(|r| r["uid"].as_str().map(str::to_owned)).collect();
            s.system_update(k, |o| {
                if let Some(a) = o["metadata"]["ownerReferences"].as_array_mut() {
                    a.retain(|r| !r["uid"].as_str().is_some_and(|u| uids.contains(u)));
                    if a.is_empty() {
                        o["metadata"].as_object_mut().map(|m| m.remove("ownerReferences"));
                    }
                }
            });
            continue;
        }
        let mut absent = 0;
        let mut deleting_foreground = false;
        for r in &refs {
            let uid = r["uid"].as_str().unwrap_or_default();
            if foreground.contains_key(uid) {
                deleting_foreground = true;
                if r["blockOwnerDeletion"] == true {
                    blocking.insert(uid.to_owned());
                }
                continue;
            }
            if let Ok(None) = resolve(s, k, r) {
                absent += 1;
            }
        }
        if deleting {
            continue;
        }
        if (absent == refs.len() || deleting_foreground)
            && let Some(t) = s.type_for_key(k)
        {
            let propagation = if deleting_foreground { Some("Foreground".to_owned()) } else { None };
            let _ = s.delete(&t, &k.namespace, &k.name, &DeleteOpts { propagation, ..DeleteOpts::default() });
        }
    }
    release_owners(s, orphaning, foreground, &blocking);
}

/// Owners being deleted in the foreground or orphaning, by uid.
type Owners = BTreeMap<String, ObjKey>;

fn deleting_owners(s: &Store, keys: &[ObjKey]) -> (Owners, Owners) {
    let mut foreground = Owners::new();
    let mut orphaning = Owners::new();
    for k in keys {
        let Some(o) = s.raw(k) else { continue };
        if !is_deleting(o) {
            continue;
        }
        let uid = o["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
        let f = finalizers(o);
        if f.iter().any(|x| x == "orphan") {
            orphaning.insert(uid.clone(), k.clone());
        }
        if f.iter().any(|x| x == "foregroundDeletion") {
            foreground.insert(uid, k.clone());
        }
    }
    (foreground, orphaning)
}

/// An orphaning owner's finalizer goes once no object names it; a
/// foreground one's once no dependent blocks it.
fn release_owners(s: &mut Store, orphaning: Owners, foreground: Owners, blocking: &BTreeSet<String>) {
    for (uid, key) in orphaning {
        let still = s.keys().into_iter().any(|k| {
            s.raw(&k).is_some_and(|o| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["uid"] == uid.as_str())
            })
        });
        if !still {
            s.system_update(&key, |o| without_finalizer(o, "orphan"));
        }
    }
    for (uid, key) in foreground {
        if !blocking.contains(&uid) {
            s.system_update(&key, |o| without_finalizer(o, "foregroundDeletion"));
        }
    }
}

fn crd_cleanup(s: &mut Store) {
    let crds: Vec<ObjKey> = s.keys().into_iter().filter(|k| *k == crd::key(&k.name)).collect();
    for key in crds {
        let Some(crd) = s.raw(&key).cloned() else { continue };
        if !is_deleting(&crd) || !finalizers(&crd).iter().any(|f| f == CRD_FINALIZER) {
            continue;
        }
        let group = crd["spec"]["group"].as_str().unwrap_or_default().to_owned();
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default().to_owned();
        let instances: Vec<ObjKey> =
            s.keys().into_iter().filter(|k| k.group == group && k.plural == plural).collect();
        for k in &instances {
            if s.raw(k).is_some_and(|o| !is_deleting(o))
                && let Some(t) = s.type_for_key(k)
            {
                let _ = s.delete(&t, &k.namespace, &k.name, &DeleteOpts::default());
            }
        }
        let left = s.keys().into_iter().any(|k| k.group == group && k.plural == plural);
        if !left {
            s.system_update(&key, |o| without_finalizer(o, CRD_FINALIZER));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(s: &mut Store, group: &str, plural: &str, ns: &str, obj: Value) -> Value {
        let t = s.type_of(group, "v1", plural).unwrap();
        let p = s.prepare_create(&t, ns, obj, Opts::system("test")).unwrap();
        s.commit(p).ok().unwrap().obj
    }

    fn settle(s: &mut Store) {
        for _ in 0..20 {
            if !run_once(s, "CA") {
                return;
            }
        }
    }

    #[test]
    fn namespaces_terminate_after_their_content() {
        let mut s = Store::default();
        create(&mut s, "", "namespaces", "", json!({"metadata": {"name": "team"}}));
        settle(&mut s);
        let sa = s.type_of("", "v1", "serviceaccounts").unwrap();
        assert!(s.get(&sa, "team", "default").is_ok(), "default service account");
        create(
            &mut s,
            "",
            "secrets",
            "team",
            json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
        );
        let ns = s.type_of("", "v1", "namespaces").unwrap();
        let deleting = s.delete(&ns, "", "team", &DeleteOpts::default()).unwrap();
        assert_eq!(deleting["status"]["phase"], "Terminating");
        settle(&mut s);
        let ns_now = s.get(&ns, "", "team").unwrap();
        let remaining = ns_now["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "NamespaceFinalizersRemaining")
            .unwrap()
            .clone();
        assert_eq!(remaining["status"], "True");
        assert!(
            remaining["message"].as_str().unwrap().contains("example.com/hold in 1 resource instances"),
            "{remaining}"
        );
        let key = ObjKey {
            group: String::new(),
            plural: "secrets".into(),
            namespace: "team".into(),
            name: "held".into(),
        };
        s.system_update(&key, |o| without_finalizer(o, "example.com/hold"));
        settle(&mut s);
        assert_eq!(s.get(&ns, "", "team").unwrap_err().code, 404);
    }

    #[test]
    fn owners_in_other_namespaces_count_as_absent_and_foreground_waits() {
        let mut s = Store::default();
        for n in ["a", "b"] {
            create(&mut s, "", "namespaces", "", json!({"metadata": {"name": n}}));
        }
        let owner = create(&mut s, "", "configmaps", "a", json!({"metadata": {"name": "owner"}}));
        let uid = owner["metadata"]["uid"].clone();
        let r = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "blockOwnerDeletion": true}]);
        create(&mut s, "", "configmaps", "a", json!({"metadata": {"name": "same-ns", "ownerReferences": r}}));
        create(
            &mut s,
            "",
            "configmaps",
            "b",
            json!({"metadata": {"name": "other-ns", "ownerReferences": r}}),
        );
        settle(&mut s);
        let cm = s.type_of("", "v1", "configmaps").unwrap();
        assert!(s.get(&cm, "a", "same-ns").is_ok());
        assert_eq!(s.get(&cm, "b", "other-ns").unwrap_err().code, 404, "cross-namespace owner is absent");
        let deleting = s
            .delete(
                &cm,
                "a",
                "owner",
                &DeleteOpts { propagation: Some("Foreground".into()), ..Default::default() },
            )
            .unwrap();
        assert!(
            deleting["metadata"]["finalizers"].as_array().unwrap().iter().any(|f| f == "foregroundDeletion")
        );
        settle(&mut s);
        assert_eq!(s.get(&cm, "a", "same-ns").unwrap_err().code, 404);
        assert_eq!(s.get(&cm, "a", "owner").unwrap_err().code, 404, "owner goes after its dependents");
    }

    #[test]
    fn orphaning_releases_dependents() {
        let mut s = Store::default();
        let owner = create(&mut s, "", "configmaps", "default", json!({"metadata": {"name": "owner"}}));
        let r = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]);
        create(
            &mut s,
            "",
            "configmaps",
            "default",
            json!({"metadata": {"name": "dep", "ownerReferences": r}}),
        );
        let cm = s.type_of("", "v1", "configmaps").unwrap();
        s.delete(
            &cm,
            "default",
            "owner",
            &DeleteOpts { propagation: Some("Orphan".into()), ..Default::default() },
        )
        .unwrap();
        settle(&mut s);
        let dep = s.get(&cm, "default", "dep").unwrap();
        assert!(dep["metadata"]["ownerReferences"].is_null(), "{dep}");
        assert_eq!(s.get(&cm, "default", "owner").unwrap_err().code, 404);
    }
}
