//! Real kubectl clients against the test API server: every kubectl in
//! `ENCSTR_KUBECTLS` (colon-separated paths; `scripts/test.sh` sets the
//! machine's v1.32 and the v1.35 from the helm wheel), default `kubectl`.

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
