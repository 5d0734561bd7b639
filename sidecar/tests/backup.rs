//! `encstr keys backup|restore|inspect` against the reference `age` tool
//! (Debian package `age`) and OpenSSH keys from `ssh-keygen`, both ways.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Dir, KEY_A, KEY_B, bin};

const ID_A: &str = "2d353d4a";
const ID_B: &str = "07e5a8df";

fn tool(name: &str) -> Command {
    let found = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().expect("sh");
    assert!(found.status.success(), "{name} is required (apt-get install age openssh-client)");
    Command::new(name)
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn encstr(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin()).args(args).current_dir(dir).stdin(Stdio::null()).output().expect("encstr")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An age identity file and its recipient, from `age-keygen`.
fn age_identity(d: &Dir, name: &str) -> String {
    let path = d.path(name);
    let out = ok(tool("age-keygen").arg("-o").arg(&path).output().expect("age-keygen"), "age-keygen");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    said.trim().strip_prefix("Public key: ").expect("public key line").to_owned()
}

/// An unencrypted OpenSSH key pair; returns the public key line.
fn ssh_identity(d: &Dir, name: &str, kind: &str) -> String {
    let path = d.path(name);
    let mut cmd = tool("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", "offline", "-f"]).arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "3072"]);
    }
    ok(cmd.output().expect("ssh-keygen"), "ssh-keygen");
    std::fs::read_to_string(d.path(&format!("{name}.pub"))).expect("pub").trim().to_owned()
}

fn keyring(d: &Dir) -> String {
    let text = format!("{KEY_B}\n{KEY_A}\n");
    let p = d.path("keyring");
    std::fs::write(&p, &text).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    text
}

fn no_key_material(o: &Output) {
    for k in [KEY_A, KEY_B] {
        assert!(!String::from_utf8_lossy(&o.stdout).contains(k), "key material on stdout");
        assert!(!stderr(o).contains(k), "key material on stderr");
    }
}

#[test]
fn backups_open_with_age_and_age_files_restore_with_encstr() {
    let d = Dir::new("backup-age");
    let text = keyring(&d);
    let (r1, r2) = (age_identity(&d, "alice.txt"), age_identity(&d, "bob.txt"));
    let ssh = ssh_identity(&d, "carol", "ed25519");
    std::fs::write(d.path("team.txt"), format!("# the escrow team\n{r2}\n\n{ssh}\n")).expect("recipients");

    // encstr writes, age reads: every recipient opens it.
    let out =
        encstr(&d.0, &["keys", "backup", "--keyring", "keyring", "-r", &r1, "-R", "team.txt", "-o", "b.age"]);
    ok(out, "keys backup");
    let armored = std::fs::read_to_string(d.path("b.age")).expect("backup");
    assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"), "{armored}");
    assert!(!armored.contains(KEY_A) && !armored.contains(KEY_B));
    assert_eq!(std::fs::metadata(d.path("b.age")).expect("meta").permissions().mode() & 0o777, 0o600);
    for id in ["alice.txt", "bob.txt", "carol"] {
        let out = ok(
            tool("age").args(["-d", "-i"]).arg(d.path(id)).arg(d.path("b.age")).output().expect("age"),
            id,
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), text, "age -d -i {id}");
    }
    // To standard output as well.
    let out = ok(encstr(&d.0, &["keys", "backup", "--keyring", "keyring", "-r", &r1]), "backup to stdout");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    no_key_material(&out);
    // Never over an existing file.
    let out = encstr(&d.0, &["keys", "backup", "--keyring", "keyring", "-r", &r1, "-o", "b.age"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("b.age"), "{}", stderr(&out));

    // age writes (binary and armored, X25519 and SSH), encstr restores.
    for (name, args) in [
        ("bin.age", vec!["-r".to_owned(), r1.clone()]),
        ("armored.age", vec!["-a".to_owned(), "-r".to_owned(), r1.clone()]),
        ("ssh.age", vec!["-R".to_owned(), d.path("carol.pub").display().to_string()]),
    ] {
        ok(
            tool("age").args(&args).arg("-o").arg(d.path(name)).arg(d.path("keyring")).output().expect("age"),
            name,
        );
        let id = if name == "ssh.age" { "carol" } else { "alice.txt" };
        let restored = format!("restored-{name}");
        let out = encstr(&d.0, &["keys", "restore", "-i", id, "-o", &restored, name]);
        let out = ok(out, &format!("restore {name}"));
        no_key_material(&out);
        assert!(
            stderr(&out).contains(&format!("restored 2 key(s) ({ID_B},{ID_A}, primary {ID_A})")),
            "{}",
            stderr(&out)
        );
        assert_eq!(std::fs::read_to_string(d.path(&restored)).expect("restored"), text);
        let mode = std::fs::metadata(d.path(&restored)).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Never overwriting.
        let again = encstr(&d.0, &["keys", "restore", "-i", id, "-o", &restored, name]);
        assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
        // inspect opens a bare file only with an identity.
        let out = ok(encstr(&d.0, &["keys", "inspect", "-i", id, name]), "inspect");
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("keys {ID_B},{ID_A}  primary {ID_A}\n"));
        let out = encstr(&d.0, &["keys", "inspect", name]);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("without --identity"), "{}", stderr(&out));
    }
}

