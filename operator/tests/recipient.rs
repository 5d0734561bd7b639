//! Sealing without the key, end to end: the operator publishes the
//! primary's recipient (status and `<secretName>-recipient` ConfigMaps)
//! only once every copy holds its key, under the rules of copies; values
//! sealed with the real `encstr encrypt --recipient` at the published
//! recipient render with the copy in every target, at every moment of a
//! rotation.

mod common;

use std::process::{Command, Stdio};

use common::*;
use encstr_core::Recipient;
use encstr_tests::apiserver::{Fault, Matcher};
use encstr_tests::harness::Env;
use serde_json::Value;

const CSKR: &str =
    "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n";

/// The recipient ConfigMap `name` in `ns`, if it exists.
fn config_map(env: &Env, ns: &str, name: &str) -> Option<Value> {
    kubectl_json(env, &["get", "configmap", name, "-n", ns])
}

/// The recipient a ConfigMap publishes.
fn published(env: &Env, ns: &str, name: &str) -> Option<String> {
    config_map(env, ns, name)?["data"]["recipient"].as_str().map(str::to_owned)
}

/// The primary's recipient, as `encstr keys recipient` prints it from a
/// keyring text.
fn recipient_of(env: &Env, keyring_text: &str) -> String {
    let file = write(env, keyring_text);
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = Command::new(encstr()).args(["keys", "recipient", "--keyring"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "keys recipient: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A v2 token sealed with the real `encstr encrypt --recipient` (no keyring).
fn seal(recipient: &str, name: &str, plain: &str) -> String {
    let mut child = Command::new(encstr())
        .args(["encrypt", "--name", name, "--recipient", recipient])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), plain.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "encrypt --recipient: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn target<'a>(st: &'a Value, ns: &str) -> Option<&'a Value> {
    st["targets"].as_array()?.iter().find(|t| t["namespace"] == ns)
}

#[test]
fn publishes_the_primarys_recipient_in_every_target_under_the_copy_rules() {
    let (env, _) = setup("recipient-publish", &["team-a", "team-b", "team-c"]);
    // Somebody else's ConfigMap of the recipient's name in team-c.
    kubectl(
        &env,
        &[
            "create",
            "configmap",
            "payments-recipient",
            "-n",
            "team-c",
            "--from-literal=recipient=someone-elses",
        ],
    );
    apply(
        &env,
        &format!("{CSKR}  targets: {{namespaces: [team-a, team-b, team-c]}}\n  deletionPolicy: Delete\n"),
    );
    let master = converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b", "team-c"]);
    let want = recipient_of(&env, &master);
    let st = wait(30, "status.recipient", || {
        let st = cstatus(&env, "payments");
        (st["recipient"].as_str() == Some(want.as_str())).then_some(st)
    });
    assert_eq!(Recipient::parse(&want).unwrap().key_id().to_string(), st["primaryKeyId"].as_str().unwrap());
    for ns in ["team-a", "team-b"] {
        let cm = wait(20, "the recipient ConfigMap", || config_map(&env, ns, "payments-recipient"));
        assert_eq!(cm["data"]["recipient"], want.as_str());
        let labels = &cm["metadata"]["labels"];
        assert_eq!(
            (labels["encstr.io/cluster-keyring"].as_str(), labels["encstr.io/role"].as_str()),
            (Some("payments"), Some("recipient"))
        );
    }
    // Never a takeover: team-c's ConfigMap is left alone, and said so.
    let st = wait(20, "the conflict reported", || {
        let st = cstatus(&env, "payments");
        (target(&st, "team-c")?["reason"] == "RecipientConflict").then_some(st)
    });
    assert_eq!(target(&st, "team-c").unwrap()["synced"], false);
    assert!(
        target(&st, "team-c").unwrap()["message"].as_str().unwrap().contains("not managed by this keyring")
    );
    let theirs = config_map(&env, "team-c", "payments-recipient").unwrap();
    assert_eq!(theirs["data"]["recipient"], "someone-elses");
    assert!(theirs["metadata"]["labels"].get("encstr.io/cluster-keyring").is_none());
    assert!(
        events(&env, OPERATOR_NS)
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "RecipientConflict" && n.contains("team-c")),
        "a Warning event"
    );
    assert_eq!(keyring_secret(&env, "team-c", "payments").unwrap().0, master, "the copy itself is there");
    // Deleted or edited: restored.
    kubectl(&env, &["delete", "configmap", "payments-recipient", "-n", "team-a"]);
    kubectl(
        &env,
        &[
            "patch",
            "configmap",
            "payments-recipient",
            "-n",
            "team-b",
            "--type=merge",
            "-p",
            r#"{"data":{"recipient":"ENCSTR-RECIPIENT:forged"}}"#,
        ],
    );
    for ns in ["team-a", "team-b"] {
        wait(20, "the ConfigMap restored", || {
            (published(&env, ns, "payments-recipient")? == want).then_some(())
        });
    }
    // A value sealed to it by someone holding no key renders with every copy.
    let token = seal(&want, "db.password", "s3cr3t");
    for ns in ["team-a", "team-b", "team-c"] {
        let copy = keyring_secret(&env, ns, "payments").unwrap().0;
        assert_eq!(render_ok(&env, &copy, &format!("db.password = {token}\n")), "db.password = s3cr3t\n");
    }
    // deletionPolicy: Delete removes ours, never theirs.
    kubectl(&env, &["delete", "cskr", "payments"]);
    for ns in ["team-a", "team-b"] {
        wait(20, "the ConfigMap deleted", || {
            config_map(&env, ns, "payments-recipient").is_none().then_some(())
        });
    }
    assert_eq!(published(&env, "team-c", "payments-recipient").as_deref(), Some("someone-elses"));
    assert_no_forbidden(&env);
}

#[test]
fn a_secret_keyring_publishes_in_its_namespace_and_guards_hold_the_writes() {
    let (env, _) = setup("recipient-local", &["print", "scan"]);
    kubectl(
        &env,
        &["create", "configmap", "scanner-recipient", "-n", "scan", "--from-literal=recipient=mine"],
    );
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: agents, namespace: print}\nspec: {}\n---\napiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: scanner, namespace: scan}\nspec: {}\n",
    );
    let master = converged(&env, "print", "agents", &[]);
    let want = recipient_of(&env, &master);
    wait(30, "the recipient published", || {
        (status(&env, "print", "agents")["recipient"].as_str() == Some(want.as_str())
            && published(&env, "print", "agents-recipient")? == want)
            .then_some(())
    });
    let labels = config_map(&env, "print", "agents-recipient").unwrap()["metadata"]["labels"].clone();
    assert_eq!(
        (labels["encstr.io/keyring"].as_str(), labels["encstr.io/role"].as_str()),
        (Some("agents"), Some("recipient"))
    );
    // A ConfigMap of that name that is not the keyring's: left alone, not Ready.
    let st = wait(30, "the conflict reported", || {
        let st = status(&env, "scan", "scanner");
        (condition(&st, "KeyringDistributed")?.1 == "RecipientConflict").then_some(st)
    });
    assert_eq!(condition(&st, "Ready").unwrap().0, "False");
    assert!(
        st["recipient"].as_str().is_some_and(|r| r.starts_with("ENCSTR-RECIPIENT:")),
        "status still shows it"
    );
    assert_eq!(published(&env, "scan", "scanner-recipient").as_deref(), Some("mine"));
    assert!(events(&env, "scan").iter().any(|(t, r, _)| t == "Warning" && r == "RecipientConflict"));
    // While a guard holds (the master is gone), nothing is written: a
    // deleted ConfigMap stays deleted.
    let (_, _, secret) = keyring_secret(&env, "print", "agents").unwrap();
    kubectl(&env, &["delete", "secret", "agents", "-n", "print"]);
    wait(20, "the guard", || {
        (condition(&status(&env, "print", "agents"), "Ready")?.1 == "MasterMissing").then_some(())
    });
    kubectl(&env, &["delete", "configmap", "agents-recipient", "-n", "print"]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(config_map(&env, "print", "agents-recipient").is_none(), "held back by the guard");
    assert_eq!(status(&env, "print", "agents")["recipient"].as_str(), Some(want.as_str()), "kept in status");
    // The master put back: the guard releases and the ConfigMap comes back.
    let mut back = secret.clone();
    for k in ["resourceVersion", "uid", "creationTimestamp", "managedFields"] {
        back["metadata"].as_object_mut().unwrap().remove(k);
    }
    kubectl(&env, &["create", "-f", write(&env, &back.to_string()).to_str().unwrap()]);
    wait(30, "the ConfigMap restored", || {
        (published(&env, "print", "agents-recipient")? == want).then_some(())
    });
    // deletionPolicy Retain (the default): kept, no longer managed.
    kubectl(&env, &["delete", "skr", "agents", "-n", "print"]);
    wait(20, "released", || {
        let cm = config_map(&env, "print", "agents-recipient")?;
        cm["metadata"]["labels"].get("encstr.io/keyring").is_none().then_some(cm)
    });
    assert_eq!(published(&env, "print", "agents-recipient").as_deref(), Some(want.as_str()));
    assert_no_forbidden(&env);
}

