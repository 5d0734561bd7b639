//! `encstr render`: decrypt a tree of config files (a mounted ConfigMap)
//! into a target directory that only the application reads.
//!
//! [`render_tree`] computes what the target should hold, all or nothing
//! (every failing value is reported); [`output::Target`] applies it with a
//! kubelet-style atomic directory swap; [`run_once`] and [`watch`] tie them
//! together for the init-container and native-sidecar modes.

pub mod notify;
pub mod output;
pub mod source;
pub mod watch;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use encstr_core::glob::Pattern;
use encstr_core::{ConfigFile, Keyring};
use zeroize::Zeroizing;

use crate::commands::files::FormatRules;

/// How files are rendered.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Format overrides by glob.
    pub formats: FormatRules,
    /// Prefix of every secret name.
    pub name_prefix: String,
    /// Names of values that should be encrypted (the seal patterns).
    pub plaintext_patterns: Vec<Pattern>,
    /// Treat plaintext values matching the patterns as failures.
    pub deny_plaintext: bool,
    /// Refuse source files larger than this.
    pub max_file_size: u64,
}

/// A value (or file) that could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Path relative to the source directory.
    pub file: String,
    /// 1-based line (0 when the whole file is concerned).
    pub line: usize,
    /// Secret name (empty when the whole file is concerned).
    pub name: String,
    /// Error kind: `malformed`, `unsupported_version`, `unknown_key`,
    /// `authentication_failed`, `unnamed`, `unrepresentable`, `plaintext`,
    /// `parse`, `too_large`, `link_outside_source`, `not_a_regular_file`,
    /// `read`, ...
    pub reason: &'static str,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.name.is_empty()) {
            (0, _) => write!(f, "{}: {}", self.file, self.reason),
            (line, true) => write!(f, "{}:{line}: {}", self.file, self.reason),
            (line, false) => write!(f, "{}:{line} {}: {}", self.file, self.name, self.reason),
        }
    }
}

/// A plaintext value whose name says it should be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlaintextValue {
    /// Path relative to the source directory.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Secret name.
    pub name: String,
}

/// Everything the target directory should hold.
#[derive(Debug, Default)]
pub struct RenderedTree {
    /// Relative path and content of every file.
    pub files: Vec<(PathBuf, Zeroizing<Vec<u8>>)>,
    /// Number of tokens decrypted.
    pub decrypted: usize,
    /// Plaintext values matching the seal patterns.
    pub plaintext: Vec<PlaintextValue>,
}

/// Decrypt every file under `source`. All or nothing: if anything fails,
/// every failure is returned and no output.
pub fn render_tree(
    source: &Path,
    keyring: &Keyring,
    opts: &RenderOptions,
) -> Result<RenderedTree, Vec<Failure>> {
    let files = source::list_files(source).map_err(|e| {
        vec![Failure {
            file: e.rel().map_or_else(|| source.display().to_string(), |r| r.display().to_string()),
            line: 0,
            name: String::new(),
            reason: e.reason(),
        }]
    })?;
    let mut tree = RenderedTree::default();
    let mut failures = Vec::new();
    for file in files {
        let shown = file.rel.display().to_string();
        let bytes = match crate::fsio::read_limited(&file.path, opts.max_file_size) {
            Ok(b) => b,
            Err(e) => {
                failures.push(Failure { file: shown, line: 0, name: String::new(), reason: read_reason(&e) });
                continue;
            }
        };
        match render_file(&shown, &file.rel, &bytes, keyring, opts) {
            Ok((out, decrypted, plaintext)) => {
                tree.decrypted += decrypted;
                tree.plaintext.extend(plaintext);
                tree.files.push((file.rel, out));
            }
            Err(mut f) => failures.append(&mut f),
        }
    }
    if !failures.is_empty() {
        return Err(failures);
    }
    Ok(tree)
}

type FileResult = Result<(Zeroizing<Vec<u8>>, usize, Vec<PlaintextValue>), Vec<Failure>>;

/// Render one file. Files without any `ENCSTR:` text that do not parse in
/// their format are copied byte for byte (they hold nothing to decrypt).
fn render_file(shown: &str, rel: &Path, bytes: &[u8], keyring: &Keyring, opts: &RenderOptions) -> FileResult {
    let format = opts.formats.format_of(rel);
    let base = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let may_hold_tokens = || bytes.windows(7).any(|w| w == b"ENCSTR:");
    let file = match ConfigFile::parse(format, bytes, &base) {
        Ok(f) => f,
        Err(_) if !may_hold_tokens() => return Ok((Zeroizing::new(bytes.to_vec()), 0, Vec::new())),
        Err(e) => {
            let line = match e {
                encstr_core::Error::Parse { line, .. } => line,
                _ => 0,
            };
            return Err(vec![Failure { file: shown.to_owned(), line, name: String::new(), reason: "parse" }]);
        }
    };
    let mut failures = Vec::new();
    let rendered = file.render(keyring, &opts.name_prefix, &opts.plaintext_patterns);
    let (out, decrypted, plain) = match rendered {
        Ok(r) => {
            let plain: Vec<PlaintextValue> = r
                .plaintext_names
                .iter()
                .map(|(line, name)| PlaintextValue {
                    file: shown.to_owned(),
                    line: *line,
                    name: name.clone(),
                })
                .collect();
            (r.bytes, r.decrypted, plain)
        }
        Err(errors) => {
            failures.extend(errors.into_iter().map(|e| Failure {
                file: shown.to_owned(),
                line: e.line,
                name: e.name,
                reason: e.error.kind(),
            }));
            (Zeroizing::new(Vec::new()), 0, Vec::new())
        }
    };
    if opts.deny_plaintext {
        failures.extend(plain.iter().map(|p| Failure {
            file: p.file.clone(),
            line: p.line,
            name: p.name.clone(),
            reason: "plaintext",
        }));
    }
    if !failures.is_empty() {
        failures.sort_by_key(|f| f.line);
        return Err(failures);
    }
    Ok((out, decrypted, plain))
}

fn read_reason(e: &crate::error::CliError) -> &'static str {
    use crate::error::CliError;
    match e {
        CliError::FileTooLarge { .. } => "too_large",
        CliError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => "not_found",
        CliError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            "permission_denied"
        }
        _ => "read",
    }
}

/// The report of a failed render: a first line, then one line per failure.
pub fn failure_report(failures: &[Failure]) -> String {
    let files: BTreeSet<&str> = failures.iter().map(|f| f.file.as_str()).collect();
    let mut out = format!(
        "encstr render failed: {} problem(s) in {} file(s); the previous output was kept\n",
        failures.len(),
        files.len()
    );
    for f in failures {
        out.push_str(&f.to_string());
        out.push('\n');
    }
    out
}
