//! `encstr render` end to end: the real binary on kubelet-style volumes,
//! rendered files read back by the formats' real parsers, all-or-nothing
//! failures, atomicity for readers, watch mode with metrics scraped by
//! promtool and a real Prometheus server.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;

/// Plaintexts with everything that breaks naive escaping.
const NASTY: &[&str] = &[
    "simple",
    "\"dq\" 'sq' \\ back # hash = eq : colon ! bang",
    "multi\nline\r\nwith\ttabs",
    "  leading and trailing  ",
    "ünïcode 名前 🔑",
    "ends with backslash\\",
];

fn keyring(d: &Dir, keys: &[&str]) -> std::path::PathBuf {
    let p = d.path("keyring");
    std::fs::write(&p, keys.join("\n") + "\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

#[test]
fn rendering_stays_inside_the_source_tree() {
    let d = Dir::new("confined");
    let ring = keyring(&d, &[KEY_A]);
    let src = d.path("src");
    let good = format!("db.password = {}\n", encrypt(&ring, "db.password", b"s3cr3t"));
    Volume::new(src.clone(), &[("app.properties", good.as_bytes())]);
    let target = d.path("out");
    let tlog = d.path("termination-log");
    let argv = [
        "render",
        "--source",
        src.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--keyring",
        ring.to_str().unwrap(),
        "--termination-log",
        tlog.to_str().unwrap(),
    ];
    assert!(run(&argv, &[]).status.success());
    let before = std::fs::read_link(target.join("..data")).unwrap();
    for (link, to) in [
        ("keyring.txt", ring.clone()),
        ("environ", "/proc/self/environ".into()),
        ("etc", "/etc".into()),
        ("up", "../".into()),
    ] {
        std::os::unix::fs::symlink(&to, src.join(link)).unwrap();
        let out = run(&argv, &[]);
        assert_eq!(out.status.code(), Some(1), "{link}");
        let report = format!(
            "encstr render failed: 1 problem(s) in 1 file(s); the previous output was kept\n{link}: link_outside_source\n"
        );
        assert_eq!(std::fs::read_to_string(&tlog).unwrap(), report);
        assert_eq!(std::fs::read_link(target.join("..data")).unwrap(), before, "nothing rendered");
        assert!(!target.join(link).exists());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains(KEY_A), "{stderr}");
        std::fs::remove_file(src.join(link)).unwrap();
    }
    // A link inside the source is followed, as kubelet's are.
    std::os::unix::fs::symlink("app.properties", src.join("alias.properties")).unwrap();
    assert!(run(&argv, &[]).status.success());
    assert_eq!(std::fs::read_to_string(target.join("alias.properties")).unwrap(), "db.password = s3cr3t\n");

    // Oversized files fail the render, by name.
    let out = run(&[&argv[..], &["--max-file-size", "16"]].concat(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(std::fs::read_to_string(&tlog).unwrap().contains("\napp.properties: too_large\n"));
}

#[test]
fn renders_every_format_so_real_parsers_read_exact_plaintexts() {
    let d = Dir::new("formats");
    let ring = keyring(&d, &[KEY_A]);
    let mut expected = BTreeMap::new();
    let (mut props, mut env, mut yaml, mut json, mut toml) =
        (String::from("# app\n"), String::new(), String::from("db:\n"), String::from("{"), String::new());
    for (i, plain) in NASTY.iter().enumerate() {
        let key = format!("p{i}_password");
        props.push_str(&format!("{key} = {}\n", encrypt(&ring, &key, plain.as_bytes())));
        env.push_str(&format!("export {key}={} # c\n", encrypt(&ring, &key, plain.as_bytes())));
        yaml.push_str(&format!("  {key}: {}\n", encrypt(&ring, &format!("db.{key}"), plain.as_bytes())));
        json.push_str(&format!(
            "{}\"{key}\": \"{}\"",
            if i == 0 { "" } else { ", " },
            encrypt(&ring, &key, plain.as_bytes())
        ));
        toml.push_str(&format!("{key} = \"{}\"\n", encrypt(&ring, &key, plain.as_bytes())));
        expected.insert(key, plain.to_string());
    }
    json.push_str("}\n");
    let raw = encrypt(&ring, "db-password", b"raw secret");
    let binary: Vec<u8> = (0..=255u8).collect();
    let nested = format!("token: {}\n", encrypt(&ring, "token", b"nested"));
    let src = d.path("src");
    Volume::new(
        src.clone(),
        &[
            ("app.properties", props.as_bytes()),
            ("app.env", env.as_bytes()),
            ("app.yaml", yaml.as_bytes()),
            ("app.json", json.as_bytes()),
            ("app.toml", toml.as_bytes()),
            ("db-password", format!("{raw}\n").as_bytes()),
            ("logo.bin", &binary),
            ("broken.yaml", b"a: [unclosed\n"),
            ("conf/nested.yml", nested.as_bytes()),
        ],
    );
    let target = d.path("out");
    let out = render_once(&src, &target, &ring);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = d.path("out");

    // Java's Properties, loaded as ISO-8859-1 and as UTF-8.
    let java = Command::new("java")
        .arg(parsers_dir().join("ReadProperties.java"))
        .arg(t.join("app.properties"))
        .output()
        .expect("java (run scripts/test.sh to install)");
    assert!(java.status.success(), "{}", String::from_utf8_lossy(&java.stderr));
    let loaded: Vec<BTreeMap<String, String>> = serde_json::from_slice(&java.stdout).unwrap();
    assert_eq!(loaded[0], expected);
    assert_eq!(loaded[1], expected);

    // Python's json, tomllib, python-dotenv and PyYAML.
    for (file, format) in
        [("app.json", "json"), ("app.toml", "toml"), ("app.env", "dotenv"), ("app.yaml", "yaml")]
    {
        let py = Command::new("python3")
            .arg(parsers_dir().join("read_values.py"))
            .arg(t.join(file))
            .arg(format)
            .output()
            .expect("python3");
        assert!(py.status.success(), "{file}: {}", String::from_utf8_lossy(&py.stderr));
        let got: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
        let got = if format == "yaml" { got["db"].clone() } else { got };
        for (k, v) in &expected {
            assert_eq!(got[k].as_str(), Some(v.as_str()), "{file} {k}");
        }
    }
    assert_eq!(std::fs::read(t.join("db-password")).unwrap(), b"raw secret", "raw: exact bytes, no newline");
    assert_eq!(std::fs::read(t.join("logo.bin")).unwrap(), binary, "files without tokens are copied");
    assert_eq!(std::fs::read(t.join("broken.yaml")).unwrap(), b"a: [unclosed\n");
    assert_eq!(std::fs::read_to_string(t.join("conf/nested.yml")).unwrap(), "token: \"nested\"\n");
    assert!(!t.join("..2026_11_23_00_00_01.1").exists(), "kubelet's ..* entries are not rendered");
    assert_eq!(std::fs::metadata(t.join("app.yaml")).unwrap().permissions().mode() & 0o777, 0o440);
    assert_eq!(std::fs::metadata(t.join("conf")).unwrap().permissions().mode() & 0o777, 0o550);
}

/// Values sealed to the keyring's recipients (ENCSTR v2, made with no
/// keyring) and values encrypted with the keyring (v1) render alike, in every
/// format, and the real parsers read the exact plaintexts.
#[test]
fn renders_sealed_and_keyring_tokens_alike() {
    let d = Dir::new("sealed");
    let ring = keyring(&d, &[KEY_A, KEY_B]);
    // Key a's recipient, read with the keyring holding only a (before b came).
    let ring_a = d.path("ring-a");
    std::fs::write(&ring_a, format!("{KEY_A}\n")).unwrap();
    std::fs::set_permissions(&ring_a, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ra, rb) = (recipient(&ring_a), recipient(&ring));
    let mut expected = BTreeMap::new();
    let (mut yaml, mut json, mut env) = (String::from("db:\n"), String::from("{"), String::new());
    for (i, plain) in NASTY.iter().enumerate() {
        let key = format!("p{i}_password");
        let r = if i % 2 == 0 { &ra } else { &rb };
        yaml.push_str(&format!("  {key}: {}\n", seal(r, &format!("db.{key}"), plain.as_bytes())));
        let v1 = encrypt(&ring, &key, plain.as_bytes());
        json.push_str(&format!(
            "{}\"{key}\": \"{}\"",
            if i == 0 { "" } else { ", " },
            seal(r, &key, plain.as_bytes())
        ));
        env.push_str(&format!("{key}={v1}\n"));
        expected.insert(key, plain.to_string());
    }
    json.push_str("}\n");
    let raw = seal(&rb, "db-password", b"raw secret");
    let src = d.path("src");
    Volume::new(
        src.clone(),
        &[
            ("app.yaml", yaml.as_bytes()),
            ("app.json", json.as_bytes()),
            ("app.env", env.as_bytes()),
            ("db-password", format!("{raw}\n").as_bytes()),
        ],
    );
    let t = d.path("out");
    let out = render_once(&src, &t, &ring);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (file, format) in [("app.json", "json"), ("app.env", "dotenv"), ("app.yaml", "yaml")] {
        let py = Command::new("python3")
            .arg(parsers_dir().join("read_values.py"))
            .arg(t.join(file))
            .arg(format)
            .output()
            .expect("python3");
        assert!(py.status.success(), "{file}: {}", String::from_utf8_lossy(&py.stderr));
        let got: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
        let got = if format == "yaml" { got["db"].clone() } else { got };
        for (k, v) in &expected {
            assert_eq!(got[k].as_str(), Some(v.as_str()), "{file} {k}");
        }
    }
    assert_eq!(std::fs::read(t.join("db-password")).unwrap(), b"raw secret");
    // A keyring without key b cannot open what was sealed to b.
    let out = render_once(&src, &d.path("out2"), &ring_a);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("app.yaml:3 db.p1_password: unknown_key")
            && err.contains("db-password:1 db-password: unknown_key"),
        "{err}"
    );
    assert!(!err.contains("db.p0_password"), "sealed to key a, it opens: {err}");
    assert!(!err.contains("raw secret"), "{err}");
}

#[test]
fn failures_keep_the_previous_output_and_report_every_value() {
    let d = Dir::new("fail");
    let ring = keyring(&d, &[KEY_A]);
    let other = d.path("other");
    std::fs::write(&other, format!("{KEY_B}\n")).unwrap();
    let good = format!("db.password = {}\n", encrypt(&ring, "db.password", b"s3cr3t-value"));
    let src = d.path("src");
    let mut vol = Volume::new(src.clone(), &[("app.properties", good.as_bytes())]);
    let target = d.path("out");
    let tlog = d.path("termination-log");
    let args = |tl: &Path| {
        vec![
            "render".to_owned(),
            "--source".into(),
            src.display().to_string(),
            "--target".into(),
            target.display().to_string(),
            "--keyring".into(),
            ring.display().to_string(),
            "--termination-log".into(),
            tl.display().to_string(),
        ]
    };
    let argv = args(&tlog);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    assert!(run(&argv, &[]).status.success());
    let before = std::fs::read(target.join("app.properties")).unwrap();
    let data_before = std::fs::read_link(target.join("..data")).unwrap();
    assert_eq!(std::fs::read_to_string(&tlog).unwrap(), "", "no message after success");

    let moved = encrypt(&ring, "ldap.password", b"x");
    let foreign = encrypt(&other, "smtp.password", b"y");
    let bad = format!(
        "db.password = {}\nsmtp.password = {foreign}\nmoved.password = {moved}\nbroken.token = ENCSTR:!!!\n",
        encrypt(&ring, "db.password", b"new")
    );
    let bad_yaml = b"a: ENCSTR:AAAA\nb: [unclosed\n";
    vol.update(&[("app.properties", bad.as_bytes()), ("more.yaml", bad_yaml)]);
    let out = run(&argv, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = "encstr render failed: 4 problem(s) in 2 file(s); the previous output was kept\n\
                  app.properties:2 smtp.password: unknown_key\n\
                  app.properties:3 moved.password: authentication_failed\n\
                  app.properties:4 broken.token: malformed\n\
                  more.yaml:2: parse\n";
    assert!(stderr.contains(report), "{stderr}");
    assert_eq!(std::fs::read_to_string(&tlog).unwrap(), report);
    assert_eq!(std::fs::read(target.join("app.properties")).unwrap(), before, "previous output intact");
    assert_eq!(std::fs::read_link(target.join("..data")).unwrap(), data_before);
    assert!(!target.join("more.yaml").exists());
    for secret in ["s3cr3t-value", "new", &foreign[7..30], &moved[7..30]] {
        assert!(!stderr.contains(secret), "{secret} leaked: {stderr}");
    }
}

#[test]
fn plaintext_values_are_counted_warned_or_denied() {
    let d = Dir::new("plain");
    let ring = keyring(&d, &[KEY_A]);
    let src = d.path("src");
    Volume::new(src.clone(), &[("app.env", b"DB_PASSWORD=hunter2\nPORT=1\n")]);
    let out_dir = d.path("out");
    let base = ["render", "--source", src.to_str().unwrap(), "--target", out_dir.to_str().unwrap()];
    let ok = run(&[&base[..], &["--keyring", ring.to_str().unwrap()]].concat(), &[]);
    assert!(ok.status.success());
    let log = String::from_utf8_lossy(&ok.stderr);
    assert!(log.contains("value is not encrypted") && log.contains("name=DB_PASSWORD"), "{log}");
    assert!(!log.contains("hunter2"));
    assert_eq!(std::fs::read_to_string(d.path("out/app.env")).unwrap(), "DB_PASSWORD=hunter2\nPORT=1\n");
    let denied = run(&[&base[..], &["--keyring", ring.to_str().unwrap(), "--deny-plaintext"]].concat(), &[]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("app.env:1 DB_PASSWORD: plaintext\n"));
}

#[test]
fn readers_never_see_partial_or_mixed_files() {
    let d = Dir::new("atomic");
    let ring = keyring(&d, &[KEY_A]);
    // Two versions of two files; big enough that a partial write would show.
    let version = |v: char| {
        let a = format!("# {}\nversion = {v}\n", "x".repeat(200_000));
        let b = format!("version: {v}\npad: \"{}\"\n", "y".repeat(200_000));
        (a, b)
    };
    let (a1, b1) = version('1');
    let (a2, b2) = version('2');
    let src = d.path("src");
    let mut vol = Volume::new(src.clone(), &[("a.properties", a1.as_bytes()), ("b.yaml", b1.as_bytes())]);
    let target = d.path("out");
    let argv = [
        "render",
        "--source",
        src.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--keyring",
        ring.to_str().unwrap(),
    ];
    assert!(run(&argv, &[]).status.success());

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, target) = (stop.clone(), target.clone());
        let (a1, a2, b1, b2) = (a1.clone(), a2.clone(), b1.clone(), b2.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                // Every file through its top-level link is old or new, whole.
                let a = std::fs::read_to_string(target.join("a.properties")).unwrap();
                assert!(a == a1 || a == a2, "partial a.properties ({} bytes)", a.len());
                // A reader resolving ..data once sees one consistent set.
                if let Ok(dir) = std::fs::read_link(target.join("..data")) {
                    let dir = target.join(dir);
                    if let (Ok(a), Ok(b)) = (
                        std::fs::read_to_string(dir.join("a.properties")),
                        std::fs::read_to_string(dir.join("b.yaml")),
                    ) {
                        assert!((a == a1 && b == b1) || (a == a2 && b == b2), "mixed versions");
                    }
                }
                reads += 1;
            }
            reads
        })
    };
    for i in 0..20 {
        let (a, b) = if i % 2 == 0 { (&a2, &b2) } else { (&a1, &b1) };
        vol.update(&[("a.properties", a.as_bytes()), ("b.yaml", b.as_bytes())]);
        assert!(run(&argv, &[]).status.success());
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("reader saw only whole, consistent versions");
    assert!(reads > 20, "the reader ran during the renders ({reads} reads)");
}

