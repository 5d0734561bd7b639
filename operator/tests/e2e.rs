//! End to end: the real `encstr-operator` process against the tests/ API
//! server, driven with kubectl where a user would use kubectl, checked with
//! the real `encstr` binary where an app would use it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use encstr_tests::apiserver::{Fault, Matcher};
use encstr_tests::harness::{Env, binary};
use serde_json::Value;

fn crd_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/encstr.yaml")
}

fn encstr() -> PathBuf {
    let bin = binary("encstr");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p encstr` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

fn kubectl(env: &Env, args: &[&str]) -> String {
    let mut cmd = env.command("kubectl");
    cmd.args(args);
    env.run_ok(cmd)
}

fn kubectl_json(env: &Env, args: &[&str]) -> Option<Value> {
    let out = env.command("kubectl").args(args).args(["-o", "json"]).output().unwrap();
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn apply(env: &Env, yaml: &str) {
    let path = env.dir.join(format!("apply-{}.yaml", Instant::now().elapsed().as_nanos() ^ rand()));
    std::fs::write(&path, yaml).unwrap();
    kubectl(env, &["apply", "--server-side", "-f", path.to_str().unwrap()]);
}

/// Apply a manifest the API server must refuse; returns kubectl's error.
fn apply_refused(env: &Env, yaml: &str) -> String {
    let path = env.dir.join(format!("apply-{}.yaml", rand()));
    std::fs::write(&path, yaml).unwrap();
    let out = env.command("kubectl").args(["apply", "--server-side", "-f", path.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success(), "the API server accepted {yaml}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn rand() -> u128 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u128::from(u64::from_le_bytes(b))
}

fn wait<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A test environment with the CRD installed, namespaces created and the
/// operator running.
fn setup(test: &str, namespaces: &[&str]) -> Env {
    let mut env = Env::start(test);
    kubectl(&env, &["apply", "--server-side", "-f", crd_path().to_str().unwrap()]);
    for ns in namespaces {
        kubectl(&env, &["create", "namespace", ns]);
    }
    start_operator(&mut env);
    env
}

fn start_operator(env: &mut Env) {
    let mut cmd = env.command(env!("CARGO_BIN_EXE_encstr-operator"));
    cmd.args(["run", "--listen", "127.0.0.1:0", "--lease-duration", "3", "--identity", "e2e"]);
    env.spawn("operator", cmd);
}

/// The keyring text and key-ids annotation of a Secret, if it exists.
fn keyring_secret(env: &Env, ns: &str, name: &str) -> Option<(String, String, Value)> {
    let s = kubectl_json(env, &["get", "secret", name, "-n", ns])?;
    let data = s["data"]["keyring"].as_str()?;
    let text = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data).unwrap()).unwrap();
    let ids = s["metadata"]["annotations"]["encstr.io/key-ids"].as_str().unwrap_or_default().to_owned();
    Some((text, ids, s))
}

fn status(env: &Env, ns: &str, name: &str) -> Value {
    kubectl_json(env, &["get", "skr", name, "-n", ns]).map(|v| v["status"].clone()).unwrap_or(Value::Null)
}

fn condition(st: &Value, type_: &str) -> Option<(String, String, String)> {
    st["conditions"].as_array()?.iter().find(|c| c["type"] == type_).map(|c| {
        (
            c["status"].as_str().unwrap_or_default().into(),
            c["reason"].as_str().unwrap_or_default().into(),
            c["message"].as_str().unwrap_or_default().into(),
        )
    })
}

fn events(env: &Env, ns: &str) -> Vec<(String, String, String)> {
    let list = kubectl_json(env, &["get", "events.events.k8s.io", "-n", ns]).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().into(),
                e["reason"].as_str().unwrap_or_default().into(),
                e["note"].as_str().unwrap_or_default().into(),
            )
        })
        .collect()
}

/// Wait until the master and every copy in `targets` hold identical keyrings; returns the text.
fn converged(env: &Env, ns: &str, name: &str, targets: &[&str]) -> String {
    wait(30, "identical copies", || {
        let (master, ids, _) = keyring_secret(env, ns, name)?;
        for t in targets {
            let (copy, copy_ids, _) = keyring_secret(env, t, name)?;
            if copy != master || copy_ids != ids {
                return None;
            }
        }
        Some(master)
    })
}

fn key_states(st: &Value) -> Vec<(String, String)> {
    st["keys"]
        .as_array()
        .map(|ks| {
            ks.iter()
                .map(|k| (k["id"].as_str().unwrap().into(), k["state"].as_str().unwrap().into()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn distributes_identical_copies_to_listed_and_selected_namespaces() {
    let env = setup("distribute", &["platform", "team-a", "team-b", "team-c", "team-d"]);
    kubectl(&env, &["label", "namespace", "team-c", "encstr.io/keyring=payments"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: payments, namespace: platform}\nspec:\n  targets:\n    namespaces: [team-a, team-b]\n    namespaceSelector: {matchLabels: {encstr.io/keyring: payments}}\n",
    );
    let master = converged(&env, "platform", "payments", &["team-a", "team-b", "team-c"]);
    assert_eq!(master.lines().count(), 1, "one fresh key");
    let (_, ids, copy) = keyring_secret(&env, "team-a", "payments").unwrap();
    assert_eq!(copy["metadata"]["labels"]["encstr.io/keyring"], "platform.payments");
    let st = wait(20, "Ready", || {
        let st = status(&env, "platform", "payments");
        (condition(&st, "Ready")?.0 == "True").then_some(st)
    });
    assert_eq!(st["primaryKeyId"].as_str(), Some(ids.as_str()));
    assert_eq!(st["syncedTargets"], "3/3");
    assert!(keyring_secret(&env, "team-d", "payments").is_none());
    // A namespace labelled later gets its copy.
    kubectl(&env, &["label", "namespace", "team-d", "encstr.io/keyring=payments"]);
    converged(&env, "platform", "payments", &["team-a", "team-b", "team-c", "team-d"]);
    // Key material is nowhere but in the Secrets' data.
    let skr =
        serde_json::to_string(&kubectl_json(&env, &["get", "skr", "payments", "-n", "platform"]).unwrap())
            .unwrap();
    let evs = serde_json::to_string(&events(&env, "platform")).unwrap();
    for line in master.lines() {
        assert!(!skr.contains(line) && !evs.contains(line) && !env.log("operator").contains(line));
    }
    assert!(events(&env, "platform").iter().any(|(_, r, _)| r == "KeyringGenerated"));
}

#[test]
fn restores_copies_and_leaves_unmanaged_secrets_alone() {
    let env = setup("restore", &["platform", "team-a", "team-b", "team-c"]);
    kubectl(
        &env,
        &["create", "secret", "generic", "payments", "-n", "team-c", "--from-literal=keyring=someone-elses"],
    );
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: payments, namespace: platform}\nspec:\n  targets: {namespaces: [team-a, team-b, team-c]}\n",
    );
    let master = converged(&env, "platform", "payments", &["team-a", "team-b"]);
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
        converged(&env, "platform", "payments", &["team-a", "team-b"]),
        master,
        "restored byte for byte"
    );
    let (text, _, unmanaged) = keyring_secret(&env, "team-c", "payments").unwrap();
    assert_eq!(text, "someone-elses");
    assert!(unmanaged["metadata"]["labels"].get("encstr.io/keyring").is_none());
    let st = wait(20, "the conflict reported", || {
        let st = status(&env, "platform", "payments");
        let t = st["targets"].as_array()?.iter().find(|t| t["namespace"] == "team-c")?.clone();
        (t["synced"] == false).then_some(st)
    });
    let t = st["targets"].as_array().unwrap().iter().find(|t| t["namespace"] == "team-c").unwrap();
    assert!(t["message"].as_str().unwrap().contains("not managed by encstr"));
    assert_eq!(condition(&st, "KeyringDistributed").unwrap().0, "False");
    assert!(
        events(&env, "platform")
            .iter()
            .any(|(ty, r, n)| ty == "Warning" && r == "SecretConflict" && n.contains("team-c"))
    );
}

/// Render `config` with `keyring_text` through the real `encstr render`.
fn render_ok(env: &Env, keyring_text: &str, config: &str) -> String {
    let dir = env.dir.join(format!("render-{}", rand()));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("keyring"), keyring_text).unwrap();
    std::fs::write(dir.join("src/app.properties"), config).unwrap();
    let out = Command::new(encstr())
        .args(["render", "--source"])
        .arg(dir.join("src"))
        .arg("--target")
        .arg(dir.join("out"))
        .arg("--keyring")
        .arg(dir.join("keyring"))
        .arg("--termination-log")
        .arg(dir.join("tlog"))
        .output()
        .unwrap();
    assert!(out.status.success(), "render failed: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(dir.join("out/app.properties")).unwrap()
}

fn encrypt_with(env: &Env, keyring_line: &str, name: &str, plain: &str) -> String {
    let file = env.dir.join(format!("k-{}", rand()));
    std::fs::write(&file, format!("{keyring_line}\n")).unwrap();
    let mut child = Command::new(encstr())
        .args(["encrypt", "--name", name, "--keyring"])
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), plain.as_bytes()).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap().trim().to_owned()
}

#[test]
fn rotation_by_annotation_stages_then_promotes_and_apps_keep_decrypting() {
    let env = setup("rotate", &["platform", "team-a", "team-b"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: payments, namespace: platform}\nspec:\n  targets: {namespaces: [team-a, team-b]}\n  rotation: {promotionDelay: 3s}\n",
    );
    let before = converged(&env, "platform", "payments", &["team-a", "team-b"]);
    let old_line = before.lines().next().unwrap().to_owned();
    let old_token = encrypt_with(&env, &old_line, "db.password", "old-secret");
    kubectl(&env, &["annotate", "skr", "payments", "-n", "platform", "encstr.io/rotate=1"]);

    // Staged: copies hold the new key, just before the primary, which is unchanged.
    let staged = wait(20, "the staged key in every copy", || {
        let text = converged(&env, "platform", "payments", &["team-a", "team-b"]);
        let lines: Vec<&str> = text.lines().collect();
        (lines.len() == 2 && lines[1] == old_line).then(|| lines[0].to_owned())
    });
    let st = status(&env, "platform", "payments");
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
        let text = converged(&env, "platform", "payments", &["team-a", "team-b"]);
        (text.lines().last() == Some(staged.as_str())).then_some(text)
    });
    assert_eq!(promoted.lines().collect::<Vec<_>>(), vec![old_line.as_str(), staged.as_str()]);
    let st = wait(10, "status after promotion", || {
        let st = status(&env, "platform", "payments");
        (key_states(&st).iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>() == ["DecryptOnly", "Primary"])
            .then_some(st)
    });
    assert!(st["lastRotationTime"].is_string());
    let (copy, _, _) = keyring_secret(&env, "team-b", "payments").unwrap();
    assert_eq!(render_ok(&env, &copy, &config), "db.password = old-secret\nsmtp.password = new-secret\n");
    let reasons: Vec<String> = events(&env, "platform").into_iter().map(|(_, r, _)| r).collect();
    assert!(reasons.contains(&"KeyStaged".into()) && reasons.contains(&"KeyPromoted".into()), "{reasons:?}");
    // The same annotation value again changes nothing.
    kubectl(&env, &["annotate", "skr", "payments", "-n", "platform", "encstr.io/rotate=1", "--overwrite"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(keyring_secret(&env, "platform", "payments").unwrap().0, promoted);
}

#[test]
fn sigkill_at_random_points_during_rotations_loses_no_key_and_makes_none_twice() {
    let mut env = setup("crash", &["platform", "team-a", "team-b"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: payments, namespace: platform}\nspec:\n  targets: {namespaces: [team-a, team-b]}\n  rotation: {promotionDelay: 1s}\n",
    );
    converged(&env, "platform", "payments", &["team-a", "team-b"]);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut observe = |env: &Env| {
        for ns in ["platform", "team-a", "team-b"] {
            if let Some((text, _, _)) = keyring_secret(env, ns, "payments") {
                seen.extend(text.lines().map(str::to_owned));
            }
        }
    };
    for i in 1..=20 {
        kubectl(
            &env,
            &[
                "annotate",
                "skr",
                "payments",
                "-n",
                "platform",
                &format!("encstr.io/rotate={i}"),
                "--overwrite",
            ],
        );
        std::thread::sleep(Duration::from_millis((rand() % 900) as u64));
        env.kill("operator");
        observe(&env);
        start_operator(&mut env);
    }
    // Let the last rotation finish.
    let text = wait(60, "the last rotation to complete", || {
        let st = status(&env, "platform", "payments");
        let done = condition(&st, "RotationInProgress").is_some_and(|c| c.0 == "False")
            && st["keys"].as_array().is_some_and(|k| !k.is_empty());
        let text = converged(&env, "platform", "payments", &["team-a", "team-b"]);
        (done && st["keyCount"].as_u64() == Some(text.lines().count() as u64)).then_some(text)
    });
    observe(&env);
    let final_keys: BTreeSet<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(final_keys.len(), text.lines().count(), "no duplicate keys");
    let lost: Vec<&String> = seen.difference(&final_keys).collect();
    assert!(lost.is_empty(), "{} distributed key(s) lost", lost.len());
    // At most one new key per distinct request (1 initial key + 20 requests).
    assert!(final_keys.len() <= 21 && final_keys.len() >= 2, "{} keys", final_keys.len());
    let staged_events = events(&env, "platform").iter().filter(|(_, r, _)| r == "KeyStaged").count();
    assert!(staged_events <= 20);
}

#[test]
fn converges_despite_conflicts_server_errors_and_dropped_watches() {
    let env = setup("faults", &["platform", "team-a", "team-b"]);
    let secrets = |verb: &str| Matcher {
        verb: Some(verb.into()),
        resource: Some("secrets".into()),
        ..Matcher::default()
    };
    env.server.fail(Fault::new(secrets("patch"), 1, 500));
    env.server.fail(Fault::new(secrets("patch"), 3, 409));
    env.server.fail(Fault::new(secrets("create"), 1, 500));
    env.server.fail(Fault::new(
        Matcher { resource: Some("secretkeyrings".into()), verb: Some("patch".into()), ..Matcher::default() },
        2,
        409,
    ));
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: payments, namespace: platform}\nspec:\n  targets: {namespaces: [team-a, team-b]}\n  rotation: {promotionDelay: 1s}\n",
    );
    std::thread::sleep(Duration::from_millis(500));
    env.server.close_watches();
    converged(&env, "platform", "payments", &["team-a", "team-b"]);
    env.server.fail(Fault::new(secrets("patch"), 2, 500));
    kubectl(&env, &["annotate", "skr", "payments", "-n", "platform", "encstr.io/rotate=now"]);
    std::thread::sleep(Duration::from_millis(300));
    env.server.close_watches();
    let text = wait(40, "the rotation despite faults", || {
        let text = converged(&env, "platform", "payments", &["team-a", "team-b"]);
        let st = status(&env, "platform", "payments");
        (text.lines().count() == 2
            && condition(&st, "Ready")?.0 == "True"
            && condition(&st, "RotationInProgress")?.0 == "False")
            .then_some(text)
    });
    assert_eq!(text.lines().count(), 2);
    let codes: BTreeSet<u16> = env.server.recent_requests().iter().map(|r| r.code).collect();
    assert!(codes.contains(&500) && codes.contains(&409), "faults were hit: {codes:?}");
    assert!(
        events(&env, "platform").iter().any(|(t, r, _)| t == "Warning" && r.starts_with("ReconcileFailed")),
        "a Warning event for failed reconciles"
    );
}

#[test]
fn invalid_specs_set_ready_false_with_a_warning_and_write_nothing() {
    let env = setup("invalid", &["platform"]);
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
    assert!(
        err.contains(r#"The SecretKeyring "refused" is invalid: spec.rotation.every: Invalid value: "90days": spec.rotation.every in body should match '^([0-9]+"#),
        "{err}"
    );
    assert!(kubectl_json(&env, &["get", "secretkeyring", "refused", "-n", "platform"]).is_none());
    // One the pattern allows but the operator does not (under a second).
    let cases = [
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
    // Fixing the spec makes it work.
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: bad-duration, namespace: platform}\nspec:\n  rotation: {every: 2160h}\n",
    );
    wait(20, "Ready after the fix", || {
        (condition(&status(&env, "platform", "bad-duration"), "Ready")?.0 == "True").then_some(())
    });
}

#[test]
fn prunes_only_keys_no_configmap_uses() {
    let env = setup("prune", &["platform", "team-a"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: payments, namespace: platform}\nspec:\n  targets: {namespaces: [team-a]}\n  rotation: {promotionDelay: 1s}\n  retention: {maxKeys: 2}\n",
    );
    let first = converged(&env, "platform", "payments", &["team-a"]);
    let old_line = first.lines().next().unwrap().to_owned();
    let token = encrypt_with(&env, &old_line, "db.password", "s3cr3t");
    let cm_file = env.dir.join("app.properties");
    std::fs::write(&cm_file, format!("db.password = {token}\n")).unwrap();
    kubectl(
        &env,
        &[
            "create",
            "configmap",
            "app",
            "-n",
            "team-a",
            &format!("--from-file=app.properties={}", cm_file.display()),
        ],
    );
    for i in 1..=2 {
        kubectl(
            &env,
            &[
                "annotate",
                "skr",
                "payments",
                "-n",
                "platform",
                &format!("encstr.io/rotate={i}"),
                "--overwrite",
            ],
        );
        wait(30, "rotation", || {
            let st = status(&env, "platform", "payments");
            (st["keys"].as_array()?.len() >= 2
                && condition(&st, "RotationInProgress")?.0 == "False"
                && st["lastRotationTime"].is_string()
                && key_states(&st).last()?.1 == "Primary"
                && keyring_secret(&env, "platform", "payments")?.0.lines().count() == i + 1)
                .then_some(())
        });
    }
    // Three keys, limit two: the oldest is still used by the ConfigMap.
    let st = wait(20, "PruneBlocked", || {
        let st = status(&env, "platform", "payments");
        (condition(&st, "PruneBlocked")?.0 == "True").then_some(st)
    });
    let (_, reason, msg) = condition(&st, "PruneBlocked").unwrap();
    assert_eq!(reason, "KeysInUse");
    assert!(msg.contains("team-a/app:app.properties"), "{msg}");
    assert_eq!(keyring_secret(&env, "platform", "payments").unwrap().0.lines().count(), 3);
    assert!(
        events(&env, "platform").iter().any(|(t, r, _)| t == "Warning" && r == "PruneBlocked"),
        "a Warning event when pruning is blocked"
    );
    let in_use: Vec<u64> =
        st["keys"].as_array().unwrap().iter().map(|k| k["inUse"].as_u64().unwrap()).collect();
    assert_eq!(in_use, vec![1, 0, 0]);
    // Re-encrypt with the distributed keyring, update the ConfigMap: the key goes.
    let (copy, _, _) = keyring_secret(&env, "team-a", "payments").unwrap();
    let ring_file = env.dir.join("copy-keyring");
    std::fs::write(&ring_file, &copy).unwrap();
    let out = Command::new(encstr())
        .arg("reencrypt")
        .arg("--keyring")
        .arg(&ring_file)
        .arg(&cm_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cm_yaml = kubectl(
        &env,
        &[
            "create",
            "configmap",
            "app",
            "-n",
            "team-a",
            &format!("--from-file=app.properties={}", cm_file.display()),
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
    std::fs::write(env.dir.join("cm.yaml"), cm_yaml).unwrap();
    kubectl(
        &env,
        &["apply", "--server-side", "--force-conflicts", "-f", env.dir.join("cm.yaml").to_str().unwrap()],
    );
    // The operator reads ConfigMaps only when deciding; the next resync or change triggers it.
    kubectl(&env, &["annotate", "skr", "payments", "-n", "platform", "poke=1", "--overwrite"]);
    let text = wait(30, "the unused key pruned", || {
        let (text, _, _) = keyring_secret(&env, "platform", "payments")?;
        (text.lines().count() == 2).then_some(text)
    });
    assert!(!text.contains(&old_line));
    assert_eq!(converged(&env, "platform", "payments", &["team-a"]), text);
    wait(20, "PruneBlocked cleared", || {
        (condition(&status(&env, "platform", "payments"), "PruneBlocked")?.0 == "False").then_some(())
    });
    assert!(events(&env, "platform").iter().any(|(_, r, _)| r == "KeysPruned"));
    let cm = std::fs::read_to_string(&cm_file).unwrap();
    assert_eq!(render_ok(&env, &text, &cm), "db.password = s3cr3t\n");
}

#[test]
fn deletion_policy_delete_removes_and_retain_unlabels() {
    let env = setup("delete", &["platform", "team-a"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: gone, namespace: platform}\nspec:\n  targets: {namespaces: [team-a]}\n  deletionPolicy: Delete\n---\napiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: kept, namespace: platform}\nspec:\n  targets: {namespaces: [team-a]}\n",
    );
    converged(&env, "platform", "gone", &["team-a"]);
    let kept = converged(&env, "platform", "kept", &["team-a"]);
    let skr = kubectl_json(&env, &["get", "skr", "gone", "-n", "platform"]).unwrap();
    assert_eq!(skr["metadata"]["finalizers"][0], "encstr.io/cleanup");
    kubectl(&env, &["delete", "skr", "gone", "kept", "-n", "platform"]);
    wait(20, "the keyrings gone", || {
        kubectl_json(&env, &["get", "skr", "-n", "platform"])
            .and_then(|l| l["items"].as_array().unwrap().is_empty().then_some(()))
    });
    assert!(
        keyring_secret(&env, "platform", "gone").is_none()
            && keyring_secret(&env, "team-a", "gone").is_none()
    );
    for ns in ["platform", "team-a"] {
        let (text, _, s) = keyring_secret(&env, ns, "kept").unwrap();
        assert_eq!(text, kept, "retained");
        assert!(s["metadata"]["labels"].get("encstr.io/keyring").is_none(), "no longer managed");
    }
}

/// The metrics address an operator logged.
fn metrics_addr(env: &Env, label: &str) -> String {
    wait(10, "the metrics address in the log", || {
        env.log(label).lines().find_map(|l| {
            l.split("addr=").nth(1).map(|a| a.split_whitespace().next().unwrap_or_default().to_owned())
        })
    })
}

fn is_leader(addr: &str) -> Option<bool> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines().find_map(|l| l.strip_prefix("encstr_operator_leader ")).map(|v| v.trim() == "1")
}

#[test]
fn only_the_leader_reconciles_and_a_standby_takes_over() {
    let mut env = Env::start("leader");
    kubectl(&env, &["apply", "--server-side", "-f", crd_path().to_str().unwrap()]);
    kubectl(&env, &["create", "namespace", "platform"]);
    let mut pids = std::collections::BTreeMap::new();
    for id in ["one", "two"] {
        let mut cmd = env.command(env!("CARGO_BIN_EXE_encstr-operator"));
        cmd.args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--lease-duration",
            "3",
            "--identity",
            id,
            "--lease-namespace",
            "platform",
        ]);
        pids.insert(id, env.spawn(id, cmd));
    }
    let (a, b) = (metrics_addr(&env, "one"), metrics_addr(&env, "two"));
    let leader = wait(15, "one leader", || match (is_leader(&a)?, is_leader(&b)?) {
        (true, false) => Some("one"),
        (false, true) => Some("two"),
        _ => None,
    });
    let standby = if leader == "one" { "two" } else { "one" };
    let lease = kubectl_json(&env, &["get", "lease", "encstr-operator", "-n", "platform"]).unwrap();
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
    Command::new("kill").args(["-TERM", &pids[leader].to_string()]).status().unwrap();
    wait(20, "the standby to lead", || env.log(standby).contains("became leader").then_some(()));
    assert!(env.log(leader).contains("stopped"), "clean shutdown: {}", env.log(leader));
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: k2, namespace: platform}\nspec: {}\n",
    );
    wait(20, "k2 reconciled by the new leader", || keyring_secret(&env, "platform", "k2"));
}

#[test]
fn confined_to_listed_namespaces_it_writes_only_there() {
    let mut env = Env::start("confined");
    kubectl(&env, &["apply", "--server-side", "-f", crd_path().to_str().unwrap()]);
    for ns in ["platform", "team-a", "team-x"] {
        kubectl(&env, &["create", "namespace", ns]);
    }
    let mut cmd = env.command(env!("CARGO_BIN_EXE_encstr-operator"));
    cmd.args([
        "run",
        "--listen",
        "127.0.0.1:0",
        "--lease-duration",
        "3",
        "--identity",
        "c",
        "--lease-namespace",
        "platform",
        "--namespaces",
        "team-a,gone",
    ]);
    env.spawn("operator", cmd);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: k, namespace: platform}\nspec:\n  targets: {namespaces: [team-a, team-x, gone]}\n---\napiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: sel, namespace: platform}\nspec:\n  targets: {namespaceSelector: {matchLabels: {a: b}}}\n",
    );
    converged(&env, "platform", "k", &["team-a"]);
    let st = wait(20, "target states", || {
        let st = status(&env, "platform", "k");
        (st["targets"].as_array()?.len() == 3 && st["targets"][0]["message"].is_string()).then_some(st)
    });
    let msg = |ns: &str| {
        st["targets"].as_array().unwrap().iter().find(|t| t["namespace"] == ns).unwrap()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(msg("gone"), "namespace not found");
    assert!(msg("team-x").contains("confined"), "{}", msg("team-x"));
    assert!(keyring_secret(&env, "team-x", "k").is_none());
    wait(20, "selector refused", || {
        (condition(&status(&env, "platform", "sel"), "Ready")?.1 == "SelectorUnavailable").then_some(())
    });
}