#[test]
fn values_sealed_just_before_and_just_after_a_promotion_render_in_every_target() {
    let targets = ["team-a", "team-b"];
    let (env, _) = setup("recipient-rotation", &targets);
    // The first copy in team-b fails a few times: until it is there,
    // nothing is published (not even in team-a, whose copy is there).
    let mut f = Fault::new(
        Matcher {
            verb: Some("create".into()),
            resource: Some("secrets".into()),
            namespace: Some("team-b".into()),
            ..Matcher::default()
        },
        1,
        500,
    );
    f.times = 3;
    env.server.fail(f);
    apply(
        &env,
        &format!("{CSKR}  targets: {{namespaces: [team-a, team-b]}}\n  rotation: {{promotionDelay: 3s}}\n"),
    );
    let mut early = 0;
    wait(30, "the copy in team-b", || {
        // What is published first, then the copy.
        let status_recipient = cstatus(&env, "payments")["recipient"].as_str().map(str::to_owned);
        let in_a = published(&env, "team-a", "payments-recipient");
        if keyring_secret(&env, "team-b", "payments").is_some() {
            return Some(());
        }
        early += 1;
        assert_eq!((status_recipient, in_a), (None, None), "published before every copy holds the key");
        None
    });
    assert!(early > 0, "the copy in team-b came late");
    let master = converged(&env, OPERATOR_NS, "payments", &targets);
    let first = recipient_of(&env, &master);
    wait(30, "the first recipient", || {
        targets
            .iter()
            .all(|ns| published(&env, ns, "payments-recipient").as_deref() == Some(first.as_str()))
            .then_some(())
    });
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1"]);
    // Sample through the rotation: read what is published (the status and
    // every ConfigMap), then seal to it and render with every copy as it
    // is now. The recipient never names a key some copy lacks.
    let mut seen: Vec<String> = Vec::new();
    let mut after = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while after < 3 {
        assert!(std::time::Instant::now() < deadline, "no promotion seen; saw {seen:?}");
        let mut recipients: Vec<String> =
            cstatus(&env, "payments")["recipient"].as_str().map(str::to_owned).into_iter().collect();
        recipients.extend(targets.iter().filter_map(|ns| published(&env, ns, "payments-recipient")));
        let copies: Vec<String> =
            targets.iter().map(|ns| keyring_secret(&env, ns, "payments").unwrap().0).collect();
        for (i, r) in recipients.iter().enumerate() {
            let token = seal(r, "db.password", &format!("v{i}"));
            for copy in &copies {
                let id = Recipient::parse(r).unwrap().key_id();
                let rendered = render_ok(&env, copy, &format!("db.password = {token}\n"));
                assert_eq!(rendered, format!("db.password = v{i}\n"), "sealed to {id}");
            }
            if !seen.contains(r) {
                seen.push(r.clone());
            }
        }
        if seen.len() > 1 {
            after += 1;
        }
    }
    assert_eq!(seen.first(), Some(&first), "sealed just before the promotion: the former primary");
    let st = settled(&env, "payments", &targets, 2);
    let second = recipient_of(&env, &st);
    assert_eq!(seen, vec![first, second.clone()], "just after: the new primary, nothing in between");
    assert_eq!(cstatus(&env, "payments")["recipient"].as_str(), Some(second.as_str()));
    assert_no_forbidden(&env);
}
