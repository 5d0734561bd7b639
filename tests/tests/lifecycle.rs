//! The watch cache and object lifecycle as kube-apiserver and its
//! controllers run them: watch delivery delays, bookmark intervals, the
//! history window (410 for lists, watches and continue tokens),
//! resourceVersionMatch, namespace termination, protected namespaces, CRD
//! deletion, DeleteOptions (preconditions, Foreground, Orphan), owners in
//! other namespaces, Tables and event field selectors.

mod common;

use std::time::{Duration, Instant};

use common::{Watch, call, names, patch};
use encstr_tests::TestApiServer;
use encstr_tests::harness::{Client, eventually};
use serde_json::{Value, json};

const CM: &str = "/api/v1/namespaces/default/configmaps";

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn watch_events_can_lag_behind_writes() {
    let s = TestApiServer::start(0).await.unwrap();
    s.set_watch_delay("configmaps", Duration::from_millis(700));
    let mut w =
        Watch::open(&s, &format!("{CM}?watch=true&resourceVersion=1&fieldSelector=metadata.name%3Dlag"))
            .await;
    let t = Instant::now();
    let created = call(&s, "POST", CM, json!({"metadata": {"name": "lag"}})).await.unwrap();
    // The write is visible to reads at once, to watches later.
    assert_eq!(
        call(&s, "GET", &format!("{CM}/lag"), Value::Null).await.unwrap()["metadata"]["uid"],
        created["metadata"]["uid"]
    );
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert!(t.elapsed() >= Duration::from_millis(650), "delivered after {:?}", t.elapsed());
    // Other resources are not delayed: a Secret written after a ConfigMap
    // reaches its watch first.
    let mut wc = Watch::open(
        &s,
        &format!("{CM}?watch=true&resourceVersion={}&fieldSelector=metadata.name%3Dlater", rv(&created)),
    )
    .await;
    let mut ws = Watch::open(&s, "/api/v1/namespaces/default/secrets?watch=true&resourceVersion=1").await;
    call(&s, "POST", CM, json!({"metadata": {"name": "later"}})).await.unwrap();
    call(&s, "POST", "/api/v1/namespaces/default/secrets", json!({"metadata": {"name": "fast"}}))
        .await
        .unwrap();
    tokio::select! {
        ev = ws.next() => assert_eq!(ev.unwrap()["object"]["metadata"]["name"], "fast"),
        ev = wc.next() => panic!("the delayed ConfigMap came first: {ev:?}"),
    }
    assert_eq!(wc.next().await.unwrap()["object"]["metadata"]["name"], "later");
}

#[tokio::test]
async fn bookmarks_come_at_the_configured_interval_and_never_run_ahead() {
    let s = TestApiServer::start(0).await.unwrap();
    let t = Instant::now();
    let mut w = Watch::open(
        &s,
        &format!(
            "{CM}?watch=true&resourceVersion=1&allowWatchBookmarks=true&fieldSelector=metadata.name%3Dnone"
        ),
    )
    .await;
    // The default interval is about a minute: none within a second.
    assert!(w.quiet_for(1000).await);
    drop(w);
    s.set_bookmark_interval(Duration::from_millis(200));
    s.set_watch_delay("configmaps", Duration::from_millis(1500));
    let mut w = Watch::open(&s, &format!("{CM}?watch=true&resourceVersion=1&allowWatchBookmarks=true")).await;
    let created = call(&s, "POST", CM, json!({"metadata": {"name": "b"}})).await.unwrap();
    let mut bookmarks = 0;
    loop {
        let ev = w.next().await.unwrap();
        if ev["type"] == "BOOKMARK" {
            // A bookmark never claims a resourceVersion whose event is still on its way.
            assert!(rv(&ev["object"]) < rv(&created), "{ev}");
            bookmarks += 1;
        } else if ev["object"]["metadata"]["name"] == "b" {
            break;
        }
    }
    assert!(bookmarks >= 3, "{bookmarks} bookmarks in {:?}", t.elapsed());
}

