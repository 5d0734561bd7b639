//! End to end: the real `encstr-operator` process, running as the chart's
//! ServiceAccount with exactly the chart's RBAC, against the tests/ API
//! server; driven with kubectl where a user would use kubectl, checked with
//! the real `encstr` binary where an app would use it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use encstr_tests::apiserver::{Fault, Matcher};
use encstr_tests::harness::Env;

const CSKR: &str =
    "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n";

#[test]
fn distributes_identical_copies_to_listed_and_selected_namespaces() {
    let (env, _) = setup("distribute", &["team-a", "team-b", "team-c", "team-d"]);
    kubectl(&env, &["label", "namespace", "team-c", "team=payments"]);
    apply(
        &env,
        &format!(
            "{CSKR}  targets:\n    namespaces: [team-a, team-b]\n    namespaceSelector: {{matchLabels: {{team: payments}}}}\n"
        ),
    );
    let master = converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b", "team-c"]);
    assert_eq!(master.lines().count(), 1, "one fresh key");
    let (_, ids, copy) = keyring_secret(&env, "team-a", "payments").unwrap();
    let labels = &copy["metadata"]["labels"];
    assert_eq!(
        (labels["encstr.io/cluster-keyring"].as_str(), labels["encstr.io/role"].as_str()),
        (Some("payments"), Some("copy"))
    );
    let (_, _, m) = keyring_secret(&env, OPERATOR_NS, "payments").unwrap();
    assert_eq!(m["metadata"]["labels"]["encstr.io/role"], "master");
    let st = wait(20, "Ready", || {
        let st = cstatus(&env, "payments");
        (condition(&st, "Ready")?.0 == "True" && st["syncedTargets"] == "3/3").then_some(st)
    });
    assert_eq!(st["primaryKeyId"].as_str(), Some(ids.as_str()));
    assert_eq!(st["secretName"], "payments");
    assert!(keyring_secret(&env, "team-d", "payments").is_none());
    // A namespace labelled later gets its copy.
    kubectl(&env, &["label", "namespace", "team-d", "team=payments"]);
    converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b", "team-c", "team-d"]);
    // One that stops matching keeps its copy.
    kubectl(&env, &["label", "namespace", "team-c", "team-"]);
    wait(20, "team-c no longer a target", || {
        (cstatus(&env, "payments")["syncedTargets"] == "3/3").then_some(())
    });
    assert_eq!(
        keyring_secret(&env, "team-c", "payments").unwrap().0,
        master,
        "kept: apps there keep their keys"
    );
    // Key material is nowhere but in the Secrets' data.
    let object = serde_json::to_string(&kubectl_json(&env, &["get", "cskr", "payments"]).unwrap()).unwrap();
    let evs = serde_json::to_string(&events(&env, OPERATOR_NS)).unwrap();
    for line in master.lines() {
        assert!(!object.contains(line) && !evs.contains(line) && !env.log("operator").contains(line));
    }
    assert!(events(&env, OPERATOR_NS).iter().any(|(_, r, _)| r == "KeyringGenerated"));
    let table = kubectl(&env, &["get", "cskr"]);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .eq(["NAME", "PRIMARY", "KEYS", "TARGETS", "READY", "AGE"]),
        "{table}"
    );
    assert_no_forbidden(&env);
}