#[test]
fn watch_mode_rerenders_reports_and_shuts_down_cleanly() {
    let d = Dir::new("watch");
    // The keyring as a Secret volume, the source as a ConfigMap volume.
    let ring_file = d.path("ring-src");
    std::fs::write(&ring_file, format!("{KEY_A}\n")).unwrap();
    let mut keys = Volume::new(d.path("keys"), &[("keyring", format!("{KEY_A}\n").as_bytes())]);
    let ring = d.path("keys/keyring");
    let v1 = format!("db.password = {}\n", encrypt(&ring, "db.password", b"one"));
    let other = "static: file\napi_token: not-sealed\n";
    let src = d.path("src");
    let mut vol =
        Volume::new(src.clone(), &[("app.properties", v1.as_bytes()), ("other.yaml", other.as_bytes())]);
    let target = d.path("out");
    let sidecar = start_watch(&src, &target, &ring, &[]);
    let addr = sidecar.addr.clone();

    wait_for(10, "readiness", || (get(&addr, "/readyz")?.0 == 200).then_some(()));
    assert_eq!(get(&addr, "/healthz").unwrap().0, 200);
    assert_eq!(std::fs::read_to_string(target.join("app.properties")).unwrap(), "db.password = one\n");
    let other_inode = std::fs::metadata(target.join("other.yaml")).unwrap().ino();

    // promtool accepts the exposition.
    promtool_accepts(&metrics(&addr));

    // kubelet swaps ..data: the change (now a value sealed to the keyring's
    // recipient, ENCSTR v2) is rendered; the untouched file is not rewritten.
    let v2 = format!("db.password = {}\n", seal(&recipient(&ring), "db.password", b"two"));
    vol.update(&[("app.properties", v2.as_bytes()), ("other.yaml", other.as_bytes())]);
    wait_for(10, "re-render", || {
        (std::fs::read_to_string(target.join("app.properties")).ok()? == "db.password = two\n").then_some(())
    });
    assert_eq!(std::fs::metadata(target.join("other.yaml")).unwrap().ino(), other_inode);

    // A token of an unknown key (sealed to key b's recipient): the last good
    // output stays, the failure is counted.
    let foreign_ring = d.path("foreign");
    std::fs::write(&foreign_ring, format!("{KEY_B}\n")).unwrap();
    let bad = format!("db.password = {}\n", seal(&recipient(&foreign_ring), "db.password", b"three"));
    vol.update(&[("app.properties", bad.as_bytes()), ("other.yaml", other.as_bytes())]);
    let m = wait_for(10, "a failed render", || {
        let m = metrics(&addr);
        (sample(&m, "encstr_renders_total{result=\"failure\"}")? >= 1.0).then_some(m)
    });
    assert_eq!(sample(&m, "encstr_decrypt_failures_total{reason=\"unknown_key\"}"), Some(1.0));
    assert_eq!(std::fs::read_to_string(target.join("app.properties")).unwrap(), "db.password = two\n");
    assert_eq!(get(&addr, "/readyz").unwrap().0, 200, "still ready: the last good output is served");

    // The Secret gains key b (kubelet swap): the keyring is reloaded and the value decrypts.
    keys.update(&[("keyring", format!("{KEY_A}\n{KEY_B}\n").as_bytes())]);
    let m = wait_for(10, "keyring reload", || {
        let m = metrics(&addr);
        (sample(&m, "encstr_keyring_reloads_total")? >= 1.0).then_some(m)
    });
    assert_eq!(sample(&m, "encstr_keyring_keys"), Some(2.0));
    wait_for(10, "render with the new key", || {
        (std::fs::read_to_string(target.join("app.properties")).ok()? == "db.password = three\n")
            .then_some(())
    });
    // The files are in place before the render is counted: wait for the count.
    let m = wait_for(10, "the render counted", || {
        let m = metrics(&addr);
        (sample(&m, "encstr_renders_total{result=\"success\"}")? >= 3.0).then_some(m)
    });
    assert!(sample(&m, "encstr_decryptions_total").unwrap() >= 3.0);
    assert_eq!(sample(&m, "encstr_plaintext_values"), Some(1.0));
    assert!(sample(&m, "encstr_last_render_success_timestamp_seconds").unwrap() > 1.7e9);

    // Clean shutdown on SIGTERM.
    let mut sidecar = sidecar;
    Command::new("kill").args(["-TERM", &sidecar.proc.0.id().to_string()]).status().unwrap();
    let status = wait_for(5, "exit after SIGTERM", || sidecar.proc.0.try_wait().unwrap());
    assert!(status.success(), "{status}");
    let log = sidecar.log.lock().unwrap().clone();
    assert!(log.contains("\"message\":\"render succeeded\"") && log.contains("\"duration_ms\""), "{log}");
    assert!(log.contains("shutting down"));
    assert_eq!(log.matches("value is not encrypted").count(), 1, "warned once across renders: {log}");
    assert!(!log.contains("not-sealed"));
    for secret in ["\"one\"", "\"two\"", "\"three\"", KEY_A, KEY_B] {
        assert!(!log.contains(secret), "{secret} in log");
    }
    drop(keys);
}

