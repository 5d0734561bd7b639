//! Authentication and RBAC as kube-apiserver does them: anonymous requests,
//! bearer tokens (static and ServiceAccount tokens from TokenRequest), the
//! default cluster roles and their aggregation, Roles and bindings with
//! resource names and subresources, escalation and bind checks, access
//! reviews, and the real 403 and 401 messages.

mod common;

use common::call;
use encstr_tests::TestApiServer;
use encstr_tests::harness::Client;
use serde_json::{Value, json};

/// A JSON request as `c`; `Err("CODE: body")` on errors.
async fn req(c: &Client, method: &str, path: &str, body: Value) -> Result<Value, String> {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    c.request(method, path, "application/json", &body).await.map(|(_, v)| v)
}

fn message(err: &str) -> String {
    let (_, body) = err.split_once(": ").unwrap();
    serde_json::from_str::<Value>(body).unwrap()["message"].as_str().unwrap().to_owned()
}

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";

async fn namespace(s: &TestApiServer, ns: &str) {
    call(s, "POST", "/api/v1/namespaces", json!({"metadata": {"name": ns}})).await.unwrap();
}

#[tokio::test]
async fn anonymous_and_unknown_tokens() {
    let s = TestApiServer::start(0).await.unwrap();
    let anon = Client::new(&s, None);
    // What a new cluster shows everyone.
    let v = req(&anon, "GET", "/version", Value::Null).await.unwrap();
    assert_eq!(v["gitVersion"], "v1.35.0");
    let err = req(&anon, "GET", "/api", Value::Null).await.unwrap_err();
    assert!(err.starts_with("403"));
    assert_eq!(message(&err), r#"forbidden: User "system:anonymous" cannot get path "/api""#);
    let err = req(&anon, "GET", "/api/v1/namespaces/default/secrets", Value::Null).await.unwrap_err();
    assert_eq!(
        message(&err),
        r#"secrets is forbidden: User "system:anonymous" cannot list resource "secrets" in API group "" in the namespace "default""#
    );
    let r = Client::new(&s, Some("nope")).send("GET", "/api", &[], b"").await.unwrap();
    assert_eq!((r.status, r.json()["reason"].as_str()), (401, Some("Unauthorized")));
    // Authenticated users may discover and review themselves, nothing more.
    s.add_user("t-bob", "bob", &["devs"]);
    let bob = Client::new(&s, Some("t-bob"));
    req(&bob, "GET", "/apis", Value::Null).await.unwrap();
    let me = req(
        &bob,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
    )
    .await
    .unwrap();
    assert_eq!(
        me["status"]["userInfo"],
        json!({"username": "bob", "groups": ["devs", "system:authenticated"]})
    );
    let err = req(&bob, "GET", "/api/v1/namespaces", Value::Null).await.unwrap_err();
    assert_eq!(
        message(&err),
        r#"namespaces is forbidden: User "bob" cannot list resource "namespaces" in API group "" at the cluster scope"#
    );
    let err = req(&bob, "GET", "/api/v1/namespaces/default", Value::Null).await.unwrap_err();
    assert_eq!(
        message(&err),
        r#"namespaces "default" is forbidden: User "bob" cannot get resource "namespaces" in API group "" in the namespace "default""#
    );
}

#[tokio::test]
async fn service_account_tokens_roles_and_bindings() {
    let s = TestApiServer::start(0).await.unwrap();
    namespace(&s, "team").await;
    namespace(&s, "other").await;
    call(&s, "POST", "/api/v1/namespaces/team/serviceaccounts", json!({"metadata": {"name": "op"}}))
        .await
        .unwrap();
    let err = call(
        &s,
        "POST",
        "/api/v1/namespaces/team/serviceaccounts/op/token",
        json!({"spec": {"expirationSeconds": 60}}),
    )
    .await
    .unwrap_err();
    assert!(err.contains("may not specify a duration less than 10 minutes"), "{err}");
    let tr = call(
        &s,
        "POST",
        "/api/v1/namespaces/team/serviceaccounts/op/token",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
    )
    .await
    .unwrap();
    let token = tr["status"]["token"].as_str().unwrap().to_owned();
    assert!(tr["status"]["expirationTimestamp"].is_string());
    let op = Client::new(&s, Some(&token));
    let me = req(&op, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", json!({})).await.unwrap();
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!(["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"])
    );
    let err = req(&op, "GET", "/api/v1/namespaces/team/secrets", Value::Null).await.unwrap_err();
    assert_eq!(
        message(&err),
        r#"secrets is forbidden: User "system:serviceaccount:team:op" cannot list resource "secrets" in API group "" in the namespace "team""#
    );
    // A Role: resource names, subresources.
    call(&s, "POST", &format!("{RBAC}/namespaces/team/roles"), json!({"metadata": {"name": "r"}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["only"], "verbs": ["get", "update"]},
        {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["patch"]}]}))
    .await
    .unwrap();
    call(
        &s,
        "POST",
        &format!("{RBAC}/namespaces/team/rolebindings"),
        json!({"metadata": {"name": "r"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "team"}]}),
    )
    .await
    .unwrap();
    req(&op, "GET", "/api/v1/namespaces/team/secrets", Value::Null).await.unwrap();
    let err = req(&op, "GET", "/api/v1/namespaces/other/secrets", Value::Null).await.unwrap_err();
    assert!(message(&err).ends_with(r#"in the namespace "other""#), "{err}");
    let err = req(&op, "GET", "/api/v1/secrets", Value::Null).await.unwrap_err();
    assert!(message(&err).ends_with("at the cluster scope"), "{err}");
    for name in ["only", "another"] {
        call(&s, "POST", "/api/v1/namespaces/team/configmaps", json!({"metadata": {"name": name}}))
            .await
            .unwrap();
    }
    req(&op, "GET", "/api/v1/namespaces/team/configmaps/only", Value::Null).await.unwrap();
    let err = req(&op, "GET", "/api/v1/namespaces/team/configmaps/another", Value::Null).await.unwrap_err();
    assert_eq!(
        message(&err),
        r#"configmaps "another" is forbidden: User "system:serviceaccount:team:op" cannot get resource "configmaps" in API group "" in the namespace "team""#
    );
    assert!(
        req(&op, "GET", "/api/v1/namespaces/team/configmaps", Value::Null)
            .await
            .unwrap_err()
            .starts_with("403"),
        "names do not grant lists"
    );
    call(&s, "POST", "/apis/apps/v1/namespaces/team/deployments", json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
        .await
        .unwrap();
    op.request(
        "PATCH",
        "/apis/apps/v1/namespaces/team/deployments/d/status",
        "application/merge-patch+json",
        r#"{"status":{"replicas":1}}"#,
    )
    .await
    .unwrap();
    let err = op
        .request(
            "PATCH",
            "/apis/apps/v1/namespaces/team/deployments/d",
            "application/merge-patch+json",
            r#"{"metadata":{"labels":{"x":"y"}}}"#,
        )
        .await
        .unwrap_err();
    assert!(message(&err).contains(r#"cannot patch resource "deployments" in API group "apps""#), "{err}");
    // A token dies with its account.
    call(&s, "DELETE", "/api/v1/namespaces/team/serviceaccounts/op", Value::Null).await.unwrap();
    let r = op.send("GET", "/api/v1/namespaces/team/secrets", &[], b"").await.unwrap();
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn aggregation_escalation_bind_and_access_reviews() {
    let s = TestApiServer::start(0).await.unwrap();
    namespace(&s, "team").await;
    s.add_user("t-alice", "alice", &[]);
    let alice = Client::new(&s, Some("t-alice"));
    // alice is the namespace's admin (the default `admin` ClusterRole).
    call(
        &s,
        "POST",
        &format!("{RBAC}/namespaces/team/rolebindings"),
        json!({"metadata": {"name": "alice-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]}),
    )
    .await
    .unwrap();
    req(&alice, "POST", "/api/v1/namespaces/team/secrets", json!({"metadata": {"name": "s"}})).await.unwrap();
    // A chart's aggregated role extends `edit` (and so `admin`).
    let err = req(&alice, "GET", "/apis/encstr.io/v1alpha1/namespaces/team/secretkeyrings", Value::Null)
        .await
        .unwrap_err();
    assert!(err.starts_with("403"), "{err}");
    call(&s, "POST", &format!("{RBAC}/clusterroles"), json!({"metadata": {"name": "encstr-edit", "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
        "rules": [{"apiGroups": ["encstr.io"], "resources": ["secretkeyrings"], "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]}))
    .await
    .unwrap();
    let edit = call(&s, "GET", &format!("{RBAC}/clusterroles/edit"), Value::Null).await.unwrap();
    assert!(
        edit["rules"].as_array().unwrap().iter().any(|r| r["apiGroups"] == json!(["encstr.io"])),
        "aggregated into edit"
    );
    // (The resource does not exist: allowed, then 404.)
    let err = req(&alice, "GET", "/apis/encstr.io/v1alpha1/namespaces/team/secretkeyrings", Value::Null)
        .await
        .unwrap_err();
    assert!(err.starts_with("404"), "{err}");
    // Escalation: alice may not grant what she does not hold.
    let err = req(
        &alice,
        "POST",
        &format!("{RBAC}/namespaces/team/roles"),
        json!({"metadata": {"name": "nodes"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}),
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("403"), "{err}");
    assert_eq!(
        message(&err),
        "roles.rbac.authorization.k8s.io \"nodes\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"
    );
    req(
        &alice,
        "POST",
        &format!("{RBAC}/namespaces/team/roles"),
        json!({"metadata": {"name": "readers"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
    )
    .await
    .expect("she holds it");
    // Nor bind a role above her own, unless she may `bind` it.
    let bind = json!({"metadata": {"name": "root"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "mallory"}]});
    let err =
        req(&alice, "POST", &format!("{RBAC}/namespaces/team/rolebindings"), bind.clone()).await.unwrap_err();
    assert!(message(&err).contains("is attempting to grant RBAC permissions not currently held"), "{err}");
    call(&s, "POST", &format!("{RBAC}/clusterroles"), json!({"metadata": {"name": "bind-cluster-admin"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["cluster-admin"], "verbs": ["bind"]}]}))
    .await
    .unwrap();
    call(&s, "POST", &format!("{RBAC}/namespaces/team/rolebindings"), json!({"metadata": {"name": "alice-bind"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bind-cluster-admin"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]}))
    .await
    .unwrap();
    req(&alice, "POST", &format!("{RBAC}/namespaces/team/rolebindings"), bind).await.expect("bind allows it");
    // Access reviews: self, another subject, and non-resource URLs.
    let ssar = |verb: &str, resource: &str, ns: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": ns}}})
    };
    let r = req(
        &alice,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        ssar("delete", "secrets", "team"),
    )
    .await
    .unwrap();
    assert_eq!(r["status"]["allowed"], true);
    let r = req(
        &alice,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        ssar("delete", "secrets", "default"),
    )
    .await
    .unwrap();
    assert_eq!(r["status"]["allowed"], false);
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "mallory", "resourceAttributes": {"verb": "delete", "resource": "nodes"}}});
    let err = req(&alice, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", sar.clone())
        .await
        .unwrap_err();
    assert!(err.starts_with("403"), "reviewing others needs permission: {err}");
    let r = call(&s, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", sar).await.unwrap();
    assert_eq!(r["status"]["allowed"], false, "mallory's cluster-admin is bound in team only");
    let r = req(
        &alice,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        json!({"spec": {"nonResourceAttributes": {"verb": "get", "path": "/version"}}}),
    )
    .await
    .unwrap();
    assert_eq!(r["status"]["allowed"], true);
    let rules = req(
        &alice,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        json!({"spec": {"namespace": "team"}}),
    )
    .await
    .unwrap();
    assert!(
        rules["status"]["resourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"] == json!(["secretkeyrings"]))
    );
}
