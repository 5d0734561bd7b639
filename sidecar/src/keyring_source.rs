//! Loading the keyring from a file, an environment variable or a passphrase.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use encstr_core::keys::DEFAULT_PASSPHRASE_SALT;
use encstr_core::{Key, Keyring};
use zeroize::Zeroizing;

use crate::cli::{KeyringArgs, PassphraseOpts};
use crate::error::{CliError, Result};

/// Passphrases shorter than this (in characters) are refused.
pub const MIN_PASSPHRASE_CHARS: usize = 16;
/// Passphrases estimated to fall to fewer guesses than 10^this (about 2^50)
/// are refused.
pub const MIN_PASSPHRASE_GUESSES_LOG10: f64 = 15.05;
/// Only this many characters are given to the strength estimator (its cost
/// grows faster than linearly; a passphrase this long is judged by its start).
const ESTIMATE_CHARS: usize = 256;
/// Keyring files larger than this are refused (a keyring of 10,000 keys is
/// 450 KiB).
pub const MAX_KEYRING_FILE: u64 = 4 << 20;

/// Read and parse a keyring file, warning on standard error when it is
/// readable by group or others.
pub fn load_file(path: &Path) -> Result<Keyring> {
    if let Some(w) = permission_warning(path) {
        crate::commands::warn(format_args!("encstr: warning: {w}"));
    }
    let bytes = crate::fsio::read_limited(path, MAX_KEYRING_FILE)?;
    parse_file(path, &bytes)
}

/// Parse the bytes of a keyring file.
pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<Keyring> {
    let origin = || path.display().to_string();
    let text = std::str::from_utf8(bytes)
        .map_err(|_| CliError::Keyring { origin: origin(), source: encstr_core::Error::NotUtf8 })?;
    Keyring::parse(text).map_err(|source| CliError::Keyring { origin: origin(), source })
}

/// Why a keyring file's mode is worth a warning: group or others may read
/// it. Files in a kubelet volume (the pod spec's `defaultMode` decides their
/// mode, and only the pod sees them) are not warned about.
pub fn permission_warning(path: &Path) -> Option<String> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    if mode & 0o077 == 0 || in_kubelet_volume(path) {
        return None;
    }
    Some(format!(
        "keyring file {} can be read by {} (mode {mode:04o}); `chmod 600` it",
        path.display(),
        if mode & 0o007 != 0 { "other users" } else { "its group" }
    ))
}

/// Whether `path` is an entry of a Secret or ConfigMap volume as kubelet
/// lays them out: a `..data` link beside it, or the file itself a link into
/// `..data/`.
pub fn in_kubelet_volume(path: &Path) -> bool {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::symlink_metadata(dir.join("..data")).is_ok_and(|m| m.file_type().is_symlink())
        || std::fs::read_link(path).is_ok_and(|l| l.starts_with("..data"))
}

/// The value of an environment variable that must be set and non-empty.
pub fn env_secret(var: &str) -> Result<Zeroizing<String>> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Zeroizing::new(v)),
        _ => Err(CliError::MissingEnv(var.to_owned())),
    }
}

/// Why a passphrase is too weak to protect a key (ENCSTR v1 §1), if it is:
/// fewer than 16 characters, or an estimated strength below about 2^50
/// guesses (`zxcvbn`).
pub fn passphrase_weakness(pass: &str) -> Option<String> {
    let chars = pass.chars().count();
    if chars < MIN_PASSPHRASE_CHARS {
        return Some(format!("it has {chars} characters, fewer than {MIN_PASSPHRASE_CHARS}"));
    }
    let end = pass.char_indices().nth(ESTIMATE_CHARS).map_or(pass.len(), |(i, _)| i);
    let log10 = zxcvbn::zxcvbn(&pass[..end], &[]).guesses_log10();
    (log10 < MIN_PASSPHRASE_GUESSES_LOG10)
        .then(|| format!("it is estimated to fall to about 10^{log10:.0} guesses, fewer than 2^50"))
}

/// The key derived from the passphrase in `var` with the configured salt,
/// refusing a weak passphrase unless allowed.
pub fn passphrase_key(var: &str, opts: &PassphraseOpts) -> Result<Key> {
    let pass = env_secret(var)?;
    if !opts.allow_weak_passphrase
        && let Some(why) = passphrase_weakness(&pass)
    {
        return Err(CliError::WeakPassphrase { var: var.to_owned(), why });
    }
    let salt = match opts.passphrase_salt.as_deref() {
        Some(salt) => salt,
        None => {
            crate::commands::warn(format_args!(
                "encstr: warning: no --passphrase-salt (ENCSTR_PASSPHRASE_SALT): the default salt lets one precomputed dictionary attack every deployment that uses it; choose one per deployment, e.g. prod-cluster/print-agents"
            ));
            DEFAULT_PASSPHRASE_SALT
        }
    };
    Ok(Key::from_passphrase(&pass, salt))
}

impl KeyringArgs {
    /// Whether any keyring source was given.
    pub fn is_given(&self) -> bool {
        self.keyring.is_some() || self.keyring_env.is_some() || self.passphrase_env.is_some()
    }

    /// Load the keyring from whichever source was given.
    pub fn load(&self) -> Result<Keyring> {
        if let Some(var) = &self.passphrase_env {
            return Ok(Keyring::single(passphrase_key(var, &self.passphrase)?));
        }
        if let Some(var) = &self.keyring_env {
            let text = env_secret(var)?;
            return Keyring::parse(&text)
                .map_err(|source| CliError::Keyring { origin: format!("${var}"), source });
        }
        match &self.keyring {
            Some(path) => load_file(path),
            None => Err(CliError::Usage(
                "no keyring: give --keyring FILE (or set ENCSTR_KEYRING), --keyring-env VAR or --passphrase-env VAR".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passphrases_are_named() {
        assert!(passphrase_weakness("short").unwrap().contains("5 characters"));
        assert!(passphrase_weakness("passwordpassword").unwrap().contains("guesses"));
        assert!(passphrase_weakness("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_some());
        assert_eq!(passphrase_weakness("vivid-otter-quarry-lantern-94-mosaic"), None);
        // A long random passphrase: judged by its first 256 characters, quickly.
        let mut x: u32 = 7;
        let long: String = (0..5000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                char::from(b'!' + ((x >> 16) % 90) as u8)
            })
            .collect();
        assert_eq!(passphrase_weakness(&long), None);
    }
}
