//! Writing the rendered tree so readers never see a partial file or a mix of
//! old and new files: every render goes to a fresh `..render-<n>` directory,
//! then the `..data` symlink is switched to it in one `rename`, and each
//! top-level entry is a symlink through `..data` — the layout kubelet uses
//! for ConfigMap volumes. Files whose content did not change are hard links
//! to the previous ones (same inode and mtime), and a render that changes
//! nothing writes nothing.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _, symlink};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";
const RENDER_PREFIX: &str = "..render-";

/// What a write changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Files with new or changed content.
    pub changed: Vec<PathBuf>,
    /// Files that are gone.
    pub removed: Vec<PathBuf>,
    /// Files that stayed the same.
    pub unchanged: usize,
}

impl Outcome {
    /// Whether the target changed at all.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The steps of a write, in order (tests inject a failure at each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Writing the new render directory.
    Fill,
    /// Pointing `..data` at it (the one atomic switch).
    Point,
    /// Making the top-level links match.
    Link,
    /// Removing earlier render directories.
    Cleanup,
}

/// The target directory.
#[derive(Debug, Clone)]
pub struct Target {
    dir: PathBuf,
    file_mode: u32,
    dir_mode: u32,
    /// A failure to inject at a step (tests only).
    fault: Option<Step>,
}

impl Target {
    /// A target writing files with `file_mode`; directories get the same
    /// read bits plus search (x) where read is set.
    pub fn new(dir: impl Into<PathBuf>, file_mode: u32) -> Self {
        let r = file_mode & 0o444;
        Target { dir: dir.into(), file_mode, dir_mode: r | (r >> 2), fault: None }
    }

    /// Fail at `step` (to test that every failure leaves the app's files).
    #[doc(hidden)]
    pub fn failing_at(mut self, step: Step) -> Self {
        self.fault = Some(step);
        self
    }

    fn step(&self, step: Step) -> io::Result<()> {
        if self.fault == Some(step) {
            return Err(io::Error::other(format!("injected failure at {step:?}")));
        }
        Ok(())
    }

    /// The directory `..data` currently points to.
    fn current(&self) -> Option<PathBuf> {
        fs::read_link(self.dir.join(DATA)).ok().map(|l| self.dir.join(l))
    }

    /// Make the target hold exactly `files`. On any failure the app keeps a
    /// complete render: the previous one if `..data` was not switched yet
    /// (the new directory is removed), else the new one (never removed once
    /// `..data` points to it; top-level links a failure left out are made
    /// by the next write, even one that changes no file).
    pub fn write(&self, files: &[(PathBuf, Zeroizing<Vec<u8>>)]) -> io::Result<Outcome> {
        fs::create_dir_all(&self.dir)?;
        for (rel, _) in files {
            if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
                return Err(io::Error::other(format!("{}: not a plain relative path", rel.display())));
            }
        }
        let current = self.current().filter(|c| c.is_dir());
        let mut outcome = Outcome::default();
        let new_set: BTreeSet<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
        let mut same = vec![false; files.len()];
        if let Some(cur) = &current {
            for (i, (rel, bytes)) in files.iter().enumerate() {
                same[i] = fs::read(cur.join(rel))
                    .map(Zeroizing::new)
                    .is_ok_and(|old| old.as_slice() == bytes.as_slice());
            }
            let mut old_files = Vec::new();
            list_relative(cur, Path::new(""), &mut old_files)?;
            outcome.removed = old_files.into_iter().filter(|p| !new_set.contains(p.as_path())).collect();
        }
        outcome.unchanged = same.iter().filter(|s| **s).count();
        outcome.changed =
            files.iter().zip(&same).filter(|(_, s)| !**s).map(|((p, _), _)| p.clone()).collect();
        if current.is_some() && outcome.is_empty() {
            self.link_top(files)?;
            return Ok(outcome);
        }

