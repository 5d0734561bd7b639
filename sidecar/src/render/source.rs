//! Listing the files of a source directory, including Kubernetes'
//! ConfigMap/Secret volume layout (`name -> ..data/name`,
//! `..data -> ..2024_01_01_00_00_00.123`): links are followed, `..*`
//! entries themselves are never rendered.

use std::io;
use std::path::{Path, PathBuf};

/// Directories nested deeper than this are refused (symlink loops).
const MAX_DEPTH: usize = 32;

/// A regular file of the source tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the source directory.
    pub rel: PathBuf,
    /// Path to read it from.
    pub path: PathBuf,
}

/// Every regular file under `root` (following symlinks), sorted by path.
pub fn list_files(root: &Path) -> io::Result<Vec<SourceFile>> {
    let mut out = Vec::new();
    walk(root, Path::new(""), 0, &mut out)?;
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn walk(dir: &Path, rel: &Path, depth: usize, out: &mut Vec<SourceFile>) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!(
            "{}: directories nested too deep (symlink loop?)",
            dir.display()
        )));
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("..") {
            continue;
        }
        let path = entry.path();
        // Follow symlinks; a dangling link (mid-update) is skipped.
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        let rel = rel.join(&name);
        if meta.is_dir() {
            walk(&path, &rel, depth + 1, out)?;
        } else if meta.is_file() {
            out.push(SourceFile { rel, path });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn follows_the_configmap_layout_and_skips_dot_dot_entries() {
        let root = std::env::temp_dir().join(format!("encstr-src-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
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
        let rels: Vec<PathBuf> = list_files(&root).unwrap().into_iter().map(|f| f.rel).collect();
        assert_eq!(rels, vec![PathBuf::from(".env"), "app.properties".into(), "sub/x.yaml".into()]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
