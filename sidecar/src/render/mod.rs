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
    /// File and secret names are escaped (`commands::escape`): they reach
    /// logs and the termination message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = crate::commands::escape(&self.file, &[]);
        let name = crate::commands::escape(&self.name, &[]);
        match (self.line, self.name.is_empty()) {
            (0, _) => write!(f, "{file}: {}", self.reason),
            (line, true) => write!(f, "{file}:{line}: {}", self.reason),
            (line, false) => write!(f, "{file}:{line} {name}: {}", self.reason),
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

/// How often a render is tried again when the source volume was swapped
/// while it was read.
const SNAPSHOT_TRIES: usize = 5;

/// Decrypt every file under `source`. All or nothing: if anything fails,
/// every failure is returned and no output. The files are one version of a
/// kubelet volume: if `..data` changed while they were read, they are read
/// again.
pub fn render_tree(
    source: &Path,
    keyring: &Keyring,
    opts: &RenderOptions,
) -> Result<RenderedTree, Vec<Failure>> {
    for _ in 0..SNAPSHOT_TRIES {
        let before = source::data_version(source);
        let result = render_version(source, keyring, opts);
        if source::data_version(source) == before {
            return result;
        }
    }
    Err(vec![Failure {
        file: source.display().to_string(),
        line: 0,
        name: String::new(),
        reason: "source_changing",
    }])
}

fn render_version(
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use encstr_core::keys::{Key, Seed};

    use super::*;

    /// kubelet swaps a ConfigMap volume's `..data` between two versions as
    /// fast as it can while renders run: every render holds one version,
    /// never a file of each.
    #[test]
    fn a_render_reads_one_version_of_a_volume_being_swapped() {
        let root = std::env::temp_dir().join(format!("encstr-snapshot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let names: Vec<String> = (0..8).map(|i| format!("f{i}.properties")).collect();
        for v in ["1", "2"] {
            let dir = root.join(format!("..v{v}"));
            std::fs::create_dir(&dir).unwrap();
            for n in &names {
                std::fs::write(dir.join(n), format!("version={v}\n")).unwrap();
            }
        }
        symlink("..v1", root.join("..data")).unwrap();
        for n in &names {
            symlink(format!("..data/{n}"), root.join(n)).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (root, stop) = (root.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let tmp = root.join("..data_tmp");
                    let _ = std::fs::remove_file(&tmp);
                    symlink(if i.is_multiple_of(2) { "..v2" } else { "..v1" }, &tmp).unwrap();
                    std::fs::rename(&tmp, root.join("..data")).unwrap();
                    i += 1;
                }
            })
        };
        let ring = Keyring::new(vec![Key::from_seed(Seed::from_bytes([1; 32]))]).unwrap();
        let opts = RenderOptions {
            formats: FormatRules::parse(&[]).unwrap(),
            name_prefix: String::new(),
            plaintext_patterns: Vec::new(),
            deny_plaintext: false,
            max_file_size: 1 << 20,
        };
        let (mut rendered, mut changing) = (0, 0);
        for _ in 0..400 {
            match render_tree(&root, &ring, &opts) {
                Ok(tree) => {
                    rendered += 1;
                    let versions: BTreeSet<&[u8]> = tree.files.iter().map(|(_, b)| b.as_slice()).collect();
                    assert_eq!(versions.len(), 1, "a render mixed two versions of the volume");
                    assert_eq!(tree.files.len(), names.len());
                }
                Err(f) if f[0].reason == "source_changing" => changing += 1,
                Err(f) => panic!("{f:?}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(rendered > 0, "no render completed ({changing} saw the source changing throughout)");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
