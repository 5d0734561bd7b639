//! `encstr seal`, `encstr reencrypt` and `encstr check`: whole config files.

use std::path::{Path, PathBuf};

use encstr_core::glob::Pattern;
use encstr_core::{ConfigFile, Format, Keyring};
use serde::Serialize;

use super::{say, warn};
use crate::cli::{FileArgs, KeyringArgs};
use crate::error::{CliError, Result};
use crate::fsio;

/// Formats chosen by `--format GLOB=FORMAT`, falling back to the extension.
#[derive(Debug, Default, Clone)]
pub struct FormatRules(Vec<(Pattern, Format)>);

impl FormatRules {
    /// Parse `GLOB=FORMAT` options.
    pub fn parse(rules: &[String]) -> Result<Self> {
        rules
            .iter()
            .map(|r| {
                let (glob, format) = r
                    .rsplit_once('=')
                    .ok_or_else(|| CliError::Usage(format!("--format {r:?}: expected GLOB=FORMAT")))?;
                let format =
                    format.parse::<Format>().map_err(|e| CliError::Usage(format!("--format {r:?}: {e}")))?;
                let glob = Pattern::new(glob).map_err(|e| CliError::Usage(format!("--format {r:?}: {e}")))?;
                Ok((glob, format))
            })
            .collect::<Result<_>>()
            .map(FormatRules)
    }

    /// The format of a file: the first rule matching its path or its base
    /// name, else by extension.
    pub fn format_of(&self, path: &Path) -> Format {
        let full = path.to_string_lossy();
        let base = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        self.0
            .iter()
            .find(|(glob, _)| glob.matches(&full) || glob.matches(&base))
            .map_or_else(|| Format::for_path(path), |(_, f)| *f)
    }
}

/// A file read from disk, ready to parse.
struct Input {
    path: PathBuf,
    shown: String,
    bytes: Vec<u8>,
    format: Format,
}

impl Input {
    fn read(path: &Path, rules: &FormatRules) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(CliError::io(path))?;
        Ok(Input {
            path: path.to_owned(),
            shown: path.display().to_string(),
            bytes,
            format: rules.format_of(path),
        })
    }

    fn parse(&self) -> Result<ConfigFile<'_>> {
        let base = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        ConfigFile::parse(self.format, &self.bytes, &base).map_err(|source| match source {
            encstr_core::Error::NotUtf8 => CliError::NotUtf8 { file: self.shown.clone() },
            source => CliError::Parse { file: self.shown.clone(), source },
        })
    }
}

/// `encstr seal`.
pub fn seal(
    files: &[PathBuf],
    patterns: &[String],
    dry_run: bool,
    opts: &FileArgs,
    keyring: &KeyringArgs,
) -> Result<()> {
    let ring = keyring.load()?;
    let rules = FormatRules::parse(&opts.formats)?;
    let patterns = if patterns.is_empty() {
        Pattern::defaults()
    } else {
        patterns.iter().map(|p| Pattern::new(p)).collect::<Result<_, _>>()?
    };
    let verb = if dry_run { "would seal" } else { "sealed" };
    let (mut total, mut touched, mut failed) = (0, 0, 0);
    for path in files {
        let result = Input::read(path, &rules).and_then(|input| {
            let sealed = input.parse()?.seal(&ring, &patterns, &opts.name_prefix)?;
            let Some(encstr_core::document::Sealed { bytes, changed }) = sealed else {
                return say(format_args!("{}: nothing to seal", input.shown)).map(|()| 0);
            };
            if !dry_run {
                fsio::write_atomic(&input.path, &bytes, 0o600)?;
            }
            for c in &changed {
                say(format_args!("{}:{} {}: {verb} with key {}", input.shown, c.line, c.name, c.key_id))?;
            }
            Ok(changed.len())
        });
        match result {
            Ok(0) => {}
            Ok(n) => {
                total += n;
                touched += 1;
            }
            Err(e) => {
                warn(format_args!("encstr: error: {e}"));
                failed += 1;
            }
        }
    }
    say(format_args!("{verb} {total} value(s) in {touched} file(s)"))?;
    if failed > 0 {
        return Err(CliError::FilesFailed(failed));
    }
    Ok(())
}

