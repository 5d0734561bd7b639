//! Listing the files of a source directory, including Kubernetes'
//! ConfigMap/Secret volume layout (`name -> ..data/name`,
//! `..data -> ..2024_01_01_00_00_00.123`).
//!
//! Rendering stays inside the source tree: only regular files are read,
//! and a symbolic link is followed only when it resolves inside the source
//! root (kubelet's links do). A link anywhere else — to `/etc/...`, to the
//! keyring file, to `/proc/self/environ` — or a special file (a FIFO, a
//! device) is an error naming it, so nothing outside the volume is ever
//! decrypted into the app's view. `..*` entries themselves are never
//! rendered.

use std::io;
use std::path::{Path, PathBuf};

/// Directories nested deeper than this are refused (symlink loops).
const MAX_DEPTH: usize = 32;

/// A regular file of the source tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the source directory.
    pub rel: PathBuf,
    /// Path to read it from: resolved, inside the source root.
    pub path: PathBuf,
}

/// Why the source tree cannot be rendered.
#[derive(Debug)]
pub enum SourceError {
    /// Reading a directory failed.
    Io(io::Error),
    /// A symbolic link resolves outside the source root.
    LinkOutside {
        /// The link, relative to the source directory.
        rel: PathBuf,
    },
    /// An entry is neither a regular file nor a directory.
    NotRegular {
        /// The entry, relative to the source directory.
        rel: PathBuf,
    },
    /// Directories nest too deep (a symlink loop).
    TooDeep {
        /// Where it was noticed, relative to the source directory.
        rel: PathBuf,
    },
}

impl SourceError {
    /// The error kind shown in failure reports.
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Io(e) if e.kind() == io::ErrorKind::NotFound => "not_found",
            SourceError::Io(e) if e.kind() == io::ErrorKind::PermissionDenied => "permission_denied",
            SourceError::Io(_) => "read",
            SourceError::LinkOutside { .. } => "link_outside_source",
            SourceError::NotRegular { .. } => "not_a_regular_file",
            SourceError::TooDeep { .. } => "nested_too_deep",
        }
    }

    /// The entry concerned, relative to the source (`None`: the root).
    pub fn rel(&self) -> Option<&Path> {
        match self {
            SourceError::Io(_) => None,
            SourceError::LinkOutside { rel }
            | SourceError::NotRegular { rel }
            | SourceError::TooDeep { rel } => Some(rel),
        }
    }
}

impl From<io::Error> for SourceError {
    fn from(e: io::Error) -> Self {
        SourceError::Io(e)
    }
}

/// What a kubelet volume's `..data` link points to now (`None`: not such a
/// volume). A render reads one version: this is the same before and after.
pub fn data_version(root: &Path) -> Option<PathBuf> {
    std::fs::read_link(root.join("..data")).ok()
}

/// Every regular file under `root`, sorted by path. Links are followed only
/// within `root`. In a kubelet volume, `..data` is resolved once and every
/// top-level `name -> ..data/name` link is read through that one directory,
/// so a swap during the walk cannot mix two versions (the caller checks
/// [`data_version`] did not change while it read).
pub fn list_files(root: &Path) -> Result<Vec<SourceFile>, SourceError> {
    let canonical_root = std::fs::canonicalize(root)?;
    let data_link = canonical_root.join("..data");
    let data = match std::fs::symlink_metadata(&data_link) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(&data_link) {
            Ok(d) if d.starts_with(&canonical_root) => Some(d),
            Ok(_) => return Err(SourceError::LinkOutside { rel: PathBuf::from("..data") }),
            // Swapped away meanwhile: the caller's version check retries.
            Err(e) => return Err(SourceError::Io(e)),
        },
        _ => None,
    };
    let mut out = Vec::new();
    walk(&canonical_root, &canonical_root, Path::new(""), 0, data.as_deref(), &mut out)?;
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// `..data/<rest>` of a top-level link, read in the resolved data directory.
fn through_data(link: &Path, data: &Path) -> Option<PathBuf> {
    let rest = link.strip_prefix("..data").ok()?;
    rest.components().all(|c| matches!(c, std::path::Component::Normal(_))).then(|| data.join(rest))
}

