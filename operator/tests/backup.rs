//! Backups end to end on the tests/ API server, with the reference `age`
//! tool and a real S3-protocol server (`moto_server`): every key is in a
//! backup before any copy holds it, a lost master is restored from the
//! newest backup, and an unreachable store holds new keys back — only them.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use encstr_tests::harness::Env;
use serde_json::Value;

/// An age identity (file in the test's directory) and its recipient.
fn age_identity(env: &Env, name: &str) -> (PathBuf, String) {
    let path = env.dir.join(name);
    let out =
        Command::new("age-keygen").arg("-o").arg(&path).output().expect("age-keygen (apt-get install age)");
    assert!(out.status.success(), "age-keygen: {}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    (path, said.trim().strip_prefix("Public key: ").expect("public key").to_owned())
}

/// `age -d -i identity` of `armored`.
fn age_decrypt(env: &Env, identity: &Path, armored: &str) -> String {
    let file = write(env, armored);
    let out = Command::new("age").args(["-d", "-i"]).arg(identity).arg(&file).output().expect("age");
    assert!(out.status.success(), "age -d: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("text")
}

fn backup_entries(cm: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = cm["data"]
        .as_object()
        .map(|d| {
            d.iter()
                .filter(|(k, _)| k.ends_with(".age"))
                .map(|(k, v)| {
                    let ids = cm["metadata"]["annotations"][format!("backup.encstr.io/{k}")]
                        .as_str()
                        .unwrap_or_default();
                    (k.clone(), ids.to_owned(), v.as_str().unwrap_or_default().to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn key_ids(st: &Value) -> Vec<String> {
    key_states(st).into_iter().map(|(id, _)| id).collect()
}

#[test]
fn every_key_is_backed_up_before_a_copy_holds_it_and_a_lost_master_comes_back_from_a_backup() {
    let (env, _) = setup_with("backup-configmap", &["backup.configMapNamespaces={encstr}"], &["team-a"], &[]);
    let (alice, r_alice) = age_identity(&env, "alice.txt");
    let (bob, r_bob) = age_identity(&env, "bob.txt");
    let copies = record_watch(&env, "/api/v1/namespaces/team-a/secrets?watch=true");
    let backups = record_watch(&env, &format!("/api/v1/namespaces/{OPERATOR_NS}/configmaps?watch=true"));
    apply(
        &env,
        &format!(
            "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {{name: payments}}\nspec:\n  targets: {{namespaces: [team-a]}}\n  rotation: {{promotionDelay: 1s}}\n  backup:\n    recipients: [\"{r_alice}\", \"{r_bob}\"]\n    configMap: {{name: payments-backup}}\n    keep: 2\n"
        ),
    );
    let first = converged(&env, OPERATOR_NS, "payments", &["team-a"]);
    let st = wait(20, "BackupCurrent", || {
        let st = cstatus(&env, "payments");
        (condition(&st, "BackupCurrent")?.0 == "True").then_some(st)
    });
    let cm = kubectl_json(&env, &["get", "configmap", "payments-backup", "-n", OPERATOR_NS]).unwrap();
    assert_eq!(cm["metadata"]["labels"]["encstr.io/cluster-keyring"], "payments");
    assert_eq!(cm["metadata"]["labels"]["encstr.io/role"], "backup");
    let entries = backup_entries(&cm);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let (entry, ids, armored) = &entries[0];
    let primary = st["primaryKeyId"].as_str().unwrap();
    assert!(entry.ends_with(&format!("Z-{primary}.age")) && entry.len() == 33, "{entry}");
    assert_eq!(ids, primary);
    assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    // Both recipients open it with the reference tool; it is the master's keyring.
    assert_eq!(age_decrypt(&env, &alice, armored), first);
    assert_eq!(age_decrypt(&env, &bob, armored), first);
    assert_eq!(st["lastBackup"]["keyIds"], serde_json::json!([primary]));
    assert!(st["lastBackup"]["location"].as_str().unwrap().contains(entry), "{}", st["lastBackup"]);

    // Rotation: stage -> back up -> distribute -> promote -> back up -> distribute.
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1"]);
    let st = wait(40, "the promoted keyring backed up", || {
        let st = cstatus(&env, "payments");
        (key_states(&st).iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>() == ["DecryptOnly", "Primary"]
            && condition(&st, "BackupCurrent")?.0 == "True")
            .then_some(st)
    });
    let new_id = key_ids(&st)[1].clone();
    let cm = kubectl_json(&env, &["get", "configmap", "payments-backup", "-n", OPERATOR_NS]).unwrap();
    let entries = backup_entries(&cm);
    let id_lists: Vec<&str> = entries.iter().map(|(_, ids, _)| ids.as_str()).collect();
    // keep: 2 — the staged and the promoted keyring; the first entry and its annotation are gone.
    assert_eq!(id_lists, vec![format!("{new_id},{primary}"), format!("{primary},{new_id}")]);
    let annotations = cm["metadata"]["annotations"].as_object().unwrap();
    assert_eq!(annotations.keys().filter(|k| k.starts_with("backup.encstr.io/")).count(), 2);
    // The ConfigMap version holding the staged key is older than the first copy holding it.
    let backed = backups
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, o)| backup_entries(o).iter().any(|(_, ids, _)| ids.contains(&new_id)))
        .map(|(rv, _)| *rv)
        .min()
        .expect("a backup with the new key");
    let copied = copies
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, o)| {
            o["metadata"]["annotations"]["encstr.io/key-ids"].as_str().unwrap_or_default().contains(&new_id)
        })
        .map(|(rv, _)| *rv)
        .min()
        .expect("a copy with the new key");
    assert!(backed < copied, "backup at resourceVersion {backed}, first copy at {copied}");
    let reasons: Vec<String> = events(&env, OPERATOR_NS).into_iter().map(|(_, r, _)| r).collect();
    assert!(reasons.contains(&"BackupWritten".to_owned()), "{reasons:?}");
    let metrics = scrape(&metrics_addr(&env, "operator")).unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("encstr_keyring_backup_last_success_timestamp_seconds{")
            && l.contains("keyring=\"payments\"")),
        "{metrics}"
    );

    // Restore drill: the master is lost; the newest backup brings it back.
    let before = converged(&env, OPERATOR_NS, "payments", &["team-a"]);
    kubectl(&env, &["delete", "secret", "payments", "-n", OPERATOR_NS]);
    wait(20, "MasterMissing", || {
        (condition(&cstatus(&env, "payments"), "Ready")?.1 == "MasterMissing").then_some(())
    });
    let export = env.dir.join("backup.yaml");
    std::fs::write(
        &export,
        kubectl(&env, &["get", "configmap", "payments-backup", "-n", OPERATOR_NS, "-o", "yaml"]),
    )
    .unwrap();
    let inspected = run(&env, &encstr(), &["keys", "inspect", export.to_str().unwrap()]);
    assert!(inspected.lines().last().unwrap().contains(&format!("keys {primary},{new_id}")), "{inspected}");
    let restored = env.dir.join("restored-keyring");
    run(
        &env,
        &encstr(),
        &[
            "keys",
            "restore",
            "-i",
            alice.to_str().unwrap(),
            "-o",
            restored.to_str().unwrap(),
            export.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&restored).unwrap(), before);
    kubectl(
        &env,
        &[
            "create",
            "secret",
            "generic",
            "payments",
            "-n",
            OPERATOR_NS,
            &format!("--from-file=keyring={}", restored.display()),
        ],
    );
    kubectl(
        &env,
        &[
            "label",
            "secret",
            "payments",
            "-n",
            OPERATOR_NS,
            "encstr.io/cluster-keyring=payments",
            "encstr.io/role=master",
        ],
    );
    wait(30, "Ready again", || (condition(&cstatus(&env, "payments"), "Ready")?.0 == "True").then_some(()));
    assert_eq!(converged(&env, OPERATOR_NS, "payments", &["team-a"]), before, "every key, in order");
    assert_eq!(key_ids(&cstatus(&env, "payments")), vec![primary.to_owned(), new_id.clone()]);
    assert_no_forbidden(&env);
}

#[test]
fn bad_recipients_generate_nothing_and_foreign_configmaps_are_left_alone() {
    let (env, _) = setup_with("backup-invalid", &["backup.configMapNamespaces={encstr}"], &[], &[]);
    let (_, r) = age_identity(&env, "alice.txt");
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: bad}\nspec:\n  backup: {recipients: [\"age1notarecipient\"], configMap: {name: bad-backup}}\n",
    );
    let (_, reason, message) =
        wait(20, "Ready=False", || condition(&cstatus(&env, "bad"), "Ready").filter(|c| c.0 == "False"));
    assert_eq!(reason, "InvalidBackupRecipient");
    assert!(message.starts_with("spec.backup.recipients[0]: recipient \"age1notarecipient\""), "{message}");
    assert!(keyring_secret(&env, OPERATOR_NS, "bad").is_none(), "nothing generated");
    // A ConfigMap somebody else owns is never written; no key exists without a backup.
    kubectl(&env, &["create", "configmap", "theirs", "-n", OPERATOR_NS, "--from-literal=a=b"]);
    apply(
        &env,
        &format!(
            "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {{name: other}}\nspec:\n  backup: {{recipients: [\"{r}\"], configMap: {{name: theirs}}}}\n"
        ),
    );
    let (_, reason, message) = wait(20, "BackupCurrent=False", || {
        condition(&cstatus(&env, "other"), "BackupCurrent").filter(|c| c.0 == "False")
    });
    assert_eq!(reason, "BackupFailed");
    assert!(
        message.contains("configmap encstr/theirs: exists and is not managed by this keyring"),
        "{message}"
    );
    assert!(events(&env, OPERATOR_NS).iter().any(|(t, r, _)| t == "Warning" && r == "BackupConflict"));
    assert!(keyring_secret(&env, OPERATOR_NS, "other").is_none(), "no master before a backup holds its key");
    let theirs = kubectl_json(&env, &["get", "configmap", "theirs", "-n", OPERATOR_NS]).unwrap();
    assert_eq!(theirs["data"], serde_json::json!({"a": "b"}));
    assert_no_forbidden(&env);
}

/// `moto_server` on a free port (in memory: a restart loses the bucket).
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start(port: u16) -> Moto {
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (pip install 'moto[server]' boto3)");
        let m = Moto { child, port };
        wait(30, "moto_server", || std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()));
        m.s3(&["create_bucket", "escrow"]);
        m
    }

    /// boto3, a second client: `create_bucket NAME` or `list BUCKET` (keys) or `get BUCKET KEY`.
    fn s3(&self, args: &[&str]) -> String {
        const SCRIPT: &str = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="escrow", aws_secret_access_key="escrow-secret")
op = sys.argv[2]
if op == "create_bucket":
    s3.create_bucket(Bucket=sys.argv[3])
elif op == "list":
    for o in s3.list_objects_v2(Bucket=sys.argv[3]).get("Contents", []):
        print(o["Key"])
elif op == "get":
    sys.stdout.write(s3.get_object(Bucket=sys.argv[3], Key=sys.argv[4])["Body"].read().decode())
"#;
        let out = Command::new("python3")
            .args(["-c", SCRIPT, &format!("http://127.0.0.1:{}", self.port)])
            .args(args)
            .output()
            .expect("python3");
        assert!(out.status.success(), "boto3 {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[test]
fn an_s3_store_gets_new_objects_and_while_it_is_unreachable_only_new_keys_wait() {
    let port = free_port();
    let moto = Moto::start(port);
    let (env, _) = setup("backup-s3", &["team-a"]);
    let (alice, r) = age_identity(&env, "alice.txt");
    kubectl(
        &env,
        &[
            "create",
            "secret",
            "generic",
            "s3",
            "-n",
            OPERATOR_NS,
            "--from-literal=AWS_ACCESS_KEY_ID=escrow",
            "--from-literal=AWS_SECRET_ACCESS_KEY=escrow-secret",
        ],
    );
    apply(
        &env,
        &format!(
            "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {{name: payments}}\nspec:\n  targets: {{namespaces: [team-a]}}\n  rotation: {{promotionDelay: 1s}}\n  backup:\n    recipients: [\"{r}\"]\n    objectStore: {{url: \"s3://escrow/keyrings/payments\", endpoint: \"http://127.0.0.1:{port}\", region: us-east-1, credentialsSecretRef: {{name: s3}}}}\n"
        ),
    );
    let first = converged(&env, OPERATOR_NS, "payments", &["team-a"]);
    let st = wait(20, "BackupCurrent", || {
        let st = cstatus(&env, "payments");
        (condition(&st, "BackupCurrent")?.0 == "True").then_some(st)
    });
    let primary = st["primaryKeyId"].as_str().unwrap().to_owned();
    let objects: Vec<String> = moto.s3(&["list", "escrow"]).lines().map(str::to_owned).collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(
        objects[0].starts_with("keyrings/payments/") && objects[0].ends_with(&format!("Z-{primary}.age")),
        "{objects:?}"
    );
    assert_eq!(age_decrypt(&env, &alice, &moto.s3(&["get", "escrow", &objects[0]])), first);
    assert_eq!(
        st["lastBackup"]["location"],
        format!("s3://escrow/keyrings/payments/{}", &objects[0]["keyrings/payments/".len()..])
    );

    // The store goes away: a rotation stages nothing that is not backed up.
    moto.stop();
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1"]);
    let (_, reason, message) = wait(60, "BackupCurrent=False", || {
        condition(&cstatus(&env, "payments"), "BackupCurrent").filter(|c| c.0 == "False")
    });
    assert_eq!(reason, "BackupFailed");
    assert!(message.contains("s3://escrow/keyrings/payments"), "{message}");
    assert!(
        events(&env, OPERATOR_NS)
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "BackupFailed" && n.contains("s3://escrow"))
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        keyring_secret(&env, OPERATOR_NS, "payments").unwrap().0,
        first,
        "no key staged without a backup"
    );
    assert_eq!(key_ids(&cstatus(&env, "payments")), vec![primary.clone()]);
    // Keys already backed up still reach new targets.
    kubectl(&env, &["create", "namespace", "team-b"]);
    kubectl(
        &env,
        &[
            "patch",
            "cskr",
            "payments",
            "--type=merge",
            "-p",
            r#"{"spec":{"targets":{"namespaces":["team-a","team-b"]}}}"#,
        ],
    );
    assert_eq!(converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]), first);
    let metrics = scrape(&metrics_addr(&env, "operator")).unwrap();
    let failures: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("encstr_keyring_backup_failures_total{") && l.contains("keyring=\"payments\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("the failure counter");
    assert!(failures >= 1.0, "{failures}");

    // Back: the staged key is backed up, then distributed and promoted.
    let moto = Moto::start(port);
    let st = wait(90, "the rotation completes", || {
        let st = cstatus(&env, "payments");
        (key_states(&st).iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>() == ["DecryptOnly", "Primary"]
            && condition(&st, "BackupCurrent")?.0 == "True")
            .then_some(st)
    });
    let new_id = key_ids(&st)[1].clone();
    let objects = moto.s3(&["list", "escrow"]);
    assert!(
        objects.lines().any(|o| o.ends_with(&format!("-{primary}.age"))),
        "the staged keyring: {objects}"
    );
    assert!(
        objects.lines().any(|o| o.ends_with(&format!("-{new_id}.age"))),
        "the promoted keyring: {objects}"
    );
    converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
    assert_no_forbidden(&env);
}

