//! End to end: the operator never loses a key and never writes where the
//! requester may not. A deleted or shrunken master holds every write back
//! until a human decides; a namespaced SecretKeyring stays in its
//! namespace; names are label values of at most 63 characters.

mod common;

use std::time::Duration;

use common::*;
use encstr_tests::harness::Env;

/// Wait for a Ready condition with this reason on a ClusterSecretKeyring.
fn guarded(env: &Env, name: &str, reason: &str) -> String {
    wait(20, reason, || {
        let (s, r, m) = condition(&cstatus(env, name), "Ready")?;
        (s == "False" && r == reason).then_some(m)
    })
}

fn guard_metric(env: &Env, reason: &str) -> Option<String> {
    let body = scrape(&metrics_addr(env, "operator"))?;
    body.lines()
        .find(|l| {
            l.starts_with("encstr_keyring_guard{")
                && l.contains(&format!("reason=\"{reason}\""))
                && l.contains("keyring=\"payments\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
}

#[test]
fn a_deleted_master_holds_everything_until_restored_from_a_copy() {
    let (env, _) = setup("master-missing", &["team-a", "team-b"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n  targets: {namespaces: [team-a, team-b]}\n  rotation: {promotionDelay: 1s}\n",
    );
    converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1"]);
    let before = settled(&env, "payments", &["team-a", "team-b"], 2);
    kubectl(&env, &["delete", "secret", "payments", "-n", OPERATOR_NS]);
    let msg = guarded(&env, "payments", "MasterMissing");
    assert!(msg.contains("copies exist in team-a/payments, team-b/payments"), "{msg}");
    assert!(events(&env, OPERATOR_NS).iter().any(|(t, r, _)| t == "Warning" && r == "MasterMissing"));
    assert_eq!(wait(10, "the guard gauge", || guard_metric(&env, "MasterMissing").filter(|v| v == "1")), "1");
    // Nothing is generated, nothing is written.
    std::thread::sleep(Duration::from_secs(2));
    assert!(keyring_secret(&env, OPERATOR_NS, "payments").is_none(), "no new master");
    for ns in ["team-a", "team-b"] {
        assert_eq!(keyring_secret(&env, ns, "payments").unwrap().0, before, "copies untouched");
    }
    assert_eq!(cstatus(&env, "payments")["keys"].as_array().unwrap().len(), 2, "the record is kept");
    // A restore from a namespace without a copy is refused, and the request cleared.
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/restore-from=nowhere"]);
    wait(20, "the refusal", || {
        events(&env, OPERATOR_NS)
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "RestoreRefused" && n.contains("nowhere"))
            .then_some(())
    });
    wait(10, "the annotation removed", || {
        kubectl_json(&env, &["get", "cskr", "payments"])?["metadata"]["annotations"]
            .get("encstr.io/restore-from")
            .is_none()
            .then_some(())
    });
    assert!(keyring_secret(&env, OPERATOR_NS, "payments").is_none());
    // From a complete copy: the master is rebuilt with every key.
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/restore-from=team-a"]);
    let restored =
        wait(20, "the master rebuilt", || keyring_secret(&env, OPERATOR_NS, "payments").map(|(t, _, _)| t));
    assert_eq!(restored, before, "all keys intact, in order");
    wait(20, "Ready again", || (condition(&cstatus(&env, "payments"), "Ready")?.0 == "True").then_some(()));
    assert!(events(&env, OPERATOR_NS).iter().any(|(_, r, n)| r == "MasterRestored" && n.contains("team-a")));
    assert!(
        kubectl_json(&env, &["get", "cskr", "payments"]).unwrap()["metadata"]["annotations"]
            .get("encstr.io/restore-from")
            .is_none()
    );
    assert_eq!(
        wait(10, "the guard lifted", || guard_metric(&env, "MasterMissing").filter(|v| v == "0")),
        "0"
    );
    assert_eq!(converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]), before);
    assert_no_forbidden(&env);
}

#[test]
fn a_master_that_lost_keys_is_not_distributed_until_the_loss_is_accepted() {
    let (env, _) = setup("keys-missing", &["team-a"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n  targets: {namespaces: [team-a]}\n  rotation: {promotionDelay: 1s}\n",
    );
    converged(&env, OPERATOR_NS, "payments", &["team-a"]);
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1"]);
    let before = settled(&env, "payments", &["team-a"], 2);
    let st = cstatus(&env, "payments");
    let old_id = st["keys"][0]["id"].as_str().unwrap().to_owned();
    // Someone re-applies an old master holding only the current primary.
    let primary_only = format!("{}\n", before.lines().last().unwrap());
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, primary_only.as_bytes());
    kubectl(
        &env,
        &[
            "patch",
            "secret",
            "payments",
            "-n",
            OPERATOR_NS,
            "--type=merge",
            "-p",
            &format!(r#"{{"data":{{"keyring":"{b64}"}}}}"#),
        ],
    );
    let msg = guarded(&env, "payments", "KeysMissing");
    assert!(
        msg.contains(&old_id) && msg.contains(&format!("encstr.io/accept-missing-keys={old_id}")),
        "{msg}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(keyring_secret(&env, "team-a", "payments").unwrap().0, before, "copies not touched");
    // A wrong acknowledgement is refused.
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/accept-missing-keys=00000000"]);
    wait(20, "the refusal", || {
        events(&env, OPERATOR_NS).iter().any(|(_, r, _)| r == "AcceptRefused").then_some(())
    });
    assert_eq!(condition(&cstatus(&env, "payments"), "Ready").unwrap().1, "KeysMissing");
    // Acknowledged: the shrunken keyring is the keyring now.
    kubectl(
        &env,
        &["annotate", "cskr", "payments", &format!("encstr.io/accept-missing-keys={old_id}"), "--overwrite"],
    );
    let after = settled(&env, "payments", &["team-a"], 1);
    assert_eq!(after, primary_only);
    let (_, ids, _) = keyring_secret(&env, OPERATOR_NS, "payments").unwrap();
    assert!(!ids.contains(&old_id), "the master's annotations follow its keys: {ids}");
    wait(20, "Ready again", || (condition(&cstatus(&env, "payments"), "Ready")?.0 == "True").then_some(()));
    assert!(
        events(&env, OPERATOR_NS)
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "KeysAccepted" && n.contains(&old_id))
    );
    wait(10, "the annotation removed", || {
        kubectl_json(&env, &["get", "cskr", "payments"])?["metadata"]["annotations"]
            .get("encstr.io/accept-missing-keys")
            .is_none()
            .then_some(())
    });
    assert_eq!(cstatus(&env, "payments")["keys"].as_array().unwrap().len(), 1);
    assert_no_forbidden(&env);
}

#[test]
fn secret_names_are_immutable_and_names_are_label_values() {
    let (env, _) = setup("names", &[]);
    let ns63 = "n".repeat(63);
    let name63 = "k".repeat(63);
    kubectl(&env, &["create", "namespace", &ns63]);
    apply(
        &env,
        &format!(
            "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {{name: {name63}, namespace: {ns63}}}\nspec: {{}}\n"
        ),
    );
    let (_, _, master) = wait(20, "the master", || keyring_secret(&env, &ns63, &name63));
    assert_eq!(master["metadata"]["labels"]["encstr.io/keyring"].as_str(), Some(name63.as_str()));
    wait(20, "Ready", || (condition(&status(&env, &ns63, &name63), "Ready")?.0 == "True").then_some(()));
    // A 63-character cluster keyring into the 63-character namespace.
    apply(
        &env,
        &format!(
            "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {{name: {name63}}}\nspec: {{secretName: cluster-copy, targets: {{namespaces: [{ns63}]}}}}\n"
        ),
    );
    converged(&env, OPERATOR_NS, "cluster-copy", &[&ns63]);
    // 64 characters: refused at admission, for both kinds.
    let name64 = "k".repeat(64);
    for kind in ["SecretKeyring", "ClusterSecretKeyring"] {
        let meta = if kind == "SecretKeyring" {
            format!("{{name: {name64}, namespace: {ns63}}}")
        } else {
            format!("{{name: {name64}}}")
        };
        let err = apply_refused(
            &env,
            &format!("apiVersion: encstr.io/v1alpha1\nkind: {kind}\nmetadata: {meta}\nspec: {{}}\n"),
        );
        assert!(
            err.contains("the name is used as a label value and must be at most 63 characters"),
            "{kind}: {err}"
        );
    }
    // spec.secretName cannot change (nor be added later).
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: agents, namespace: default}\nspec: {secretName: agents-keyring}\n",
    );
    wait(20, "the master", || keyring_secret(&env, "default", "agents-keyring"));
    assert_eq!(status(&env, "default", "agents")["secretName"], "agents-keyring");
    let err = apply_refused(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: agents, namespace: default}\nspec: {secretName: renamed}\n",
    );
    assert!(err.contains("spec.secretName is immutable"), "{err}");
    assert_no_forbidden(&env);
}