fn walk(
    root: &Path,
    dir: &Path,
    rel: &Path,
    depth: usize,
    data: Option<&Path>,
    out: &mut Vec<SourceFile>,
) -> Result<(), SourceError> {
    if depth > MAX_DEPTH {
        return Err(SourceError::TooDeep { rel: rel.to_owned() });
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("..") {
            continue;
        }
        let rel = rel.join(&name);
        let mut path = entry.path();
        if entry.file_type()?.is_symlink() {
            let pinned = match (depth, data) {
                (0, Some(d)) => std::fs::read_link(&path).ok().and_then(|l| through_data(&l, d)),
                _ => None,
            };
            let path_to_resolve = pinned.unwrap_or_else(|| path.clone());
            // A dangling link (kubelet mid-update) holds nothing to read.
            let Ok(target) = std::fs::canonicalize(&path_to_resolve) else { continue };
            if !target.starts_with(root) {
                return Err(SourceError::LinkOutside { rel });
            }
            path = target;
        }
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            walk(root, &path, &rel, depth + 1, data, out)?;
        } else if meta.is_file() {
            out.push(SourceFile { rel, path });
        } else {
            return Err(SourceError::NotRegular { rel });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("encstr-src-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    #[test]
    fn follows_the_configmap_layout_and_skips_dot_dot_entries() {
        let root = scratch("layout");
        let ts = root.join("..2026_11_23_09_00_00.1");
        std::fs::create_dir_all(ts.join("sub")).unwrap();
        std::fs::write(ts.join("app.properties"), "a=1").unwrap();
        std::fs::write(ts.join(".env"), "A=1").unwrap();
        std::fs::write(ts.join("sub/x.yaml"), "a: 1").unwrap();
        symlink("..2026_11_23_09_00_00.1", root.join("..data")).unwrap();
        for n in ["app.properties", ".env", "sub"] {
            symlink(format!("..data/{n}"), root.join(n)).unwrap();
        }
        symlink("..data/missing", root.join("dangling")).unwrap();
        let files = list_files(&root).unwrap();
        let rels: Vec<&Path> = files.iter().map(|f| f.rel.as_path()).collect();
        assert_eq!(rels, [Path::new(".env"), Path::new("app.properties"), Path::new("sub/x.yaml")]);
        let canonical = std::fs::canonicalize(&root).unwrap();
        assert!(files.iter().all(|f| f.path.starts_with(canonical.join("..2026_11_23_09_00_00.1"))));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn links_leaving_the_source_and_special_files_are_errors() {
        let outside = scratch("outside");
        std::fs::write(outside.join("keyring"), "k").unwrap();
        for (target, name) in [
            (PathBuf::from("/etc/hostname"), "etc.properties"),
            (outside.join("keyring"), "keyring"),
            (PathBuf::from("/proc/self/environ"), "environ"),
            (outside.clone(), "dir"),
            (PathBuf::from("../../"), "up"),
        ] {
            let root = scratch("escape");
            std::fs::write(root.join("ok.yaml"), "a: 1").unwrap();
            std::fs::create_dir(root.join("nested")).unwrap();
            symlink(&target, root.join("nested").join(name)).unwrap();
            match list_files(&root) {
                Err(e @ SourceError::LinkOutside { .. }) => {
                    assert_eq!(e.rel(), Some(Path::new("nested").join(name).as_path()));
                    assert_eq!(e.reason(), "link_outside_source");
                }
                other => panic!("{name}: {other:?}"),
            }
            std::fs::remove_dir_all(&root).unwrap();
        }
        let root = scratch("fifo");
        assert!(std::process::Command::new("mkfifo").arg(root.join("pipe")).status().unwrap().success());
        let err = list_files(&root).unwrap_err();
        assert_eq!((err.reason(), err.rel()), ("not_a_regular_file", Some(Path::new("pipe"))));
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn links_inside_the_source_are_followed() {
        let root = scratch("inside");
        std::fs::create_dir(root.join("real")).unwrap();
        std::fs::write(root.join("real/a.yaml"), "a: 1").unwrap();
        symlink("real/a.yaml", root.join("alias.yaml")).unwrap();
        symlink(root.join("real"), root.join("absolute")).unwrap();
        let rels: Vec<PathBuf> = list_files(&root).unwrap().into_iter().map(|f| f.rel).collect();
        assert_eq!(rels, [PathBuf::from("absolute/a.yaml"), "alias.yaml".into(), "real/a.yaml".into()]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