/// With a shared process namespace the app may run as the sidecar's user:
/// it must not read the sidecar's memory, environment or root through
/// /proc. The sidecar makes itself non-dumpable (so /proc/<pid>/environ,
/// mem and root are the kernel's, not the user's) and disables core dumps.
#[test]
fn the_sidecar_is_not_dumpable_so_a_process_of_its_user_cannot_read_it() {
    let d = Dir::new("dumpable");
    let keys = Volume::new(d.path("keys"), &[("keyring", format!("{KEY_A}\n").as_bytes())]);
    let ring = d.path("keys/keyring");
    let v1 = format!("db.password = {}\n", encrypt(&ring, "db.password", b"one"));
    let src = d.path("src");
    let _vol = Volume::new(src.clone(), &[("app.properties", v1.as_bytes())]);
    let target = d.path("out");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777)).unwrap();
    let nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"];
    let sidecar = start_watch_under(&nobody, &src, &target, &ring, &[]);
    wait_for(10, "readiness", || (get(&sidecar.addr, "/readyz")?.0 == 200).then_some(()));
    let pid = sidecar.proc.0.id().to_string();
    // Another process of the same user (as the app would be).
    let read = |file: &str| {
        Command::new(nobody[0])
            .args(&nobody[1..])
            .args(["cat", &format!("/proc/{pid}/{file}")])
            .output()
            .unwrap()
    };
    let environ = read("environ");
    assert!(!environ.status.success(), "a process of the sidecar's user read its environment");
    assert!(String::from_utf8_lossy(&environ.stderr).contains("Permission denied"), "{environ:?}");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    assert_eq!(core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(), ["0", "0"], "{core}");
    drop(keys);
}