#[test]
fn sigkill_at_random_points_never_leaves_a_key_in_a_secret_before_a_backup_holds_it() {
    let (mut env, install) =
        setup_with("backup-crash", &["backup.configMapNamespaces={encstr}"], &["team-a"], &[]);
    let (alice, r) = age_identity(&env, "alice.txt");
    let secrets = record_watch(&env, "/api/v1/secrets?watch=true");
    let backups = record_watch(&env, &format!("/api/v1/namespaces/{OPERATOR_NS}/configmaps?watch=true"));
    apply(
        &env,
        &format!(
            "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {{name: payments}}\nspec:\n  targets: {{namespaces: [team-a]}}\n  rotation: {{promotionDelay: 1s}}\n  backup: {{recipients: [\"{r}\"], configMap: {{name: payments-backup}}, keep: 100}}\n"
        ),
    );
    converged(&env, OPERATOR_NS, "payments", &["team-a"]);
    for i in 1..=8 {
        kubectl(&env, &["annotate", "cskr", "payments", &format!("encstr.io/rotate={i}"), "--overwrite"]);
        std::thread::sleep(Duration::from_millis((rand() % 700) as u64));
        env.kill("operator");
        start_operator(&mut env, &install, "operator", &[]);
    }
    let keys = wait(60, "the last rotation to complete", || {
        let st = cstatus(&env, "payments");
        let done = condition(&st, "RotationInProgress")?.0 == "False"
            && condition(&st, "BackupCurrent")?.0 == "True"
            && key_states(&st).last()?.1 == "Primary";
        let text = converged(&env, OPERATOR_NS, "payments", &["team-a"]);
        (done && st["keyCount"].as_u64() == Some(text.lines().count() as u64)).then_some(text)
    });
    caught_up(&env, &backups, &[&["configmap", "payments-backup", "-n", OPERATOR_NS]]);
    caught_up(
        &env,
        &secrets,
        &[&["secret", "payments", "-n", OPERATOR_NS], &["secret", "payments", "-n", "team-a"]],
    );
    // When each key line first appeared in a backup (decrypted with the offline identity) ...
    let mut backed: std::collections::BTreeMap<String, u64> = Default::default();
    for (rv, cm) in backups.lock().unwrap().iter() {
        for (_, _, armored) in backup_entries(cm) {
            for line in age_decrypt(&env, &alice, &armored).lines() {
                backed.entry(line.to_owned()).or_insert(*rv);
            }
        }
    }
    // ... is before it first appeared in any Secret, master or copy.
    let recorded = secrets.lock().unwrap().clone();
    let mut checked = 0;
    for (rv, s) in &recorded {
        for line in keyring_text(s).unwrap_or_default().lines().map(str::to_owned) {
            let at = backed
                .get(&line)
                .unwrap_or_else(|| panic!("a key in {} at {rv} is in no backup", s["metadata"]["namespace"]));
            assert!(
                at < rv,
                "a key reached {} at {rv}, its first backup is at {at}",
                s["metadata"]["namespace"]
            );
            checked += 1;
        }
    }
    assert!(checked > 10, "{checked} key occurrences checked");
    assert!(keys.lines().count() >= 2, "rotations happened: {keys}");
    assert_no_forbidden(&env);
}