/// `encstr reencrypt`.
pub fn reencrypt(files: &[PathBuf], opts: &FileArgs, keyring: &KeyringArgs) -> Result<()> {
    let ring = keyring.load()?;
    let rules = FormatRules::parse(&opts.formats)?;
    let primary = ring.primary().id();
    let (mut failed_values, mut failed_files) = (0, 0);
    for path in files {
        let result = Input::read(path, &rules).and_then(|input| {
            let file = input.parse()?;
            match file.reencrypt(&ring, &opts.name_prefix) {
                Ok(encstr_core::document::Reencrypted { bytes, changed, current }) => {
                    if let Some(bytes) = bytes {
                        fsio::write_atomic(&input.path, &bytes, 0o600)?;
                    }
                    say(format_args!(
                        "{}: {} re-encrypted under key {primary}, {current} already under it",
                        input.shown,
                        changed.len()
                    ))?;
                    Ok(0)
                }
                Err(errors) => {
                    for e in &errors {
                        warn(format_args!("{}:{} {}", input.shown, e.line, hint(&e.error)));
                    }
                    Ok(errors.len())
                }
            }
        });
        match result {
            Ok(0) => {}
            Ok(n) => {
                failed_values += n;
                failed_files += 1;
            }
            Err(e) => {
                warn(format_args!("encstr: error: {e}"));
                failed_values += 1;
                failed_files += 1;
            }
        }
    }
    if failed_files > 0 {
        return Err(CliError::ValuesFailed { failed: failed_values, files: failed_files });
    }
    Ok(())
}

#[derive(Serialize)]
struct CheckRow {
    file: String,
    line: usize,
    name: Option<String>,
    key_id: Option<String>,
    /// `ok`, `failed`, `unchecked` (no keyring) or `invalid_file`.
    status: &'static str,
    error_kind: Option<&'static str>,
    error: Option<String>,
}

/// `encstr check`.
pub fn check(files: &[PathBuf], json: bool, opts: &FileArgs, keyring: &KeyringArgs) -> Result<()> {
    let ring: Option<Keyring> = if keyring.is_given() { Some(keyring.load()?) } else { None };
    let rules = FormatRules::parse(&opts.formats)?;
    let mut rows = Vec::new();
    for path in files {
        let reports = Input::read(path, &rules).and_then(|input| {
            let file = input.parse()?;
            Ok(file.check(ring.as_ref(), &opts.name_prefix))
        });
        let shown = path.display().to_string();
        match reports {
            Ok(reports) => rows.extend(reports.into_iter().map(|r| {
                let (status, error_kind, error) = match &r.result {
                    None => ("unchecked", None, None),
                    Some(Ok(())) => ("ok", None, None),
                    Some(Err(e)) => ("failed", Some(e.kind()), Some(hint(e))),
                };
                CheckRow {
                    file: shown.clone(),
                    line: r.line,
                    name: Some(r.name),
                    key_id: r.key_id.map(|k| k.to_string()),
                    status,
                    error_kind,
                    error,
                }
            })),
            Err(e) => {
                let line = match &e {
                    CliError::Parse { source: encstr_core::Error::Parse { line, .. }, .. } => *line,
                    _ => 0,
                };
                rows.push(CheckRow {
                    file: shown,
                    line,
                    name: None,
                    key_id: None,
                    status: "invalid_file",
                    error_kind: Some("parse"),
                    error: Some(e.to_string()),
                });
            }
        }
    }
    let failed = rows.iter().filter(|r| matches!(r.status, "failed" | "invalid_file")).count();
    if json {
        say(serde_json::to_string_pretty(&rows).expect("serializable"))?;
    } else {
        for r in &rows {
            match r.status {
                "invalid_file" => {
                    warn(format_args!("encstr: error: {}", r.error.as_deref().unwrap_or_default()))
                }
                status => {
                    let name = r.name.as_deref().unwrap_or_default();
                    let key = r.key_id.as_deref().unwrap_or("-");
                    let outcome = match (status, r.error_kind) {
                        ("failed", Some(kind)) => format!(" FAILED {kind}"),
                        ("ok", _) => " ok".to_owned(),
                        _ => String::new(),
                    };
                    say(format_args!("{}:{} {name} {key}{outcome}", r.file, r.line))?;
                }
            }
        }
        let tokens = rows.iter().filter(|r| r.name.is_some()).count();
        let ok = rows.iter().filter(|r| r.status == "ok").count();
        warn(match &ring {
            Some(_) => format!("{tokens} token(s) in {} file(s): {ok} ok, {failed} failed", files.len()),
            None => format!("{tokens} token(s) in {} file(s) (not decrypted: no keyring given)", files.len()),
        });
        for r in rows.iter().filter(|r| r.status == "failed") {
            warn(format_args!("{}:{} {}", r.file, r.line, r.error.as_deref().unwrap_or_default()));
        }
    }
    if failed > 0 {
        return Err(CliError::CheckFailed {
            failed,
            files: rows
                .iter()
                .filter(|r| r.status != "ok")
                .map(|r| &r.file)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
        });
    }
    Ok(())
}

/// An error message with what to do about it.
pub fn hint(e: &encstr_core::Error) -> String {
    let todo = match e.kind() {
        "unknown_key" => "; use a keyring that holds this key, or re-encrypt the value",
        "authentication_failed" => {
            "; check the secret name (and --name-prefix) the value was sealed for, or re-seal it"
        }
        "malformed" => "; the value starts with ENCSTR: but is not a token: re-seal it",
        "unsupported_version" => "; upgrade encstr",
        _ => "",
    };
    format!("{e}{todo}")
}
