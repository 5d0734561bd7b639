//! Least privilege, measured: the operator runs as the chart's
//! ServiceAccount with exactly the RBAC the chart renders (cluster-wide and
//! confined), through scenarios that exercise everything it does; the API
//! server's request log then shows that it was never denied and that the
//! chart grants no (verb, group, resource) it never used.

mod common;

use std::collections::BTreeSet;

use common::*;
use encstr_tests::apiserver::{Fault, Matcher};
use encstr_tests::harness::Env;

fn assert_least_privilege(env: &Env, set: &[&str]) {
    assert_no_forbidden(env);
    let (granted, used) = (granted(env, set, None), used(env));
    let unused: Vec<&Grant> = granted.difference(&used).collect();
    assert!(unused.is_empty(), "the chart grants what the operator never used: {unused:?}\nused: {used:?}");
    let ungranted: Vec<&Grant> = used.difference(&granted).collect();
    assert!(ungranted.is_empty(), "the operator used what the chart does not grant: {ungranted:?}");
}

/// Repeated identical failures: the same Warning event again (an event
/// series, written with a patch).
fn fail_creates(env: &Env, namespace: &str, times: u64) {
    let mut f = Fault::new(
        Matcher {
            verb: Some("create".into()),
            resource: Some("secrets".into()),
            namespace: Some(namespace.into()),
            ..Matcher::default()
        },
        1,
        500,
    );
    f.times = times;
    env.server.fail(f);
}

#[test]
fn cluster_wide_the_chart_grants_exactly_what_the_operator_uses() {
    let (mut env, install) = setup("privilege", &["team-a", "team-b", "print"]);
    env.kill("operator");
    start_operator(&mut env, &install, "operator", &["--usage-scan-interval", "1s"]);
    fail_creates(&env, "team-b", 3);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n  targets: {namespaces: [team-a, team-b]}\n  rotation: {promotionDelay: 1s}\n  retention: {maxKeys: 1, minDecryptOnlyAge: 1s}\n  deletionPolicy: Delete\n---\napiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: agents, namespace: print}\nspec: {}\n",
    );
    converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
    converged(&env, "print", "agents", &[]);
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1"]);
    wait(40, "the former primary pruned", || {
        let st = cstatus(&env, "payments");
        (st["keys"].as_array()?.len() == 1
            && events(&env, OPERATOR_NS).iter().any(|(_, r, _)| r == "KeysPruned"))
        .then_some(())
    });
    let series = kubectl_json(&env, &["get", "events.events.k8s.io", "-n", OPERATOR_NS]).unwrap();
    assert!(
        series["items"].as_array().unwrap().iter().any(|e| e["series"]["count"].as_u64() >= Some(2)),
        "a repeated event was patched"
    );
    let default = kubectl_json(&env, &["get", "events.events.k8s.io", "-n", "default"]).unwrap();
    assert_eq!(
        default["items"],
        serde_json::json!([]),
        "a ClusterSecretKeyring's events go beside its master"
    );
    kubectl(&env, &["delete", "cskr", "payments"]);
    kubectl(&env, &["delete", "skr", "agents", "-n", "print"]);
    wait(20, "cleanup", || keyring_secret(&env, "team-a", "payments").is_none().then_some(()));
    assert_least_privilege(&env, &[]);
    // ConfigMaps: listed for usage scans; watched, read, created, updated
    // and deleted for the recipient ConfigMaps (the rules of copies) —
    // never patched.
    let configmaps: BTreeSet<String> = used(&env)
        .into_iter()
        .filter(|(_, g, r)| g.is_empty() && r == "configmaps")
        .map(|(v, _, _)| v)
        .collect();
    let want = ["create", "delete", "get", "list", "update", "watch"];
    assert_eq!(configmaps, want.iter().map(|v| (*v).to_owned()).collect::<BTreeSet<_>>());
}

#[test]
fn confined_the_chart_grants_exactly_what_the_operator_uses() {
    let mut env = Env::start("privilege-confined");
    let set = ["rbac.namespaces={print,scan}"];
    let install = install(&env, &set);
    start_operator(
        &mut env,
        &install,
        "operator",
        &["--namespaces", "print,scan", "--usage-scan-interval", "1s"],
    );
    fail_creates(&env, "scan", 3);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: agents, namespace: print}\nspec: {deletionPolicy: Delete}\n---\napiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: scanner, namespace: scan}\nspec:\n  rotation: {promotionDelay: 1s}\n  retention: {maxKeys: 1, minDecryptOnlyAge: 1s}\n",
    );
    converged(&env, "print", "agents", &[]);
    converged(&env, "scan", "scanner", &[]);
    kubectl(&env, &["annotate", "skr", "scanner", "-n", "scan", "encstr.io/rotate=1"]);
    wait(40, "the former primary pruned", || {
        let st = status(&env, "scan", "scanner");
        (st["keys"].as_array()?.len() == 1 && events(&env, "scan").iter().any(|(_, r, _)| r == "KeysPruned"))
            .then_some(())
    });
    kubectl(&env, &["delete", "skr", "agents", "-n", "print"]);
    wait(20, "cleanup", || keyring_secret(&env, "print", "agents").is_none().then_some(()));
    assert_least_privilege(&env, &set);
}