#[test]
fn rsa_keys_and_exported_configmaps() {
    let d = Dir::new("backup-cm");
    let text = keyring(&d);
    let rsa = ssh_identity(&d, "dave", "rsa");
    let out = encstr(&d.0, &["keys", "backup", "--keyring", "keyring", "-r", &rsa, "-o", "new.age"]);
    ok(out, "backup to rsa");
    std::fs::write(d.path("one-key"), format!("{KEY_B}\n")).expect("old ring");
    let out = encstr(&d.0, &["keys", "backup", "--keyring", "one-key", "-r", &rsa, "-o", "old.age"]);
    ok(out, "older backup");
    let entry = |f: &str| std::fs::read_to_string(d.path(f)).expect("entry");
    let (old, new) = ("20261101T080000.000Z-07e5a8df.age", "20261123T184501.123Z-2d353d4a.age");
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "agents-keyring-backup", "namespace": "print", "annotations": {
            format!("backup.encstr.io/{old}"): ID_B,
            format!("backup.encstr.io/{new}"): format!("{ID_B},{ID_A}"),
        }},
        "data": {old: entry("old.age"), new: entry("new.age")},
    });
    std::fs::write(d.path("cm.json"), serde_json::to_string_pretty(&cm).expect("json")).expect("json");
    // The YAML as kubectl prints it (block scalars for the armored text).
    let yaml = ok(
        Command::new("python3")
            .args(["-c", "import json,sys,yaml; print(yaml.safe_dump(json.load(open(sys.argv[1]))))"])
            .arg(d.path("cm.json"))
            .output()
            .expect("python3"),
        "yaml",
    );
    std::fs::write(d.path("cm.yaml"), &yaml.stdout).expect("yaml");

    for f in ["cm.json", "cm.yaml"] {
        // inspect needs no identity: the ids are recorded beside each entry.
        let out = ok(encstr(&d.0, &["keys", "inspect", f]), "inspect");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{old}  keys {ID_B}  primary {ID_B}\n{new}  keys {ID_B},{ID_A}  primary {ID_A}\n")
        );
        let out = ok(encstr(&d.0, &["keys", "inspect", "--json", f]), "inspect --json");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v[1]["key_ids"], serde_json::json!([ID_B, ID_A]));
        // The newest entry by default, another with --entry.
        let out =
            ok(encstr(&d.0, &["keys", "restore", "-i", "dave", "-o", &format!("{f}.newest"), f]), "restore");
        assert!(stderr(&out).contains(&format!("{f} entry {new}")), "{}", stderr(&out));
        assert_eq!(std::fs::read_to_string(d.path(&format!("{f}.newest"))).expect("ring"), text);
        let out =
            encstr(&d.0, &["keys", "restore", "-i", "dave", "--entry", old, "-o", &format!("{f}.old"), f]);
        ok(out, "restore --entry");
        assert_eq!(std::fs::read_to_string(d.path(&format!("{f}.old"))).expect("ring"), format!("{KEY_B}\n"));
        let out = encstr(&d.0, &["keys", "restore", "-i", "dave", "--entry", "nope.age", "-o", "x", f]);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("no entry \"nope.age\""), "{}", stderr(&out));
    }
    // To standard output (not a terminal here), e.g. into kubectl.
    let out = Command::new(bin())
        .args(["keys", "restore", "-i", "dave", "cm.json"])
        .current_dir(&d.0)
        .output()
        .expect("encstr");
    assert_eq!(String::from_utf8_lossy(&ok(out, "restore to stdout").stdout), text);
}

#[test]
fn bad_recipients_identities_and_backups_are_one_line_errors() {
    let d = Dir::new("backup-bad");
    keyring(&d);
    let r = age_identity(&d, "alice.txt");
    age_identity(&d, "mallory.txt");
    ok(encstr(&d.0, &["keys", "backup", "--keyring", "keyring", "-r", &r, "-o", "b.age"]), "backup");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["keys", "backup", "--keyring", "keyring", "-r", &r, "-r", "age1nope"],
            "encstr: error: --recipient #2: backup: recipient \"age1nope\": not a valid age X25519 recipient",
        ),
        (
            vec!["keys", "backup", "--keyring", "keyring", "-r", "ecdsa-sha2-nistp256 AAAA"],
            "not an age recipient (age1…) or an SSH public key (ssh-ed25519, ssh-rsa)",
        ),
        (
            vec!["keys", "restore", "-i", "mallory.txt", "-o", "out", "b.age"],
            "encstr: error: b.age: backup: none of the identities given opens this backup",
        ),
        (
            vec!["keys", "restore", "-i", "keyring", "-o", "out", "b.age"],
            "identity file keyring: not an age identity file",
        ),
        (
            vec!["keys", "restore", "-i", "alice.txt", "-o", "out", "keyring"],
            "keyring: not an age file or a ConfigMap",
        ),
    ];
    for (args, want) in cases {
        let out = encstr(&d.0, &args);
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line: {err}");
        no_key_material(&out);
    }
    assert!(!d.path("out").exists(), "nothing written on failure");
    // Without a recipient at all, clap refuses.
    let out = encstr(&d.0, &["keys", "backup", "--keyring", "keyring"]);
    assert_eq!(out.status.code(), Some(2));
}
