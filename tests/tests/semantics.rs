//! API conventions of the test server, checked over HTTPS as the admin:
//! versions, conflicts, status split, generation, finalizers, garbage
//! collection, selectors on list and watch, watch resumption, bookmarks and
//! faults.

use encstr_tests::TestApiServer;
use encstr_tests::apiserver::{Fault, Matcher};
mod common;

use common::{Watch, call, patch};
use encstr_tests::harness::{eventually, request};
use serde_json::{Value, json};

const CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
 "metadata":{"name":"widgets.example.com"},
 "spec":{"group":"example.com","scope":"Namespaced",
  "names":{"kind":"Widget","plural":"widgets","singular":"widget","shortNames":["wd"]},
  "versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}},
   "schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}"#;

#[tokio::test]
async fn crud_conflicts_and_secrets() {
    let s = TestApiServer::start(0).await.unwrap();
    call(&s, "POST", "/api/v1/namespaces", json!({"metadata": {"name": "a"}})).await.unwrap();
    let created = call(
        &s,
        "POST",
        "/api/v1/namespaces/a/secrets",
        json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
    )
    .await
    .unwrap();
    assert_eq!(created["data"]["k"], "dg==");
    assert!(created["metadata"]["uid"].is_string() && created["metadata"]["creationTimestamp"].is_string());
    let err = call(&s, "POST", "/api/v1/namespaces/a/secrets", json!({"metadata": {"name": "s"}}))
        .await
        .unwrap_err();
    assert!(err.starts_with("409") && err.contains("AlreadyExists"), "{err}");
    let err = call(&s, "GET", "/api/v1/namespaces/a/secrets/nope", Value::Null).await.unwrap_err();
    assert!(
        err.starts_with("404") && err.contains("\"kind\":\"Status\"") && err.contains("NotFound"),
        "{err}"
    );
    // Optimistic concurrency.
    let mut stale = created.clone();
    stale["data"]["k"] = json!("eA==");
    call(&s, "PUT", "/api/v1/namespaces/a/secrets/s", stale.clone()).await.unwrap();
    let err = call(&s, "PUT", "/api/v1/namespaces/a/secrets/s", stale).await.unwrap_err();
    assert!(err.starts_with("409") && err.contains("Conflict"), "{err}");
    // Monotonic resourceVersions.
    let got = call(&s, "GET", "/api/v1/namespaces/a/secrets/s", Value::Null).await.unwrap();
    let rv = |v: &Value| v["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap();
    assert!(rv(&got) > rv(&created));
    // JSON patch and merge patch.
    patch(
        &s,
        "/api/v1/namespaces/a/secrets/s",
        "application/json-patch+json",
        r#"[{"op":"add","path":"/metadata/labels","value":{"x":"1"}}]"#,
    )
    .await
    .unwrap();
    let v = patch(
        &s,
        "/api/v1/namespaces/a/secrets/s",
        "application/strategic-merge-patch+json",
        r#"{"metadata":{"labels":{"y":"2"}}}"#,
    )
    .await
    .unwrap();
    assert_eq!(v["metadata"]["labels"], json!({"x": "1", "y": "2"}));
    // Label and field selectors.
    call(
        &s,
        "POST",
        "/api/v1/namespaces/a/secrets",
        json!({"metadata": {"name": "t", "labels": {"x": "2"}}}),
    )
    .await
    .unwrap();
    let names = |l: &Value| {
        l["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let l = call(&s, "GET", "/api/v1/namespaces/a/secrets?labelSelector=x%20in%20(1%2C3)", Value::Null)
        .await
        .unwrap();
    assert_eq!(names(&l), vec!["s"]);
    let l = call(&s, "GET", "/api/v1/secrets?labelSelector=x%2C!y", Value::Null).await.unwrap();
    assert_eq!(names(&l), vec!["t"]);
    let l = call(
        &s,
        "GET",
        "/api/v1/secrets?fieldSelector=metadata.name%3Dt,metadata.namespace%3Da",
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(names(&l), vec!["t"]);
    // Pagination.
    let l = call(&s, "GET", "/api/v1/namespaces/a/secrets?limit=1", Value::Null).await.unwrap();
    assert_eq!(names(&l).len(), 1);
    let cont = l["metadata"]["continue"].as_str().unwrap().to_owned();
    let l = call(&s, "GET", &format!("/api/v1/namespaces/a/secrets?limit=1&continue={cont}"), Value::Null)
        .await
        .unwrap();
    assert_eq!(names(&l), vec!["t"]);
    // Deleting the namespace deletes its objects, then the namespace.
    let ns = call(&s, "DELETE", "/api/v1/namespaces/a", Value::Null).await.unwrap();
    assert_eq!(ns["status"]["phase"], "Terminating");
    eventually(10, "namespace a gone", || async {
        call(&s, "GET", "/api/v1/namespaces/a", Value::Null).await.is_err().then_some(())
    })
    .await;
    assert!(call(&s, "GET", "/api/v1/namespaces/a/secrets/t", Value::Null).await.is_err());
}

#[tokio::test]
async fn custom_resources_status_split_generation_and_apply() {
    let s = TestApiServer::start(0).await.unwrap();
    call(
        &s,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        serde_json::from_str(CRD).unwrap(),
    )
    .await
    .unwrap();
    let disc = call(&s, "GET", "/apis/example.com/v1", Value::Null).await.unwrap();
    assert_eq!(disc["resources"][0]["name"], "widgets");
    assert_eq!(disc["resources"][0]["shortNames"], json!(["wd"]));
    assert_eq!(disc["resources"][1]["name"], "widgets/status");
    let groups = call(&s, "GET", "/apis", Value::Null).await.unwrap();
    assert!(groups["groups"].as_array().unwrap().iter().any(|g| g["name"] == "example.com"));

    let base = "/apis/example.com/v1/namespaces/default/widgets";
    let w = call(&s, "POST", base, json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}, "status": {"ignored": true}}))
        .await
        .unwrap();
    assert_eq!(w["metadata"]["generation"], 1);
    assert!(w.get("status").is_none(), "status is ignored on create");
    // Status only through /status; generation only for spec changes.
    let w = patch(
        &s,
        &format!("{base}/w/status"),
        "application/merge-patch+json",
        r#"{"status":{"ready":true},"spec":{"size":9}}"#,
    )
    .await
    .unwrap();
    assert_eq!(
        (w["status"]["ready"].clone(), w["spec"]["size"].clone(), w["metadata"]["generation"].clone()),
        (json!(true), json!(1), json!(1))
    );
    let w = patch(
        &s,
        &format!("{base}/w"),
        "application/merge-patch+json",
        r#"{"status":{"ready":false},"metadata":{"labels":{"a":"b"}}}"#,
    )
    .await
    .unwrap();
    assert_eq!((w["status"]["ready"].clone(), w["metadata"]["generation"].clone()), (json!(true), json!(1)));
    let w = patch(&s, &format!("{base}/w"), "application/merge-patch+json", r#"{"spec":{"size":2}}"#)
        .await
        .unwrap();
    assert_eq!(w["metadata"]["generation"], 2);
    // Server-side apply: creates, and removes fields the manager stops applying.
    let apply = |body: &str, q: &str| {
        let path = format!("{base}/x?fieldManager=op{q}");
        let body = body.to_owned();
        let s = &s;
        async move { request(s, "PATCH", &path, "application/apply-patch+yaml", &body).await }
    };
    let (code, x) = apply(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: x\nspec:\n  size: 1\n  color: red\n",
        "",
    )
    .await
    .unwrap();
    assert_eq!((code, x["spec"].clone()), (201, json!({"size": 1, "color": "red"})));
    let (code, x) = apply(
        r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"x"},"spec":{"size":1}}"#,
        "",
    )
    .await
    .unwrap();
    assert_eq!((code, x["spec"].clone()), (200, json!({"size": 1})));
    let err = request(
        &s,
        "PATCH",
        &format!("{base}/x?fieldManager=other"),
        "application/apply-patch+yaml",
        r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"x"},"spec":{"size":5}}"#,
    )
    .await
    .unwrap_err();
    assert!(
        err.starts_with("409")
            && err.contains(
                r#"Apply failed with 1 conflict: conflict with \"op\" using example.com/v1: .spec.size"#
            ),
        "{err}"
    );
    let (_, x) = request(
        &s,
        "PATCH",
        &format!("{base}/x?fieldManager=other&force=true"),
        "application/apply-patch+yaml",
        r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"x"},"spec":{"size":5}}"#,
    )
    .await
    .unwrap();
    assert_eq!(x["spec"]["size"], 5);
    let err =
        request(&s, "PATCH", &format!("{base}/x"), "application/apply-patch+yaml", "{}").await.unwrap_err();
    assert!(
        err.starts_with("422") && err.contains(r#"PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"#),
        "apply needs a fieldManager: {err}"
    );
    // Deleting the CRD removes its resources, then its discovery.
    call(
        &s,
        "DELETE",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
        Value::Null,
    )
    .await
    .unwrap();
    eventually(10, "the CRD's group gone", || async {
        call(&s, "GET", "/apis/example.com/v1", Value::Null).await.is_err().then_some(())
    })
    .await;
}

