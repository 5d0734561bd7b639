//! End to end: retention prunes only keys nothing uses, counted in
//! ConfigMaps and Secrets (`data` and `binaryData`) of the master's
//! namespace, every target and every namespace still holding a copy; never
//! before `minDecryptOnlyAge`; never when a usage list fails.

mod common;

use std::time::Duration;

use common::*;
use encstr_core::{Key, Keyring};
use encstr_tests::apiserver::{Fault, Matcher};

fn blocked_by(env: &encstr_tests::harness::Env, place: &str) -> String {
    wait(30, place, || {
        let (s, r, m) = condition(&cstatus(env, "payments"), "PruneBlocked")?;
        (s == "True" && r == "KeysInUse" && m.contains(place)).then_some(m)
    })
}

#[test]
fn keys_in_use_anywhere_a_copy_went_are_kept_and_the_rest_pruned() {
    let (mut env, install) = setup("prune", &["team-a", "team-b"]);
    env.kill("operator");
    start_operator(&mut env, &install, "operator", &["--usage-scan-interval", "1s"]);
    for ns in ["team-a", "team-b"] {
        kubectl(&env, &["label", "namespace", ns, "team=payments"]);
    }
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n  targets: {namespaceSelector: {matchLabels: {team: payments}}}\n  rotation: {promotionDelay: 1s}\n  retention: {maxKeys: 2, minDecryptOnlyAge: 1s}\n---\napiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: young}\nspec:\n  targets: {namespaces: [team-a]}\n  rotation: {promotionDelay: 1s}\n  retention: {maxKeys: 1}\n",
    );
    let first = converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
    let old_line = first.lines().next().unwrap().to_owned();
    let token = encrypt_with(&env, &old_line, "db.password", "s3cr3t");
    // 1. A token in a Secret's data (team-a) blocks pruning of its key.
    kubectl(
        &env,
        &[
            "create",
            "secret",
            "generic",
            "app-creds",
            "-n",
            "team-a",
            &format!("--from-literal=password={token}"),
        ],
    );
    for (i, name) in [(1, "payments"), (2, "payments"), (1, "young")] {
        kubectl(&env, &["annotate", "cskr", name, &format!("encstr.io/rotate={i}"), "--overwrite"]);
        if name == "payments" {
            settled(&env, "payments", &["team-a", "team-b"], i + 1);
        }
    }
    let msg = blocked_by(&env, "team-a/Secret/app-creds:password");
    let old_id = cstatus(&env, "payments")["keys"][0]["id"].as_str().unwrap().to_owned();
    assert!(msg.contains(&format!("key {old_id} is used by 1 token(s)")), "{msg}");
    assert_eq!(keyring_secret(&env, OPERATOR_NS, "payments").unwrap().0.lines().count(), 3);
    assert!(
        events(&env, OPERATOR_NS)
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "PruneBlocked" && n.contains("app-creds"))
    );
    // 2. Moved into a ConfigMap's binaryData: still in use.
    kubectl(&env, &["delete", "secret", "app-creds", "-n", "team-a"]);
    let bin = env.dir.join("blob");
    std::fs::write(&bin, [&[0xff, 0xfe, 0x00][..], token.as_bytes(), &[0x80]].concat()).unwrap();
    kubectl(
        &env,
        &["create", "configmap", "app-bin", "-n", "team-a", &format!("--from-file=blob={}", bin.display())],
    );
    let cm = kubectl_json(&env, &["get", "configmap", "app-bin", "-n", "team-a"]).unwrap();
    assert!(cm["binaryData"]["blob"].is_string(), "kubectl stores non-UTF-8 files as binaryData: {cm}");
    blocked_by(&env, "team-a/ConfigMap/app-bin:blob");
    // 3. Moved to team-b, which stops matching but keeps its copy: still in
    // use, and found on the third page of the paginated scan. (The token is
    // placed before it leaves team-a, so the key is never unused meanwhile.)
    let admin = encstr_tests::harness::Client::admin(&env.server);
    for i in 0..230 {
        let body = format!(r#"{{"metadata": {{"name": "filler-{i:03}"}}, "data": {{"a": "b"}}}}"#);
        let (code, _) = admin
            .request_blocking("POST", "/api/v1/namespaces/team-b/configmaps", "application/json", &body)
            .unwrap();
        assert_eq!(code, 201);
    }
    kubectl(
        &env,
        &[
            "create",
            "configmap",
            "zz-app",
            "-n",
            "team-b",
            &format!("--from-literal=app.properties=db.password = {token}"),
        ],
    );
    kubectl(&env, &["label", "namespace", "team-b", "team-"]);
    kubectl(&env, &["delete", "configmap", "app-bin", "-n", "team-a"]);
    wait(30, "blocked by team-b/ConfigMap/zz-app only", || {
        let (s, _, m) = condition(&cstatus(&env, "payments"), "PruneBlocked")?;
        (s == "True" && m.contains("team-b/ConfigMap/zz-app:app.properties") && !m.contains("app-bin"))
            .then_some(())
    });
    wait(20, "team-b no longer a target", || {
        (cstatus(&env, "payments")["syncedTargets"] == "1/1").then_some(())
    });
    assert!(keyring_secret(&env, "team-b", "payments").is_some(), "team-b keeps its copy");
    // 4. Gone everywhere, but a usage list fails: nothing is pruned.
    let mut failing = Fault::new(
        Matcher { verb: Some("list".into()), resource: Some("configmaps".into()), ..Matcher::default() },
        1,
        500,
    );
    failing.times = 1_000_000;
    env.server.fail(failing);
    kubectl(&env, &["delete", "configmap", "zz-app", "-n", "team-b"]);
    kubectl(&env, &["annotate", "cskr", "payments", "poke=1", "--overwrite"]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        keyring_secret(&env, OPERATOR_NS, "payments").unwrap().0.lines().count(),
        3,
        "a failed list prunes nothing"
    );
    env.server.clear_faults();
    kubectl(&env, &["annotate", "cskr", "payments", "poke=2", "--overwrite"]);
    let text = wait(30, "the unused key pruned", || {
        let (text, _, _) = keyring_secret(&env, OPERATOR_NS, "payments")?;
        (text.lines().count() == 2).then_some(text)
    });
    assert!(!text.contains(&old_line));
    assert_eq!(converged(&env, OPERATOR_NS, "payments", &["team-a"]), text);
    wait(20, "PruneBlocked cleared", || {
        (condition(&cstatus(&env, "payments"), "PruneBlocked")?.0 == "False").then_some(())
    });
    assert!(events(&env, OPERATOR_NS).iter().any(|(_, r, n)| r == "KeysPruned" && n.contains(&old_id)));
    // The keyring with the default minDecryptOnlyAge (24h) kept its former primary.
    assert_eq!(
        keyring_secret(&env, OPERATOR_NS, "young").unwrap().0.lines().count(),
        2,
        "not before minDecryptOnlyAge"
    );
    // The old copy in team-b still decrypts what was made with its keys.
    let (copy_b, _, _) = keyring_secret(&env, "team-b", "payments").unwrap();
    assert_eq!(render_ok(&env, &copy_b, &format!("db.password = {token}\n")), "db.password = s3cr3t\n");
    assert_no_forbidden(&env);
}