#[test]
fn watch_mode_is_not_ready_until_a_render_succeeds() {
    let d = Dir::new("notready");
    let ring = keyring(&d, &[KEY_A]);
    let foreign = d.path("foreign");
    std::fs::write(&foreign, format!("{KEY_B}\n")).unwrap();
    let src = d.path("src");
    let bad = format!("a.password = {}\n", encrypt(&foreign, "a.password", b"x"));
    let mut vol = Volume::new(src.clone(), &[("app.properties", bad.as_bytes())]);
    let tlog = d.path("tlog");
    let sidecar = start_watch(&src, &d.path("out"), &ring, &["--termination-log", tlog.to_str().unwrap()]);
    wait_for(10, "a failed render", || {
        (sample(&metrics(&sidecar.addr), "encstr_renders_total{result=\"failure\"}")? >= 1.0).then_some(())
    });
    assert_eq!(get(&sidecar.addr, "/readyz").unwrap().0, 503);
    assert!(std::fs::read_to_string(&tlog).unwrap().contains("app.properties:1 a.password: unknown_key"));
    let good = format!("a.password = {}\n", encrypt(&ring, "a.password", b"x"));
    vol.update(&[("app.properties", good.as_bytes())]);
    wait_for(10, "readiness", || (get(&sidecar.addr, "/readyz")?.0 == 200).then_some(()));
    assert_eq!(std::fs::read_to_string(&tlog).unwrap(), "", "cleared after success");
}