        let name = format!("{RENDER_PREFIX}{}", unique_suffix());
        let fresh = self.dir.join(&name);
        fs::create_dir(&fresh)?;
        let pointed = self.fill(&fresh, current.as_deref(), files, &same).and_then(|()| self.point(&name));
        if let Err(e) = pointed {
            // `..data` still points to the previous render: the app keeps it.
            let _ = remove_tree(&fresh);
            return Err(e);
        }
        // From here `..data` is the new render: whatever fails, it stays.
        self.link_top(files)?;
        self.step(Step::Cleanup)?;
        // Old render directories (the previous one, and any left by a crash).
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let n = entry.file_name().to_string_lossy().into_owned();
            if n.starts_with(RENDER_PREFIX) && n != name {
                let _ = remove_tree(&entry.path());
            }
        }
        Ok(outcome)
    }

    /// Write every file into `fresh` (hard links for unchanged content).
    fn fill(
        &self,
        fresh: &Path,
        current: Option<&Path>,
        files: &[(PathBuf, Zeroizing<Vec<u8>>)],
        same: &[bool],
    ) -> io::Result<()> {
        let mut dirs = BTreeSet::new();
        for ((rel, bytes), same) in files.iter().zip(same) {
            let path = fresh.join(rel);
            if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(fresh.join(parent))?;
                for a in parent.ancestors().filter(|a| !a.as_os_str().is_empty()) {
                    dirs.insert(a.to_owned());
                }
            }
            if *same
                && let Some(cur) = current
                && fs::hard_link(cur.join(rel), &path).is_ok()
            {
                continue;
            }
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::set_permissions(&path, fs::Permissions::from_mode(self.file_mode))?;
        }
        // Deepest first, so the parents stay writable until their children are done.
        for d in dirs.iter().rev() {
            fs::set_permissions(fresh.join(d), fs::Permissions::from_mode(self.dir_mode))?;
        }
        fs::set_permissions(fresh, fs::Permissions::from_mode(self.dir_mode))?;
        if let Ok(d) = fs::File::open(fresh) {
            let _ = d.sync_all();
        }
        self.step(Step::Fill)
    }

    /// Point `..data` at `name` in one rename.
    fn point(&self, name: &str) -> io::Result<()> {
        self.step(Step::Point)?;
        let tmp = self.dir.join(DATA_TMP);
        let _ = fs::remove_file(&tmp);
        symlink(name, &tmp)?;
        fs::rename(&tmp, self.dir.join(DATA))
    }

    /// Make the top-level entries links through `..data` for `files`, and
    /// remove those of earlier renders that are gone.
    fn link_top(&self, files: &[(PathBuf, Zeroizing<Vec<u8>>)]) -> io::Result<()> {
        self.step(Step::Link)?;

        let top: BTreeSet<String> = files
            .iter()
            .filter_map(|(p, _)| p.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        for entry in &top {
            let link = self.dir.join(entry);
            let want = Path::new(DATA).join(entry);
            if fs::read_link(&link).is_ok_and(|l| l == want) {
                continue;
            }
            if let Ok(meta) = fs::symlink_metadata(&link)
                && meta.is_dir()
            {
                remove_tree(&link)?;
            }
            let tmp = self.dir.join(format!("..{entry}.tmp"));
            let _ = fs::remove_file(&tmp);
            symlink(&want, &tmp)?;
            fs::rename(&tmp, &link)?;
        }
        // Entries of earlier renders that are gone now.
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let n = entry.file_name().to_string_lossy().into_owned();
            if n.starts_with("..") || top.contains(&n) {
                continue;
            }
            if fs::read_link(entry.path()).is_ok_and(|l| l.starts_with(DATA)) {
                fs::remove_file(entry.path())?;
            }
        }
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

fn list_relative(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let rel = rel.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            list_relative(&entry.path(), &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// Remove a directory tree whose directories may be read-only.
fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
        for entry in fs::read_dir(path)? {
            remove_tree(&entry?.path())?;
        }
        fs::remove_dir(path)
    } else {
        fs::remove_file(path)
    }
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let mut r = [0u8; 3];
    let _ = getrandom::fill(&mut r);
    format!("{nanos}-{:02x}{:02x}{:02x}", r[0], r[1], r[2])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(PathBuf, Zeroizing<Vec<u8>>)> {
        list.iter().map(|(p, c)| (PathBuf::from(p), Zeroizing::new(c.as_bytes().to_vec()))).collect()
    }

    #[test]
    fn swaps_atomically_and_rewrites_only_changes() {
        let dir = std::env::temp_dir().join(format!("encstr-out-{}", std::process::id()));
        let _ = remove_tree(&dir);
        let t = Target::new(&dir, 0o440);
        let o = t.write(&files(&[("a.properties", "a=1"), ("sub/b.yaml", "b: 2")])).unwrap();
        assert_eq!(o.changed.len(), 2);
        assert_eq!(fs::read_to_string(dir.join("a.properties")).unwrap(), "a=1");
        assert_eq!(fs::read_to_string(dir.join("sub/b.yaml")).unwrap(), "b: 2");
        assert_eq!(fs::metadata(dir.join("a.properties")).unwrap().mode() & 0o777, 0o440);
        assert_eq!(fs::metadata(dir.join("sub")).unwrap().mode() & 0o777, 0o550);
        let first_data = fs::read_link(dir.join(DATA)).unwrap();

        // Nothing changed: nothing written.
        let o = t.write(&files(&[("a.properties", "a=1"), ("sub/b.yaml", "b: 2")])).unwrap();
        assert!(o.is_empty());
        assert_eq!(fs::read_link(dir.join(DATA)).unwrap(), first_data);

        // One file changed, one removed, one added: unchanged keeps its inode.
        let ino = fs::metadata(dir.join("a.properties")).unwrap().ino();
        let o = t.write(&files(&[("a.properties", "a=1"), ("c.env", "C=3")])).unwrap();
        assert_eq!(
            o,
            Outcome { changed: vec!["c.env".into()], removed: vec!["sub/b.yaml".into()], unchanged: 1 }
        );
        assert_eq!(fs::metadata(dir.join("a.properties")).unwrap().ino(), ino);
        assert!(!dir.join("sub").exists());
        assert_eq!(fs::read_to_string(dir.join("c.env")).unwrap(), "C=3");
        let names: BTreeSet<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 4, "..data, one render dir, two links: {names:?}");
        remove_tree(&dir).unwrap();
    }

    /// What the app reads: every file under the target's top level,
    /// through the links.
    fn view(dir: &Path) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for e in fs::read_dir(dir).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            if n.starts_with("..") {
                continue;
            }
            let mut rel = Vec::new();
            let p = dir.join(&n);
            if p.is_dir() {
                list_relative(&p, Path::new(&n), &mut rel).unwrap();
            } else {
                rel.push(PathBuf::from(&n));
            }
            // A dangling link is no file to the app.
            for r in rel {
                if let Ok(text) = fs::read_to_string(dir.join(&r)) {
                    out.insert(r.display().to_string(), text);
                }
            }
        }
        out
    }

    /// A failure at any step of a write leaves the app a complete render:
    /// the previous one before `..data` switched, the new one after (its
    /// files never deleted), and the next write repairs the rest.
    #[test]
    fn a_failure_at_any_step_leaves_the_app_a_complete_render() {
        let old = [("a.properties", "a=1"), ("sub/b.yaml", "b: 1"), ("gone.env", "G=1")];
        let new = [("a.properties", "a=2"), ("sub/b.yaml", "b: 1"), ("c.env", "C=2")];
        let want = |list: &[(&str, &str)]| -> BTreeMap<String, String> {
            list.iter().map(|(p, c)| ((*p).to_owned(), (*c).to_owned())).collect()
        };
        for step in [Step::Fill, Step::Point, Step::Link, Step::Cleanup] {
            let dir = std::env::temp_dir().join(format!("encstr-out-fault-{step:?}-{}", std::process::id()));
            let _ = remove_tree(&dir);
            Target::new(&dir, 0o440).write(&files(&old)).unwrap();
            let failing = Target::new(&dir, 0o440).failing_at(step);
            assert!(failing.write(&files(&new)).is_err(), "{step:?}");
            let seen = view(&dir);
            match step {
                Step::Fill | Step::Point => assert_eq!(seen, want(&old), "{step:?}: the previous render"),
                // The new content through the old links; the added file's
                // link is not there yet, the removed one's dangles.
                Step::Link => {
                    assert_eq!(seen.get("a.properties").map(String::as_str), Some("a=2"));
                    assert_eq!(seen.get("sub/b.yaml").map(String::as_str), Some("b: 1"));
                }
                Step::Cleanup => assert_eq!(seen, want(&new), "{step:?}"),
            }
            // The next write (the same files: no content change) repairs it.
            Target::new(&dir, 0o440).write(&files(&new)).unwrap();
            assert_eq!(view(&dir), want(&new), "{step:?}: repaired");
            remove_tree(&dir).unwrap();
        }
    }

    #[test]
    fn refuses_paths_leaving_the_target() {
        let dir = std::env::temp_dir().join(format!("encstr-out-esc-{}", std::process::id()));
        let t = Target::new(&dir, 0o440);
        assert!(t.write(&files(&[("../x", "1")])).is_err());
        let _ = remove_tree(&dir);
    }
}