#[test]
fn restores_copies_and_leaves_unmanaged_secrets_alone() {
    let (env, _) = setup("restore", &["team-a", "team-b", "team-c"]);
    kubectl(
        &env,
        &["create", "secret", "generic", "payments", "-n", "team-c", "--from-literal=keyring=someone-elses"],
    );
    apply(&env, &format!("{CSKR}  targets: {{namespaces: [team-a, team-b, team-c]}}\n"));
    let master = converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
    kubectl(&env, &["delete", "secret", "payments", "-n", "team-a"]);
    kubectl(
        &env,
        &[
            "patch",
            "secret",
            "payments",
            "-n",
            "team-b",
            "--type=merge",
            "-p",
            r#"{"data":{"keyring":"dGFtcGVyZWQK"}}"#,
        ],
    );
    assert_eq!(
        converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]),
        master,
        "restored byte for byte"
    );
    let (text, _, unmanaged) = keyring_secret(&env, "team-c", "payments").unwrap();
    assert_eq!(text, "someone-elses");
    assert!(unmanaged["metadata"]["labels"].get("encstr.io/cluster-keyring").is_none());
    let st = wait(20, "the conflict reported", || {
        let st = cstatus(&env, "payments");
        let t = st["targets"].as_array()?.iter().find(|t| t["namespace"] == "team-c")?.clone();
        (t["synced"] == false).then_some(st)
    });
    let t = st["targets"].as_array().unwrap().iter().find(|t| t["namespace"] == "team-c").unwrap();
    assert_eq!(t["reason"], "SecretConflict");
    assert!(t["message"].as_str().unwrap().contains("not managed by this keyring"));
    assert_eq!(condition(&st, "KeyringDistributed").unwrap().0, "False");
    assert!(
        events(&env, OPERATOR_NS)
            .iter()
            .any(|(ty, r, n)| ty == "Warning" && r == "SecretConflict" && n.contains("team-c"))
    );
    assert_no_forbidden(&env);
}

#[test]
fn rotation_by_annotation_stages_then_promotes_and_apps_keep_decrypting() {
    let (env, _) = setup("rotate", &["team-a", "team-b"]);
    apply(
        &env,
        &format!("{CSKR}  targets: {{namespaces: [team-a, team-b]}}\n  rotation: {{promotionDelay: 3s}}\n"),
    );
    let before = converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
    let old_line = before.lines().next().unwrap().to_owned();
    let old_token = encrypt_with(&env, &old_line, "db.password", "old-secret");
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1"]);
    // Staged: copies hold the new key, just before the primary, which is unchanged.
    let staged = wait(20, "the staged key in every copy", || {
        let text = converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
        let lines: Vec<&str> = text.lines().collect();
        (lines.len() == 2 && lines[1] == old_line).then(|| lines[0].to_owned())
    });
    let st = cstatus(&env, "payments");
    assert_eq!(
        key_states(&st).iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        vec!["Staged", "Primary"]
    );
    assert_eq!(condition(&st, "RotationInProgress").unwrap().0, "True");
    let new_token = encrypt_with(&env, &staged, "smtp.password", "new-secret");
    let config = format!("db.password = {old_token}\nsmtp.password = {new_token}\n");
    let (copy, _, _) = keyring_secret(&env, "team-a", "payments").unwrap();
    assert_eq!(render_ok(&env, &copy, &config), "db.password = old-secret\nsmtp.password = new-secret\n");
    // Promoted after the delay: the new key is last (primary), the old one decrypt-only.
    let promoted = wait(30, "promotion", || {
        let text = converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
        (text.lines().last() == Some(staged.as_str())).then_some(text)
    });
    assert_eq!(promoted.lines().collect::<Vec<_>>(), vec![old_line.as_str(), staged.as_str()]);
    let st = wait(10, "status after promotion", || {
        let st = cstatus(&env, "payments");
        (key_states(&st).iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>() == ["DecryptOnly", "Primary"])
            .then_some(st)
    });
    assert!(st["lastRotationTime"].is_string() && st["keys"][0]["retiredAt"].is_string());
    let (copy, _, _) = keyring_secret(&env, "team-b", "payments").unwrap();
    assert_eq!(render_ok(&env, &copy, &config), "db.password = old-secret\nsmtp.password = new-secret\n");
    let reasons: Vec<String> = events(&env, OPERATOR_NS).into_iter().map(|(_, r, _)| r).collect();
    assert!(reasons.contains(&"KeyStaged".into()) && reasons.contains(&"KeyPromoted".into()), "{reasons:?}");
    // The same annotation value again changes nothing.
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1", "--overwrite"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(keyring_secret(&env, OPERATOR_NS, "payments").unwrap().0, promoted);
    assert_no_forbidden(&env);
}

