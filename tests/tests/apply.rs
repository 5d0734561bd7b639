//! Server-side apply and patches as kube-apiserver does them: managers are
//! (manager, operation, subresource); lists merge with the semantics the
//! schema declares (built-ins' and CRDs' `x-kubernetes-list-type`,
//! `-list-map-keys`, `-map-type`); a change of `managedFields` alone is a
//! change; strategic merge patch merges by the built-ins' keys and honours
//! its directives.

mod common;

use common::{Watch, call, patch};
use encstr_tests::TestApiServer;
use serde_json::{Value, json};

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn deployment(containers: Value) -> String {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": containers}}}})
    .to_string()
}

async fn apply(s: &TestApiServer, path: &str, manager: &str, body: &str) -> Result<Value, String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    patch(s, &format!("{path}{sep}fieldManager={manager}"), "application/apply-patch+yaml", body).await
}

fn managers(obj: &Value) -> Vec<(String, String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap().to_owned(),
                m["operation"].as_str().unwrap().to_owned(),
                m["subresource"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn container_names(d: &Value) -> Vec<String> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn built_in_lists_merge_by_their_keys_and_managers_are_triples() {
    let s = TestApiServer::start(0).await.unwrap();
    let d = format!("{DEPLOYMENTS}/d");
    apply(&s, &d, "app", &deployment(json!([{"name": "app", "image": "app:1"}]))).await.unwrap();
    // A second applier adds a container: merged by name, not replaced.
    let v = apply(&s, &d, "injector", &deployment(json!([{"name": "encstr", "image": "encstr:1"}])))
        .await
        .unwrap();
    assert_eq!(container_names(&v), ["app", "encstr"]);
    // Changing another manager's field conflicts; force takes it over.
    let err = apply(
        &s,
        &d,
        "injector",
        &deployment(json!([{"name": "app", "image": "app:2"}, {"name": "encstr", "image": "encstr:1"}])),
    )
    .await
    .unwrap_err();
    assert!(
        err.starts_with("409")
            && err.contains(r#"Apply failed with 1 conflict: conflict with \"app\" using apps/v1: .spec.template.spec.containers[name=\"app\"].image"#),
        "{err}"
    );
    // The applier that stops applying its container removes it (and only it).
    let v = apply(&s, &d, "injector", &deployment(json!([]))).await.unwrap();
    assert_eq!(container_names(&v), ["app"]);
    // An Update by the same name is a second owner; /status a third (the
    // injector still co-owns the selector and template labels it applied).
    let v = patch(
        &s,
        &format!("{d}?fieldManager=app"),
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"tier":"web"}}}"#,
    )
    .await
    .unwrap();
    let v2 = patch(
        &s,
        &format!("{d}/status?fieldManager=app"),
        "application/merge-patch+json",
        r#"{"status":{"replicas":1}}"#,
    )
    .await
    .unwrap();
    let mut m = managers(&v2);
    m.sort();
    assert_eq!(
        m,
        [
            ("app".into(), "Apply".into(), String::new()),
            ("app".into(), "Update".into(), String::new()),
            ("app".into(), "Update".into(), "status".into()),
            ("injector".into(), "Apply".into(), String::new()),
        ]
    );
    assert_eq!(managers(&v).len(), 3);
    // finalizers are a set; ownerReferences a map by uid; conditions by type.
    // (Owners that exist: the garbage collector deletes dependents of absent ones.)
    let mut uids = Vec::new();
    for o in ["o1", "o2"] {
        let v = call(&s, "POST", "/api/v1/namespaces/default/configmaps", json!({"metadata": {"name": o}}))
            .await
            .unwrap();
        uids.push(v["metadata"]["uid"].as_str().unwrap().to_owned());
    }
    let cm = "/api/v1/namespaces/default/configmaps/c";
    let obj = |meta: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}).to_string();
    apply(&s, cm, "a", &obj(json!({"name": "c", "finalizers": ["a.example.com/x"], "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o1", "uid": uids[0]}]}))).await.unwrap();
    let v = apply(&s, cm, "b", &obj(json!({"name": "c", "finalizers": ["b.example.com/y"], "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o2", "uid": uids[1]}]}))).await.unwrap();
    assert_eq!(v["metadata"]["finalizers"], json!(["a.example.com/x", "b.example.com/y"]));
    assert_eq!(v["metadata"]["ownerReferences"].as_array().unwrap().len(), 2);
    let v = apply(&s, &format!("{d}/status"), "ctl", &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "status": {"conditions": [{"type": "Available", "status": "True"}]}}).to_string()).await.unwrap();
    let v = apply(&s, &format!("{d}/status"), "other", &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "status": {"conditions": [{"type": "Progressing", "status": "True"}]}}).to_string())
        .await
        .map(|w| (v, w))
        .unwrap()
        .1;
    let types: Vec<&str> =
        v["status"]["conditions"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["Available", "Progressing"]);
}

const CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
 "metadata": {"name": "gadgets.example.com"},
 "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Gadget", "plural": "gadgets"},
  "versions": [{"name": "v1", "served": true, "storage": true,
   "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {
     "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
       "items": {"type": "object", "required": ["port", "protocol"], "properties": {"port": {"type": "integer"}, "protocol": {"type": "string"}, "name": {"type": "string"}}}},
     "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
     "args": {"type": "array", "items": {"type": "string"}},
     "selector": {"type": "object", "x-kubernetes-map-type": "atomic", "additionalProperties": {"type": "string"}},
     "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}}]}}"#;

#[tokio::test]
async fn crd_list_and_map_types_drive_the_merge() {
    let s = TestApiServer::start(0).await.unwrap();
    call(
        &s,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        serde_json::from_str(CRD).unwrap(),
    )
    .await
    .unwrap();
    let g = "/apis/example.com/v1/namespaces/default/gadgets/g";
    let body = |spec: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": spec})
            .to_string()
    };
    apply(&s, g, "a", &body(json!({"ports": [{"port": 80, "protocol": "TCP"}], "tags": ["x"], "args": ["--a"], "selector": {"k1": "v"}, "labels": {"l1": "v"}}))).await.unwrap();
    let v = apply(&s, g, "b", &body(json!({"ports": [{"port": 80, "protocol": "UDP"}], "tags": ["y"], "args": ["--b"], "selector": {"k2": "v"}, "labels": {"l2": "v"}})))
        .await
        .expect_err("atomic list and map owned by a");
    assert!(v.contains(".spec.args") && v.contains(".spec.selector"), "{v}");
    let v = apply(&s, &format!("{g}?force=true"), "b", &body(json!({"ports": [{"port": 80, "protocol": "UDP"}], "tags": ["y"], "args": ["--b"], "selector": {"k2": "v"}, "labels": {"l2": "v"}})))
        .await
        .unwrap();
    let spec = &v["spec"];
    assert_eq!(spec["ports"].as_array().unwrap().len(), 2, "map list keyed by port and protocol: {spec}");
    assert_eq!(spec["tags"], json!(["x", "y"]), "set");
    assert_eq!(spec["args"], json!(["--b"]), "atomic list replaced");
    assert_eq!(spec["selector"], json!({"k2": "v"}), "atomic map replaced");
    assert_eq!(spec["labels"], json!({"l1": "v", "l2": "v"}), "granular map merged");
}

#[tokio::test]
async fn a_change_of_managed_fields_alone_is_a_change() {
    let s = TestApiServer::start(0).await.unwrap();
    let cm = "/api/v1/namespaces/default/configmaps";
    let body =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"k": "v"}})
            .to_string();
    let a = apply(&s, &format!("{cm}/m"), "a", &body).await.unwrap();
    let rv = a["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    let mut w =
        Watch::open(&s, &format!("{cm}?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Dm"))
            .await;
    // The same apply again is a no-op: same resourceVersion, no event.
    let again = apply(&s, &format!("{cm}/m"), "a", &body).await.unwrap();
    assert_eq!(again["metadata"]["resourceVersion"], rv.as_str());
    // A second manager applying the same values only adds ownership.
    let b = apply(&s, &format!("{cm}/m"), "b", &body).await.unwrap();
    assert_eq!(b["data"], a["data"]);
    assert_ne!(b["metadata"]["resourceVersion"], rv.as_str());
    assert_eq!(managers(&b).len(), 2);
    let ev = w.next().await.unwrap();
    assert_eq!(
        (ev["type"].as_str(), ev["object"]["metadata"]["resourceVersion"].clone()),
        (Some("MODIFIED"), b["metadata"]["resourceVersion"].clone())
    );
    assert!(w.quiet_for(300).await, "the no-op made no event");
}

#[tokio::test]
async fn strategic_merge_patch_uses_patch_strategies_and_directives() {
    let s = TestApiServer::start(0).await.unwrap();
    let d = format!("{DEPLOYMENTS}/d");
    call(
        &s,
        "POST",
        DEPLOYMENTS,
        serde_json::from_str(&deployment(json!([
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}], "args": ["--x"]},
        {"name": "side", "image": "side:1"}])))
        .unwrap(),
    )
    .await
    .unwrap();
    let smp = |body: Value| {
        let s = &s;
        let d = d.clone();
        async move { patch(s, &d, "application/strategic-merge-patch+json", &body.to_string()).await.unwrap() }
    };
    // Containers merge by name; env by name; args (no strategy) replaced.
    let v = smp(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}], "args": ["--y"]}]}}}})).await;
    let app = &v["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container_names(&v), ["app", "side"]);
    assert_eq!(app["image"], "app:1");
    assert_eq!(app["env"], json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]));
    assert_eq!(app["args"], json!(["--y"]));
    // $patch: delete removes one item by key.
    let v =
        smp(json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}}))
            .await;
    assert_eq!(container_names(&v), ["app"]);
    // $setElementOrder orders the merged list.
    let v = smp(json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "new"}, {"name": "app"}],
        "containers": [{"name": "new", "image": "new:1"}]}}}}))
    .await;
    assert_eq!(container_names(&v), ["new", "app"]);
    // Labels through metadata: a plain merge, null deletes.
    call(
        &s,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "l", "labels": {"a": "1", "b": "2"}}}),
    )
    .await
    .unwrap();
    let v = patch(
        &s,
        "/api/v1/namespaces/default/configmaps/l",
        "application/strategic-merge-patch+json",
        r#"{"metadata":{"labels":{"a":null,"c":"3"}}}"#,
    )
    .await
    .unwrap();
    assert_eq!(v["metadata"]["labels"], json!({"b": "2", "c": "3"}));
    // Custom resources take no strategic merge patch (415, as on a cluster).
    call(
        &s,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        serde_json::from_str(CRD).unwrap(),
    )
    .await
    .unwrap();
    call(
        &s,
        "POST",
        "/apis/example.com/v1/namespaces/default/gadgets",
        json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {}}),
    )
    .await
    .unwrap();
    let err = patch(
        &s,
        "/apis/example.com/v1/namespaces/default/gadgets/g",
        "application/strategic-merge-patch+json",
        "{}",
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("415"), "{err}");
}
