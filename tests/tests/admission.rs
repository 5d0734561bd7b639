//! Admission webhooks as kube-apiserver calls them: AdmissionReview v1 over
//! HTTPS verified against `caBundle`, rules and selectors, JSONPatch,
//! denials and warnings, failure policies, timeouts, re-invocation and
//! validating webhooks. The webhook here is a small HTTPS server of the
//! test's, answering as each test tells it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use encstr_tests::TestApiServer;
use encstr_tests::harness::Client;
use encstr_tests::webhook::{Answer, TestWebhook, allow, patch};
use serde_json::{Value, json};

mod common;
use common::call;

/// A webhook server with a certificate for `dns` (tests/src/webhook.rs).
fn hook(dns: &str, delay: Duration, answer: Answer) -> TestWebhook {
    TestWebhook::start(dns, delay, answer)
}

/// Reach Service `hooks/<svc>` at the webhook.
fn route(s: &TestApiServer, svc: &str, h: &TestWebhook) {
    s.set_service_endpoint(&format!("hooks/{svc}=127.0.0.1:{}", h.addr.port())).unwrap();
}

fn config(kind: &str, name: &str, webhooks: Value) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name}, "webhooks": webhooks})
}

/// Create MutatingWebhookConfiguration `name`; the stored object.
async fn mutating(s: &TestApiServer, name: &str, webhooks: Value) -> Value {
    call(s, "POST", MWC, config("MutatingWebhookConfiguration", name, webhooks)).await.unwrap()
}

/// Create ValidatingWebhookConfiguration `name`; the stored object.
async fn validating(s: &TestApiServer, name: &str, webhooks: Value) -> Value {
    call(s, "POST", VWC, config("ValidatingWebhookConfiguration", name, webhooks)).await.unwrap()
}

/// A webhook entry for Pod creates, reached through Service `ns/svc`.
fn pod_hook(name: &str, ca_pem: &str, svc: &str, extra: Value) -> Value {
    let mut w = json!({
        "name": name, "sideEffects": "None", "admissionReviewVersions": ["v1"],
        "clientConfig": {"service": {"namespace": "hooks", "name": svc, "path": "/mutate"}, "caBundle": STANDARD.encode(ca_pem)},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        "objectSelector": {"matchLabels": {"inject": "yes"}},
    });
    for (k, v) in extra.as_object().unwrap() {
        w[k] = v.clone();
    }
    w
}

fn pod(name: &str, labelled: bool) -> Value {
    let labels = if labelled { json!({"inject": "yes"}) } else { json!({}) };
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
           "spec": {"containers": [{"name": "app", "image": "app:1"}]}})
}

async fn server() -> TestApiServer {
    let s = TestApiServer::start(0).await.unwrap();
    for ns in ["apps", "hooks"] {
        call(&s, "POST", "/api/v1/namespaces", json!({"metadata": {"name": ns}})).await.unwrap();
    }
    s
}

const MWC: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
const VWC: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";
const PODS: &str = "/api/v1/namespaces/apps/pods";