#[test]
fn a_store_that_never_answers_fails_the_backup_within_the_timeout() {
    // Accepts connections and never answers.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for conn in hole.incoming().flatten() {
            keep.lock().unwrap().push(conn);
        }
    });
    let (env, _) = setup_with("backup-hang", &[], &[], &["--backup-timeout", "2s"]);
    let (_, r) = age_identity(&env, "alice.txt");
    kubectl(
        &env,
        &[
            "create",
            "secret",
            "generic",
            "s3",
            "-n",
            OPERATOR_NS,
            "--from-literal=AWS_ACCESS_KEY_ID=a",
            "--from-literal=AWS_SECRET_ACCESS_KEY=b",
        ],
    );
    apply(
        &env,
        &format!(
            "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {{name: payments}}\nspec:\n  backup:\n    recipients: [\"{r}\"]\n    objectStore: {{url: \"s3://escrow/p\", endpoint: \"http://127.0.0.1:{port}\", region: us-east-1, credentialsSecretRef: {{name: s3}}}}\n"
        ),
    );
    // The server holds the connection forever: only the operator's own
    // timeout ends the attempt.
    let (_, reason, message) = wait(30, "BackupCurrent=False", || {
        condition(&cstatus(&env, "payments"), "BackupCurrent").filter(|c| c.0 == "False")
    });
    assert_eq!(reason, "BackupFailed");
    assert!(message.contains("s3://escrow/p: no answer within 2 s"), "{message}");
    assert!(!held.lock().unwrap().is_empty(), "the operator did connect");
    assert!(keyring_secret(&env, OPERATOR_NS, "payments").is_none(), "no key without a backup");
    assert_eq!(condition(&cstatus(&env, "payments"), "Ready").unwrap().1, "BackupFailed");
}