#[test]
fn a_secret_keyring_stays_in_its_namespace_and_is_for_namespace_editors() {
    let (env, _) = setup("namespaced", &["print", "other"]);
    // alice edits `print` only (the chart aggregates SecretKeyrings into edit).
    env.server.add_user("alice-token", "alice", &[]);
    kubectl(
        &env,
        &["create", "rolebinding", "alice-edit", "--clusterrole=edit", "--user=alice", "-n", "print"],
    );
    let alice = env.dir.join("alice-kubeconfig");
    std::fs::write(&alice, env.server.kubeconfig_for("alice", Some("alice-token"))).unwrap();
    let skr = write(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: agents, namespace: print}\nspec: {}\n",
    );
    let (ok, _, err) = kubectl_as(&env, &alice, &["apply", "--server-side", "-f", skr.to_str().unwrap()]);
    assert!(ok, "{err}");
    let cskr = write(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: grab}\nspec: {targets: {namespaces: [other]}}\n",
    );
    let (ok, _, err) = kubectl_as(&env, &alice, &["apply", "--server-side", "-f", cskr.to_str().unwrap()]);
    assert!(!ok && err.contains(r#"User "alice" cannot patch resource "clustersecretkeyrings" in API group "encstr.io" at the cluster scope"#), "{err}");
    let (ok, out, _) = kubectl_as(&env, &alice, &["auth", "can-i", "create", "clustersecretkeyrings"]);
    assert_eq!((ok, out.trim()), (false, "no"));
    let master = wait(20, "the master", || keyring_secret(&env, "print", "agents")).0;
    // Importing another keyring's master is refused.
    let steal = write(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: copycat, namespace: print}\nspec: {importFrom: {secretRef: {name: agents}}}\n",
    );
    let (ok, _, err) = kubectl_as(&env, &alice, &["apply", "--server-side", "-f", steal.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (_, reason, msg) = wait(20, "the refusal", || {
        condition(&status(&env, "print", "copycat"), "Ready").filter(|c| c.0 == "False")
    });
    assert_eq!(reason, "ImportOfManagedSecret", "{msg}");
    assert!(keyring_secret(&env, "print", "copycat").is_none());
    // No Secret was written outside `print` for these keyrings.
    let writes: Vec<String> = env
        .server
        .recent_requests()
        .into_iter()
        .filter(|r| {
            r.user == OPERATOR_USER
                && r.resource == "secrets"
                && matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete")
        })
        .filter(|r| r.namespace != "print")
        .map(|r| r.line)
        .collect();
    assert!(writes.is_empty(), "writes outside the namespace: {writes:?}");
    assert_eq!(keyring_secret(&env, "print", "agents").unwrap().0, master);
    assert_no_forbidden(&env);
}

/// A Secret labelled as a copy of `keyring` (role `copy`), named `name`.
fn plant(env: &Env, ns: &str, name: &str, keyring: &str, text: &str) {
    kubectl(env, &["create", "secret", "generic", name, "-n", ns, &format!("--from-literal=keyring={text}")]);
    let label = format!("encstr.io/cluster-keyring={keyring}");
    kubectl(env, &["label", "secret", name, "-n", ns, &label, "encstr.io/role=copy"]);
}

/// A label is a claim, not proof: a labelled clone in a target does not
/// stall promotion and survives `Delete`, and a label planted in a
/// namespace that is no target does not hold a new keyring back.
#[test]
fn copies_are_matched_by_name_role_and_place_not_by_label() {
    let (env, _) = setup("guard-clones", &["team-a", "elsewhere"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n  targets: {namespaces: [team-a]}\n  rotation: {promotionDelay: 1s}\n  deletionPolicy: Delete\n",
    );
    let first = settled(&env, "payments", &["team-a"], 1);
    plant(&env, "team-a", "payments-clone", "payments", "not a keyring");
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1"]);
    settled(&env, "payments", &["team-a"], 2);
    assert_ne!(keyring_secret(&env, "team-a", "payments").unwrap().0, first);
    kubectl(&env, &["delete", "cskr", "payments"]);
    wait(20, "the copy deleted", || keyring_secret(&env, "team-a", "payments").is_none().then_some(()));
    let clone = kubectl_json(&env, &["get", "secret", "payments-clone", "-n", "team-a"]);
    assert!(clone.is_some(), "Delete removed a Secret the operator did not write");
    // A label planted outside the targets, before the keyring exists.
    plant(&env, "elsewhere", "fresh", "fresh", "not a keyring");
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: fresh}\nspec:\n  targets: {namespaces: [team-a]}\n",
    );
    wait(20, "fresh Ready", || (condition(&cstatus(&env, "fresh"), "Ready")?.0 == "True").then_some(()));
    converged(&env, OPERATOR_NS, "fresh", &["team-a"]);
    assert_no_forbidden(&env);
}

/// `deletionPolicy: Delete` while a guard holds: the Secrets may be the
/// last holders of the keys, so they are retained, with a Warning.
#[test]
fn delete_while_a_guard_holds_retains_the_last_copies() {
    let (env, _) = setup("guard-delete", &["team-a"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n  targets: {namespaces: [team-a]}\n  deletionPolicy: Delete\n",
    );
    let text = converged(&env, OPERATOR_NS, "payments", &["team-a"]);
    kubectl(&env, &["delete", "secret", "payments", "-n", OPERATOR_NS]);
    guarded(&env, "payments", "MasterMissing");
    kubectl(&env, &["delete", "cskr", "payments"]);
    wait(20, "the keyring gone", || kubectl_json(&env, &["get", "cskr", "payments"]).is_none().then_some(()));
    let (copy, _, s) = keyring_secret(&env, "team-a", "payments").expect("the last copy is retained");
    assert!(copy == text, "the retained copy holds the keys");
    assert!(s["metadata"]["labels"].get("encstr.io/cluster-keyring").is_none(), "no longer managed");
    let warned = events(&env, OPERATOR_NS)
        .into_iter()
        .any(|(t, r, n)| t == "Warning" && r == "DeletionRetained" && n.contains("MasterMissing"));
    assert!(warned, "a DeletionRetained Warning names the guard");
}

/// `restore-from` takes only a copy that every other copy agrees with: a
/// copy changed in one target (here: more keys than the record, so the id
/// check alone passes) does not become the master.
#[test]
fn restore_from_refuses_a_copy_the_others_disagree_with() {
    let (env, _) = setup("guard-restore-source", &["team-a", "team-b"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n  targets: {namespaces: [team-a, team-b]}\n",
    );
    let text = converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
    kubectl(&env, &["delete", "secret", "payments", "-n", OPERATOR_NS]);
    guarded(&env, "payments", "MasterMissing");
    // team-b's copy now holds an extra key in front (ids still cover the record).
    let extra = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let tampered = format!("{extra}\n{text}");
    let patch = serde_json::json!({"stringData": {"keyring": tampered}}).to_string();
    kubectl(&env, &["patch", "secret", "payments", "-n", "team-b", "--type=merge", "-p", &patch]);
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/restore-from=team-b"]);
    wait(20, "RestoreRefused", || {
        events(&env, OPERATOR_NS).into_iter().find(|(_, r, n)| r == "RestoreRefused" && n.contains("differs"))
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(keyring_secret(&env, OPERATOR_NS, "payments").is_none(), "the changed copy became the master");
    // Without the changed copy, the agreeing one rebuilds it.
    kubectl(&env, &["delete", "secret", "payments", "-n", "team-b"]);
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/restore-from=team-a", "--overwrite"]);
    let (master, _, _) = wait(20, "the master rebuilt", || keyring_secret(&env, OPERATOR_NS, "payments"));
    assert!(master == text, "rebuilt from team-a's copy");
}