#[tokio::test]
async fn a_mutating_webhook_is_sent_a_review_and_its_patch_is_stored() {
    let s = server().await;
    let h = hook(
        "inject.hooks.svc",
        Duration::ZERO,
        Arc::new(|_| {
            let mut p =
                patch(json!([{"op": "add", "path": "/metadata/annotations", "value": {"injected": "1"}}]));
            p["warnings"] = json!(["pod was injected"]);
            p
        }),
    );
    route(&s, "inject", &h);
    let created =
        mutating(&s, "inject", json!([pod_hook("inject.example.com", &h.ca_pem, "inject", json!({}))])).await;
    // kube-apiserver's defaults.
    let w = &created["webhooks"][0];
    assert_eq!(
        (&w["failurePolicy"], &w["matchPolicy"], &w["timeoutSeconds"], &w["reinvocationPolicy"]),
        (&json!("Fail"), &json!("Equivalent"), &json!(10), &json!("Never"))
    );
    assert_eq!((&w["clientConfig"]["service"]["port"], &w["rules"][0]["scope"]), (&json!(443), &json!("*")));

    let r = Client::admin(&s)
        .send("POST", PODS, &[("Content-Type", "application/json")], pod("p", true).to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header_values("warning"), ["299 - \"pod was injected\""]);
    let stored = call(&s, "GET", &format!("{PODS}/p"), Value::Null).await.unwrap();
    assert_eq!(stored["metadata"]["annotations"]["injected"], "1");

    let reviews = h.reviews();
    assert_eq!(reviews.len(), 1);
    let (review, req) = (&reviews[0], &reviews[0]["request"]);
    assert_eq!(
        (&review["apiVersion"], &review["kind"]),
        (&json!("admission.k8s.io/v1"), &json!("AdmissionReview"))
    );
    assert!(req["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert_eq!(req["kind"], json!({"group": "", "version": "v1", "kind": "Pod"}));
    assert_eq!(req["resource"], json!({"group": "", "version": "v1", "resource": "pods"}));
    assert_eq!(
        (&req["namespace"], &req["name"], &req["operation"]),
        (&json!("apps"), &json!("p"), &json!("CREATE"))
    );
    assert_eq!(req["userInfo"]["username"], "kubernetes-admin");
    assert!(req["userInfo"]["groups"].as_array().unwrap().contains(&json!("system:masters")));
    assert_eq!((&req["dryRun"], &req["oldObject"]), (&json!(false), &Value::Null));
    assert_eq!(req["object"]["spec"]["containers"][0]["name"], "app");
    assert_eq!(req["object"]["kind"], "Pod");

    // The objectSelector keeps unlabelled pods away from the webhook.
    call(&s, "POST", PODS, pod("plain", false)).await.unwrap();
    assert_eq!(h.reviews().len(), 1);
}

#[tokio::test]
async fn denials_are_returned_as_kube_apiserver_returns_them() {
    let s = server().await;
    let h = hook(
        "deny.hooks.svc",
        Duration::ZERO,
        Arc::new(
            |_| json!({"allowed": false, "status": {"code": 403, "reason": "Forbidden", "message": "annotation x is missing"}}),
        ),
    );
    route(&s, "deny", &h);
    mutating(&s, "deny", json!([pod_hook("deny.example.com", &h.ca_pem, "deny", json!({}))])).await;
    let err = call(&s, "POST", PODS, pod("p", true)).await.unwrap_err();
    assert!(err.starts_with("403"), "{err}");
    let status: Value = serde_json::from_str(err.split_once(": ").unwrap().1).unwrap();
    assert_eq!(
        status["message"],
        "admission webhook \"deny.example.com\" denied the request: annotation x is missing"
    );
    assert_eq!((&status["reason"], &status["code"]), (&json!("Forbidden"), &json!(403)));
    assert!(call(&s, "GET", &format!("{PODS}/p"), Value::Null).await.is_err(), "a denied pod is not stored");
    // A namespaceSelector that leaves the namespace out.
    let mut w = pod_hook("deny.example.com", &h.ca_pem, "deny", json!({}));
    w["namespaceSelector"] = json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["apps"]}]});
    let mut current = call(&s, "GET", &format!("{MWC}/deny"), Value::Null).await.unwrap();
    current["webhooks"] = json!([w]);
    call(&s, "PUT", &format!("{MWC}/deny"), current).await.unwrap();
    call(&s, "POST", PODS, pod("p", true)).await.unwrap();
}

