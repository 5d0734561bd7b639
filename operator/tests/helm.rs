//! The Helm chart installed with a real helm (v4, from the wheel that
//! scripts/fetch-k8s-tools.sh unpacks) into the tests/ API server, and the
//! operator run with the arguments and environment of the installed
//! Deployment (no kubelet runs pods there) reconciling an example
//! SecretKeyring; then helm upgrade and uninstall.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use encstr_tests::harness::Env;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn helm() -> PathBuf {
    let p = std::env::var_os("ENCSTR_HELM").map_or_else(|| root().join(".tools/k8s/helm"), PathBuf::from);
    assert!(
        p.exists(),
        "helm not found at {}: run scripts/fetch-k8s-tools.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

fn run(env: &Env, program: &Path, args: &[&str]) -> String {
    let mut cmd = env.command(program);
    cmd.args(args);
    env.run_ok(cmd)
}

fn kubectl(env: &Env, args: &[&str]) -> String {
    run(env, Path::new("kubectl"), args)
}

fn wait<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn helm_installs_the_chart_and_its_operator_reconciles() {
    let mut env = Env::start("helm");
    let helm = helm();
    let chart = root().join("charts/encstr");
    let out = run(
        &env,
        &helm,
        &[
            "install",
            "encstr",
            chart.to_str().unwrap(),
            "-n",
            "encstr",
            "--create-namespace",
            "--set",
            "replicaCount=2",
        ],
    );
    assert!(out.contains("STATUS: deployed"), "{out}");
    let crds = kubectl(&env, &["get", "crd", "-o", "name"]);
    assert!(crds.contains("secretkeyrings.encstr.io"), "{crds}");
    for obj in [
        "deployment/encstr",
        "serviceaccount/encstr",
        "service/encstr-metrics",
        "poddisruptionbudget/encstr",
        "role/encstr-leader-election",
    ] {
        kubectl(&env, &["get", obj, "-n", "encstr"]);
    }
    let role: Value =
        serde_json::from_str(&kubectl(&env, &["get", "clusterrole", "encstr", "-o", "json"])).unwrap();
    assert!(!role.to_string().contains("\"*\""), "no wildcards");

    // Run the operator as the Deployment would.
    let deploy: Value =
        serde_json::from_str(&kubectl(&env, &["get", "deployment", "encstr", "-n", "encstr", "-o", "json"]))
            .unwrap();
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    let mut args: Vec<String> =
        container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
    assert_eq!(args[0], "run");
    for a in &mut args {
        if a.starts_with("--listen=") {
            *a = "--listen=127.0.0.1:0".into();
        }
    }
    let mut op = env.command(env!("CARGO_BIN_EXE_encstr-operator"));
    op.args(&args).env("POD_NAMESPACE", "encstr").env("POD_NAME", "encstr-abc12");
    env.spawn("operator", op);

    kubectl(&env, &["create", "namespace", "replication-eu"]);
    let example = std::fs::read_to_string(root().join("deploy/examples/secretkeyring-rotation.yaml"))
        .unwrap()
        .replace("namespace: platform", "namespace: encstr");
    std::fs::write(env.dir.join("skr.yaml"), example).unwrap();
    kubectl(&env, &["apply", "--server-side", "-f", env.dir.join("skr.yaml").to_str().unwrap()]);
    let status = wait(30, "the example SecretKeyring reconciled", || {
        let out = env
            .command("kubectl")
            .args(["get", "skr", "replication", "-n", "encstr", "-o", "json"])
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["status"]["syncedTargets"] == "1/2").then(|| v["status"].clone())
    });
    assert_eq!(status["keys"][0]["state"], "Primary");
    kubectl(&env, &["get", "secret", "replication", "-n", "replication-eu"]);
    let lease: Value = serde_json::from_str(&kubectl(
        &env,
        &["get", "lease", "encstr-operator", "-n", "encstr", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "encstr-abc12");

    let out = run(
        &env,
        &helm,
        &["upgrade", "encstr", chart.to_str().unwrap(), "-n", "encstr", "--set", "logFormat=text"],
    );
    assert!(out.contains("STATUS: deployed"), "{out}");
    let out = run(&env, &helm, &["uninstall", "encstr", "-n", "encstr"]);
    assert!(out.contains("uninstalled"), "{out}");
    assert!(
        env.command("kubectl")
            .args(["get", "deployment", "encstr", "-n", "encstr"])
            .output()
            .unwrap()
            .status
            .code()
            != Some(0)
    );
    assert!(
        kubectl(&env, &["get", "crd", "-o", "name"]).contains("secretkeyrings.encstr.io"),
        "Helm keeps CRDs"
    );
}
