//! `encstr keys backup|restore|inspect`: keyring backups encrypted to age
//! recipients, in the format the operator writes (see
//! `encstr_core::backup`). Nothing here prints key material, except
//! `restore` writing the keyring where it was asked to.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use encstr_core::Keyring;
use encstr_core::backup::{self, IDS_ANNOTATION_PREFIX, Identity, Recipient};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{say, say_raw};
use crate::error::{CliError, Result};
use crate::fsio;
use crate::keyring_source::load_file;

/// Keyring files written by `restore`.
const KEYRING_MODE: u32 = 0o600;
/// Backup files written by `backup` (encrypted, but nobody else's business).
const BACKUP_MODE: u32 = 0o600;
/// Largest recipients, identity or backup file read.
const MAX_INPUT: u64 = 4 << 20;

fn backup_error(origin: impl std::fmt::Display) -> impl FnOnce(encstr_core::Error) -> CliError {
    let origin = origin.to_string();
    move |source| CliError::Backup { origin, source }
}

/// `keys backup`.
pub fn write(keyring: &Path, recipients: &[String], files: &[PathBuf], output: Option<&Path>) -> Result<()> {
    let mut rs: Vec<Recipient> = Vec::new();
    for (i, r) in recipients.iter().enumerate() {
        rs.push(backup::parse_recipient(r).map_err(backup_error(format!("--recipient #{}", i + 1)))?);
    }
    for f in files {
        let bytes = fsio::read_limited(f, MAX_INPUT)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| CliError::Usage(format!("{}: a recipients file must be text", f.display())))?;
        rs.extend(
            backup::parse_recipients_file(text, &f.display().to_string())
                .map_err(backup_error(f.display()))?,
        );
    }
    let ring = load_file(keyring)?;
    let armored = backup::encrypt(&ring, &rs).map_err(backup_error(keyring.display()))?;
    match output {
        Some(path) => {
            fsio::write_new(path, armored.as_bytes(), BACKUP_MODE)?;
            super::warn(format_args!(
                "encstr: wrote {} (keys {}, to {} recipient(s))",
                path.display(),
                key_ids(&ring),
                rs.len()
            ));
            Ok(())
        }
        None => say_raw(&armored),
    }
}

