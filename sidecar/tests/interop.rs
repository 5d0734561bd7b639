//! ENCSTR v2 against an independent implementation, both ways: values sealed
//! by Python `pyhpke` (tests/interop/encstr_v2.py, written from the spec)
//! are opened by `encstr render`, and `encstr seal --recipient` output,
//! read back by the real parsers, is opened by `pyhpke`.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/encstr_v2.py")
}

/// Run the Python implementation; its standard output.
fn py(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("python3")
        .arg(script())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "encstr_v2.py {args:?} (pyhpke missing? run scripts/test.sh to install it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn keyring(d: &Dir, keys: &[&str]) -> PathBuf {
    let p = d.path("keyring");
    std::fs::write(&p, keys.join("\n") + "\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

const VALUES: &[&str] = &["s3cr3t", "", "\"dq\" 'sq' \\ # = : !", "multi\nline\r\n\ttab", "ünïcode 名前 🔑"];

#[test]
fn pyhpke_seals_values_that_encstr_render_opens() {
    let d = Dir::new("interop-render");
    let ring = keyring(&d, &[KEY_A, KEY_B]);
    // The recipient encstr prints is the one Python derives from the seed.
    let published = recipient(&ring);
    assert_eq!(String::from_utf8(py(&["recipient", KEY_B], b"")).unwrap().trim(), published);
    let mut yaml = String::from("app:\n");
    let mut json = String::from("{");
    let mut expected = BTreeMap::new();
    for (i, value) in VALUES.iter().enumerate() {
        let key = format!("v{i}_password");
        let sealed =
            |name: &str| String::from_utf8(py(&["seal", &published, name], value.as_bytes())).unwrap();
        yaml.push_str(&format!("  {key}: {}", sealed(&format!("app.{key}"))));
        json.push_str(&format!("{}\"{key}\": \"{}\"", if i == 0 { "" } else { ", " }, sealed(&key).trim()));
        expected.insert(key, value.to_string());
    }
    json.push_str("}\n");
    let src = d.path("src");
    Volume::new(src.clone(), &[("app.yaml", yaml.as_bytes()), ("app.json", json.as_bytes())]);
    let target = d.path("out");
    let out = render_once(&src, &target, &ring);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (file, format) in [("app.yaml", "yaml"), ("app.json", "json")] {
        let read = Command::new("python3")
            .arg(parsers_dir().join("read_values.py"))
            .arg(target.join(file))
            .arg(format)
            .output()
            .unwrap();
        assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
        let got: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
        let got = if format == "yaml" { got["app"].clone() } else { got };
        for (k, v) in &expected {
            assert_eq!(got[k].as_str(), Some(v.as_str()), "{file} {k}");
        }
    }
}

#[test]
fn encstr_seal_output_is_opened_by_pyhpke() {
    let d = Dir::new("interop-seal");
    let ring = keyring(&d, &[KEY_A]);
    let r = recipient(&ring);
    let mut yaml = String::from("app:\n");
    for (i, value) in VALUES.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
        yaml.push_str(&format!("  v{i}_password: {}\n", serde_json::to_string(value).unwrap()));
    }
    let file = d.path("app.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = run(&["seal", "--recipient", &r, file.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // PyYAML reads the sealed file; every value is a v2 token that pyhpke
    // opens with the seed, under its name, to the original value.
    let read = Command::new("python3")
        .arg(parsers_dir().join("read_values.py"))
        .arg(&file)
        .arg("yaml")
        .output()
        .unwrap();
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let got: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    let mut opened = 0;
    for (i, value) in VALUES.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
        let key = format!("v{i}_password");
        let token = got["app"][&key].as_str().unwrap();
        assert!(token.starts_with("ENCSTR:Ai01PU"), "{token}");
        assert_eq!(py(&["open", KEY_A, &format!("app.{key}"), token], b""), value.as_bytes(), "{key}");
        opened += 1;
    }
    assert_eq!(opened, VALUES.len() - 1);
    // The name is bound: pyhpke refuses the token under another name.
    let token = got["app"]["v0_password"].as_str().unwrap();
    let status = Command::new("python3")
        .arg(script())
        .args(["open", KEY_A, "app.other_password", token])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}