#[tokio::test]
async fn lists_across_namespaces_come_in_etcd_key_order_and_pages_lose_nothing() {
    let s = TestApiServer::start(0).await.unwrap();
    // etcd orders `namespace/name` by bytes: `a-b/…` before `a/…`.
    for ns in ["a", "a-b"] {
        call(&s, "POST", "/api/v1/namespaces", json!({"metadata": {"name": ns}})).await.unwrap();
        for name in ["x", "x-1", "y"] {
            let body = json!({"metadata": {"name": name, "labels": {"page": "yes"}}});
            call(&s, "POST", &format!("/api/v1/namespaces/{ns}/secrets"), body).await.unwrap();
        }
    }
    let key = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["metadata"]["namespace"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let want = ["a-b/x", "a-b/x-1", "a-b/y", "a/x", "a/x-1", "a/y"];
    let all = call(&s, "GET", "/api/v1/secrets?labelSelector=page%3Dyes", Value::Null).await.unwrap();
    assert_eq!(key(&all), want);
    let mut paged = Vec::new();
    let mut url = "/api/v1/secrets?labelSelector=page%3Dyes&limit=1".to_owned();
    loop {
        let page = call(&s, "GET", &url, Value::Null).await.unwrap();
        paged.extend(key(&page));
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => {
                url = format!("/api/v1/secrets?labelSelector=page%3Dyes&limit=1&continue={c}")
            }
            _ => break,
        }
    }
    assert_eq!(paged, want);
}

#[tokio::test]
async fn lists_and_continue_tokens_are_consistent_snapshots_until_the_history_drops_them() {
    let s = TestApiServer::start(0).await.unwrap();
    call(&s, "POST", "/api/v1/namespaces", json!({"metadata": {"name": "page"}})).await.unwrap();
    let base = "/api/v1/namespaces/page/secrets";
    for i in 0..5 {
        call(&s, "POST", base, json!({"metadata": {"name": format!("s{i}")}})).await.unwrap();
    }
    let first = call(&s, "GET", &format!("{base}?limit=2"), Value::Null).await.unwrap();
    assert_eq!(names(&first), ["s0", "s1"]);
    assert_eq!(first["metadata"]["remainingItemCount"], 3);
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    // Changes after the first page do not show in the rest of it.
    call(&s, "DELETE", &format!("{base}/s3"), Value::Null).await.unwrap();
    call(&s, "POST", base, json!({"metadata": {"name": "s9"}})).await.unwrap();
    let rest = call(&s, "GET", &format!("{base}?limit=10&continue={token}"), Value::Null).await.unwrap();
    assert_eq!(names(&rest), ["s2", "s3", "s4"]);
    assert_eq!(rest["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"]);
    // An exact resourceVersion lists the past; NotOlderThan the present.
    let at = first["metadata"]["resourceVersion"].as_str().unwrap();
    let past =
        call(&s, "GET", &format!("{base}?resourceVersion={at}&resourceVersionMatch=Exact"), Value::Null)
            .await
            .unwrap();
    assert_eq!(names(&past), ["s0", "s1", "s2", "s3", "s4"]);
    let now = call(
        &s,
        "GET",
        &format!("{base}?resourceVersion={at}&resourceVersionMatch=NotOlderThan"),
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(names(&now), ["s0", "s1", "s2", "s4", "s9"]);
    let err = call(&s, "GET", &format!("{base}?resourceVersionMatch=Exact"), Value::Null).await.unwrap_err();
    assert!(
        err.starts_with("422")
            && err.contains("resourceVersionMatch is forbidden unless resourceVersion is provided"),
        "{err}"
    );
    let err = call(&s, "GET", &format!("{base}?resourceVersion=banana"), Value::Null).await.unwrap_err();
    assert!(err.starts_with("400") && err.contains("invalid resource version"), "{err}");
    let err =
        call(&s, "GET", &format!("{base}?watch=true&sendInitialEvents=true"), Value::Null).await.unwrap_err();
    assert!(
        err.starts_with("422")
            && err.contains("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"),
        "{err}"
    );
    let err = call(
        &s,
        "GET",
        &format!("{base}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"),
        Value::Null,
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("422") && err.contains("allowWatchBookmarks must be set to true"), "{err}");
    let future = rv(&now) + 1000;
    let err = call(
        &s,
        "GET",
        &format!("{base}?resourceVersion={future}&resourceVersionMatch=NotOlderThan"),
        Value::Null,
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("504") && err.contains("Too large resource version"), "{err}");
    // Once the history no longer holds the snapshot: 410, with a token to
    // continue inconsistently.
    s.set_history(1);
    call(&s, "POST", base, json!({"metadata": {"name": "s10"}})).await.unwrap();
    let err = call(&s, "GET", &format!("{base}?limit=10&continue={token}"), Value::Null).await.unwrap_err();
    let (code, st) = err.split_once(": ").unwrap();
    let st: Value = serde_json::from_str(st).unwrap();
    assert_eq!((code, st["reason"].as_str()), ("410", Some("Expired")));
    assert!(st["message"].as_str().unwrap().starts_with("The provided continue parameter is too old"));
    let inconsistent = st["metadata"]["continue"].as_str().unwrap();
    let rest =
        call(&s, "GET", &format!("{base}?limit=10&continue={inconsistent}"), Value::Null).await.unwrap();
    assert_eq!(names(&rest), ["s10", "s2", "s4", "s9"], "keys after s1, in key order, as they are now");
    let err =
        call(&s, "GET", &format!("{base}?resourceVersion={at}&resourceVersionMatch=Exact"), Value::Null)
            .await
            .unwrap_err();
    assert!(err.starts_with("410"), "{err}");
    let mut w = Watch::open(&s, &format!("{base}?watch=true&resourceVersion={at}")).await;
    let ev = w.next().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["code"].as_u64()), (Some("ERROR"), Some(410)));
}