/// The only tokens of a key live in team-b. team-b is deleted (past a scan
/// interval) and made again with the same ConfigMap: the key is still
/// there — for a listed target (never pruned while a target is missing)
/// and for a selected one (not before a quiet period since last seen in
/// use).
#[test]
fn a_namespace_deleted_and_made_again_keeps_its_keys() {
    let (mut env, install) = setup("prune-recreate", &["team-a", "team-b"]);
    env.kill("operator");
    start_operator(&mut env, &install, "operator", &["--usage-scan-interval", "1s"]);
    kubectl(&env, &["label", "namespace", "team-b", "team=pay"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: listed}\nspec:\n  targets: {namespaces: [team-a, team-b]}\n  rotation: {promotionDelay: 1s}\n  retention: {maxKeys: 1, minDecryptOnlyAge: 1s}\n---\napiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: selected}\nspec:\n  targets: {namespaceSelector: {matchLabels: {team: pay}}}\n  rotation: {promotionDelay: 1s}\n  retention: {maxKeys: 1, minDecryptOnlyAge: 12s}\n",
    );
    let mut config = String::new();
    for (name, targets) in [("listed", &["team-a", "team-b"][..]), ("selected", &["team-b"][..])] {
        let first = converged(&env, OPERATOR_NS, name, targets);
        let token = encrypt_with(&env, first.lines().next().unwrap(), &format!("{name}.password"), "s3cr3t");
        config.push_str(&format!("{name}.password = {token}\n"));
    }
    let cm = env.dir.join("app.properties");
    std::fs::write(&cm, &config).unwrap();
    let from_file = format!("--from-file=app.properties={}", cm.display());
    kubectl(&env, &["create", "configmap", "app", "-n", "team-b", &from_file]);
    for name in ["listed", "selected"] {
        kubectl(&env, &["annotate", "cskr", name, "encstr.io/rotate=1"]);
    }
    let mut old_ids = Vec::new();
    for name in ["listed", "selected"] {
        wait(40, "blocked by team-b's ConfigMap", || {
            let (s, _, m) = condition(&cstatus(&env, name), "PruneBlocked")?;
            (s == "True" && m.contains("team-b/ConfigMap/app:app.properties")).then_some(())
        });
        old_ids.push(cstatus(&env, name)["keys"][0]["id"].as_str().unwrap().to_owned());
    }
    kubectl(&env, &["delete", "namespace", "team-b", "--wait=true"]);
    wait(30, "team-b gone", || kubectl_json(&env, &["get", "namespace", "team-b"]).is_none().then_some(()));
    // Past the scan interval, several times.
    std::thread::sleep(Duration::from_secs(4));
    kubectl(&env, &["create", "namespace", "team-b"]);
    kubectl(&env, &["label", "namespace", "team-b", "team=pay"]);
    kubectl(&env, &["create", "configmap", "app", "-n", "team-b", &from_file]);
    for name in ["listed", "selected"] {
        wait(30, "blocked by team-b's ConfigMap again", || {
            let (s, _, m) = condition(&cstatus(&env, name), "PruneBlocked")?;
            (s == "True" && m.contains("team-b/ConfigMap/app:app.properties")).then_some(())
        });
        let (text, _, _) = keyring_secret(&env, OPERATOR_NS, name).unwrap();
        assert_eq!(text.lines().count(), 2, "{name}: the key team-b's config uses was pruned");
    }
    for id in &old_ids {
        let pruned = events(&env, OPERATOR_NS)
            .into_iter()
            .any(|(_, r, n)| r == "KeysPruned" && n.contains(id.as_str()));
        assert!(!pruned, "key {id} was pruned and put back?");
    }
    let listed_line = config.lines().next().unwrap();
    let rendered = render_ok(&env, &keyring_secret(&env, "team-b", "listed").unwrap().0, listed_line);
    assert!(rendered.contains("listed.password = s3cr3t"), "the app in team-b renders again");
}

