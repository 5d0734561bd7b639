//! File I/O for secrets: atomic writes (a temporary file in the same
//! directory, fsync, then rename, or link to refuse overwriting, and an fsync
//! of the directory), so no reader ever sees a half-written file and a
//! failure leaves the old content in place; bounded reads into buffers that
//! are wiped and never leave copies behind when they grow; and an advisory
//! lock for read-modify-write of keyring files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{CliError, Result};

/// Read everything from `r` into a wiped buffer, at most `max` bytes
/// (`None` when there is more). `hint` sizes the first buffer; when it must
/// grow, the contents move to a new buffer and the old one is wiped, so no
/// reallocation leaves a copy in freed memory.
pub fn read_secret(mut r: impl Read, hint: usize, max: u64) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut buf = Zeroizing::new(vec![0u8; hint.max(64).min(max.saturating_add(1))]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            if len > max {
                return Ok(None);
            }
            let mut bigger = Zeroizing::new(vec![0u8; len.saturating_mul(2).min(max.saturating_add(1))]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        match r.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if len > max {
        return Ok(None);
    }
    buf.truncate(len);
    Ok(Some(buf))
}

/// Read a file of at most `max` bytes into a wiped buffer.
pub fn read_limited(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>> {
    let file = File::open(path).map_err(CliError::io(path))?;
    let size = file.metadata().map_err(CliError::io(path))?.len();
    let too_large = |size| CliError::FileTooLarge { path: path.to_owned(), size, max };
    if size > max {
        return Err(too_large(size));
    }
    let hint = usize::try_from(size).unwrap_or(0).saturating_add(1);
    read_secret(file, hint, max).map_err(CliError::io(path))?.ok_or_else(|| too_large(max + 1))
}

/// An exclusive advisory lock (`flock`) on the directory of `path`, held
/// until the returned handle is dropped. Keyring files are replaced by
/// rename, so the lock is on their directory, which stays.
pub fn lock_dir_of(path: &Path) -> Result<File> {
    let dir = dir_of(path);
    let handle = File::open(dir).map_err(CliError::io(dir))?;
    rustix::fs::flock(&handle, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| CliError::io(dir)(e.into()))?;
    Ok(handle)
}

fn dir_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// A uniquely named temporary file beside `path`, created exclusively with
/// `mode`, holding `bytes`, flushed to disk.
fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf> {
    let dir = dir_of(path);
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut nonce = [0u8; 6];
    getrandom::fill(&mut nonce).map_err(|e| CliError::io(path)(io::Error::other(e.to_string())))?;
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

/// fsync the directory of `path` (the current directory for a bare name),
/// so the rename or link that put the file there is durable.
fn sync_dir(path: &Path) {
    if let Ok(d) = File::open(dir_of(path)) {
        let _ = d.sync_all();
    }
}

/// The mode of an existing file.
pub fn mode_of(path: &Path) -> Option<u32> {
    fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
}

/// Replace `path` with `bytes` atomically. The file keeps its current mode,
/// or gets `default_mode` if it does not exist yet.
pub fn write_atomic(path: &Path, bytes: &[u8], default_mode: u32) -> Result<()> {
    write_atomic_mode(path, bytes, mode_of(path).unwrap_or(default_mode))
}

/// [`write_atomic`] through a symbolic link: the file it leads to is
/// replaced and the link stays (replacing the link would leave the file it
/// led to, a plaintext, where it was).
pub fn write_through(path: &Path, bytes: &[u8], default_mode: u32) -> Result<()> {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return write_atomic(path, bytes, default_mode);
    }
    let real = fs::canonicalize(path).map_err(CliError::io(path))?;
    write_atomic(&real, bytes, default_mode)
}

/// Replace `path` with `bytes` atomically, with `mode`.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
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
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(CliError::KeyringExists(path.to_owned())),
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

    #[test]
    fn bounded_reads_grow_and_stop_at_the_limit() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let got = read_secret(&data[..], 1, 10_000).unwrap().unwrap();
        assert_eq!(got.as_slice(), data.as_slice());
        assert!(read_secret(&data[..], 1, 9_999).unwrap().is_none());
        assert!(read_secret(&data[..], 20_000, 9_999).unwrap().is_none());
        assert_eq!(read_secret(&b""[..], 0, 10).unwrap().unwrap().len(), 0);
    }
}
