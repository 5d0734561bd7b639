//! Atomic file writes: a temporary file in the same directory, fsync, then
//! rename (or link, to refuse overwriting), so no reader ever sees a
//! half-written file and a failure leaves the old content in place.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::{CliError, Result};

/// A uniquely named temporary file beside `path`, created exclusively with
/// `mode`, holding `bytes`, flushed to disk.
fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut nonce = [0u8; 6];
    getrandom::fill(&mut nonce).map_err(|e| CliError::io(path)(std::io::Error::other(e.to_string())))?;
    let suffix: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{base}.encstr-{suffix}.tmp"));
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(CliError::io(&tmp))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.set_permissions(fs::Permissions::from_mode(mode)))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(CliError::io(path)(e));
    }
    Ok(tmp)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// Replace `path` with `bytes` atomically. The file keeps its current mode,
/// or gets `default_mode` if it does not exist yet.
pub fn write_atomic(path: &Path, bytes: &[u8], default_mode: u32) -> Result<()> {
    let mode = fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(default_mode);
    let tmp = write_temp(path, bytes, mode)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(CliError::io(path)(e));
    }
    sync_dir(path);
    Ok(())
}

/// Create `path` with `bytes` and `mode` atomically; fails if it exists.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if path.symlink_metadata().is_ok() {
        return Err(CliError::KeyringExists(path.to_owned()));
    }
    let tmp = write_temp(path, bytes, mode)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(path);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(CliError::KeyringExists(path.to_owned()))
        }
        Err(e) => Err(CliError::io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_keep_mode_and_leave_no_temp_files() {
        let dir = std::env::temp_dir().join(format!("encstr-fsio-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("k");
        write_new(&f, b"one", 0o600).unwrap();
        assert!(matches!(write_new(&f, b"two", 0o600), Err(CliError::KeyringExists(_))));
        assert_eq!(fs::read(&f).unwrap(), b"one");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&f, b"three", 0o600).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"three");
        assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