#[tokio::test]
async fn failure_policy_decides_when_the_webhook_cannot_be_called() {
    let s = server().await;
    let h = hook("down.hooks.svc", Duration::ZERO, Arc::new(|_| allow()));
    // No endpoint for the Service: nobody answers.
    let fail = pod_hook("fail.example.com", &h.ca_pem, "down", json!({}));
    mutating(&s, "fail", json!([fail])).await;
    let err = call(&s, "POST", PODS, pod("p", true)).await.unwrap_err();
    assert!(err.starts_with("500"), "{err}");
    assert!(
        err.contains(r#"Internal error occurred: failed calling webhook \"fail.example.com\": failed to call webhook: Post \"https://down.hooks.svc:443/mutate?timeout=10s\""#),
        "{err}"
    );
    call(&s, "POST", PODS, pod("unlabelled", false)).await.expect("unlabelled pods are unaffected");
    // Ignore lets the request through unchanged.
    let mut current = call(&s, "GET", &format!("{MWC}/fail"), Value::Null).await.unwrap();
    current["webhooks"][0]["failurePolicy"] = json!("Ignore");
    call(&s, "PUT", &format!("{MWC}/fail"), current).await.unwrap();
    call(&s, "POST", PODS, pod("p", true)).await.unwrap();
    assert!(h.reviews().is_empty());
}

#[tokio::test]
async fn the_server_certificate_is_verified_against_the_ca_bundle() {
    let s = server().await;
    let h = hook("inject.hooks.svc", Duration::ZERO, Arc::new(|_| allow()));
    let other = hook("inject.hooks.svc", Duration::ZERO, Arc::new(|_| allow()));
    route(&s, "inject", &h);
    // Another CA's bundle: the call is refused before any request is sent.
    let w = pod_hook("inject.example.com", &other.ca_pem, "inject", json!({}));
    mutating(&s, "inject", json!([w])).await;
    let err = call(&s, "POST", PODS, pod("p", true)).await.unwrap_err();
    assert!(err.starts_with("500") && err.contains("tls: failed to verify certificate"), "{err}");
    assert!(h.reviews().is_empty());
    // The right CA, but a certificate for another Service's name.
    route(&s, "elsewhere", &h);
    let w = pod_hook("inject.example.com", &h.ca_pem, "elsewhere", json!({}));
    let mut current = call(&s, "GET", &format!("{MWC}/inject"), Value::Null).await.unwrap();
    current["webhooks"] = json!([w]);
    call(&s, "PUT", &format!("{MWC}/inject"), current.clone()).await.unwrap();
    let err = call(&s, "POST", PODS, pod("p", true)).await.unwrap_err();
    assert!(err.contains("tls: failed to verify certificate"), "{err}");
    assert!(h.reviews().is_empty());
    // The right CA and name.
    current = call(&s, "GET", &format!("{MWC}/inject"), Value::Null).await.unwrap();
    current["webhooks"][0]["clientConfig"]["service"]["name"] = json!("inject");
    call(&s, "PUT", &format!("{MWC}/inject"), current).await.unwrap();
    call(&s, "POST", PODS, pod("p", true)).await.unwrap();
    assert_eq!(h.reviews().len(), 1);
}

#[tokio::test]
async fn a_webhook_slower_than_its_timeout_fails_the_request() {
    let s = server().await;
    let h = hook("slow.hooks.svc", Duration::from_secs(30), Arc::new(|_| allow()));
    route(&s, "slow", &h);
    let w = pod_hook("slow.example.com", &h.ca_pem, "slow", json!({"timeoutSeconds": 1}));
    mutating(&s, "slow", json!([w])).await;
    let started = std::time::Instant::now();
    let err = call(&s, "POST", PODS, pod("p", true)).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the call was cut off at its timeout, not the answer"
    );
    assert!(
        err.starts_with("500") && err.contains("?timeout=1s") && err.contains("context deadline exceeded"),
        "{err}"
    );
}

/// `first` (IfNeeded) adds a label when missing; `second` then adds an
/// annotation: `first` is called again, once.
#[tokio::test]
async fn webhooks_run_in_order_and_if_needed_ones_are_reinvoked_once() {
    for (policy, calls) in [("IfNeeded", 2), ("Never", 1)] {
        let s = server().await;
        let first = hook(
            "first.hooks.svc",
            Duration::ZERO,
            Arc::new(|req| {
                if req["object"]["metadata"]["labels"]["first"].is_string() {
                    allow()
                } else {
                    patch(json!([{"op": "add", "path": "/metadata/labels/first", "value": "1"}]))
                }
            }),
        );
        let second = hook(
            "second.hooks.svc",
            Duration::ZERO,
            Arc::new(|req| {
                assert_eq!(req["object"]["metadata"]["labels"]["first"], "1", "second sees first's change");
                patch(json!([{"op": "add", "path": "/metadata/annotations", "value": {"second": "1"}}]))
            }),
        );
        let check = hook(
            "check.hooks.svc",
            Duration::ZERO,
            Arc::new(|req| {
                if req["object"]["metadata"]["annotations"]["second"] == "1" {
                    allow()
                } else {
                    json!({"allowed": false, "status": {"message": "not mutated"}})
                }
            }),
        );
        for (svc, h) in [("first", &first), ("second", &second), ("check", &check)] {
            route(&s, svc, h);
        }
        let a = pod_hook("first.example.com", &first.ca_pem, "first", json!({"reinvocationPolicy": policy}));
        let b = pod_hook("second.example.com", &second.ca_pem, "second", json!({}));
        // Configurations run in name order: "a-..." before "b-...".
        mutating(&s, "b-second", json!([b])).await;
        mutating(&s, "a-first", json!([a])).await;
        let v = pod_hook("check.example.com", &check.ca_pem, "check", json!({}));
        validating(&s, "check", json!([v])).await;
        let created = call(&s, "POST", PODS, pod("p", true)).await.unwrap();
        assert_eq!(created["metadata"]["labels"]["first"], "1");
        assert_eq!(created["metadata"]["annotations"]["second"], "1");
        assert_eq!(first.reviews().len(), calls, "{policy}");
        assert_eq!(second.reviews().len(), 1);
        assert_eq!(check.reviews().len(), 1);
    }
}