#[tokio::test]
async fn namespaces_terminate_observably_and_protected_ones_stay() {
    let s = TestApiServer::start(0).await.unwrap();
    let ns = call(&s, "POST", "/api/v1/namespaces", json!({"metadata": {"name": "doomed"}})).await.unwrap();
    assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "doomed");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    call(
        &s,
        "POST",
        "/api/v1/namespaces/doomed/configmaps",
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .await
    .unwrap();
    let rv0 = rv(&ns);
    let mut w = Watch::open(
        &s,
        &format!("/api/v1/namespaces?watch=true&resourceVersion={rv0}&fieldSelector=metadata.name%3Ddoomed"),
    )
    .await;
    let deleting = call(&s, "DELETE", "/api/v1/namespaces/doomed", Value::Null).await.unwrap();
    assert_eq!(deleting["status"]["phase"], "Terminating");
    // New content is refused with the real reason.
    let err = call(&s, "POST", "/api/v1/namespaces/doomed/secrets", json!({"metadata": {"name": "late"}}))
        .await
        .unwrap_err();
    assert!(err.starts_with("403"), "{err}");
    assert!(err.contains(r#"secrets \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"#), "{err}");
    assert!(err.contains("NamespaceTerminating"), "{err}");
    // The content goes except what finalizers hold; the conditions say so.
    let ns = eventually(10, "the finalizer reported", || async {
        let ns = call(&s, "GET", "/api/v1/namespaces/doomed", Value::Null).await.ok()?;
        let c = ns["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "NamespaceFinalizersRemaining")?
            .clone();
        (c["status"] == "True").then_some(c)
    })
    .await;
    assert!(ns["message"].as_str().unwrap().contains("example.com/hold in 1 resource instances"), "{ns}");
    patch(
        &s,
        "/api/v1/namespaces/doomed/configmaps/held",
        "application/merge-patch+json",
        r#"{"metadata":{"finalizers":null}}"#,
    )
    .await
    .unwrap();
    let mut saw_terminating = false;
    loop {
        let ev = w.next_within(10).await.unwrap();
        match ev["type"].as_str().unwrap() {
            "MODIFIED" => saw_terminating |= ev["object"]["status"]["phase"] == "Terminating",
            "DELETED" => break,
            other => panic!("unexpected {other}: {ev}"),
        }
    }
    assert!(saw_terminating);
    for protected in ["default", "kube-system", "kube-public"] {
        let err =
            call(&s, "DELETE", &format!("/api/v1/namespaces/{protected}"), Value::Null).await.unwrap_err();
        assert!(err.starts_with("403") && err.contains("this namespace may not be deleted"), "{err}");
    }
    // Every namespace gets its default service account and root CA.
    call(&s, "POST", "/api/v1/namespaces", json!({"metadata": {"name": "fresh"}})).await.unwrap();
    eventually(10, "default service account", || async {
        call(&s, "GET", "/api/v1/namespaces/fresh/serviceaccounts/default", Value::Null).await.ok()
    })
    .await;
    let ca = eventually(10, "kube-root-ca.crt", || async {
        call(&s, "GET", "/api/v1/namespaces/fresh/configmaps/kube-root-ca.crt", Value::Null).await.ok()
    })
    .await;
    assert_eq!(ca["data"]["ca.crt"], s.ca_pem());
}

const CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
 "metadata": {"name": "things.example.com"},
 "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Thing", "plural": "things", "shortNames": ["th"]},
  "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
   "additionalPrinterColumns": [
     {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
     {"name": "Keys", "type": "integer", "jsonPath": ".status.keyCount"},
     {"name": "Detail", "type": "string", "jsonPath": ".spec.detail", "priority": 1},
     {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#;

#[tokio::test]
async fn crds_wait_for_their_resources_and_deletion_bumps_generation() {
    let s = TestApiServer::start(0).await.unwrap();
    call(
        &s,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        serde_json::from_str(CRD).unwrap(),
    )
    .await
    .unwrap();
    let things = "/apis/example.com/v1/namespaces/default/things";
    let t = call(&s, "POST", things, json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t", "finalizers": ["example.com/hold"]}, "spec": {}}))
        .await
        .unwrap();
    assert_eq!(t["metadata"]["generation"], 1);
    let deleting = call(&s, "DELETE", &format!("{things}/t"), Value::Null).await.unwrap();
    assert_eq!(deleting["metadata"]["generation"], 2, "deletionTimestamp bumps the generation");
    call(
        &s,
        "DELETE",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/things.example.com",
        Value::Null,
    )
    .await
    .unwrap();
    let crd = call(
        &s,
        "GET",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/things.example.com",
        Value::Null,
    )
    .await
    .unwrap();
    assert!(
        crd["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Terminating" && c["status"] == "True")
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    call(&s, "GET", &format!("{things}/t"), Value::Null).await.expect("held by its finalizer");
    let err = call(
        &s,
        "POST",
        things,
        json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "u"}}),
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("405"), "no new resources of a terminating CRD: {err}");
    patch(&s, &format!("{things}/t"), "application/merge-patch+json", r#"{"metadata":{"finalizers":null}}"#)
        .await
        .unwrap();
    eventually(10, "the CRD gone", || async {
        call(
            &s,
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/things.example.com",
            Value::Null,
        )
        .await
        .is_err()
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn delete_options_preconditions_propagation_and_owners() {
    let s = TestApiServer::start(0).await.unwrap();
    call(&s, "POST", "/api/v1/namespaces", json!({"metadata": {"name": "elsewhere"}})).await.unwrap();
    let owner = call(&s, "POST", CM, json!({"metadata": {"name": "owner"}})).await.unwrap();
    let uid = owner["metadata"]["uid"].as_str().unwrap();
    // Preconditions.
    let err = call(&s, "DELETE", &format!("{CM}/owner"), json!({"preconditions": {"uid": "not-it"}}))
        .await
        .unwrap_err();
    assert!(
        err.starts_with("409") && err.contains("Precondition failed: UID in precondition: not-it"),
        "{err}"
    );
    let err = call(&s, "DELETE", &format!("{CM}/owner"), json!({"preconditions": {"resourceVersion": "1"}}))
        .await
        .unwrap_err();
    assert!(
        err.starts_with("409") && err.contains("Precondition failed: ResourceVersion in precondition: 1"),
        "{err}"
    );
    // Foreground: the owner waits for its blocking dependents.
    let refs = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "blockOwnerDeletion": true}]);
    call(
        &s,
        "POST",
        CM,
        json!({"metadata": {"name": "dep", "ownerReferences": refs, "finalizers": ["example.com/hold"]}}),
    )
    .await
    .unwrap();
    // An owner in another namespace is absent: the dependent goes.
    call(
        &s,
        "POST",
        "/api/v1/namespaces/elsewhere/configmaps",
        json!({"metadata": {"name": "stray", "ownerReferences": refs}}),
    )
    .await
    .unwrap();
    eventually(10, "the stray dependent collected", || async {
        call(&s, "GET", "/api/v1/namespaces/elsewhere/configmaps/stray", Value::Null)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let d = call(
        &s,
        "DELETE",
        &format!("{CM}/owner"),
        json!({"propagationPolicy": "Foreground", "preconditions": {"uid": uid}}),
    )
    .await
    .unwrap();
    assert!(d["metadata"]["finalizers"].as_array().unwrap().contains(&json!("foregroundDeletion")));
    let dep = eventually(10, "the dependent deleting", || async {
        let v = call(&s, "GET", &format!("{CM}/dep"), Value::Null).await.ok()?;
        v["metadata"]["deletionTimestamp"].is_string().then_some(v)
    })
    .await;
    assert!(dep["metadata"]["finalizers"].as_array().unwrap().contains(&json!("example.com/hold")));
    tokio::time::sleep(Duration::from_millis(600)).await;
    call(&s, "GET", &format!("{CM}/owner"), Value::Null).await.expect("waits for its blocking dependent");
    patch(&s, &format!("{CM}/dep"), "application/merge-patch+json", r#"{"metadata":{"finalizers":null}}"#)
        .await
        .unwrap();
    eventually(10, "the owner gone", || async {
        call(&s, "GET", &format!("{CM}/owner"), Value::Null).await.is_err().then_some(())
    })
    .await;
    // Orphan: dependents stay, released.
    let o2 = call(&s, "POST", CM, json!({"metadata": {"name": "o2"}})).await.unwrap();
    let refs = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "o2", "uid": o2["metadata"]["uid"]}]);
    call(&s, "POST", CM, json!({"metadata": {"name": "kept", "ownerReferences": refs}})).await.unwrap();
    call(&s, "DELETE", &format!("{CM}/o2?propagationPolicy=Orphan"), Value::Null).await.unwrap();
    eventually(10, "o2 gone", || async {
        call(&s, "GET", &format!("{CM}/o2"), Value::Null).await.is_err().then_some(())
    })
    .await;
    let kept = call(&s, "GET", &format!("{CM}/kept"), Value::Null).await.unwrap();
    assert!(kept["metadata"].get("ownerReferences").is_none(), "{kept}");
}

#[tokio::test]
async fn tables_and_event_field_selectors() {
    let s = TestApiServer::start(0).await.unwrap();
    call(
        &s,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        serde_json::from_str(CRD).unwrap(),
    )
    .await
    .unwrap();
    let things = "/apis/example.com/v1/namespaces/default/things";
    call(&s, "POST", things, json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {"detail": "d"}})).await.unwrap();
    patch(
        &s,
        &format!("{things}/t/status"),
        "application/merge-patch+json",
        r#"{"status":{"keyCount":3,"conditions":[{"type":"Ready","status":"True"}]}}"#,
    )
    .await
    .unwrap();
    let admin = Client::admin(&s);
    let accept = (
        "Accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    );
    let table = admin.send("GET", things, &[accept], b"").await.unwrap().json();
    assert_eq!(table["kind"], "Table");
    let cols: Vec<&str> =
        table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(cols, ["Name", "Ready", "Keys", "Detail", "Age"]);
    assert_eq!(table["columnDefinitions"][3]["priority"], 1);
    let cells = &table["rows"][0]["cells"];
    assert_eq!(
        (&cells[0], &cells[1], &cells[2], &cells[3]),
        (&json!("t"), &json!("True"), &json!(3), &json!("d"))
    );
    assert!(cells[4].as_str().unwrap().ends_with('s'), "an age: {}", cells[4]);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let one = admin
        .send("GET", &format!("{CM}?fieldSelector=metadata.name%3Dnone"), &[accept], b"")
        .await
        .unwrap()
        .json();
    assert_eq!(one["rows"], json!([]));
    let secrets = admin.send("GET", "/api/v1/namespaces", &[accept], b"").await.unwrap().json();
    let cols: Vec<&str> = secrets["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Status", "Age"]);
    // Events about one object, as `kubectl describe` asks for them.
    let uid = call(&s, "GET", &format!("{things}/t"), Value::Null).await.unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    for (name, about) in [("e1", "t"), ("e2", "other")] {
        call(&s, "POST", "/api/v1/namespaces/default/events", json!({"metadata": {"name": name},
            "involvedObject": {"kind": "Thing", "name": about, "namespace": "default", "uid": if about == "t" { uid.as_str() } else { "x" }},
            "reason": "Tested", "message": "m", "type": "Normal"}))
        .await
        .unwrap();
    }
    let sel = format!(
        "involvedObject.name%3Dt,involvedObject.namespace%3Ddefault,involvedObject.kind%3DThing,involvedObject.uid%3D{uid}"
    );
    let evs = call(&s, "GET", &format!("/api/v1/namespaces/default/events?fieldSelector={sel}"), Value::Null)
        .await
        .unwrap();
    assert_eq!(names(&evs), ["e1"]);
    let err = call(&s, "GET", "/api/v1/namespaces/default/configmaps?fieldSelector=data.k%3Dv", Value::Null)
        .await
        .unwrap_err();
    assert!(err.starts_with("400") && err.contains("field label not supported: data.k"), "{err}");
}