#[test]
fn converges_despite_conflicts_server_errors_and_dropped_watches() {
    let (env, _) = setup("faults", &["team-a", "team-b"]);
    let secrets = |verb: &str| Matcher {
        verb: Some(verb.into()),
        resource: Some("secrets".into()),
        ..Matcher::default()
    };
    env.server.fail(Fault::new(secrets("update"), 1, 500));
    env.server.fail(Fault::new(secrets("update"), 3, 409));
    env.server.fail(Fault::new(secrets("create"), 1, 500));
    env.server.fail(Fault::new(
        Matcher {
            resource: Some("clustersecretkeyrings".into()),
            verb: Some("patch".into()),
            ..Matcher::default()
        },
        2,
        409,
    ));
    apply(
        &env,
        &format!("{CSKR}  targets: {{namespaces: [team-a, team-b]}}\n  rotation: {{promotionDelay: 1s}}\n"),
    );
    std::thread::sleep(Duration::from_millis(500));
    env.server.close_watches();
    converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
    env.server.fail(Fault::new(secrets("update"), 2, 500));
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=now"]);
    std::thread::sleep(Duration::from_millis(300));
    env.server.close_watches();
    let text = wait(40, "the rotation despite faults", || {
        let text = converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
        let st = cstatus(&env, "payments");
        (text.lines().count() == 2
            && condition(&st, "Ready")?.0 == "True"
            && condition(&st, "RotationInProgress")?.0 == "False")
            .then_some(text)
    });
    assert_eq!(text.lines().count(), 2);
    let codes: BTreeSet<u16> = env.server.recent_requests().iter().map(|r| r.code).collect();
    assert!(codes.contains(&500) && codes.contains(&409), "faults were hit: {codes:?}");
    let warnings: Vec<String> =
        events(&env, OPERATOR_NS).into_iter().filter(|(t, _, _)| t == "Warning").map(|(_, r, _)| r).collect();
    assert!(
        warnings.iter().any(|r| r == "ApiServerError" || r == "WriteConflict"),
        "Warning events carry the real reason: {warnings:?}"
    );
    assert_no_forbidden(&env);
}