fn key_ids(ring: &Keyring) -> String {
    ring.ids().iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

fn identities(files: &[PathBuf]) -> Result<Vec<Identity>> {
    let mut out = Vec::new();
    for f in files {
        let bytes = fsio::read_limited(f, MAX_INPUT)?;
        out.extend(
            backup::parse_identities(&bytes, &f.display().to_string()).map_err(backup_error(f.display()))?,
        );
    }
    Ok(out)
}

/// A backup ConfigMap as `kubectl get -o yaml|json` exports it.
#[derive(Debug, Deserialize)]
struct ConfigMap {
    kind: Option<String>,
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    name: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// What a backup file is.
enum Backup {
    /// An exported ConfigMap: its entries (name → armored age) and the ids
    /// recorded for them.
    Exported { name: String, entries: BTreeMap<String, String>, ids: BTreeMap<String, String> },
    /// A bare age file.
    Bare(Zeroizing<Vec<u8>>),
}

fn read_backup(path: &Path) -> Result<Backup> {
    let bytes = fsio::read_limited(path, MAX_INPUT)?;
    let text = std::str::from_utf8(&bytes).ok();
    let armored = text.is_some_and(|t| t.trim_start().starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    let binary = bytes.starts_with(b"age-encryption.org/");
    if armored || binary {
        return Ok(Backup::Bare(bytes));
    }
    let parsed: Option<ConfigMap> = text.and_then(|t| {
        if t.trim_start().starts_with('{') {
            serde_json::from_str(t).ok()
        } else {
            serde_saphyr::from_str(t).ok()
        }
    });
    match parsed {
        Some(cm) if cm.kind.as_deref() == Some("ConfigMap") => {
            let entries: BTreeMap<String, String> =
                cm.data.into_iter().filter(|(k, _)| k.ends_with(".age")).collect();
            let ids = cm
                .metadata
                .annotations
                .into_iter()
                .filter_map(|(k, v)| k.strip_prefix(IDS_ANNOTATION_PREFIX).map(|e| (e.to_owned(), v)))
                .collect();
            Ok(Backup::Exported { name: cm.metadata.name.unwrap_or_default(), entries, ids })
        }
        _ => Err(CliError::Usage(format!(
            "{}: not an age file or a ConfigMap exported with `kubectl get -o yaml` or `-o json`",
            path.display()
        ))),
    }
}

/// The entry to use: the one named, or the newest (names start with their
/// UTC time, so the newest sorts last).
fn pick<'a>(
    path: &Path,
    entries: &'a BTreeMap<String, String>,
    entry: Option<&str>,
) -> Result<(&'a str, &'a str)> {
    let found = match entry {
        Some(e) => entries.get_key_value(e),
        None => entries.iter().next_back(),
    };
    found.map(|(k, v)| (k.as_str(), v.as_str())).ok_or_else(|| {
        let have = entries.keys().cloned().collect::<Vec<_>>().join(", ");
        CliError::Usage(match entry {
            Some(e) => format!("{}: no entry {e:?} (entries: {have})", path.display()),
            None => format!("{}: the ConfigMap holds no backup entry (*.age)", path.display()),
        })
    })
}

/// `keys restore`.
pub fn restore(identity: &[PathBuf], output: Option<&Path>, entry: Option<&str>, path: &Path) -> Result<()> {
    let ids = identities(identity)?;
    let (ring, origin) = match read_backup(path)? {
        Backup::Bare(bytes) => {
            if entry.is_some() {
                return Err(CliError::Usage(format!(
                    "{}: --entry applies to ConfigMap exports only",
                    path.display()
                )));
            }
            (backup::decrypt(&bytes, &ids).map_err(backup_error(path.display()))?, path.display().to_string())
        }
        Backup::Exported { entries, .. } => {
            let (name, armored) = pick(path, &entries, entry)?;
            let origin = format!("{} entry {name}", path.display());
            (backup::decrypt(armored.as_bytes(), &ids).map_err(backup_error(&origin))?, origin)
        }
    };
    let text = ring.to_text();
    match output {
        Some(out) => {
            fsio::write_new(out, text.as_bytes(), KEYRING_MODE)?;
            super::warn(format_args!(
                "encstr: restored {} key(s) ({}, primary {}) from {origin} into {} (mode 0600)",
                ring.len(),
                key_ids(&ring),
                ring.primary().id(),
                out.display()
            ));
            Ok(())
        }
        None if std::io::stdout().is_terminal() => Err(CliError::Usage(
            "refusing to print a keyring to a terminal; give -o KEYRING (or pipe standard output)".into(),
        )),
        None => say_raw(&text),
    }
}

#[derive(Serialize)]
struct Inspected {
    entry: Option<String>,
    key_ids: Vec<String>,
    primary: Option<String>,
}

/// `keys inspect`.
pub fn inspect(identity: &[PathBuf], json: bool, path: &Path) -> Result<()> {
    let listed: Vec<Inspected> = match read_backup(path)? {
        Backup::Exported { name, entries, ids } => {
            if entries.is_empty() {
                return Err(CliError::Usage(format!(
                    "{}: ConfigMap {name} holds no backup entry (*.age)",
                    path.display()
                )));
            }
            entries
                .keys()
                .map(|e| {
                    let key_ids: Vec<String> =
                        ids.get(e).map(|v| v.split(',').map(str::to_owned).collect()).unwrap_or_default();
                    Inspected { entry: Some(e.clone()), primary: key_ids.last().cloned(), key_ids }
                })
                .collect()
        }
        Backup::Bare(bytes) => {
            if identity.is_empty() {
                return Err(CliError::Usage(format!(
                    "{}: a bare age file says nothing about its keys without --identity to open it",
                    path.display()
                )));
            }
            let ring =
                backup::decrypt(&bytes, &identities(identity)?).map_err(backup_error(path.display()))?;
            let key_ids: Vec<String> = ring.ids().iter().map(ToString::to_string).collect();
            vec![Inspected { entry: None, primary: key_ids.last().cloned(), key_ids }]
        }
    };
    if json {
        return say(serde_json::to_string_pretty(&listed).expect("serializable"));
    }
    for i in listed {
        let ids = if i.key_ids.is_empty() { "(no ids recorded)".to_owned() } else { i.key_ids.join(",") };
        match i.entry {
            Some(e) => say(format_args!("{e}  keys {ids}  primary {}", i.primary.as_deref().unwrap_or("-")))?,
            None => say(format_args!("keys {ids}  primary {}", i.primary.as_deref().unwrap_or("-")))?,
        }
    }
    Ok(())
}
