//! Decrypted values are written so that each format's standard parser —
//! Java's `java.util.Properties`, PyYAML, Python's `json`, python-dotenv and
//! `tomllib` — returns exactly the plaintext. These run the real parsers
//! (`.ci/run` installs them); they fail, not skip, when one is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use encstr_core::keys::{Key, Seed};
use encstr_core::{ConfigFile, Format, Keyring, token};

/// Plaintexts that break naive escaping in at least one format.
const NASTY: &[&str] = &[
    // Every printable ASCII character, and every control character.
    " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
    "\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\u{7}\u{8}\t\n\u{b}\u{c}\r\u{e}\u{f}\u{10}\u{11}\u{12}\u{13}\u{14}\u{15}\u{16}\u{17}\u{18}\u{19}\u{1a}\u{1b}\u{1c}\u{1d}\u{1e}\u{1f}\u{7f}",
    "plain",
    "",
    "\"double\" and 'single' quotes",
    "back\\slash \\n not a newline \\",
    "# hash, = equals, : colon, ! bang",
    "line1\nline2\r\nline3\rend",
    "  leading and trailing spaces  ",
    "\ttabs\tinside\t",
    "pässwörd ünïcode 名前 🔑",
    "ends with backslash\\",
    "$HOME and $ {not} and a {brace}",
    "\u{1}\u{7f}\u{85}\u{a0}\u{2028}\u{feff}",
    "key: value # not a comment",
    "- not a list",
    "[not, a, list]",
    "true",
    "0123",
    "null",
    "~",
    "'''",
    "\"\"\"",
];

fn ring() -> Keyring {
    Keyring::new(vec![Key::from_seed(Seed::from_bytes([42; 32]))]).unwrap()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("encstr-real-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn parsers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parsers")
}

/// Build a document with one token per plaintext, render it, and return the
/// rendered bytes and the expected name → plaintext map.
fn rendered(format: Format, skip: impl Fn(&str) -> bool) -> (Vec<u8>, BTreeMap<String, String>) {
    let ring = ring();
    let mut doc = String::new();
    let mut expected = BTreeMap::new();
    if format == Format::Json {
        doc.push('{');
    }
    for (i, plain) in NASTY.iter().enumerate().filter(|(_, p)| !skip(p)) {
        let name = format!("v{i:02}_password");
        let t = token::encrypt(&ring, &name, plain.as_bytes()).unwrap();
        match format {
            Format::Properties => doc.push_str(&format!("# value {i}\n{name} = {t}\n")),
            Format::Dotenv => doc.push_str(&format!("# value {i}\n{name}={t}\n")),
            Format::Yaml => doc.push_str(&format!("# value {i}\n{name}: {t}  # trailing comment\n")),
            Format::Toml => doc.push_str(&format!("# value {i}\n{name} = '{t}'\n")),
            Format::Json => doc
                .push_str(&format!("{}\n  \"{name}\": \"{t}\"", if expected.is_empty() { "" } else { "," })),
            Format::Raw => unreachable!(),
        }
        expected.insert(name, plain.to_string());
    }
    if format == Format::Json {
        doc.push_str("\n}\n");
    }
    let file = ConfigFile::parse(format, doc.as_bytes(), "x").unwrap();
    let out = file.render(&ring, "", &[]).unwrap_or_else(|e| panic!("{format}: {e:?}"));
    assert_eq!(out.decrypted, expected.len());
    (out.bytes.to_vec(), expected)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?} (run .ci/run to install it): {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn python_reads(format: Format, name: &str, skip: impl Fn(&str) -> bool) {
    let (bytes, expected) = rendered(format, skip);
    let dir = tmpdir(name);
    let path = dir.join(format!("app.{name}"));
    std::fs::write(&path, &bytes).unwrap();
    let json =
        run(Command::new("python3").arg(parsers_dir().join("read_values.py")).arg(&path).arg(format.name()));
    let got: BTreeMap<String, String> = serde_json::from_str(&json).unwrap();
    for (k, v) in &expected {
        assert_eq!(got.get(k), Some(v), "{format} {k}\n{}", String::from_utf8_lossy(&bytes));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn pyyaml_reads_exact_plaintexts() {
    python_reads(Format::Yaml, "yaml", |_| false);
}

#[test]
fn python_json_reads_exact_plaintexts() {
    python_reads(Format::Json, "json", |_| false);
}

#[test]
fn tomllib_reads_exact_plaintexts() {
    python_reads(Format::Toml, "toml", |_| false);
}

#[test]
fn python_dotenv_reads_exact_plaintexts() {
    // Every NASTY value is representable in dotenv except `${...}`, which
    // python-dotenv expands (the encoder refuses those: tested in core).
    python_reads(Format::Dotenv, "env", |p| p.contains("${"));
}

#[test]
fn java_properties_reads_exact_plaintexts_as_latin1_and_utf8() {
    let (bytes, expected) = rendered(Format::Properties, |_| false);
    assert!(bytes.is_ascii(), "non-ASCII is written as \\u escapes");
    let dir = tmpdir("properties");
    let path = dir.join("app.properties");
    std::fs::write(&path, &bytes).unwrap();
    let json = run(Command::new("java").arg(parsers_dir().join("ReadProperties.java")).arg(&path));
    let got: Vec<BTreeMap<String, String>> = serde_json::from_str(&json).unwrap();
    for loaded in &got {
        assert_eq!(loaded, &expected, "{}", String::from_utf8_lossy(&bytes));
    }
    let _ = std::fs::remove_dir_all(dir);
}