#[test]
fn a_secret_keyring_is_backed_up_in_its_namespace_before_its_master_exists() {
    // install() creates the namespaces the chart's Roles are in.
    let (env, _) = setup_with("backup-skr", &["backup.configMapNamespaces={print}"], &[], &[]);
    let (alice, r) = age_identity(&env, "alice.txt");
    let secrets = record_watch(&env, "/api/v1/namespaces/print/secrets?watch=true");
    let backups = record_watch(&env, "/api/v1/namespaces/print/configmaps?watch=true");
    apply(
        &env,
        &format!(
            "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {{name: agents, namespace: print}}\nspec:\n  backup: {{recipients: [\"{r}\"], configMap: {{name: agents-backup}}}}\n"
        ),
    );
    let st = wait(20, "Ready and BackupCurrent", || {
        let st = status(&env, "print", "agents");
        (condition(&st, "Ready")?.0 == "True" && condition(&st, "BackupCurrent")?.0 == "True").then_some(st)
    });
    let (master, _, _) = keyring_secret(&env, "print", "agents").unwrap();
    let cm = kubectl_json(&env, &["get", "configmap", "agents-backup", "-n", "print"]).unwrap();
    assert_eq!(cm["metadata"]["labels"]["encstr.io/keyring"], "agents");
    let entries = backup_entries(&cm);
    assert_eq!(entries.len(), 1);
    assert_eq!(age_decrypt(&env, &alice, &entries[0].2), master);
    assert_eq!(st["lastBackup"]["keyIds"], serde_json::json!([st["primaryKeyId"]]));
    caught_up(&env, &backups, &[&["configmap", "agents-backup", "-n", "print"]]);
    caught_up(&env, &secrets, &[&["secret", "agents", "-n", "print"]]);
    let first_backup = backups.lock().unwrap().iter().map(|(rv, _)| *rv).min().expect("a backup");
    let first_master = secrets
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, s)| s["metadata"]["name"] == "agents")
        .map(|(rv, _)| *rv)
        .min()
        .expect("the master");
    assert!(first_backup < first_master, "backup at {first_backup}, master at {first_master}");
    assert_no_forbidden(&env);
}