#[tokio::test]
async fn finalizers_deletion_timestamp_and_owner_references() {
    let s = TestApiServer::start(0).await.unwrap();
    let owner = call(
        &s,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "owner", "finalizers": ["example.com/cleanup"]}}),
    )
    .await
    .unwrap();
    let uid = owner["metadata"]["uid"].clone();
    call(&s, "POST", "/api/v1/namespaces/default/secrets", json!({"metadata": {"name": "dep", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}}))
        .await
        .unwrap();
    let d = call(&s, "DELETE", "/api/v1/namespaces/default/configmaps/owner", Value::Null).await.unwrap();
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    assert!(
        call(&s, "GET", "/api/v1/namespaces/default/configmaps/owner", Value::Null).await.is_ok(),
        "held by its finalizer"
    );
    patch(
        &s,
        "/api/v1/namespaces/default/configmaps/owner",
        "application/merge-patch+json",
        r#"{"metadata":{"finalizers":[]}}"#,
    )
    .await
    .unwrap();
    assert!(call(&s, "GET", "/api/v1/namespaces/default/configmaps/owner", Value::Null).await.is_err());
    eventually(10, "the dependent collected", || async {
        call(&s, "GET", "/api/v1/namespaces/default/secrets/dep", Value::Null).await.is_err().then_some(())
    })
    .await;
}