#[test]
fn a_real_prometheus_scrapes_decrypt_failures() {
    let d = Dir::new("prom");
    let ring = keyring(&d, &[KEY_A]);
    let foreign = d.path("foreign");
    std::fs::write(&foreign, format!("{KEY_B}\n")).unwrap();
    let src = d.path("src");
    let good = format!("a.password = {}\n", encrypt(&ring, "a.password", b"x"));
    let mut vol = Volume::new(src.clone(), &[("app.properties", good.as_bytes())]);
    let sidecar = start_watch(&src, &d.path("out"), &ring, &[]);

    let prom_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = d.path("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: encstr\n    static_configs:\n      - targets: ['{}']\n",
            sidecar.addr
        ),
    )
    .unwrap();
    let prom_addr = format!("127.0.0.1:{prom_port}");
    let _prom = Proc(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", d.path("tsdb").display()))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (run scripts/test.sh to install it)"),
    );
    wait_for(20, "prometheus ready", || (get(&prom_addr, "/-/ready")?.0 == 200).then_some(()));

    let bad = format!("a.password = {}\n", encrypt(&foreign, "a.password", b"y"));
    vol.update(&[("app.properties", bad.as_bytes())]);
    let query = "/api/v1/query?query=encstr_decrypt_failures_total%7Breason%3D%22unknown_key%22%7D";
    let value = wait_for(30, "the failure in Prometheus", || {
        let (status, body) = get(&prom_addr, query)?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let value: f64 = v["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
        (status == 200 && value >= 1.0).then_some(value)
    });
    assert_eq!(value, 1.0);
}
