//! The Helm chart installed with a real helm (v4, from the wheel that
//! scripts/fetch-k8s-tools.sh unpacks) into the tests/ API server, and the
//! operator run with the arguments and environment of the installed
//! Deployment and the token of the installed ServiceAccount (no kubelet runs
//! pods there) reconciling the example keyrings; then helm upgrade and
//! uninstall.

mod common;

use common::*;
use encstr_tests::harness::Env;
use serde_json::Value;

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
    assert!(
        crds.contains("secretkeyrings.encstr.io") && crds.contains("clustersecretkeyrings.encstr.io"),
        "{crds}"
    );
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
    // The aggregated roles took effect: `edit` may manage SecretKeyrings.
    let edit: Value =
        serde_json::from_str(&kubectl(&env, &["get", "clusterrole", "edit", "-o", "json"])).unwrap();
    assert!(
        edit["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"] == serde_json::json!(["secretkeyrings"])),
        "{edit}"
    );

    // Run the operator as the Deployment would, as its ServiceAccount.
    let deploy: Value =
        serde_json::from_str(&kubectl(&env, &["get", "deployment", "encstr", "-n", "encstr", "-o", "json"]))
            .unwrap();
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    let mut args: Vec<String> =
        container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--cluster-resource-namespace=encstr".to_owned()), "{args:?}");
    for a in &mut args {
        if a.starts_with("--listen=") {
            *a = "--listen=127.0.0.1:0".into();
        }
    }
    let token = env.server.service_account_token("encstr", "encstr").expect("the chart's ServiceAccount");
    let kubeconfig = env.dir.join("sa-kubeconfig");
    std::fs::write(&kubeconfig, env.server.kubeconfig_for(OPERATOR_USER, Some(&token))).unwrap();
    let mut op = env.command(env!("CARGO_BIN_EXE_encstr-operator"));
    op.args(&args)
        .env("POD_NAMESPACE", "encstr")
        .env("POD_NAME", "encstr-abc12")
        .env("KUBECONFIG", &kubeconfig);
    env.spawn("operator", op);

    kubectl(&env, &["create", "namespace", "replication-eu"]);
    kubectl(&env, &["create", "namespace", "print"]);
    for example in ["clustersecretkeyring-rotation.yaml", "secretkeyring-single.yaml"] {
        kubectl(
            &env,
            &["apply", "--server-side", "-f", root().join("deploy/examples").join(example).to_str().unwrap()],
        );
    }
    let status = wait(30, "the example ClusterSecretKeyring reconciled", || {
        let v = kubectl_json(&env, &["get", "cskr", "replication"])?;
        (v["status"]["syncedTargets"] == "1/2").then(|| v["status"].clone())
    });
    assert_eq!(status["keys"][0]["state"], "Primary");
    let target = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["namespace"] == "replication-us")
        .unwrap()
        .clone();
    assert_eq!(target["reason"], "NamespaceNotFound");
    kubectl(&env, &["get", "secret", "replication", "-n", "replication-eu"]);
    kubectl(&env, &["get", "secret", "replication", "-n", "encstr"]);
    wait(30, "the example SecretKeyring reconciled", || keyring_secret(&env, "print", "print-agent"));
    let lease: Value = serde_json::from_str(&kubectl(
        &env,
        &["get", "lease", "encstr-operator", "-n", "encstr", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "encstr-abc12");
    assert_no_forbidden(&env);

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