/// An HTTP server on loopback that records every request it is sent (its
/// head and body) and answers 500 with a body that must never be quoted.
fn http_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            conn.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            let mut buf = vec![0u8; 65536];
            let n = conn.read(&mut buf).unwrap_or(0);
            out.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let body = "<Error><Message>SERVER-WORDS-NOT-TO-QUOTE</Message></Error>";
            let _ = write!(
                conn,
                "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

/// A namespace editor writes a SecretKeyring and the Secret it names: the
/// operator's own token file, a credentials URI, a custom endpoint. The
/// operator sends nothing anywhere, says why, and writes no key; an
/// allow-listed endpoint with plain credentials is reached, and what it
/// answers is not quoted back into the status.
#[test]
fn a_tenant_cannot_send_the_operators_token_or_reach_an_endpoint_the_admin_did_not_allow() {
    let (store_port, store_seen) = http_sink();
    let (creds_port, creds_seen) = http_sink();
    let (other_port, other_seen) = http_sink();
    let allowed = format!("backup.objectStore.allowedEndpoints={{http://127.0.0.1:{store_port}}}");
    // The operator runs with the flags the chart renders for that value.
    let mut env = Env::start("backup-tenant");
    let install = install(&env, &[&allowed]);
    kubectl(&env, &["create", "namespace", "team-b"]);
    let deployment = chart_objects(&env, &[&allowed], &["Deployment"]);
    let chart_args: Vec<&str> = deployment[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|a| a.starts_with("--backup-"))
        .collect();
    assert_eq!(chart_args, [format!("--backup-allowed-endpoint=http://127.0.0.1:{store_port}")]);
    let mut extra = vec!["--backup-timeout", "5s"];
    extra.extend(chart_args);
    start_operator(&mut env, &install, "operator", &extra);
    let (_, r) = age_identity(&env, "alice.txt");
    let token_file = env.dir.join("operator-token");
    std::fs::write(&token_file, "OPERATOR-SA-TOKEN").unwrap();
    let full_uri =
        format!("--from-literal=AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:{creds_port}/creds");
    let token_path =
        format!("--from-literal=AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={}", token_file.display());
    kubectl(&env, &["create", "secret", "generic", "s3", "-n", "team-b", &full_uri, &token_path]);
    let keyring = |name: &str, port: u16| {
        format!(
            "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {{name: {name}, namespace: team-b}}\nspec:\n  backup:\n    recipients: [\"{r}\"]\n    objectStore: {{url: \"s3://escrow/{name}\", endpoint: \"http://127.0.0.1:{port}\", region: us-east-1, credentialsSecretRef: {{name: s3}}}}\n"
        )
    };
    apply(&env, &keyring("agents", store_port));
    apply(&env, &keyring("elsewhere", other_port));
    let refused = |name: &str| {
        wait(30, "BackupCurrent=False", || {
            condition(&status(&env, "team-b", name), "BackupCurrent").filter(|c| c.0 == "False")
        })
        .2
    };
    let message = refused("agents");
    assert!(
        message.contains("refused: the credentials Secret team-b/s3: key \"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE\" is not allowed"),
        "{message}"
    );
    let message = refused("elsewhere");
    assert!(message.contains("backup.objectStore.allowedEndpoints"), "{message}");
    let reasons: Vec<String> = events(&env, "team-b").into_iter().map(|e| e.1).collect();
    assert!(reasons.iter().any(|r| r == "BackupRefused"), "{reasons:?}");
    // Well past the operator's 1 s retry: still nothing sent.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        creds_seen.lock().unwrap().is_empty(),
        "the credentials URI was called: {:?}",
        creds_seen.lock().unwrap()
    );
    assert!(
        store_seen.lock().unwrap().is_empty(),
        "the endpoint was called: {:?}",
        store_seen.lock().unwrap()
    );
    assert!(other_seen.lock().unwrap().is_empty(), "a disallowed endpoint was called");
    assert!(keyring_secret(&env, "team-b", "agents").is_none(), "no key without a backup");

    // Plain credentials and the allowed endpoint: the store is reached,
    // and its answer is described, not quoted.
    kubectl(&env, &["delete", "secret", "s3", "-n", "team-b"]);
    kubectl(
        &env,
        &[
            "create",
            "secret",
            "generic",
            "s3",
            "-n",
            "team-b",
            "--from-literal=AWS_ACCESS_KEY_ID=a",
            "--from-literal=AWS_SECRET_ACCESS_KEY=b",
        ],
    );
    wait(30, "a request to the allowed endpoint", || (!store_seen.lock().unwrap().is_empty()).then_some(()));
    let message = wait(30, "the store's failure", || {
        let c = condition(&status(&env, "team-b", "agents"), "BackupCurrent")?;
        (!c.2.contains("refused")).then_some(c.2)
    });
    assert!(!message.contains("SERVER-WORDS"), "the server's answer is quoted: {message}");
    let notes: Vec<String> = events(&env, "team-b").into_iter().map(|e| e.2).collect();
    assert!(!notes.iter().any(|n| n.contains("SERVER-WORDS")), "{notes:?}");
    assert!(creds_seen.lock().unwrap().is_empty() && other_seen.lock().unwrap().is_empty());
    let sent = store_seen.lock().unwrap().join("\n");
    assert!(!sent.contains("OPERATOR-SA-TOKEN"), "the token file was read and sent");
    assert_no_forbidden(&env);
}

