//! `encstr seal`, `encstr reencrypt` and `encstr check`: whole config files.

use std::path::{Path, PathBuf};

use encstr_core::glob::Pattern;
use encstr_core::{ConfigFile, Format, Keyring};
use serde::Serialize;

use super::{say, warn};
use crate::cli::{FileArgs, KeyringArgs, RecipientArgs};
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
    bytes: zeroize::Zeroizing<Vec<u8>>,
    format: Format,
}

impl Input {
    fn read(path: &Path, rules: &FormatRules, max: u64) -> Result<Self> {
        let bytes = fsio::read_limited(path, max)?;
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

/// `encstr seal`: to a recipient when one is given (ENCSTR v2, no keyring
/// read), else with the keyring (v1).
pub fn seal(
    files: &[PathBuf],
    patterns: &[String],
    dry_run: bool,
    opts: &FileArgs,
    recipient: &RecipientArgs,
    keyring: &KeyringArgs,
) -> Result<()> {
    let to = match recipient.load()? {
        Some(r) => Ok(r),
        None => Err(keyring.load()?),
    };
    let rules = FormatRules::parse(&opts.formats)?;
    let patterns = if patterns.is_empty() {
        Pattern::defaults()
    } else {
        patterns.iter().map(|p| Pattern::new(p)).collect::<Result<_, _>>()?
    };
    let verb = if dry_run { "would seal" } else { "sealed" };
    let (mut total, mut touched, mut failed) = (0, 0, 0);
    for path in files {
        let result = Input::read(path, &rules, opts.max_file_size).and_then(|input| {
            let file = input.parse()?;
            let sealed = match &to {
                Ok(recipient) => file.seal_to(recipient, &patterns, &opts.name_prefix),
                Err(ring) => file.seal(ring, &patterns, &opts.name_prefix),
            };
            let sealed = match sealed {
                Ok(sealed) => sealed,
                Err(errors) => {
                    for e in &errors {
                        warn(format_args!("{}:{} {}", input.shown, e.line, hint(&e.error)));
                    }
                    return Err(CliError::ValuesFailed { failed: errors.len(), files: 1 });
                }
            };
            let Some(encstr_core::document::Sealed { bytes, changed }) = sealed else {
                return say(format_args!("{}: nothing to seal", input.shown)).map(|()| 0);
            };
            if !dry_run {
                fsio::write_through(&input.path, &bytes, 0o600)?;
            }
            let how = if to.is_ok() { "to the recipient of key" } else { "with key" };
            for c in &changed {
                say(format_args!(
                    "{}:{} {}: {verb} {how} {}",
                    input.shown,
                    c.line,
                    super::escape(&c.name, &[]),
                    c.key_id
                ))?;
            }
            Ok(changed.len())
        });
        match result {
            Ok(0) => {}
            Ok(n) => {
                total += n;
                touched += 1;
            }
            // The values were reported one per line already.
            Err(CliError::ValuesFailed { .. }) => failed += 1,
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
        let result = Input::read(path, &rules, opts.max_file_size).and_then(|input| {
            let file = input.parse()?;
            match file.reencrypt(&ring, &opts.name_prefix) {
                Ok(encstr_core::document::Reencrypted { bytes, changed, current }) => {
                    if let Some(bytes) = bytes {
                        fsio::write_through(&input.path, &bytes, 0o600)?;
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
    /// 1 (made with a keyring) or 2 (sealed to a recipient).
    version: Option<u8>,
    /// `ok`, `failed`, `unchecked` (no keyring) or `invalid_file`.
    status: &'static str,
    error_kind: Option<&'static str>,
    error: Option<String>,
}

/// What `check` found so far, in the shape it is printed.
#[derive(Default)]
struct CheckOutput {
    /// `--json`: every row.
    rows: Vec<CheckRow>,
    /// Text: the listing (one write at the end: a file of 20,000 tokens is
    /// not 20,000 system calls, nor 20,000 formatted objects).
    listing: String,
    /// Text: one line per failing token, printed after the summary.
    failures: Vec<String>,
    tokens: usize,
    ok: usize,
    failed: usize,
    failed_files: usize,
}

impl CheckOutput {
    fn file(&mut self, file: &str, reports: &[encstr_core::document::TokenReport<'_>], json: bool) {
        let failed_before = self.failed;
        self.tokens += reports.len();
        if !json {
            self.listing.reserve(reports.len() * (file.len() + 48));
        }
        for r in reports {
            let (status, error) = match &r.result {
                None => ("unchecked", None),
                Some(Ok(())) => ("ok", None),
                Some(Err(e)) => ("failed", Some(e)),
            };
            match status {
                "ok" => self.ok += 1,
                "failed" => self.failed += 1,
                _ => {}
            }
            let name = Some(r.name.as_ref()).filter(|n| !n.is_empty());
            if json {
                self.rows.push(CheckRow {
                    file: file.to_owned(),
                    line: r.line,
                    name: name.map(str::to_owned),
                    key_id: r.key_id.map(|k| k.to_string()),
                    version: r.version,
                    status,
                    error_kind: error.map(encstr_core::Error::kind),
                    error: error.map(hint),
                });
                continue;
            }
            let l = &mut self.listing;
            l.push_str(file);
            l.push(':');
            push_number(l, r.line);
            l.push(' ');
            l.push_str(&super::escape(name.unwrap_or(UNNAMED), &[]));
            l.push(' ');
            match r.key_id.zip(r.version) {
                Some((id, version)) => {
                    l.push_str(std::str::from_utf8(&id.hex()).expect("hex is ASCII"));
                    l.push_str(if version == encstr_core::token::SEALED_VERSION { " v2" } else { " v1" });
                }
                None => l.push_str("- -"),
            }
            match error {
                None if status == "ok" => l.push_str(" ok\n"),
                None => l.push('\n'),
                Some(e) => {
                    l.push_str(" FAILED ");
                    l.push_str(e.kind());
                    l.push('\n');
                    self.failures.push(format!("{file}:{} {}", r.line, hint(e)));
                }
            }
        }
        if self.failed > failed_before {
            self.failed_files += 1;
        }
    }

    fn invalid(&mut self, file: &str, e: &CliError, json: bool) {
        self.failed += 1;
        self.failed_files += 1;
        if !json {
            warn(format_args!("encstr: error: {e}"));
            return;
        }
        let line = match e {
            CliError::Parse { source: encstr_core::Error::Parse { line, .. }, .. } => *line,
            _ => 0,
        };
        self.rows.push(CheckRow {
            file: file.to_owned(),
            line,
            name: None,
            key_id: None,
            version: None,
            status: "invalid_file",
            error_kind: Some("parse"),
            error: Some(e.to_string()),
        });
    }
}

/// Append a number's decimal digits.
fn push_number(out: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[i..]).expect("digits are ASCII"));
}

/// `encstr check`.
pub fn check(files: &[PathBuf], json: bool, opts: &FileArgs, keyring: &KeyringArgs) -> Result<()> {
    let ring: Option<Keyring> = if keyring.is_given() { Some(keyring.load()?) } else { None };
    let rules = FormatRules::parse(&opts.formats)?;
    let mut out = CheckOutput::default();
    for path in files {
        let shown = path.display().to_string();
        let input = match Input::read(path, &rules, opts.max_file_size) {
            Ok(input) => input,
            Err(e) => {
                out.invalid(&shown, &e, json);
                continue;
            }
        };
        match input.parse() {
            Ok(file) => out.file(&shown, &file.check(ring.as_ref(), &opts.name_prefix), json),
            Err(e) => out.invalid(&shown, &e, json),
        }
    }
    if json {
        say(serde_json::to_string_pretty(&out.rows).expect("serializable"))?;
    } else {
        super::say_raw(&out.listing)?;
        let (tokens, ok, failed) = (out.tokens, out.ok, out.failed);
        warn(match &ring {
            Some(_) => format!("{tokens} token(s) in {} file(s): {ok} ok, {failed} failed", files.len()),
            None => format!("{tokens} token(s) in {} file(s) (not decrypted: no keyring given)", files.len()),
        });
        for line in &out.failures {
            warn(line);
        }
    }
    if out.failed > 0 {
        return Err(CliError::CheckFailed { failed: out.failed, files: out.failed_files });
    }
    Ok(())
}

/// How `check` shows a token whose place has no name.
const UNNAMED: &str = "(unnamed)";

/// An error message with what to do about it.
pub fn hint(e: &encstr_core::Error) -> String {
    let todo = match e.kind() {
        "unknown_key" => "; use a keyring that holds this key, or re-encrypt the value",
        "authentication_failed" => {
            "; check the secret name (and --name-prefix) the value was sealed for, or re-seal it"
        }
        "malformed" => "; the value starts with ENCSTR: but is not a token: re-seal it",
        "unsupported_version" => "; upgrade encstr",
        "unnamed" => "; move the value under a key",
        "aliased" => "; write the value out at each place instead",
        _ => "",
    };
    // One line: a secret name in the message is shown escaped.
    super::escape(&format!("{e}{todo}"), &[]).into_owned()
}
