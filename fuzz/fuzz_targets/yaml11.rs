//! encstr's YAML names against a YAML 1.1 reader's (libyaml, as many apps
//! read YAML): wherever encstr accepts a document and would decrypt its
//! tokens (none aliased), every token must sit under the same name in
//! both. Names only: a token's text may differ where the readers fold line
//! breaks differently inside a block scalar, but such text is no token
//! (decryption fails, malformed). The in-process counterpart of `core/tests/yaml_differential.rs`
//! (PyYAML). Documents whose keys the YAML 1.1 reader types as other than
//! strings are skipped: their names are a known difference (`0x10` is 16
//! to it).
#![no_main]

use encstr_core::formats::path;
use encstr_core::{ConfigFile, Format};
use libfuzzer_sys::fuzz_target;
use serde_yaml::Value;

fn walk(v: &Value, name: &str, out: &mut Vec<String>) -> Option<()> {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let Value::String(k) = k else { return None };
                walk(v, &path::key(name, k), out)?;
            }
        }
        Value::Sequence(s) => {
            for (i, v) in s.iter().enumerate() {
                walk(v, &path::index(name, i), out)?;
            }
        }
        Value::Tagged(t) => walk(&t.value, name, out)?,
        Value::String(s) if s.starts_with("ENCSTR:") => {
            out.push(name.to_owned());
        }
        _ => {}
    }
    Some(())
}

fuzz_target!(|data: &[u8]| {
    // A known difference, open in issue 19: YAML 1.2 anchor names may hold
    // `:` and more, libyaml's only [A-Za-z0-9_-], so after `&a:b[…` the two
    // see different nodes (seed `anchor-name.yaml`). Skipped until fixed.
    if data.contains(&b'&') {
        return;
    }
    let Ok(file) = ConfigFile::parse(Format::Yaml, data, "fuzz") else { return };
    if file.tokens().any(|e| e.aliased.is_some() || e.secret_name().is_none()) {
        return;
    }
    let mut ours: Vec<String> = file.tokens().map(|e| e.name.as_deref().unwrap_or_default().to_owned()).collect();
    let Ok(doc) = serde_yaml::from_slice::<Value>(data) else { return };
    let mut theirs = Vec::new();
    if walk(&doc, "", &mut theirs).is_none() {
        return;
    }
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "encstr and a YAML 1.1 reader name the tokens differently");
});