/// The backup ConfigMap already holds `keep` entries dated in the future
/// (written while the clock was ahead, or before it stepped back): the new
/// backup is still the one kept, and what the status records exists.
#[test]
fn a_clock_step_back_does_not_trim_the_backup_just_written() {
    let (env, _) =
        setup_with("backup-clock", &[&format!("backup.configMapNamespaces={{{OPERATOR_NS}}}")], &[], &[]);
    let (alice, r) = age_identity(&env, "alice.txt");
    let future = |day: u8| format!("--from-literal=2099010{day}T000000.000Z-00000000.age=old");
    kubectl(&env, &["create", "configmap", "payments-backup", "-n", OPERATOR_NS, &future(1), &future(2)]);
    kubectl(
        &env,
        &["label", "configmap", "payments-backup", "-n", OPERATOR_NS, "encstr.io/cluster-keyring=payments"],
    );
    // Those entries look like backups of an earlier keyring: generating a
    // new one over them takes the annotation (see BackupsExist).
    apply(
        &env,
        &format!(
            "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {{name: payments, annotations: {{encstr.io/ignore-existing-backups: \"true\"}}}}\nspec:\n  backup: {{recipients: [\"{r}\"], configMap: {{name: payments-backup}}, keep: 2}}\n"
        ),
    );
    let st = wait(20, "Ready and BackupCurrent", || {
        let st = cstatus(&env, "payments");
        (condition(&st, "Ready")?.0 == "True" && condition(&st, "BackupCurrent")?.0 == "True").then_some(st)
    });
    let cm = kubectl_json(&env, &["get", "configmap", "payments-backup", "-n", OPERATOR_NS]).unwrap();
    let entries = backup_entries(&cm);
    assert_eq!(entries.len(), 2, "keep: 2");
    let location = st["lastBackup"]["location"].as_str().unwrap();
    let (newest, ids, armored) = entries.last().unwrap();
    assert!(location.ends_with(&format!("#{newest}")), "the status names the newest entry: {location}");
    assert_eq!(ids, &st["primaryKeyId"].as_str().unwrap().to_owned());
    let (master, _, _) = keyring_secret(&env, OPERATOR_NS, "payments").unwrap();
    assert_eq!(age_decrypt(&env, &alice, armored), master, "the kept entry is this keyring's backup");
    assert!(
        entries.iter().all(|(name, _, _)| name != "20990101T000000.000Z-00000000.age"),
        "the oldest went"
    );
}