#[tokio::test]
async fn watches_resume_filter_bookmark_and_expire() {
    let s = TestApiServer::start(0).await.unwrap();
    s.set_bookmark_interval(std::time::Duration::from_millis(200));
    let cm = "/api/v1/namespaces/default/configmaps";
    let a = call(&s, "POST", cm, json!({"metadata": {"name": "a", "labels": {"app": "x"}}})).await.unwrap();
    let rv = a["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    // Resume after `a`: sees only later changes, filtered by label (as ADDED/DELETED when membership changes).
    let mut w = Watch::open(
        &s,
        &format!("{cm}?watch=true&resourceVersion={rv}&labelSelector=app%3Dx&allowWatchBookmarks=true"),
    )
    .await;
    call(&s, "POST", cm, json!({"metadata": {"name": "b", "labels": {"app": "y"}}})).await.unwrap();
    patch(&s, &format!("{cm}/b"), "application/merge-patch+json", r#"{"metadata":{"labels":{"app":"x"}}}"#)
        .await
        .unwrap();
    let ev = w.next().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("b")));
    patch(&s, &format!("{cm}/a"), "application/merge-patch+json", r#"{"metadata":{"labels":{"app":"z"}}}"#)
        .await
        .unwrap();
    let ev = w.next().await.unwrap();
    assert_eq!(
        (ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()),
        (Some("DELETED"), Some("a"))
    );
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "BOOKMARK");
    assert!(ev["object"]["metadata"]["resourceVersion"].is_string());
    // Closing watches ends the stream.
    s.close_watches();
    assert!(w.next().await.is_none());
    // After compaction an old resourceVersion is gone (410).
    s.compact();
    let mut w = Watch::open(&s, &format!("{cm}?watch=true&resourceVersion={rv}")).await;
    let ev = w.next().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["code"].as_u64()), (Some("ERROR"), Some(410)));
    // A watch without resourceVersion starts with the current state; sendInitialEvents ends with a bookmark.
    let mut w = Watch::open(&s, &format!("{cm}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&labelSelector=app")).await;
    let mut names = Vec::new();
    loop {
        let ev = w.next().await.unwrap();
        if ev["type"] == "BOOKMARK" {
            assert_eq!(ev["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
            break;
        }
        names.push(ev["object"]["metadata"]["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(names, vec!["a", "b"]);
}

#[tokio::test]
async fn faults_counters_and_delays() {
    let s = TestApiServer::start(0).await.unwrap();
    let cm = "/api/v1/namespaces/default/configmaps";
    s.fail(Fault::new(
        Matcher { verb: Some("create".into()), resource: Some("configmaps".into()), ..Matcher::default() },
        2,
        500,
    ));
    call(&s, "POST", cm, json!({"metadata": {"name": "a"}})).await.unwrap();
    let err = call(&s, "POST", cm, json!({"metadata": {"name": "b"}})).await.unwrap_err();
    assert!(err.starts_with("500") && err.contains("injected fault"), "{err}");
    call(&s, "POST", cm, json!({"metadata": {"name": "b"}})).await.unwrap();
    // Through the HTTP endpoint too.
    request(
        &s,
        "POST",
        "/__test/faults",
        "application/json",
        r#"{"verb":"get","resource":"configmaps","name":"a","status":409}"#,
    )
    .await
    .unwrap();
    assert!(call(&s, "GET", &format!("{cm}/a"), Value::Null).await.unwrap_err().starts_with("409"));
    assert!(call(&s, "GET", &format!("{cm}/a"), Value::Null).await.is_ok());
    let counts = s.counts();
    assert_eq!(counts[&("create".to_owned(), "configmaps".to_owned())], 3);
    assert_eq!(counts[&("get".to_owned(), "configmaps".to_owned())], 2);
    let (_, reqs) = request(&s, "GET", "/__test/requests", "application/json", "").await.unwrap();
    assert!(reqs["counts"].as_array().unwrap().iter().any(|c| c["verb"] == "create" && c["count"] == 3));
    s.delay(encstr_tests::apiserver::Delay {
        matcher: Matcher { verb: Some("list".into()), ..Matcher::default() },
        ms: 300,
    });
    let t = std::time::Instant::now();
    call(&s, "GET", cm, Value::Null).await.unwrap();
    assert!(t.elapsed() >= std::time::Duration::from_millis(300));
    s.clear_faults();
    let (_, state) = request(&s, "GET", "/__test/state", "application/json", "").await.unwrap();
    assert!(state.as_array().unwrap().iter().any(|o| o["metadata"]["name"] == "b"));
}