#[tokio::test]
async fn a_validating_webhook_may_deny_and_sees_updates_with_the_old_object() {
    let s = server().await;
    let h = hook(
        "check.hooks.svc",
        Duration::ZERO,
        Arc::new(|req| {
            if req["operation"] == "UPDATE" && req["oldObject"]["metadata"]["labels"]["inject"] == "yes" {
                json!({"allowed": false, "status": {"code": 422, "reason": "Invalid", "message": "labels are fixed"}})
            } else {
                allow()
            }
        }),
    );
    route(&s, "check", &h);
    let mut w = pod_hook("check.example.com", &h.ca_pem, "check", json!({}));
    w["rules"][0]["operations"] = json!(["CREATE", "UPDATE"]);
    validating(&s, "check", json!([w])).await;
    let mut p = call(&s, "POST", PODS, pod("p", true)).await.unwrap();
    p["metadata"]["labels"]["inject"] = json!("no");
    let err = call(&s, "PUT", &format!("{PODS}/p"), p).await.unwrap_err();
    assert!(err.starts_with("422") && err.contains("denied the request: labels are fixed"), "{err}");
    // An invalid object is refused by validation before the webhook sees it.
    let before = h.reviews().len();
    let mut bad = pod("bad", true);
    bad["spec"]["containers"][0]["name"] = json!("Not_A_Name");
    let err = call(&s, "POST", PODS, bad).await.unwrap_err();
    assert!(err.starts_with("422") && err.contains("Invalid"), "{err}");
    assert_eq!(h.reviews().len(), before);
}

#[tokio::test]
async fn a_url_webhook_is_called_as_is_and_dry_runs_say_so() {
    let s = server().await;
    let h = hook(
        "localhost",
        Duration::ZERO,
        Arc::new(|_| patch(json!([{"op": "add", "path": "/metadata/labels/seen", "value": "1"}]))),
    );
    let mut w = pod_hook("url.example.com", &h.ca_pem, "unused", json!({}));
    w["clientConfig"] = json!({"url": format!("https://localhost:{}/hook", h.addr.port()), "caBundle": STANDARD.encode(&h.ca_pem)});
    mutating(&s, "url", json!([w])).await;
    let created = call(&s, "POST", &format!("{PODS}?dryRun=All"), pod("p", true)).await.unwrap();
    assert_eq!(created["metadata"]["labels"]["seen"], "1", "the dry run shows the mutation");
    assert!(call(&s, "GET", &format!("{PODS}/p"), Value::Null).await.is_err(), "a dry run stores nothing");
    let reviews = h.reviews();
    assert_eq!((reviews.len(), &reviews[0]["request"]["dryRun"]), (1, &json!(true)));
}

#[tokio::test]
async fn webhook_configurations_never_pass_through_webhooks() {
    let s = server().await;
    // A fail-closed webhook for every write of everything, that nobody answers.
    let h = hook("down.hooks.svc", Duration::ZERO, Arc::new(|_| allow()));
    let mut w = pod_hook("all.example.com", &h.ca_pem, "down", json!({"objectSelector": {}}));
    w["rules"] =
        json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}]);
    mutating(&s, "all", json!([w])).await;
    let cm = json!({"metadata": {"name": "c"}, "data": {"k": "v"}});
    let err = call(&s, "POST", "/api/v1/namespaces/apps/configmaps", cm.clone()).await.unwrap_err();
    assert!(
        err.starts_with("500") && err.contains("failed calling webhook \\\"all.example.com\\\""),
        "{err}"
    );
    // The configuration itself can still be mended: it is not locked in.
    let mut current = call(&s, "GET", &format!("{MWC}/all"), Value::Null).await.unwrap();
    current["webhooks"][0]["failurePolicy"] = json!("Ignore");
    call(&s, "PUT", &format!("{MWC}/all"), current).await.unwrap();
    call(&s, "POST", "/api/v1/namespaces/apps/configmaps", cm).await.unwrap();
    call(&s, "DELETE", &format!("{MWC}/all"), Value::Null).await.unwrap();
    assert!(h.reviews().is_empty());
}
