//! The real `encstr` binary, run as a user would: exact outputs and exit
//! codes for every command and every failure path.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Keys `a` and `b` of the published vectors.
const KEY_A: &str = "TJfYpFOWpmj0PbSthoRNEleAKc9avU5OiqXpFx7OGhA=";
const KEY_B: &str = "FNP8PqAWQgSeMPQ6XGCIF09/lUPClTG63kieec6/iGM=";
const ID_A: &str = "2d353d4a";
const ID_B: &str = "07e5a8df";
/// Vector token of key `a` for `db.password` = `s3cr3t`.
const TOKEN_A: &str = "ENCSTR:AS01PUr3wut7dI2iP2n0Z1ao/a5cPNbq9DOrvg8zTd1epafyVao/53zUVI3hujP08EnBeA4=";
/// The v2 vectors' recipients of keys `a` and `b`.
const RECIPIENT_A: &str = "ENCSTR-RECIPIENT:Ai01PUrdkXai64TkzeGjfLiVwYMqvF6GHz1BFQvuuU30mlJAQgJ/Jj8=";
const RECIPIENT_B: &str = "ENCSTR-RECIPIENT:AgflqN/aHCt/esV5K7e2OTM5ArKKU8trgwTDIYCDUvrKlLOjHOkJm7k=";
/// v2 vector token sealed to key `a` for `db.password` = `s3cr3t`.
const SEALED_A: &str =
    "ENCSTR:Ai01PUqAQILX1FycLNdPTQq8V/FpfRtsn9vP1Tnlw/bNnT19V51V/NWnfljtCwLgdmJ/m42fregTqNU=";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("encstr-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
    fn write(&self, f: &str, text: &str) -> PathBuf {
        let p = self.path(f);
        std::fs::write(&p, text).unwrap();
        p
    }
    fn read(&self, f: &str) -> String {
        std::fs::read_to_string(self.path(f)).unwrap()
    }
    /// A keyring file as `keys init` makes them: mode 0600.
    fn keyring(&self, keys: &[&str]) -> PathBuf {
        let p = self.write("keyring", &(keys.join("\n") + "\n"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }
    fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, None, &[])
    }
    fn run_with(&self, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Out {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_encstr"));
        cmd.args(args)
            .current_dir(&self.0)
            .env_remove("ENCSTR_KEYRING")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        // A command may exit before it reads its input (a refused passphrase).
        match input.write_all(stdin.unwrap_or_default()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("writing stdin: {e}"),
            _ => {}
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code().unwrap(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn no_secrets(out: &Out, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !out.stdout.contains(s) && !out.stderr.contains(s),
            "{s:?} leaked:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
}

#[test]
fn keys_init_creates_a_private_keyring_and_refuses_to_overwrite() {
    let d = Dir::new("init");
    let out = d.run(&["keys", "init", "--keyring", "k"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id =
        out.stdout.trim().strip_prefix("created k with key ").unwrap().strip_suffix(" (mode 0600)").unwrap();
    assert_eq!(id.len(), 8);
    let meta = std::fs::metadata(d.path("k")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = d.read("k");
    assert_eq!(text.lines().count(), 1);
    no_secrets(&out, &[text.trim()]);

    let again = d.run(&["keys", "init", "--keyring", "k"]);
    assert_eq!(again.code, 1);
    assert_eq!(
        again.stderr,
        "encstr: error: k: already exists; refusing to overwrite a keyring (use `encstr keys rotate` to add a key)\n"
    );
    assert_eq!(d.read("k"), text, "existing keyring untouched");
}

#[test]
fn keys_rotate_list_prune() {
    let d = Dir::new("rotate");
    d.keyring(&[KEY_A]);
    let out = d.run(&["keys", "rotate", "--keyring", "keyring"]);
    assert_eq!(out.code, 0);
    let new_id = out.stdout.trim().to_owned();
    assert_eq!(new_id.len(), 8);
    let list = d.run(&["keys", "list", "--keyring", "keyring"]);
    assert_eq!(
        list.stdout,
        format!("POS  KEY ID    ROLE\n1    {ID_A}  decrypt-only\n2    {new_id}  primary\n")
    );
    no_secrets(&list, &[KEY_A]);

    let json = d.run(&["keys", "list", "--keyring", "keyring", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v[0]["key_id"], ID_A);
    assert_eq!(v[1]["primary"], true);

    let prune = d.run(&["keys", "prune", "--keyring", "keyring", "--remove", &new_id]);
    assert_eq!(prune.code, 1);
    assert_eq!(
        prune.stderr,
        format!("encstr: error: key {new_id} is the primary key and cannot be removed (rotate first)\n")
    );
    let prune = d.run(&["keys", "prune", "--keyring", "keyring", "--keep", "1"]);
    assert_eq!(prune.stdout, format!("removed {ID_A}\n1 key(s) left, primary {new_id}\n"));
    let prune = d.run(&["keys", "prune", "--keyring", "keyring", "--keep", "3"]);
    assert_eq!(prune.stdout, format!("nothing to prune: 1 key(s), primary {new_id}\n"));
    assert_eq!(d.run(&["keys", "prune", "--keyring", "keyring", "--keep", "0"]).code, 2);
    assert_eq!(d.run(&["keys", "prune", "--keyring", "keyring"]).code, 2, "--keep or --remove required");
    let bad = d.run(&["keys", "prune", "--keyring", "keyring", "--remove", "zz"]);
    assert_eq!(
        (bad.code, bad.stderr.as_str()),
        (2, "encstr: error: \"zz\" is not a key id (8 hex digits)\n")
    );
    let unknown = d.run(&["keys", "prune", "--keyring", "keyring", "--remove", ID_B]);
    assert_eq!(
        (unknown.code, unknown.stderr.as_str()),
        (1, "encstr: error: no key 07e5a8df in the keyring\n")
    );
}

#[test]
fn broken_keyrings_name_the_line_and_never_echo_it() {
    let d = Dir::new("badring");
    d.keyring(&["# comment", KEY_A, "not-a-key-but-maybe-a-secret"]);
    let out = d.run(&["keys", "list", "--keyring", "keyring"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "encstr: error: keyring keyring: keyring line 3: not a key (expected base64 of 32 bytes)\n"
    );
    no_secrets(&out, &["not-a-key-but-maybe-a-secret", KEY_A]);
    d.keyring(&[KEY_A, KEY_A]);
    let out = d.run(&["keys", "rotate", "--keyring", "keyring"]);
    assert_eq!(
        out.stderr,
        format!("encstr: error: keyring keyring: keyring line 2: duplicate of key {ID_A}\n")
    );
    let out = d.run(&["keys", "list", "--keyring", "missing"]);
    assert_eq!(out.stderr, "encstr: error: missing: No such file or directory (os error 2)\n");
}

#[test]
fn keys_derive_matches_the_passphrase_vector() {
    let d = Dir::new("derive");
    let out = d.run_with(
        &["keys", "derive", "--passphrase-env", "PASS"],
        None,
        &[("PASS", "correct horse battery staple")],
    );
    assert_eq!(out.stdout, "mRmuvoKTVYZOjGMOdmUy8O1LxWx3rrrlAJkIaNRLgvc=\n");
    assert!(
        out.stderr.starts_with("encstr: warning: no --passphrase-salt"),
        "the default salt is warned of: {}",
        out.stderr
    );
    // The vectors' deployment salt, by flag and by environment.
    let salted = "YxujsNKMUu2GiH7lXmQoEqMB2yO8FIbpTJhePNPu/qo=\n";
    let pass = ("PASS", "correct horse battery staple");
    let out = d.run_with(
        &["keys", "derive", "--passphrase-env", "PASS", "--passphrase-salt", "prod-cluster/print-agents"],
        None,
        &[pass],
    );
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, salted, ""),
        "a chosen salt: no warning"
    );
    let out = d.run_with(
        &["keys", "derive", "--passphrase-env", "PASS"],
        None,
        &[pass, ("ENCSTR_PASSPHRASE_SALT", "prod-cluster/print-agents")],
    );
    assert_eq!(out.stdout, salted);
    let out = d.run(&["keys", "derive", "--passphrase-env", "PASS"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "encstr: error: environment variable PASS is not set or empty\n")
    );
}

#[test]
fn encrypt_decrypt_round_trip_and_keyring_sources() {
    let d = Dir::new("crypt");
    d.keyring(&[KEY_B, KEY_A]);
    let enc =
        d.run_with(&["encrypt", "--name", "db.password", "--keyring", "keyring"], Some(b"s3cr3t\n"), &[]);
    assert_eq!(enc.code, 0, "{}", enc.stderr);
    let token = enc.stdout.trim();
    assert!(token.starts_with("ENCSTR:AS01P"), "made by the primary (a): {token}");
    let dec = d.run(&["decrypt", "--name", "db.password", "--keyring", "keyring", token]);
    assert_eq!(dec.stdout, "s3cr3t", "exact bytes, no newline");
    let kept =
        d.run_with(&["encrypt", "--name", "n", "--keep-newline", "--keyring", "keyring"], Some(b"x\n"), &[]);
    let dec =
        d.run_with(&["decrypt", "--name", "n", "--keyring", "keyring"], Some(kept.stdout.as_bytes()), &[]);
    assert_eq!(dec.stdout, "x\n");

    // The same through ENCSTR_KEYRING, --keyring-env and the vector token.
    let ring_text = format!("{KEY_A}\n");
    for (args, env) in [
        (vec!["decrypt", "--name", "db.password", TOKEN_A], vec![("ENCSTR_KEYRING", "keyring")]),
        (
            vec!["decrypt", "--name", "db.password", "--keyring-env", "RING", TOKEN_A],
            vec![("RING", ring_text.as_str()), ("ENCSTR_KEYRING", "missing")],
        ),
    ] {
        let out = d.run_with(&args, None, &env);
        assert_eq!((out.code, out.stdout.as_str()), (0, "s3cr3t"), "{}", out.stderr);
    }
    let strong = ("P", "vivid-otter-quarry-lantern-94-mosaic");
    let salt = ("ENCSTR_PASSPHRASE_SALT", "test/crypt");
    let pass = d.run_with(&["encrypt", "--name", "p", "--passphrase-env", "P"], Some(b"v"), &[strong, salt]);
    assert_eq!(pass.code, 0, "{}", pass.stderr);
    let back = d.run_with(
        &["decrypt", "--name", "p", "--passphrase-env", "P", pass.stdout.trim()],
        None,
        &[strong, salt],
    );
    assert_eq!(back.stdout, "v");
    // Another salt is another key.
    let other = d.run_with(
        &["decrypt", "--name", "p", "--passphrase-env", "P", "--passphrase-salt", "x", pass.stdout.trim()],
        None,
        &[strong],
    );
    assert!(other.stderr.contains(": unknown_key: "), "{}", other.stderr);
}

#[test]
fn weak_passphrases_are_refused_unless_allowed() {
    let d = Dir::new("weak");
    for (pass, why) in [
        ("pw", "it has 2 characters, fewer than 16"),
        ("passwordpassword", "it is estimated to fall to about 10^"),
    ] {
        for args in [
            &["keys", "derive", "--passphrase-env", "P"][..],
            &["encrypt", "--name", "n", "--passphrase-env", "P"],
            &["decrypt", "--name", "n", "--passphrase-env", "P", TOKEN_A],
        ] {
            let out = d.run_with(args, Some(b"v"), &[("P", pass)]);
            assert_eq!(out.code, 1, "{args:?}");
            assert!(
                out.stderr.starts_with(&format!(
                    "encstr: error: the passphrase in $P is too weak to protect a key: {why}"
                )) && out.stderr.ends_with("or accept it with --allow-weak-passphrase\n"),
                "{}",
                out.stderr
            );
            no_secrets(&out, &[pass]);
        }
    }
    let out = d.run_with(
        &["keys", "derive", "--passphrase-env", "P", "--allow-weak-passphrase"],
        None,
        &[("P", "pw")],
    );
    assert_eq!((out.code, out.stdout.len()), (0, 45), "{}", out.stderr);
}

#[test]
fn decrypt_failures_are_one_line_with_kind_name_key_and_advice() {
    let d = Dir::new("decfail");
    d.keyring(&[KEY_A]);
    let cases = [
        (
            "db.password",
            TOKEN_A.replace("BeA4=", "BeA8="),
            "db.password: authentication_failed: key 2d353d4a does not verify the token (altered, made for another secret name, or made with another key); check the secret name (and --name-prefix) the value was sealed for, or re-seal it",
        ),
        (
            "smtp.password",
            TOKEN_A.to_owned(),
            "smtp.password: authentication_failed: key 2d353d4a does not verify the token (altered, made for another secret name, or made with another key); check the secret name (and --name-prefix) the value was sealed for, or re-seal it",
        ),
        (
            "db.password",
            TOKEN_A.replace("AS01", "AdI1"),
            "db.password: unknown_key: no key d2353d4a in the keyring (was it pruned, or is this the wrong keyring?); use a keyring that holds this key, or re-encrypt the value",
        ),
        (
            "db.password",
            TOKEN_A.replace("AS01", "Ay01"),
            "db.password: unsupported_version: token version 3 (this encstr reads versions 1 and 2); upgrade encstr",
        ),
        (
            "db.password",
            "ENCSTR:!!".to_owned(),
            "db.password: malformed: not a valid token: not canonical standard base64 (padded, no white space, unused bits zero); the value starts with ENCSTR: but is not a token: re-seal it",
        ),
        (
            "db.password",
            "hunter2".to_owned(),
            "db.password: malformed: not a valid token: does not start with ENCSTR:; the value starts with ENCSTR: but is not a token: re-seal it",
        ),
    ];
    for (name, token, msg) in cases {
        let out = d.run(&["decrypt", "--name", name, "--keyring", "keyring", &token]);
        assert_eq!(out.code, 1);
        assert_eq!(out.stdout, "");
        assert_eq!(out.stderr, format!("encstr: error: {msg}\n"));
        no_secrets(&out, &["s3cr3t", &TOKEN_A[7..40], KEY_A]);
    }
    let none = d.run(&["decrypt", "--name", "x", TOKEN_A]);
    assert_eq!(none.code, 2);
    assert!(none.stderr.starts_with("encstr: error: no keyring: give --keyring FILE"), "{}", none.stderr);
}

#[test]
fn seal_check_reencrypt_across_formats() {
    let d = Dir::new("seal");
    d.keyring(&[KEY_A]);
    let files = [
        ("app.properties", "# app\ndb.password = s3cr3t\ndb.user = app\n"),
        ("app.env", "export API_TOKEN=\"tok en\" # c\nPORT=8080\n"),
        ("app.yaml", "db:\n  password: 's3cr3t'  # keep\n  host: db\nservers:\n  - token: abc\n"),
        ("app.json", "{\"smtp\": {\"password\": \"p\\\"w\"}, \"n\": 1}\n"),
        ("app.toml", "[ldap]\nbind_password = 'x'\nurl = \"ldap://\"\n"),
        ("db.password", "raw-secret\n"),
    ];
    for (f, text) in files {
        d.write(f, text);
    }
    let names: Vec<&str> = files.iter().map(|(f, _)| *f).collect();

    let dry = d.run(&[&["seal", "--dry-run", "--keyring", "keyring"][..], &names].concat());
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.contains("app.yaml:2 db.password: would seal with key 2d353d4a\n"), "{}", dry.stdout);
    assert!(dry.stdout.ends_with("would seal 7 value(s) in 6 file(s)\n"), "{}", dry.stdout);
    for (f, text) in files {
        assert_eq!(d.read(f), text, "dry run changes nothing");
    }

    let sealed = d.run(&[&["seal", "--keyring", "keyring"][..], &names].concat());
    assert_eq!(sealed.code, 0, "{}", sealed.stderr);
    assert_eq!(
        sealed
            .stdout
            .lines()
            .filter(|l| !l.starts_with("sealed"))
            .map(|l| l.split(' ').next().unwrap())
            .collect::<Vec<_>>(),
        vec![
            "app.properties:2",
            "app.env:1",
            "app.yaml:2",
            "app.yaml:5",
            "app.json:1",
            "app.toml:2",
            "db.password:1"
        ]
    );
    no_secrets(&sealed, &["s3cr3t", "tok en", "raw-secret"]);
    // Formatting around sealed values is untouched.
    let yaml = d.read("app.yaml");
    assert!(
        yaml.starts_with("db:\n  password: 'ENCSTR:AS01P")
            && yaml.contains("'  # keep\n  host: db\nservers:\n  - token: ENCSTR:"),
        "{yaml}"
    );
    assert!(
        d.read("app.env").starts_with("export API_TOKEN=\"ENCSTR:")
            && d.read("app.env").ends_with("\" # c\nPORT=8080\n")
    );
    assert!(d.read("db.password").ends_with("=\n") && d.read("db.password").starts_with("ENCSTR:"));

    // Sealing again is a no-op.
    let again = d.run(&["seal", "--keyring", "keyring", "app.yaml"]);
    assert_eq!(again.stdout, "app.yaml: nothing to seal\nsealed 0 value(s) in 0 file(s)\n");

    let check = d.run(&[&["check", "--keyring", "keyring"][..], &names].concat());
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(check.stdout.contains("app.yaml:5 servers[0].token 2d353d4a v1 ok\n"), "{}", check.stdout);
    assert_eq!(check.stderr, "7 token(s) in 6 file(s): 7 ok, 0 failed\n");

    // Rotate, re-encrypt: every token moves to the new primary.
    let new_id = d.run(&["keys", "rotate", "--keyring", "keyring"]).stdout.trim().to_owned();
    let re = d.run(&[&["reencrypt", "--keyring", "keyring"][..], &names].concat());
    assert_eq!(re.code, 0, "{}", re.stderr);
    assert!(
        re.stdout.contains(&format!("app.yaml: 2 re-encrypted under key {new_id}, 0 already under it\n")),
        "{}",
        re.stdout
    );
    let check = d.run(&[&["check", "--json", "--keyring", "keyring"][..], &names].concat());
    let rows: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
    assert!(
        rows.as_array().unwrap().iter().all(|r| r["key_id"] == new_id.as_str() && r["status"] == "ok"),
        "{rows}"
    );
    // And the values are what they were.
    let props_token =
        d.read("app.properties").lines().nth(1).unwrap().split(" = ").nth(1).unwrap().to_owned();
    let plain = d.run(&["decrypt", "--keyring", "keyring", "--name", "db.password", &props_token]);
    assert_eq!(plain.stdout, "s3cr3t");
    let raw_token = d.read("db.password");
    assert_eq!(
        d.run(&["decrypt", "--keyring", "keyring", "--name", "db.password", raw_token.trim()]).stdout,
        "raw-secret"
    );
}

#[test]
fn seal_options_match_prefix_and_format_override() {
    let d = Dir::new("sealopts");
    d.keyring(&[KEY_A]);
    d.write("settings.conf", "DB_PASS=x\nDB_HOST=y\n");
    let out = d.run(&[
        "seal",
        "--keyring",
        "keyring",
        "--match",
        "*_pass",
        "--format",
        "*.conf=dotenv",
        "--name-prefix",
        "app/",
        "settings.conf",
    ]);
    assert_eq!(
        out.stdout, "settings.conf:1 app/DB_PASS: sealed with key 2d353d4a\nsealed 1 value(s) in 1 file(s)\n",
        "{}",
        out.stderr
    );
    let check = d.run(&["check", "--keyring", "keyring", "--format", "*.conf=dotenv", "settings.conf"]);
    assert_eq!(check.code, 1, "wrong prefix fails");
    assert!(
        check.stdout.contains("settings.conf:1 DB_PASS 2d353d4a v1 FAILED authentication_failed\n"),
        "{}",
        check.stdout
    );
    let check = d.run(&[
        "check",
        "--keyring",
        "keyring",
        "--format",
        "*.conf=dotenv",
        "--name-prefix",
        "app/",
        "settings.conf",
    ]);
    assert_eq!(check.code, 0);
    let bad = d.run(&["seal", "--keyring", "keyring", "--format", "*.conf", "settings.conf"]);
    assert_eq!(
        (bad.code, bad.stderr.as_str()),
        (2, "encstr: error: --format \"*.conf\": expected GLOB=FORMAT\n")
    );
    let bad = d.run(&["seal", "--keyring", "keyring", "--format", "*.conf=xml", "settings.conf"]);
    assert_eq!(bad.code, 2);
}

#[test]
fn check_reports_failures_and_broken_files_and_exits_1() {
    let d = Dir::new("check");
    d.keyring(&[KEY_B]);
    d.write("a.yaml", &format!("db:\n  password: {TOKEN_A}\n"));
    d.write("b.json", "{\"a\": \n");
    let out = d.run(&["check", "--keyring", "keyring", "a.yaml", "b.json"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "a.yaml:2 db.password 2d353d4a v1 FAILED unknown_key\n");
    assert_eq!(
        out.stderr,
        "encstr: error: b.json:line 2: invalid json: unexpected end of document\n\
         1 token(s) in 2 file(s): 0 ok, 2 failed\n\
         a.yaml:2 db.password: unknown_key: no key 2d353d4a in the keyring (was it pruned, or is this the wrong keyring?); use a keyring that holds this key, or re-encrypt the value\n\
         encstr: error: 2 value(s) failed in 2 file(s)\n"
    );
    // Without a keyring: listing only, and it succeeds.
    let list = d.run(&["check", "a.yaml"]);
    assert_eq!((list.code, list.stdout.as_str()), (0, "a.yaml:2 db.password 2d353d4a v1\n"));
}

#[test]
fn reencrypt_is_all_or_nothing_per_file() {
    let d = Dir::new("reenc");
    d.keyring(&[KEY_A, KEY_B]);
    let good = format!("db.password = {TOKEN_A}\nbad.password = {TOKEN_A}\n");
    d.write("app.properties", &good);
    let out = d.run(&["reencrypt", "--keyring", "keyring", "app.properties"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("app.properties:2 bad.password: authentication_failed: key 2d353d4a"),
        "{}",
        out.stderr
    );
    assert_eq!(d.read("app.properties"), good, "nothing written");
}

#[test]
fn seal_reports_broken_files_and_keeps_them() {
    let d = Dir::new("sealbad");
    d.keyring(&[KEY_A]);
    d.write("x.toml", "password = \"a\"\nbroken = \n");
    d.write("ok.env", "PASSWORD=a\n");
    let out = d.run(&["seal", "--keyring", "keyring", "x.toml", "ok.env"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "encstr: error: x.toml:line 2: invalid toml: string values must be quoted, expected literal string\nencstr: error: 1 file(s) failed; nothing was changed in them\n"
    );
    assert_eq!(d.read("x.toml"), "password = \"a\"\nbroken = \n");
    assert!(d.read("ok.env").starts_with("PASSWORD=ENCSTR:"));
    let path: &Path = &d.path("ok.env");
    assert!(path.exists());
}

#[test]
fn usage_errors_exit_2() {
    let d = Dir::new("usage");
    for args in [
        &["bogus"][..],
        &["seal"],
        &["decrypt"],
        &["encrypt", "--name"],
        &["decrypt", "--name", "x", "--keyring-env", "A", "--passphrase-env", "B", "t"],
    ] {
        assert_eq!(d.run(args).code, 2, "{args:?}");
    }
    let help = d.run(&["--help"]);
    assert_eq!(help.code, 0);
    for cmd in ["keys", "encrypt", "decrypt", "seal", "reencrypt", "check"] {
        assert!(help.stdout.contains(cmd), "{cmd}");
    }
}

#[test]
fn keyring_files_stay_private() {
    let d = Dir::new("modes");
    let ring = d.keyring(&[KEY_A]);
    // A keyring others can read: a warning, and a rewrite tightens it to 0600.
    std::fs::set_permissions(&ring, std::fs::Permissions::from_mode(0o644)).unwrap();
    let list = d.run(&["keys", "list", "--keyring", "keyring"]);
    assert_eq!(
        list.stderr,
        "encstr: warning: keyring file keyring can be read by other users (mode 0644); `chmod 600` it\n"
    );
    let rotate = d.run(&["keys", "rotate", "--keyring", "keyring"]);
    assert_eq!(rotate.code, 0);
    assert!(
        rotate.stderr.ends_with("encstr: tightened the mode of keyring from 0644 to 0600\n"),
        "{}",
        rotate.stderr
    );
    assert_eq!(std::fs::metadata(&ring).unwrap().permissions().mode() & 0o777, 0o600);
    let quiet = d.run(&["keys", "list", "--keyring", "keyring"]);
    assert_eq!(quiet.stderr, "", "0600 is not warned about");
    // Group-readable, pruned: tightened too; a mode below 0600 is kept.
    std::fs::set_permissions(&ring, std::fs::Permissions::from_mode(0o640)).unwrap();
    let prune = d.run(&["keys", "prune", "--keyring", "keyring", "--keep", "1"]);
    assert!(prune.stderr.contains("can be read by its group (mode 0640)"), "{}", prune.stderr);
    assert!(prune.stderr.ends_with("from 0640 to 0600\n"), "{}", prune.stderr);
    std::fs::set_permissions(&ring, std::fs::Permissions::from_mode(0o400)).unwrap();
    let rotate = d.run(&["keys", "rotate", "--keyring", "keyring"]);
    assert_eq!((rotate.code, rotate.stderr.as_str()), (0, ""));
    assert_eq!(std::fs::metadata(&ring).unwrap().permissions().mode() & 0o777, 0o400);

    // In a kubelet Secret volume the pod spec sets the mode: no warning.
    let vol = d.path("vol");
    std::fs::create_dir_all(vol.join("..2026_11_23")).unwrap();
    std::fs::write(vol.join("..2026_11_23/keyring"), format!("{KEY_A}\n")).unwrap();
    std::fs::set_permissions(vol.join("..2026_11_23/keyring"), std::fs::Permissions::from_mode(0o644))
        .unwrap();
    std::os::unix::fs::symlink("..2026_11_23", vol.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/keyring", vol.join("keyring")).unwrap();
    let out = d.run(&["decrypt", "--name", "db.password", "--keyring", "vol/keyring", TOKEN_A]);
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "s3cr3t", ""));
}

#[test]
fn concurrent_rotations_all_land() {
    let d = Dir::new("lock");
    d.keyring(&[KEY_A]);
    let children: Vec<_> = (0..20)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_encstr"))
                .args(["keys", "rotate", "--keyring", "keyring"])
                .current_dir(&d.0)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
        .collect();
    let listed = d.run(&["keys", "list", "--keyring", "keyring", "--json"]);
    let keys: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(keys.len(), 21, "no rotation was lost");
    let mut in_file: Vec<String> =
        keys[1..].iter().map(|k| k["key_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    in_file.sort();
    assert_eq!(ids, in_file);
    assert_eq!(std::fs::read_dir(&d.0).unwrap().count(), 1, "no temporary files left");
}

#[test]
fn files_over_the_size_limit_are_refused() {
    let d = Dir::new("limit");
    d.keyring(&[KEY_A]);
    d.write("big.properties", &format!("db.password = {TOKEN_A}\n{}\n", "# pad\n".repeat(200)));
    let size = std::fs::metadata(d.path("big.properties")).unwrap().len();
    for cmd in ["check", "seal", "reencrypt"] {
        let out = d.run(&[cmd, "--keyring", "keyring", "--max-file-size", "1KiB", "big.properties"]);
        assert_eq!(out.code, 1, "{cmd}");
        let msg =
            format!("big.properties: {size} bytes, larger than the 1024 bytes allowed (--max-file-size)");
        assert!(out.stderr.contains(&msg), "{cmd}: {}", out.stderr);
    }
    let ok = d.run(&["check", "--keyring", "keyring", "--max-file-size", "2KiB", "big.properties"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(d.run(&["check", "--max-file-size", "lots", "big.properties"]).code, 2);
}

#[test]
fn values_in_places_without_a_name_are_unnamed_everywhere() {
    let d = Dir::new("unnamed");
    d.keyring(&[KEY_A]);
    d.write("top.yaml", &format!("{TOKEN_A}\n"));
    d.write("complex.yaml", &format!("? [a, b]\n: {TOKEN_A}\nok: 1\n"));
    d.write("empty.properties", "=plain-secret\n");
    let check = d.run(&["check", "--keyring", "keyring", "top.yaml", "complex.yaml"]);
    assert_eq!(check.code, 1);
    assert_eq!(
        check.stdout,
        "top.yaml:1 (unnamed) 2d353d4a v1 FAILED unnamed\ncomplex.yaml:2 (unnamed) 2d353d4a v1 FAILED unnamed\n"
    );
    assert!(check.stderr.contains("top.yaml:1 unnamed: this place has no secret name"), "{}", check.stderr);
    let listing = d.run(&["check", "top.yaml"]);
    assert_eq!(listing.code, 1, "a token without a name is a failure even without a keyring");
    let re = d.run(&["reencrypt", "--keyring", "keyring", "complex.yaml"]);
    assert!(re.stderr.starts_with("complex.yaml:2 unnamed: "), "{}", re.stderr);
    let seal = d.run(&["seal", "--keyring", "keyring", "--match", "*", "empty.properties"]);
    assert_eq!(seal.code, 1);
    assert!(seal.stderr.starts_with("empty.properties:1 unnamed: "), "{}", seal.stderr);
    assert_eq!(d.read("empty.properties"), "=plain-secret\n", "nothing sealed");
    no_secrets(&seal, &["plain-secret"]);
}

/// A token another place reads too (a YAML alias here) is refused by every
/// command, naming both places; seal refuses to make one.
#[test]
fn values_read_under_another_name_are_aliased_everywhere() {
    let d = Dir::new("aliased");
    d.keyring(&[KEY_A]);
    d.write("plain.yaml", "db:\n  password: &p s3cr3t\nui:\n  banner: *p\n");
    let seal = d.run(&["seal", "--keyring", "keyring", "plain.yaml"]);
    assert_eq!(seal.code, 1);
    assert!(
        seal.stderr
            .starts_with("plain.yaml:2 db.password: aliased: this value is also read at line 4 as ui.banner"),
        "{}",
        seal.stderr
    );
    no_secrets(&seal, &["s3cr3t"]);
    d.write("app.yaml", "db:\n  password: s3cr3t\n");
    assert_eq!(d.run(&["seal", "--keyring", "keyring", "app.yaml"]).code, 0);
    let sealed = d.read("app.yaml").replace("password: ", "password: &p ") + "ui:\n  banner: *p\n";
    d.write("app.yaml", &sealed);
    let check = d.run(&["check", "--keyring", "keyring", "app.yaml"]);
    assert_eq!(check.code, 1);
    assert!(check.stdout.contains("FAILED aliased"), "{}", check.stdout);
    assert!(
        check
            .stderr
            .contains("app.yaml:2 db.password: aliased: this value is also read at line 4 as ui.banner"),
        "{}",
        check.stderr
    );
    let re = d.run(&["reencrypt", "--keyring", "keyring", "app.yaml"]);
    assert!(re.stderr.starts_with("app.yaml:2 db.password: aliased: "), "{}", re.stderr);
}

/// Durations are checked: a zero period and durations beyond a year (or
/// overflowing) are usage errors, not panics.
#[test]
fn durations_out_of_range_are_usage_errors() {
    let d = Dir::new("durations");
    d.keyring(&[KEY_A]);
    for (flag, value, want) in [
        ("--resync", "0", "must be greater than zero"),
        ("--resync", "0ms", "must be greater than zero"),
        ("--resync", "99999999999999999h", "longer than a year"),
        ("--debounce", "9000h", "longer than a year"),
    ] {
        let out = d.run(&[
            "render",
            "--watch",
            "--source",
            ".",
            "--target",
            "out",
            "--keyring",
            "keyring",
            flag,
            value,
        ]);
        assert_eq!(out.code, 2, "{flag} {value}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{flag} {value}: {}", out.stderr);
    }
}

/// Sealing (and re-encrypting) through a symbolic link writes the file it
/// leads to: the link stays, and no plaintext is left behind.
#[test]
fn seal_through_a_symlink_writes_the_file_it_leads_to() {
    let d = Dir::new("seal-link");
    d.keyring(&[KEY_A]);
    d.write("real.properties", "db.password=s3cr3t\n");
    std::os::unix::fs::symlink("real.properties", d.path("link.properties")).unwrap();
    let out = d.run(&["seal", "--keyring", "keyring", "link.properties"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        std::fs::symlink_metadata(d.path("link.properties")).unwrap().file_type().is_symlink(),
        "the link stays"
    );
    let real = d.read("real.properties");
    assert!(real.starts_with("db.password=ENCSTR:") && !real.contains("s3cr3t"), "{real}");
    d.keyring(&[KEY_A, KEY_B]);
    let re = d.run(&["reencrypt", "--keyring", "keyring", "link.properties"]);
    assert_eq!(re.code, 0, "{}", re.stderr);
    assert!(std::fs::symlink_metadata(d.path("link.properties")).unwrap().file_type().is_symlink());
    assert_ne!(d.read("real.properties"), real, "re-encrypted in place");
}

/// A secret name holding control characters or bidirectional marks (a
/// properties key can hold any) is shown escaped: it cannot recolour,
/// erase or reorder what the terminal shows.
#[test]
fn control_and_bidi_characters_in_names_are_shown_escaped() {
    let d = Dir::new("names-escaped");
    d.keyring(&[KEY_A]);
    d.write("app.properties", "db\\u001b[2K\\u202Eevil.password=s3cr3t\nok\\nfake.password=x\n");
    let seal = d.run(&["seal", "--keyring", "keyring", "--match", "*password*", "app.properties"]);
    assert_eq!(seal.code, 0, "{}", seal.stderr);
    let check = d.run(&["check", "app.properties"]);
    for out in [&seal.stdout, &check.stdout] {
        assert!(!out.contains('\u{1b}') && !out.contains('\u{202e}'), "raw in output: {out:?}");
        assert!(out.contains("db\\u{1b}[2K\\u{202e}evil.password"), "{out}");
        assert!(out.contains("ok\\u{a}fake.password") && !out.contains("\nfake"), "a forged line: {out}");
    }
}

#[test]
fn keys_recipient_prints_the_primary_and_never_key_material() {
    let d = Dir::new("recipient");
    d.keyring(&[KEY_A, KEY_B]);
    let out = d.run(&["keys", "recipient", "--keyring", "keyring"]);
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, &*format!("{RECIPIENT_B}\n"), ""));
    let all = d.run(&["keys", "recipient", "--keyring", "keyring", "--all"]);
    assert_eq!(
        all.stdout,
        format!("{ID_A} decrypt-only {RECIPIENT_A}\n{ID_B} primary      {RECIPIENT_B}\n"),
        "{}",
        all.stderr
    );
    let env = d.run_with(&["keys", "recipient"], None, &[("ENCSTR_KEYRING", "keyring")]);
    assert_eq!(env.stdout, format!("{RECIPIENT_B}\n"));
    for o in [&out, &all, &env] {
        no_secrets(o, &[KEY_A, KEY_B, &KEY_A[..20], &KEY_B[..20]]);
    }
    // After a rotation the primary, and so the recipient, is the new key.
    let new_id = d.run(&["keys", "rotate", "--keyring", "keyring"]).stdout.trim().to_owned();
    let after = d.run(&["keys", "recipient", "--keyring", "keyring", "--all"]);
    let last = after.stdout.lines().last().unwrap().to_owned();
    assert!(last.starts_with(&format!("{new_id} primary      ENCSTR-RECIPIENT:")), "{last}");
    assert_eq!(d.run(&["keys", "recipient", "--keyring", "keyring"]).stdout.trim(), &last[22..]);
    assert_eq!(d.run(&["keys", "recipient", "--keyring", "missing"]).code, 1);
}

#[test]
fn encrypt_to_a_recipient_needs_no_keyring_and_decrypts_with_it() {
    let d = Dir::new("encrypt-recipient");
    // No keyring anywhere: only the recipient, from the option or a file.
    let sealed =
        d.run_with(&["encrypt", "--name", "db.password", "--recipient", RECIPIENT_A], Some(b"s3cr3t\n"), &[]);
    assert_eq!(sealed.code, 0, "{}", sealed.stderr);
    let token = sealed.stdout.trim().to_owned();
    assert!(token.starts_with("ENCSTR:Ai01PU"), "a v2 token of key a: {token}");
    d.write("recipient.txt", &format!("# published by the operator\n\n  {RECIPIENT_A}  \n"));
    let from_file = d.run_with(
        &["encrypt", "--name", "db.password", "--recipient-file", "recipient.txt"],
        Some(b"s3cr3t"),
        &[],
    );
    let token2 = from_file.stdout.trim().to_owned();
    assert_ne!(token, token2, "a fresh ephemeral key per token");
    // A keyring named in the environment is not read when a recipient is given.
    let env = d.run_with(
        &["encrypt", "--name", "db.password", "--recipient", RECIPIENT_A],
        Some(b"s3cr3t"),
        &[("ENCSTR_KEYRING", "no-such-file")],
    );
    assert_eq!(env.code, 0, "{}", env.stderr);
    d.keyring(&[KEY_A]);
    for t in [&token, &token2, &env.stdout.trim().to_owned(), &SEALED_A.to_owned()] {
        let plain = d.run(&["decrypt", "--keyring", "keyring", "--name", "db.password", t]);
        assert_eq!((plain.code, plain.stdout.as_str()), (0, "s3cr3t"), "{}", plain.stderr);
    }
    let wrong = d.run(&["decrypt", "--keyring", "keyring", "--name", "ldap.password", &token]);
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.starts_with("encstr: error: ldap.password: authentication_failed: key 2d353d4a"),
        "{}",
        wrong.stderr
    );
    no_secrets(&sealed, &["s3cr3t"]);
    // A recipient and a keyring source at once is a usage error.
    let both = d.run(&["encrypt", "--name", "n", "--recipient", RECIPIENT_A, "--keyring-env", "X"]);
    assert_eq!(both.code, 2);
    let two = d.write("two.txt", &format!("{RECIPIENT_A}\n{RECIPIENT_B}\n"));
    let _ = two;
    let out = d.run_with(&["encrypt", "--name", "n", "--recipient-file", "two.txt"], Some(b"x"), &[]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "encstr: error: two.txt: holds 2 lines; a recipient file holds one recipient\n")
    );
}

#[test]
fn malformed_recipients_are_one_line_errors_naming_the_problem() {
    let d = Dir::new("bad-recipient");
    d.write("app.properties", "db.password = s3cr3t\n");
    let body = &RECIPIENT_A["ENCSTR-RECIPIENT:".len()..];
    let cases = [
        (
            "ENCSTR-RECIPIENT:Ai01PUrdkXai64TkzeGjfLiVwYMqvF6GHz1BFQvuuU30mlJAQgJ/Jj4=".to_owned(),
            "check bytes do not match",
        ),
        (
            "ENCSTR-RECIPIENT:AS01PUrdkXai64TkzeGjfLiVwYMqvF6GHz1BFQvuuU30mlJAQtMAtTA=".to_owned(),
            "version byte 1",
        ),
        (
            "ENCSTR-RECIPIENT:Ai01PUrdkXai64TkzeGjfLiVwYMqvF6GHz1BFQvuuU30mlJAQgJ/Jg==".to_owned(),
            "40 bytes after decoding",
        ),
        (RECIPIENT_A.trim_end_matches('=').to_owned(), "not canonical standard base64"),
        (format!("ENCSTR:{body}"), "this is an ENCSTR: token"),
        (body.to_owned(), "does not start with ENCSTR-RECIPIENT:"),
        (
            "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".to_owned(),
            "this is an age/SSH backup recipient (for `encstr keys backup`), not an ENCSTR recipient",
        ),
    ];
    for (recipient, why) in &cases {
        for cmd in [
            &["seal", "--recipient", recipient, "app.properties"][..],
            &["encrypt", "--name", "n", "--recipient", recipient],
        ] {
            let out = d.run_with(cmd, Some(b"x"), &[]);
            assert_eq!(out.code, 1, "{recipient}: {}", out.stderr);
            assert!(
                out.stderr.starts_with("encstr: error: --recipient: not a recipient: "),
                "{}",
                out.stderr
            );
            assert!(out.stderr.contains(why), "{recipient}: {}", out.stderr);
            assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
            assert!(out.stdout.is_empty());
            if recipient.len() > 40 {
                assert!(!out.stderr.contains(&recipient[17..40]), "never echoed: {}", out.stderr);
            }
        }
    }
    assert_eq!(d.read("app.properties"), "db.password = s3cr3t\n", "nothing sealed");
    // And the other way round: a sealing recipient given to a backup.
    d.keyring(&[KEY_A]);
    let out = d.run(&["keys", "backup", "--keyring", "keyring", "--recipient", RECIPIENT_A]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("this is an ENCSTR recipient (for sealing values: `encstr seal --recipient`), not a backup recipient (age1… or an SSH public key)"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    no_secrets(&out, &[KEY_A]);
}

#[test]
fn seal_to_a_recipient_keeps_every_seal_behaviour() {
    let d = Dir::new("seal-recipient");
    let files = [
        ("app.properties", "# app\ndb.password = s3cr3t\ndb.user = app\n"),
        ("app.env", "export API_TOKEN=\"tok en\" # c\nPORT=8080\n"),
        ("app.yaml", "db:\n  password: 's3cr3t'  # keep\n  host: db\n"),
        ("settings.conf", "DB_PASS=x\nDB_HOST=y\n"),
        ("db.password", "raw-secret\n"),
    ];
    for (f, text) in files {
        d.write(f, text);
    }
    std::fs::set_permissions(d.path("app.yaml"), std::fs::Permissions::from_mode(0o640)).unwrap();
    d.write("recipient.txt", &format!("{RECIPIENT_A}\n"));
    let names = ["app.properties", "app.env", "app.yaml", "db.password"];
    let seal = |extra: &[&str]| d.run(&[&["seal", "--recipient-file", "recipient.txt"][..], extra].concat());
    let dry = seal(&[&["--dry-run"][..], &names].concat());
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("app.yaml:2 db.password: would seal to the recipient of key 2d353d4a\n"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.ends_with("would seal 4 value(s) in 4 file(s)\n"), "{}", dry.stdout);
    for (f, text) in files {
        assert_eq!(d.read(f), text, "a dry run changes nothing");
    }
    let sealed = seal(&names);
    assert_eq!(sealed.code, 0, "{}", sealed.stderr);
    assert!(sealed.stdout.ends_with("sealed 4 value(s) in 4 file(s)\n"), "{}", sealed.stdout);
    no_secrets(&sealed, &["s3cr3t", "tok en", "raw-secret"]);
    let yaml = d.read("app.yaml");
    assert!(
        yaml.starts_with("db:\n  password: 'ENCSTR:Ai01PU") && yaml.ends_with("'  # keep\n  host: db\n"),
        "{yaml}"
    );
    assert!(
        d.read("app.env").starts_with("export API_TOKEN=\"ENCSTR:Ai01PU")
            && d.read("app.env").ends_with("\" # c\nPORT=8080\n")
    );
    assert!(d.read("db.password").starts_with("ENCSTR:Ai01PU"));
    assert_eq!(
        std::fs::metadata(d.path("app.yaml")).unwrap().permissions().mode() & 0o777,
        0o640,
        "the mode is kept (atomic replacement), as with a keyring"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&d.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left: {leftovers:?}");
    assert_eq!(seal(&["app.yaml"]).stdout, "app.yaml: nothing to seal\nsealed 0 value(s) in 0 file(s)\n");
    // --match, --format and --name-prefix as with a keyring.
    let opts =
        seal(&["--match", "*_pass", "--format", "*.conf=dotenv", "--name-prefix", "app/", "settings.conf"]);
    assert_eq!(
        opts.stdout,
        "settings.conf:1 app/DB_PASS: sealed to the recipient of key 2d353d4a\nsealed 1 value(s) in 1 file(s)\n",
        "{}",
        opts.stderr
    );
    // Only the keyring opens them: check lists v2, and every value is what it was.
    d.keyring(&[KEY_A]);
    let check = d.run(&[&["check", "--keyring", "keyring"][..], &names].concat());
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(check.stdout.contains("app.yaml:2 db.password 2d353d4a v2 ok\n"), "{}", check.stdout);
    let check = d.run(&[
        "check",
        "--keyring",
        "keyring",
        "--format",
        "*.conf=dotenv",
        "--name-prefix",
        "app/",
        "settings.conf",
    ]);
    assert_eq!((check.code, check.stdout.as_str()), (0, "settings.conf:1 app/DB_PASS 2d353d4a v2 ok\n"));
    let token = d.read("app.properties").lines().nth(1).unwrap().split(" = ").nth(1).unwrap().to_owned();
    assert_eq!(d.run(&["decrypt", "--keyring", "keyring", "--name", "db.password", &token]).stdout, "s3cr3t");
    let other = Dir::new("seal-recipient-other");
    other.keyring(&[KEY_B]);
    let check = other.run(&["check", "--keyring", "keyring", d.path("app.yaml").to_str().unwrap()]);
    assert_eq!(check.code, 1, "another keyring cannot open it");
    assert!(check.stdout.ends_with("db.password 2d353d4a v2 FAILED unknown_key\n"), "{}", check.stdout);
}

/// ENCSTR v2 §5: decrypt, check and reencrypt read both versions;
/// re-encryption keeps each token's version.
#[test]
fn check_and_reencrypt_keep_each_tokens_version() {
    let d = Dir::new("versions");
    d.keyring(&[KEY_A, KEY_B]);
    d.write("app.properties", &format!("db.password = {TOKEN_A}\nother.password = x\n"));
    d.write("sealed.yaml", &format!("db:\n  password: {SEALED_A}\n"));
    assert_eq!(d.run(&["seal", "--recipient", RECIPIENT_A, "app.properties"]).code, 0);
    let check = d.run(&["check", "app.properties", "sealed.yaml"]);
    assert_eq!(
        check.stdout,
        "app.properties:1 db.password 2d353d4a v1\napp.properties:2 other.password 2d353d4a v2\nsealed.yaml:2 db.password 2d353d4a v2\n"
    );
    let re = d.run(&["reencrypt", "--keyring", "keyring", "app.properties", "sealed.yaml"]);
    assert_eq!(re.code, 0, "{}", re.stderr);
    assert_eq!(
        re.stdout,
        format!(
            "app.properties: 2 re-encrypted under key {ID_B}, 0 already under it\nsealed.yaml: 1 re-encrypted under key {ID_B}, 0 already under it\n"
        )
    );
    let check = d.run(&["check", "--json", "--keyring", "keyring", "app.properties", "sealed.yaml"]);
    let rows: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
    let got: Vec<(String, u64, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["version"].as_u64().unwrap(),
                r["key_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("db.password".into(), 1, ID_B.into()),
            ("other.password".into(), 2, ID_B.into()),
            ("db.password".into(), 2, ID_B.into())
        ]
    );
    assert!(rows.as_array().unwrap().iter().all(|r| r["status"] == "ok"), "{rows}");
    let token = d.read("sealed.yaml").trim_start_matches("db:\n  password: ").trim().to_owned();
    assert!(token.starts_with("ENCSTR:AgflqN"), "sealed to b's recipient now: {token}");
    assert_eq!(d.run(&["decrypt", "--keyring", "keyring", "--name", "db.password", &token]).stdout, "s3cr3t");
}