#[test]
fn invalid_specs_set_ready_false_with_a_warning_and_write_nothing() {
    let (env, _) = setup_with("invalid", &[], &["platform"], &["--resync", "3s"]);
    kubectl(
        &env,
        &[
            "create",
            "secret",
            "generic",
            "legacy",
            "-n",
            "platform",
            "--from-literal=keyring=not a keyring line",
        ],
    );
    // A duration the CRD's pattern refuses never reaches the operator: the
    // API server answers 422, as a cluster does.
    let err = apply_refused(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: refused, namespace: platform}\nspec:\n  rotation: {every: 90days}\n",
    );
    assert!(err.contains(r#"The SecretKeyring "refused" is invalid: spec.rotation.every: Invalid value: "90days": spec.rotation.every in body should match '^([0-9]+"#), "{err}");
    assert!(kubectl_json(&env, &["get", "secretkeyring", "refused", "-n", "platform"]).is_none());
    let cases = [
        // The pattern allows it, the operator does not (under a second).
        ("bad-duration", "  rotation: {every: 500ms}\n", "InvalidDuration"),
        ("missing-import", "  importFrom: {secretRef: {name: nowhere}}\n", "ImportNotFound"),
        ("malformed-import", "  importFrom: {secretRef: {name: legacy, key: keyring}}\n", "ImportInvalid"),
    ];
    for (name, spec, reason) in cases {
        apply(
            &env,
            &format!(
                "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {{name: {name}, namespace: platform}}\nspec:\n{spec}"
            ),
        );
        let st = wait(20, reason, || {
            let st = status(&env, "platform", name);
            (condition(&st, "Ready")?.1 == reason).then_some(st)
        });
        let (s, _, msg) = condition(&st, "Ready").unwrap();
        assert_eq!(s, "False");
        assert!(!msg.contains("not a keyring line"), "never echoes Secret content: {msg}");
        assert!(keyring_secret(&env, "platform", name).is_none(), "{name}: nothing generated");
        assert!(
            events(&env, "platform").iter().any(|(t, r, _)| t == "Warning" && r == reason),
            "{reason} event"
        );
    }
    assert_eq!(
        keyring_secret(&env, "platform", "legacy").unwrap().0,
        "not a keyring line",
        "the import source untouched"
    );
    // The import Secret created later: no watch sees it (it carries no
    // encstr label), and the keyring is looked at again at the resync.
    let keyring = "--from-literal=keyring=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    kubectl(&env, &["create", "secret", "generic", "nowhere", "-n", "platform", keyring]);
    wait(30, "the import after the resync", || {
        (condition(&status(&env, "platform", "missing-import"), "Ready")?.0 == "True").then_some(())
    });
    // Fixing the spec makes it work.
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: bad-duration, namespace: platform}\nspec:\n  rotation: {every: 2160h}\n",
    );
    wait(20, "Ready after the fix", || {
        (condition(&status(&env, "platform", "bad-duration"), "Ready")?.0 == "True").then_some(())
    });
    assert_no_forbidden(&env);
}

#[test]
fn deletion_policy_delete_removes_and_retain_unlabels() {
    let (env, _) = setup("delete", &["team-a", "print"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: gone}\nspec:\n  targets: {namespaces: [team-a]}\n  deletionPolicy: Delete\n---\napiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: kept}\nspec:\n  targets: {namespaces: [team-a]}\n---\napiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: local, namespace: print}\nspec: {deletionPolicy: Delete}\n",
    );
    converged(&env, OPERATOR_NS, "gone", &["team-a"]);
    let kept = converged(&env, OPERATOR_NS, "kept", &["team-a"]);
    converged(&env, "print", "local", &[]);
    // A rotation makes a counter series of the keyring.
    kubectl(&env, &["annotate", "skr", "local", "-n", "print", "encstr.io/rotate=1"]);
    let addr = metrics_addr(&env, "operator");
    let series = |name: &str| {
        let body = scrape(&addr).unwrap_or_default();
        body.lines()
            .filter(|l| l.contains(&format!("keyring=\"{name}\"")))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    wait(20, "the rotation counted", || {
        series("local").iter().any(|l| l.starts_with("encstr_keyring_rotations_total{")).then_some(())
    });
    let obj = kubectl_json(&env, &["get", "cskr", "gone"]).unwrap();
    assert_eq!(obj["metadata"]["finalizers"][0], "encstr.io/cleanup");
    kubectl(&env, &["delete", "cskr", "gone", "kept"]);
    kubectl(&env, &["delete", "skr", "local", "-n", "print"]);
    wait(20, "the keyrings gone", || {
        let c = kubectl_json(&env, &["get", "cskr"])?;
        let s = kubectl_json(&env, &["get", "skr", "-A"])?;
        (c["items"].as_array()?.is_empty() && s["items"].as_array()?.is_empty()).then_some(())
    });
    // No series of a deleted keyring is exported any more, counters included.
    let left = || ["gone", "kept", "local"].iter().flat_map(|n| series(n)).collect::<Vec<_>>();
    let gone = (0..40).any(|_| {
        std::thread::sleep(Duration::from_millis(250));
        left().is_empty()
    });
    assert!(gone, "series of deleted keyrings: {:?}", left());
    assert!(
        keyring_secret(&env, OPERATOR_NS, "gone").is_none()
            && keyring_secret(&env, "team-a", "gone").is_none()
    );
    assert!(keyring_secret(&env, "print", "local").is_none());
    for ns in [OPERATOR_NS, "team-a"] {
        let (text, _, s) = keyring_secret(&env, ns, "kept").unwrap();
        assert_eq!(text, kept, "retained");
        assert!(s["metadata"]["labels"].get("encstr.io/cluster-keyring").is_none(), "no longer managed");
    }
    assert_no_forbidden(&env);
}