/// A key whose only tokens are v2 (sealed to its recipient, by someone who
/// holds no key) is in use: it is not pruned.
#[test]
fn a_key_only_sealed_tokens_use_is_kept() {
    let (mut env, install) = setup("prune-sealed", &["print"]);
    env.kill("operator");
    start_operator(&mut env, &install, "operator", &["--usage-scan-interval", "1s"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: agents, namespace: print}\nspec:\n  rotation: {promotionDelay: 1s}\n  retention: {maxKeys: 1, minDecryptOnlyAge: 1s}\n",
    );
    let first = wait(20, "the master", || keyring_secret(&env, "print", "agents")).0;
    let token = seal_with(&env, first.lines().next().unwrap(), "smtp.password", "s3cr3t");
    let config = format!("smtp.password = {token}\n");
    kubectl(
        &env,
        &["create", "configmap", "app", "-n", "print", &format!("--from-literal=app.properties={config}")],
    );
    kubectl(&env, &["annotate", "skr", "agents", "-n", "print", "encstr.io/rotate=1"]);
    wait(40, "blocked by the sealed token", || {
        let (s, _, m) = condition(&status(&env, "print", "agents"), "PruneBlocked")?;
        (s == "True" && m.contains("print/ConfigMap/app:app.properties")).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let (text, _, _) = keyring_secret(&env, "print", "agents").unwrap();
    assert_eq!(text.lines().count(), 2, "the key only a sealed token uses was pruned");
    let rendered = render_ok(&env, &text, &config);
    assert!(rendered.contains("smtp.password = s3cr3t"), "the sealed value still opens");
}

/// The reviewer's case: a selected namespace, the only user of a key, is
/// deleted before the key is old enough to prune, and made again after:
/// the key was never seen unused for a quiet period, so it is kept.
#[test]
fn a_namespace_gone_before_its_key_is_a_candidate_keeps_the_key() {
    let (mut env, install) = setup("prune-early", &["team-b"]);
    env.kill("operator");
    start_operator(&mut env, &install, "operator", &["--usage-scan-interval", "1s"]);
    kubectl(&env, &["label", "namespace", "team-b", "team=pay"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: selected}\nspec:\n  targets: {namespaceSelector: {matchLabels: {team: pay}}}\n  rotation: {promotionDelay: 1s}\n  retention: {maxKeys: 1, minDecryptOnlyAge: 8s}\n",
    );
    let first = converged(&env, OPERATOR_NS, "selected", &["team-b"]);
    let token = encrypt_with(&env, first.lines().next().unwrap(), "db.password", "s3cr3t");
    let config = format!("db.password = {token}\n");
    let literal = format!("--from-literal=app.properties={config}");
    kubectl(&env, &["create", "configmap", "app", "-n", "team-b", &literal]);
    kubectl(&env, &["annotate", "cskr", "selected", "encstr.io/rotate=1"]);
    settled(&env, "selected", &["team-b"], 2);
    let old_id = cstatus(&env, "selected")["keys"][0]["id"].as_str().unwrap().to_owned();
    // Gone before the key has been decrypt-only for minDecryptOnlyAge.
    kubectl(&env, &["delete", "namespace", "team-b", "--wait=true"]);
    wait(30, "team-b gone", || kubectl_json(&env, &["get", "namespace", "team-b"]).is_none().then_some(()));
    // The key becomes a candidate with nothing using it (8 s after its
    // promotion), and is scanned several times.
    std::thread::sleep(Duration::from_secs(9));
    kubectl(&env, &["create", "namespace", "team-b"]);
    kubectl(&env, &["label", "namespace", "team-b", "team=pay"]);
    kubectl(&env, &["create", "configmap", "app", "-n", "team-b", &literal]);
    wait(30, "blocked by team-b's ConfigMap again", || {
        let (s, _, m) = condition(&cstatus(&env, "selected"), "PruneBlocked")?;
        (s == "True" && m.contains("team-b/ConfigMap/app:app.properties")).then_some(())
    });
    let (text, _, _) = keyring_secret(&env, OPERATOR_NS, "selected").unwrap();
    assert_eq!(text.lines().count(), 2, "the key team-b's config uses was pruned");
    let pruned =
        events(&env, OPERATOR_NS).into_iter().any(|(_, r, n)| r == "KeysPruned" && n.contains(&old_id));
    assert!(!pruned);
}

/// Counted conservatively: a token in a Secret that carries some
/// `encstr.io/` label still counts, and an `ENCSTR:` whose key id cannot be
/// read (it could be any key's) keeps every key until it is gone.
#[test]
fn labelled_secrets_count_and_an_unreadable_token_keeps_every_key() {
    let (mut env, install) = setup("prune-conservative", &["print"]);
    env.kill("operator");
    start_operator(&mut env, &install, "operator", &["--usage-scan-interval", "1s"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: agents, namespace: print}\nspec:\n  rotation: {promotionDelay: 1s}\n  retention: {maxKeys: 1, minDecryptOnlyAge: 0s}\n",
    );
    let first = wait(20, "the master", || keyring_secret(&env, "print", "agents")).0;
    let token = encrypt_with(&env, first.lines().next().unwrap(), "db.password", "s3cr3t");
    kubectl(
        &env,
        &["create", "secret", "generic", "app", "-n", "print", &format!("--from-literal=password={token}")],
    );
    kubectl(&env, &["label", "secret", "app", "-n", "print", "encstr.io/inject=true"]);
    kubectl(&env, &["annotate", "skr", "agents", "-n", "print", "encstr.io/rotate=1"]);
    let blocked_by = |place: &str| {
        wait(40, place, || {
            let (s, _, m) = condition(&status(&env, "print", "agents"), "PruneBlocked")?;
            (s == "True" && m.contains(place)).then_some(())
        })
    };
    blocked_by("print/Secret/app:password");
    let readme = "--from-literal=README=values look like ENCSTR:<base64>";
    kubectl(&env, &["create", "configmap", "docs", "-n", "print", readme]);
    kubectl(&env, &["delete", "secret", "app", "-n", "print"]);
    blocked_by("print/ConfigMap/docs:README");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        keyring_secret(&env, "print", "agents").unwrap().0.lines().count(),
        2,
        "kept while unreadable"
    );
    kubectl(&env, &["delete", "configmap", "docs", "-n", "print"]);
    wait(30, "the unused key pruned", || {
        (keyring_secret(&env, "print", "agents")?.0.lines().count() == 1).then_some(())
    });
}

/// Imported keys may protect tokens outside the cluster, where the usage
/// count cannot see them: with no token in the cluster and long past
/// `minDecryptOnlyAge`, they are kept (status `kept: Imported`, an event
/// saying why) while keys generated since are pruned as usual; with
/// `retention.pruneImported: true` they go too.
#[test]
fn imported_keys_are_pruned_only_with_the_opt_in() {
    let (mut env, install) = setup("prune-imported", &["print"]);
    env.kill("operator");
    start_operator(&mut env, &install, "operator", &["--usage-scan-interval", "1s"]);
    let legacy = Keyring::new(vec![Key::generate().unwrap(), Key::generate().unwrap()]).unwrap();
    let imported: Vec<String> = legacy.ids().iter().map(ToString::to_string).collect();
    let file = write(&env, &legacy.to_text());
    let from_file = format!("--from-file=keyring={}", file.display());
    kubectl(&env, &["create", "secret", "generic", "legacy", "-n", "print", &from_file]);
    let spec = |opt_in: &str| {
        format!(
            "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {{name: agents, namespace: print}}\nspec:\n  importFrom: {{secretRef: {{name: legacy}}}}\n  rotation: {{promotionDelay: 1s}}\n  retention: {{maxKeys: 1, minDecryptOnlyAge: 1s{opt_in}}}\n"
        )
    };
    apply(&env, &spec(""));
    let ids = |env: &encstr_tests::harness::Env| -> Vec<String> {
        status(env, "print", "agents")["keys"]
            .as_array()
            .map(|a| a.iter().map(|k| k["id"].as_str().unwrap_or_default().to_owned()).collect())
            .unwrap_or_default()
    };
    wait(20, "the imported master", || (ids(&env) == imported).then_some(()));
    // Two rotations: the first generated key is pruned once the second is
    // primary; the imported ones stay.
    let mut generated = Vec::new();
    for i in 1..=2 {
        kubectl(
            &env,
            &["annotate", "skr", "agents", "-n", "print", &format!("encstr.io/rotate={i}"), "--overwrite"],
        );
        let primary = wait(40, "the rotation", || {
            let st = status(&env, "print", "agents");
            let p = st["primaryKeyId"].as_str()?.to_owned();
            (!imported.contains(&p)
                && !generated.contains(&p)
                && condition(&st, "RotationInProgress")?.0 == "False")
                .then_some(p)
        });
        generated.push(primary);
    }
    let kept = [imported.clone(), vec![generated[1].clone()]].concat();
    wait(30, "the generated former primary pruned", || (ids(&env) == kept).then_some(()));
    // Long past minDecryptOnlyAge and the quiet period, scanned many times.
    std::thread::sleep(Duration::from_secs(5));
    let (text, _, _) = keyring_secret(&env, "print", "agents").unwrap();
    assert_eq!(text.lines().count(), 3, "an imported key was pruned");
    let st = status(&env, "print", "agents");
    for k in &st["keys"].as_array().unwrap()[..2] {
        assert_eq!((k["imported"].as_bool(), k["kept"].as_str()), (Some(true), Some("Imported")), "{k}");
    }
    assert!(st["keys"][2].get("kept").is_none() && st["keys"][2].get("imported").is_none(), "{st}");
    let said = events(&env, "print");
    assert!(
        said.iter().any(|(t, r, n)| t == "Normal"
            && r == "ImportedKeysKept"
            && n.contains(&imported[0])
            && n.contains("retention.pruneImported")),
        "{said:?}"
    );
    let pruned = |id: &str| events(&env, "print").iter().any(|(_, r, n)| r == "KeysPruned" && n.contains(id));
    assert!(pruned(&generated[0]) && !pruned(&imported[0]) && !pruned(&imported[1]));
    // The opt-in.
    apply(&env, &spec(", pruneImported: true"));
    wait(30, "the imported keys pruned", || (ids(&env) == [generated[1].clone()]).then_some(()));
    assert_eq!(keyring_secret(&env, "print", "agents").unwrap().0.lines().count(), 1);
}
