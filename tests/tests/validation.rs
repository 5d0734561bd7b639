//! Validation as kube-apiserver does it, over HTTPS: 422 `Invalid` Status
//! objects with `details.causes`, worded as a real server words them, for
//! object metadata, the built-ins the product uses, and custom resources
//! against their CRD (schema, pruning, defaulting, CEL rules); `dryRun=All`;
//! and PUT of a custom resource without a resourceVersion.

mod common;

use common::{call, patch};
use encstr_tests::TestApiServer;
use encstr_tests::harness::Client;
use serde_json::{Value, json};

/// The Status of a failed request (`Err("CODE: {status}")`).
fn status(err: &str) -> (u16, Value) {
    let (code, body) = err.split_once(": ").expect("CODE: body");
    (code.parse().unwrap(), serde_json::from_str(body).unwrap())
}

/// A request that must fail with 422; returns the message and the causes'
/// fields.
async fn invalid(s: &TestApiServer, method: &str, path: &str, body: Value) -> (String, Vec<String>) {
    let err = call(s, method, path, body).await.expect_err("422");
    let (code, st) = status(&err);
    assert_eq!((code, st["reason"].as_str()), (422, Some("Invalid")), "{err}");
    let fields = st["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap().to_owned())
        .collect();
    (st["message"].as_str().unwrap().to_owned(), fields)
}

#[tokio::test]
async fn object_metadata_is_validated_on_every_write() {
    let s = TestApiServer::start(0).await.unwrap();
    let cm = "/api/v1/namespaces/default/configmaps";
    // A label value of 64 characters (what `<namespace>.<name>` can reach).
    let long = "n".repeat(31) + "." + &"k".repeat(32);
    assert_eq!(long.len(), 64);
    let (msg, fields) =
        invalid(&s, "POST", cm, json!({"metadata": {"name": "a", "labels": {"encstr.io/keyring": long}}}))
            .await;
    assert_eq!(
        msg,
        format!(
            "ConfigMap \"a\" is invalid: metadata.labels: Invalid value: \"{long}\": must be no more than 63 bytes"
        )
    );
    assert_eq!(fields, ["metadata.labels"]);
    // Through every write path: update, merge patch, apply.
    call(&s, "POST", cm, json!({"metadata": {"name": "a"}})).await.unwrap();
    let mut obj = call(&s, "GET", &format!("{cm}/a"), Value::Null).await.unwrap();
    obj["metadata"]["labels"] = json!({"k": long});
    invalid(&s, "PUT", &format!("{cm}/a"), obj).await;
    let err = patch(
        &s,
        &format!("{cm}/a"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"k": long}}}).to_string(),
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("422"), "{err}");
    let err = patch(
        &s,
        &format!("{cm}/a?fieldManager=t"),
        "application/apply-patch+yaml",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"k": long}}})
            .to_string(),
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("422"), "{err}");
    // Label values: alphanumeric at both ends.
    let (msg, _) = invalid(&s, "POST", cm, json!({"metadata": {"name": "b", "labels": {"k": "-x"}}})).await;
    assert!(msg.contains("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"), "{msg}");
    // Label keys: a DNS prefix of at most 253 and a name of at most 63.
    let (msg, _) = invalid(
        &s,
        "POST",
        cm,
        json!({"metadata": {"name": "b", "labels": {format!("{}/k", "p".repeat(254)): "v"}}}),
    )
    .await;
    assert!(msg.contains("prefix part must be no more than 253 bytes"), "{msg}");
    let (msg, _) =
        invalid(&s, "POST", cm, json!({"metadata": {"name": "b", "labels": {"k".repeat(64): "v"}}})).await;
    assert!(msg.contains("name part must be no more than 63 bytes"), "{msg}");
    // Names: DNS-1123 subdomains, namespaces DNS labels; generateName too.
    let (msg, fields) = invalid(&s, "POST", cm, json!({"metadata": {"name": "Not_OK"}})).await;
    assert!(msg.starts_with("ConfigMap \"Not_OK\" is invalid: metadata.name: Invalid value: \"Not_OK\": a lowercase RFC 1123 subdomain"), "{msg}");
    assert_eq!(fields, ["metadata.name"]);
    let (msg, _) = invalid(&s, "POST", "/api/v1/namespaces", json!({"metadata": {"name": "a_b"}})).await;
    assert!(msg.contains("a lowercase RFC 1123 label must consist of"), "{msg}");
    let (msg, _) = invalid(&s, "POST", "/api/v1/namespaces", json!({"metadata": {"name": "a.b"}})).await;
    assert!(msg.ends_with("metadata.name: Invalid value: \"a.b\": must not contain dots"), "{msg}");
    let (msg, _) = invalid(&s, "POST", cm, json!({"metadata": {"generateName": "Bad_"}})).await;
    assert!(msg.contains("metadata.generateName: Invalid value: \"Bad_\""), "{msg}");
    let made = call(&s, "POST", cm, json!({"metadata": {"generateName": "gen-"}})).await.unwrap();
    assert!(made["metadata"]["name"].as_str().unwrap().starts_with("gen-"));
    let (msg, _) = invalid(&s, "POST", cm, json!({"metadata": {}})).await;
    assert!(msg.contains("metadata.name: Required value: name or generateName is required"), "{msg}");
    // Annotations: 256 KiB in total.
    let big = "x".repeat(256 * 1024);
    let (msg, fields) =
        invalid(&s, "POST", cm, json!({"metadata": {"name": "c", "annotations": {"a": big}}})).await;
    assert!(msg.contains("metadata.annotations: Too long: may not be more than 262144 bytes"), "{msg}");
    assert_eq!(fields, ["metadata.annotations"]);
    // Finalizers: qualified names, and none new on an object being deleted.
    let (msg, _) =
        invalid(&s, "POST", cm, json!({"metadata": {"name": "d", "finalizers": ["not a name"]}})).await;
    assert!(msg.contains("metadata.finalizers: Invalid value: \"not a name\""), "{msg}");
    call(&s, "POST", cm, json!({"metadata": {"name": "d", "finalizers": ["example.com/hold"]}}))
        .await
        .unwrap();
    call(&s, "DELETE", &format!("{cm}/d"), Value::Null).await.unwrap();
    let err = patch(
        &s,
        &format!("{cm}/d"),
        "application/merge-patch+json",
        r#"{"metadata":{"finalizers":["example.com/hold","example.com/more"]}}"#,
    )
    .await
    .unwrap_err();
    assert!(err.contains(r#"metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/more\"}"#), "{err}");
}

#[tokio::test]
async fn built_ins_are_validated() {
    let s = TestApiServer::start(0).await.unwrap();
    let sec = "/api/v1/namespaces/default/secrets";
    // Secret: data keys, base64, immutable data and type.
    let (msg, _) =
        invalid(&s, "POST", sec, json!({"metadata": {"name": "a"}, "data": {"bad key": "eA=="}})).await;
    assert!(msg.contains("data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"), "{msg}");
    let err = call(&s, "POST", sec, json!({"metadata": {"name": "a"}, "data": {"k": "not base64!"}}))
        .await
        .unwrap_err();
    assert!(err.starts_with("400") && err.contains("illegal base64 data"), "{err}");
    call(&s, "POST", sec, json!({"metadata": {"name": "a"}, "data": {"k": "eA=="}, "immutable": true}))
        .await
        .unwrap();
    let err = patch(&s, &format!("{sec}/a"), "application/merge-patch+json", r#"{"data":{"k":"eQ=="}}"#)
        .await
        .unwrap_err();
    assert!(err.contains("data: Forbidden: field is immutable when `immutable` is set"), "{err}");
    let err = patch(&s, &format!("{sec}/a"), "application/merge-patch+json", r#"{"immutable":false}"#)
        .await
        .unwrap_err();
    assert!(err.contains("immutable: Forbidden: field is immutable when `immutable` is set"), "{err}");
    patch(&s, &format!("{sec}/a"), "application/merge-patch+json", r#"{"metadata":{"labels":{"ok":"yes"}}}"#)
        .await
        .expect("metadata may change");
    call(&s, "POST", sec, json!({"metadata": {"name": "b"}, "type": "example.com/kind"})).await.unwrap();
    let err = patch(&s, &format!("{sec}/b"), "application/merge-patch+json", r#"{"type":"Opaque"}"#)
        .await
        .unwrap_err();
    assert!(err.contains("type: Invalid value: \\\"Opaque\\\": field is immutable"), "{err}");
    // ConfigMap: binaryData keys may not repeat data keys; immutable.
    let cms = "/api/v1/namespaces/default/configmaps";
    let (msg, _) = invalid(
        &s,
        "POST",
        cms,
        json!({"metadata": {"name": "c"}, "data": {"k": "x"}, "binaryData": {"k": "eA=="}}),
    )
    .await;
    assert!(msg.contains("binaryData[k]: Invalid value: \"k\": duplicate of key present in data"), "{msg}");
    call(&s, "POST", cms, json!({"metadata": {"name": "c"}, "binaryData": {"b": "eA=="}, "immutable": true}))
        .await
        .unwrap();
    let err =
        patch(&s, &format!("{cms}/c"), "application/merge-patch+json", r#"{"binaryData":{"b":"eQ=="}}"#)
            .await
            .unwrap_err();
    assert!(err.contains("binaryData: Forbidden: field is immutable when `immutable` is set"), "{err}");
    // Lease.
    let (msg, _) = invalid(
        &s,
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}}),
    )
    .await;
    assert!(msg.contains("spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"), "{msg}");
    // ServiceAccount.
    let (msg, _) = invalid(
        &s,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts",
        json!({"metadata": {"name": "Op"}}),
    )
    .await;
    assert!(msg.contains("metadata.name: Invalid value: \"Op\""), "{msg}");
    // Events: one store for v1 and events.k8s.io/v1, the latter's limits.
    let ev = json!({"metadata": {"name": "e1"}, "regarding": {"kind": "ConfigMap", "name": "c", "namespace": "default"},
        "reason": "Tested", "note": "n".repeat(1025), "type": "Normal", "action": "Test", "reportingController": "example.com/test",
        "reportingInstance": "i", "eventTime": "2026-11-23T09:00:00.000000Z"});
    let (msg, fields) =
        invalid(&s, "POST", "/apis/events.k8s.io/v1/namespaces/default/events", ev.clone()).await;
    assert!(msg.contains("can have at most 1024 characters"), "{msg}");
    // Named as the legacy validation names it.
    assert!(fields.iter().any(|f| f == "message"), "{fields:?}");
    let mut ok = ev.clone();
    ok["note"] = json!("short");
    call(&s, "POST", "/apis/events.k8s.io/v1/namespaces/default/events", ok).await.unwrap();
    let core = call(&s, "GET", "/api/v1/namespaces/default/events/e1", Value::Null).await.unwrap();
    assert_eq!(
        (core["message"].as_str(), core["involvedObject"]["name"].as_str()),
        (Some("short"), Some("c"))
    );
    let mut no_controller = ev.clone();
    no_controller["note"] = json!("x");
    no_controller.as_object_mut().unwrap().remove("reportingController");
    let (msg, _) =
        invalid(&s, "POST", "/apis/events.k8s.io/v1/namespaces/default/events", no_controller).await;
    assert!(msg.contains("reportingController: Required value"), "{msg}");
    // Pod: containers, volumes, mounts.
    let pods = "/api/v1/namespaces/default/pods";
    let (msg, fields) = invalid(&s, "POST", pods, json!({"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "app", "image": "x", "volumeMounts": [{"name": "missing", "mountPath": "/etc/app"}]}, {"name": "app"}],
        "volumes": [{"name": "cfg", "configMap": {"name": "c"}, "secret": {"secretName": "s"}}]}})).await;
    assert!(fields.contains(&"spec.containers[0].volumeMounts[0].name".to_owned()), "{msg}");
    assert!(msg.contains("spec.containers[0].volumeMounts[0].name: Not found: \"missing\""), "{msg}");
    assert!(msg.contains("spec.containers[1].name: Duplicate value: \"app\""), "{msg}");
    assert!(msg.contains("spec.containers[1].image: Required value"), "{msg}");
    assert!(
        msg.contains("spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type"),
        "{msg}"
    );
    // RBAC: rules need verbs; roleRef cannot change.
    let roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles";
    let (msg, _) = invalid(
        &s,
        "POST",
        roles,
        json!({"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["secrets"]}]}),
    )
    .await;
    assert!(msg.contains("rules[0].verbs: Required value: verbs must contain at least one value"), "{msg}");
    let rbs = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings";
    let rb = call(&s, "POST", rbs, json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "User", "name": "alice"}]}))
        .await
        .unwrap();
    assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io", "defaulted");
    assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io", "defaulted");
    let err =
        patch(&s, &format!("{rbs}/b"), "application/merge-patch+json", r#"{"roleRef":{"name":"edit"}}"#)
            .await
            .unwrap_err();
    assert!(err.contains("roleRef: Invalid value:") && err.contains("cannot change roleRef"), "{err}");
    // MutatingWebhookConfiguration.
    let (msg, _) = invalid(
        &s,
        "POST",
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        json!({"metadata": {"name": "w"}, "webhooks": [
        {"name": "inject", "clientConfig": {"url": "https://example.com/x"}}]}),
    )
    .await;
    assert!(msg.contains("webhooks[0].name: Invalid value: \"inject\": should be a domain with at least three segments separated by dots"), "{msg}");
    assert!(msg.contains("webhooks[0].sideEffects: Required value"), "{msg}");
    assert!(msg.contains("webhooks[0].admissionReviewVersions: Required value"), "{msg}");
}

const CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
 "metadata": {"name": "widgets.example.com"},
 "spec": {"group": "example.com", "scope": "Namespaced",
  "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
  "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
   "schema": {"openAPIV3Schema": {"type": "object",
    "x-kubernetes-validations": [{"rule": "self.metadata.name.size() <= 10", "message": "names are at most 10 characters"}],
    "properties": {
     "spec": {"type": "object", "required": ["size"],
      "x-kubernetes-validations": [
        {"rule": "self.size <= 5 || (has(self.color) && self.color == 'red')", "messageExpression": "'size ' + string(self.size) + ' needs red'"},
        {"rule": "!has(oldSelf.owner) || self.owner == oldSelf.owner", "message": "owner is immutable", "fieldPath": ".owner"}],
      "properties": {
       "size": {"type": "integer", "minimum": 1, "maximum": 10},
       "color": {"type": "string", "enum": ["red", "green"]},
       "every": {"type": "string", "pattern": "^[0-9]+h$"},
       "label": {"type": "string", "maxLength": 5},
       "count": {"type": "integer", "format": "int32"},
       "when": {"type": "string", "format": "date-time"},
       "port": {"x-kubernetes-int-or-string": true},
       "tags": {"type": "array", "maxItems": 2, "x-kubernetes-list-type": "set", "items": {"type": "string"}},
       "mode": {"type": "string", "default": "auto"},
       "owner": {"type": "string"},
       "note": {"type": "string", "nullable": true},
       "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
       "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}},
     "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}}}]}}"#;

async fn with_crd() -> TestApiServer {
    let s = TestApiServer::start(0).await.unwrap();
    call(
        &s,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        serde_json::from_str(CRD).unwrap(),
    )
    .await
    .unwrap();
    s
}

fn widget(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})
}

const WIDGETS: &str = "/apis/example.com/v1/namespaces/default/widgets";

#[tokio::test]
async fn custom_resources_are_validated_against_their_schema() {
    let s = with_crd().await;
    let cases: &[(Value, &str)] = &[
        (
            json!({"size": 1, "every": "90days"}),
            "spec.every: Invalid value: \"90days\": spec.every in body should match '^[0-9]+h$'",
        ),
        (
            json!({"size": "big"}),
            "spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
        ),
        (
            json!({"size": 11}),
            "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10",
        ),
        (
            json!({"size": 0}),
            "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
        ),
        (
            json!({"size": 1, "color": "blue"}),
            "spec.color: Unsupported value: \"blue\": supported values: \"red\", \"green\"",
        ),
        (json!({"size": 1, "label": "toolong"}), "spec.label: Too long: may not be more than 5 bytes"),
        (json!({"size": 1, "count": 4_294_967_296u64}), "spec.count in body must be of type int32"),
        (
            json!({"size": 1, "when": "yesterday"}),
            "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
        ),
        (json!({"size": 1, "port": true}), "spec.port in body must be of type integer,string: \"boolean\""),
        (json!({"size": 1, "tags": ["a", "b", "c"]}), "spec.tags: Too many: 3: must have at most 2 items"),
        (json!({"size": 1, "tags": ["a", "a"]}), "spec.tags[1]: Duplicate value: \"a\""),
        (json!({"color": "red"}), "spec.size: Required value"),
        (
            json!({"size": 1, "template": {"kind": "ConfigMap"}}),
            "spec.template.apiVersion: Required value: must not be empty",
        ),
    ];
    for (spec, want) in cases {
        let (msg, _) = invalid(&s, "POST", WIDGETS, widget("w", spec.clone())).await;
        assert!(msg.starts_with("Widget.example.com \"w\" is invalid: "), "{msg}");
        assert!(msg.contains(want), "{spec}: {msg}");
    }
    // Valid: int-or-string either way, nullable null, preserved unknowns.
    let w = call(
        &s,
        "POST",
        WIDGETS,
        widget(
            "ok",
            json!({"size": 2, "port": "http", "note": null, "extra": {"anything": [1]}, "tags": ["a"]}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(w["spec"]["extra"], json!({"anything": [1]}));
    assert_eq!(w["spec"]["mode"], "auto", "defaulted");
    assert!(w["spec"].get("note").is_some_and(Value::is_null));
    // CEL: messageExpression, root metadata.name rules, transition rules.
    let (msg, fields) = invalid(&s, "POST", WIDGETS, widget("big", json!({"size": 7}))).await;
    assert!(msg.contains("spec: Invalid value: \"object\": size 7 needs red"), "{msg}");
    assert_eq!(fields, ["spec"]);
    let (msg, _) = invalid(&s, "POST", WIDGETS, widget("much-too-long", json!({"size": 1}))).await;
    assert!(msg.contains("Invalid value: \"object\": names are at most 10 characters"), "{msg}");
    call(&s, "POST", WIDGETS, widget("owned", json!({"size": 1, "owner": "a"}))).await.unwrap();
    let err =
        patch(&s, &format!("{WIDGETS}/owned"), "application/merge-patch+json", r#"{"spec":{"owner":"b"}}"#)
            .await
            .unwrap_err();
    // The value shown is the type of the schema holding the rule.
    assert!(err.contains(r#"spec.owner: Invalid value: \"object\": owner is immutable"#), "{err}");
    // PUT without a resourceVersion: 422 for custom resources.
    let mut w = call(&s, "GET", &format!("{WIDGETS}/ok"), Value::Null).await.unwrap();
    w["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    let (msg, _) = invalid(&s, "PUT", &format!("{WIDGETS}/ok"), w).await;
    assert_eq!(
        msg,
        "widgets.example.com \"ok\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update"
    );
    // Built-ins take it from storage.
    call(&s, "POST", "/api/v1/namespaces/default/configmaps", json!({"metadata": {"name": "u"}}))
        .await
        .unwrap();
    call(
        &s,
        "PUT",
        "/api/v1/namespaces/default/configmaps/u",
        json!({"metadata": {"name": "u"}, "data": {"k": "v"}}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn unknown_fields_are_pruned_warned_about_or_refused() {
    let s = with_crd().await;
    let admin = Client::admin(&s);
    let body = widget("p", json!({"size": 1, "bogus": 1, "extra": {"kept": true}})).to_string();
    // Strict: 400, naming the field.
    let r = admin
        .send(
            "POST",
            &format!("{WIDGETS}?fieldValidation=Strict"),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["message"], "strict decoding error: unknown field \"spec.bogus\"");
    // Warn (the default): pruned, with a Warning header.
    let r =
        admin.send("POST", WIDGETS, &[("Content-Type", "application/json")], body.as_bytes()).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header_values("warning"), [r#"299 - "unknown field \"spec.bogus\"""#]);
    assert!(r.json()["spec"].get("bogus").is_none());
    assert_eq!(r.json()["spec"]["extra"]["kept"], true);
    // Ignore: pruned silently. Unknown metadata fields are dropped too.
    let body = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "q", "colour": "x"}, "spec": {"size": 1, "bogus": 1}}).to_string();
    let r = admin
        .send(
            "POST",
            &format!("{WIDGETS}?fieldValidation=Ignore"),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.header_values("warning").len()), (201, 0));
    assert!(r.json()["metadata"].get("colour").is_none());
    // Built-ins are pruned by their schema as well.
    let r = admin
        .send(
            "POST",
            "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
            &[("Content-Type", "application/json")],
            br#"{"metadata":{"name":"x"},"datta":{}}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (400, Some("strict decoding error: unknown field \"datta\""))
    );
}

#[tokio::test]
async fn crds_must_be_structural() {
    let s = TestApiServer::start(0).await.unwrap();
    let mut crd: Value = serde_json::from_str(CRD).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"] =
        json!({"minimum": 1});
    let (msg, fields) =
        invalid(&s, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd).await;
    assert!(
        msg.starts_with("CustomResourceDefinition.apiextensions.k8s.io \"widgets.example.com\" is invalid: spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].type: Required value: must not be empty for specified object fields"),
        "{msg}"
    );
    assert!(!fields.is_empty());
}

#[tokio::test]
async fn dry_run_validates_and_persists_nothing() {
    let s = with_crd().await;
    let w =
        call(&s, "POST", &format!("{WIDGETS}?dryRun=All"), widget("dry", json!({"size": 1}))).await.unwrap();
    assert_eq!(w["metadata"]["name"], "dry");
    assert!(w["metadata"]["uid"].is_string());
    assert!(call(&s, "GET", &format!("{WIDGETS}/dry"), Value::Null).await.is_err(), "not stored");
    let err = call(&s, "POST", &format!("{WIDGETS}?dryRun=All"), widget("dry", json!({"size": 99})))
        .await
        .unwrap_err();
    assert!(err.starts_with("422"), "dry runs validate: {err}");
    call(&s, "POST", WIDGETS, widget("real", json!({"size": 1}))).await.unwrap();
    let before = call(&s, "GET", &format!("{WIDGETS}/real"), Value::Null).await.unwrap();
    let applied = patch(
        &s,
        &format!("{WIDGETS}/real?fieldManager=t&force=true&dryRun=All"),
        "application/apply-patch+yaml",
        &widget("real", json!({"size": 3})).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(applied["spec"]["size"], 3);
    let after = call(&s, "GET", &format!("{WIDGETS}/real"), Value::Null).await.unwrap();
    assert_eq!(after, before, "an apply dry run changes nothing");
    call(&s, "DELETE", &format!("{WIDGETS}/real?dryRun=All"), Value::Null).await.unwrap();
    assert!(call(&s, "GET", &format!("{WIDGETS}/real"), Value::Null).await.is_ok());
    let err = call(&s, "POST", &format!("{WIDGETS}?dryRun=Yes"), widget("x", json!({"size": 1})))
        .await
        .unwrap_err();
    assert!(err.starts_with("400"), "{err}");
}