#[test]
fn only_the_leader_reconciles_and_a_standby_takes_over() {
    let mut env = Env::start("leader");
    let install = install(&env, &[]);
    kubectl(&env, &["create", "namespace", "platform"]);
    let mut pids = std::collections::BTreeMap::new();
    for id in ["one", "two"] {
        pids.insert(id, start_operator(&mut env, &install, id, &[]));
    }
    let (a, b) = (metrics_addr(&env, "one"), metrics_addr(&env, "two"));
    let leader = wait(15, "one leader", || match (is_leader(&a)?, is_leader(&b)?) {
        (true, false) => Some("one"),
        (false, true) => Some("two"),
        _ => None,
    });
    let standby = if leader == "one" { "two" } else { "one" };
    let lease = kubectl_json(&env, &["get", "lease", "encstr-operator", "-n", OPERATOR_NS]).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], leader);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: k1, namespace: platform}\nspec: {}\n",
    );
    wait(20, "k1 reconciled", || keyring_secret(&env, "platform", "k1"));
    assert!(
        env.log(standby).contains("waiting for leadership") && !env.log(standby).contains("became leader")
    );
    // SIGTERM: the leader releases the lease and the standby takes over.
    std::process::Command::new("kill").args(["-TERM", &pids[leader].to_string()]).status().unwrap();
    wait(20, "the standby to lead", || env.log(standby).contains("became leader").then_some(()));
    assert!(env.log(leader).contains("stopped"), "clean shutdown: {}", env.log(leader));
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: k2, namespace: platform}\nspec: {}\n",
    );
    wait(20, "k2 reconciled by the new leader", || keyring_secret(&env, "platform", "k2"));
    assert_no_forbidden(&env);
}

#[test]
fn confined_to_listed_namespaces_it_reconciles_only_there() {
    let (env, _) = setup_with(
        "confined",
        &["rbac.namespaces={team-a,team-b}"],
        &["team-x"],
        &["--namespaces", "team-a,team-b"],
    );
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: k, namespace: team-a}\nspec: {}\n---\napiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: k, namespace: team-x}\nspec: {}\n---\napiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: c}\nspec: {targets: {namespaces: [team-a]}}\n",
    );
    converged(&env, "team-a", "k", &[]);
    wait(20, "Ready", || (condition(&status(&env, "team-a", "k"), "Ready")?.0 == "True").then_some(()));
    std::thread::sleep(Duration::from_secs(2));
    assert!(keyring_secret(&env, "team-x", "k").is_none(), "outside its namespaces");
    assert!(status(&env, "team-x", "k").is_null());
    assert!(
        keyring_secret(&env, "team-a", "c").is_none() && cstatus(&env, "c").is_null(),
        "cluster keyrings need a cluster-wide install"
    );
    assert_no_forbidden(&env);
}