/// Backups on, off, a rotation, then on again with a destination that
/// fails: the copies keep every key the master has (the last backup this
/// process remembered held only the first key), and deleting the keyring
/// with `deletionPolicy: Delete` retains them.
#[test]
fn turning_backups_back_on_with_a_failing_destination_takes_no_key_from_a_copy() {
    let set = format!("backup.configMapNamespaces={{{OPERATOR_NS}}}");
    let (env, _) = setup_with("backup-reenable", &[&set], &["team-a"], &[]);
    let (_, r) = age_identity(&env, "alice.txt");
    let keyring = |backup: &str| {
        format!(
            "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {{name: payments}}\nspec:\n  targets: {{namespaces: [team-a]}}\n  rotation: {{promotionDelay: 1s}}\n  deletionPolicy: Delete\n{backup}"
        )
    };
    let with_backup =
        keyring(&format!("  backup: {{recipients: [\"{r}\"], configMap: {{name: payments-backup}}}}\n"));
    apply(&env, &with_backup);
    wait(20, "Ready and BackupCurrent", || {
        let st = cstatus(&env, "payments");
        (condition(&st, "Ready")?.0 == "True" && condition(&st, "BackupCurrent")?.0 == "True").then_some(())
    });
    settled(&env, "payments", &["team-a"], 1);
    kubectl(
        &env,
        &["patch", "cskr", "payments", "--type=json", "-p", r#"[{"op":"remove","path":"/spec/backup"}]"#],
    );
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1"]);
    let rotated = settled(&env, "payments", &["team-a"], 2);
    // The destination now fails: somebody else's ConfigMap of that name.
    kubectl(&env, &["delete", "configmap", "payments-backup", "-n", OPERATOR_NS]);
    kubectl(&env, &["create", "configmap", "payments-backup", "-n", OPERATOR_NS, "--from-literal=theirs=1"]);
    apply(&env, &with_backup);
    let (_, reason, _) = wait(20, "BackupCurrent=False", || {
        condition(&cstatus(&env, "payments"), "BackupCurrent").filter(|c| c.0 == "False")
    });
    assert_eq!(reason, "BackupFailed");
    // Several reconciles later (backup retries start at 1 s), the copy
    // still holds both keys.
    let failures = |env: &Env| env.log("operator").matches("backup failed").count();
    for _ in 0..3 {
        let before = failures(&env);
        wait(20, "a backup retry", || (failures(&env) > before).then_some(()));
        let (copy, _, _) = keyring_secret(&env, "team-a", "payments").unwrap();
        assert!(copy == rotated, "the copy lost a key");
    }
    std::thread::sleep(Duration::from_secs(3));
    let (master, _, _) = keyring_secret(&env, OPERATOR_NS, "payments").unwrap();
    let (copy, _, _) = keyring_secret(&env, "team-a", "payments").unwrap();
    assert!(master == rotated && copy == rotated, "the master or the copy lost a key");
    // deletionPolicy Delete while a key is in no backup: the master and the
    // copy are its only holders, so they are retained.
    kubectl(&env, &["delete", "cskr", "payments"]);
    wait(20, "the keyring gone", || kubectl_json(&env, &["get", "cskr", "payments"]).is_none().then_some(()));
    for ns in [OPERATOR_NS, "team-a"] {
        let (text, _, s) = keyring_secret(&env, ns, "payments").expect("retained");
        assert!(text == rotated, "retained whole");
        assert!(s["metadata"]["labels"].get("encstr.io/cluster-keyring").is_none(), "no longer managed");
    }
    let warned = events(&env, OPERATOR_NS)
        .into_iter()
        .any(|(t, r, n)| t == "Warning" && r == "DeletionRetained" && n.contains("BackupPending"));
    assert!(warned, "a DeletionRetained Warning says the keys are in no backup");
}

/// A ClusterSecretKeyring deleted (Retain), its master and copy lost, and
/// made again: its backups are still in the ConfigMap, so no new keyring
/// is generated over them (`BackupsExist`, a Warning) until the one-shot
/// annotation `encstr.io/ignore-existing-backups` says so — which wakes
/// the keyring at once (long before a resync) and is removed after use.
#[test]
fn a_keyring_made_again_over_its_config_map_backups_generates_nothing_until_told() {
    let (env, _) = setup_with("backup-exists", &["backup.configMapNamespaces={encstr}"], &["team-a"], &[]);
    let (_, r) = age_identity(&env, "alice.txt");
    let keyring = format!(
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {{name: payments}}\nspec:\n  targets: {{namespaces: [team-a]}}\n  backup: {{recipients: [\"{r}\"], configMap: {{name: payments-backup}}}}\n  deletionPolicy: Retain\n"
    );
    apply(&env, &keyring);
    let first = converged(&env, OPERATOR_NS, "payments", &["team-a"]);
    wait(20, "BackupCurrent", || {
        (condition(&cstatus(&env, "payments"), "BackupCurrent")?.0 == "True").then_some(())
    });
    kubectl(&env, &["delete", "cskr", "payments", "--wait=true"]);
    wait(30, "the keyring gone", || kubectl_json(&env, &["get", "cskr", "payments"]).is_none().then_some(()));
    for ns in [OPERATOR_NS, "team-a"] {
        kubectl(&env, &["delete", "secret", "payments", "-n", ns]);
    }
    // Retain left the recipient ConfigMap too, unmanaged: never taken over.
    kubectl(&env, &["delete", "configmap", "payments-recipient", "-n", "team-a"]);
    apply(&env, &keyring);
    let (_, _, message) = wait(30, "BackupsExist", || {
        condition(&cstatus(&env, "payments"), "Ready").filter(|c| c.0 == "False" && c.1 == "BackupsExist")
    });
    assert!(message.contains("configmap encstr/payments-backup: 1 backup(s)"), "{message}");
    assert!(message.contains("encstr.io/ignore-existing-backups"), "{message}");
    let said = events(&env, OPERATOR_NS);
    assert!(
        said.iter().any(|(t, r, n)| t == "Warning" && r == "BackupsExist" && n.contains("payments-backup"))
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(keyring_secret(&env, OPERATOR_NS, "payments").is_none(), "a keyring was generated over backups");
    assert!(keyring_secret(&env, "team-a", "payments").is_none());
    let cm = kubectl_json(&env, &["get", "configmap", "payments-backup", "-n", OPERATOR_NS]).unwrap();
    assert_eq!(backup_entries(&cm).len(), 1, "nothing written");
    // Told: a new keyring (the operator resyncs only every 5 minutes, so
    // the annotation itself woke it).
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/ignore-existing-backups=true"]);
    let second = converged(&env, OPERATOR_NS, "payments", &["team-a"]);
    assert_ne!(second, first);
    wait(20, "the annotation removed", || {
        let k = kubectl_json(&env, &["get", "cskr", "payments"])?;
        k["metadata"]["annotations"].get("encstr.io/ignore-existing-backups").is_none().then_some(())
    });
    wait(20, "Ready", || (condition(&cstatus(&env, "payments"), "Ready")?.0 == "True").then_some(()));
    let cm = kubectl_json(&env, &["get", "configmap", "payments-backup", "-n", OPERATOR_NS]).unwrap();
    assert_eq!(backup_entries(&cm).len(), 2, "the new keyring backed up beside the old");
    assert_no_forbidden(&env);
}

/// The same with an object store (a rebuilt cluster, the bucket outside
/// it): `BackupsExist` names the store; the master restored by hand from
/// the newest object is taken as it is.
#[test]
fn a_keyring_made_again_over_its_object_store_backups_takes_the_restored_master() {
    let port = free_port();
    let moto = Moto::start(port);
    let (env, _) = setup("backup-exists-s3", &["team-a"]);
    let (alice, r) = age_identity(&env, "alice.txt");
    kubectl(
        &env,
        &[
            "create",
            "secret",
            "generic",
            "s3",
            "-n",
            OPERATOR_NS,
            "--from-literal=AWS_ACCESS_KEY_ID=escrow",
            "--from-literal=AWS_SECRET_ACCESS_KEY=escrow-secret",
        ],
    );
    let keyring = format!(
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {{name: payments}}\nspec:\n  targets: {{namespaces: [team-a]}}\n  backup:\n    recipients: [\"{r}\"]\n    objectStore: {{url: \"s3://escrow/keyrings/payments\", endpoint: \"http://127.0.0.1:{port}\", region: us-east-1, credentialsSecretRef: {{name: s3}}}}\n"
    );
    apply(&env, &keyring);
    let first = converged(&env, OPERATOR_NS, "payments", &["team-a"]);
    wait(20, "BackupCurrent", || {
        (condition(&cstatus(&env, "payments"), "BackupCurrent")?.0 == "True").then_some(())
    });
    kubectl(&env, &["delete", "cskr", "payments", "--wait=true"]);
    wait(30, "the keyring gone", || kubectl_json(&env, &["get", "cskr", "payments"]).is_none().then_some(()));
    for ns in [OPERATOR_NS, "team-a"] {
        kubectl(&env, &["delete", "secret", "payments", "-n", ns]);
    }
    // Retain left the recipient ConfigMap too, unmanaged: never taken over.
    kubectl(&env, &["delete", "configmap", "payments-recipient", "-n", "team-a"]);
    apply(&env, &keyring);
    let (_, _, message) = wait(30, "BackupsExist", || {
        condition(&cstatus(&env, "payments"), "Ready").filter(|c| c.0 == "False" && c.1 == "BackupsExist")
    });
    assert!(message.contains("s3://escrow/keyrings/payments"), "{message}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(keyring_secret(&env, OPERATOR_NS, "payments").is_none(), "a keyring was generated over backups");
    let objects: Vec<String> = moto.s3(&["list", "escrow"]).lines().map(str::to_owned).collect();
    assert_eq!(objects.len(), 1, "nothing written: {objects:?}");
    // Restored by hand from the newest object.
    let restored = write(&env, &age_decrypt(&env, &alice, &moto.s3(&["get", "escrow", &objects[0]])));
    let from_file = format!("--from-file=keyring={}", restored.display());
    kubectl(&env, &["create", "secret", "generic", "payments", "-n", OPERATOR_NS, &from_file]);
    let labels = ["encstr.io/cluster-keyring=payments", "encstr.io/role=master"];
    kubectl(&env, &[&["label", "secret", "payments", "-n", OPERATOR_NS][..], &labels[..]].concat());
    wait(30, "Ready again", || (condition(&cstatus(&env, "payments"), "Ready")?.0 == "True").then_some(()));
    assert_eq!(converged(&env, OPERATOR_NS, "payments", &["team-a"]), first, "the old keyring, everywhere");
    assert_no_forbidden(&env);
}

/// `spec.backup` names another destination: a backup written to the old
/// one does not count there, so every key the keyring holds is backed up
/// to the new one at once, without waiting for a keyring change.
#[test]
fn a_new_backup_destination_gets_every_key_at_once() {
    let (env, _) = setup_with("backup-moved", &["backup.configMapNamespaces={encstr}"], &["team-a"], &[]);
    let (alice, r) = age_identity(&env, "alice.txt");
    let keyring = |cm: &str| {
        format!(
            "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {{name: payments}}\nspec:\n  targets: {{namespaces: [team-a]}}\n  rotation: {{promotionDelay: 1s}}\n  backup: {{recipients: [\"{r}\"], configMap: {{name: {cm}}}}}\n"
        )
    };
    apply(&env, &keyring("old-backup"));
    settled(&env, "payments", &["team-a"], 1);
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1"]);
    let ring = settled(&env, "payments", &["team-a"], 2);
    wait(20, "BackupCurrent", || {
        (condition(&cstatus(&env, "payments"), "BackupCurrent")?.0 == "True").then_some(())
    });
    apply(&env, &keyring("new-backup"));
    let st = wait(20, "backed up to the new ConfigMap", || {
        let st = cstatus(&env, "payments");
        let at_new = st["lastBackup"]["location"].as_str()?.contains("configmap:encstr/new-backup#");
        (at_new && condition(&st, "BackupCurrent")?.0 == "True").then_some(st)
    });
    let cm = kubectl_json(&env, &["get", "configmap", "new-backup", "-n", OPERATOR_NS]).unwrap();
    let entries = backup_entries(&cm);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].1, key_ids(&st).join(","), "every key");
    assert_eq!(age_decrypt(&env, &alice, &entries[0].2), ring);
    assert_eq!(keyring_secret(&env, OPERATOR_NS, "payments").unwrap().0, ring, "no keyring change needed");
    assert_no_forbidden(&env);
}