/// A target holding somebody else's Secret of the keyring's name never gets
/// a copy; a rotation still completes (docs/keys.md: such a target does not
/// hold the promotion back), and waiting for it costs few requests.
#[test]
fn a_conflicting_target_does_not_hold_a_rotation_back() {
    let (env, _) = setup("conflict-rotation", &["team-a", "team-c"]);
    kubectl(
        &env,
        &["create", "secret", "generic", "payments", "-n", "team-c", "--from-literal=keyring=theirs"],
    );
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n  targets: {namespaces: [team-a, team-c]}\n  rotation: {promotionDelay: 1s}\n",
    );
    converged(&env, OPERATOR_NS, "payments", &["team-a"]);
    wait(20, "the conflict reported", || {
        let st = cstatus(&env, "payments");
        let t = st["targets"].as_array()?.iter().find(|t| t["namespace"] == "team-c")?.clone();
        (t["reason"] == "SecretConflict").then_some(())
    });
    env.server.reset_counts();
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1"]);
    settled(&env, "payments", &["team-a"], 2);
    let lists = env.server.counts().get(&("list".to_owned(), "secrets".to_owned())).copied().unwrap_or(0);
    assert!(lists <= 10, "{lists} LISTs of Secrets for one rotation");
    assert_eq!(keyring_secret(&env, "team-c", "payments").unwrap().0, "theirs", "left alone");
}

/// A keyring held by somebody else's Secret at the master's place looks
/// again by itself: once that Secret is gone (a change no watch of the
/// operator sees), the master is created.
#[test]
fn a_master_conflict_clears_by_itself_once_the_other_secret_is_gone() {
    let (env, _) = setup_with("master-conflict", &[], &["team-a"], &["--resync", "2s"]);
    kubectl(&env, &["create", "secret", "generic", "payments", "-n", OPERATOR_NS, "--from-literal=other=x"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n  targets: {namespaces: [team-a]}\n",
    );
    wait(20, "the conflict reported", || {
        (condition(&cstatus(&env, "payments"), "Ready")?.1 == "SecretConflict").then_some(())
    });
    kubectl(&env, &["delete", "secret", "payments", "-n", OPERATOR_NS]);
    converged(&env, OPERATOR_NS, "payments", &["team-a"]);
}

/// `encstr.io/rotate` changed again right after a rotation (a loop bumping
/// it) does not rotate again before the minimum interval: the rotation is
/// deferred (`RotationDeferred`, condition and event, saying until when),
/// no key is generated meanwhile, and it happens once the interval ends.
#[test]
fn rotations_start_at_most_once_per_minimum_interval() {
    let (mut env, install) = setup("rotation-interval", &["print"]);
    env.kill("operator");
    start_operator(&mut env, &install, "operator", &["--min-rotation-interval", "15s"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: agents, namespace: print}\nspec:\n  rotation: {promotionDelay: 1s}\n",
    );
    let count = |env: &Env| status(env, "print", "agents")["keyCount"].as_u64();
    wait(20, "the master", || (count(&env) == Some(1)).then_some(()));
    let rotate = |i: u32| {
        kubectl(
            &env,
            &["annotate", "skr", "agents", "-n", "print", &format!("encstr.io/rotate={i}"), "--overwrite"],
        )
    };
    rotate(1);
    wait(30, "the first rotation", || {
        let st = status(&env, "print", "agents");
        (count(&env) == Some(2) && condition(&st, "RotationInProgress")?.1 == "Idle").then_some(())
    });
    let started = std::time::Instant::now();
    for i in 2..=5 {
        rotate(i);
        std::thread::sleep(Duration::from_millis(300));
    }
    let (_, _, message) = wait(10, "RotationDeferred", || {
        condition(&status(&env, "print", "agents"), "RotationInProgress")
            .filter(|c| c.1 == "RotationDeferred")
    });
    assert!(message.contains("--min-rotation-interval") && message.contains("15s"), "{message}");
    let said = events(&env, "print");
    assert!(
        said.iter().any(|(t, r, n)| t == "Normal" && r == "RotationDeferred" && n.contains("15s")),
        "{said:?}"
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(count(&env), Some(2), "a key was generated within the interval");
    // Once the interval ends, one rotation covers every request made meanwhile.
    wait(40, "the deferred rotation", || {
        let st = status(&env, "print", "agents");
        (count(&env) == Some(3) && condition(&st, "RotationInProgress")?.1 == "Idle").then_some(())
    });
    assert!(started.elapsed() >= Duration::from_secs(10), "not before the interval");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&env), Some(3));
}
