//! Loading the keyring from a file, an environment variable or a passphrase.

use std::path::Path;

use encstr_core::{Key, Keyring};
use zeroize::Zeroizing;

use crate::cli::KeyringArgs;
use crate::error::{CliError, Result};

/// Read and parse a keyring file.
pub fn load_file(path: &Path) -> Result<Keyring> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(CliError::io(path))?);
    Keyring::parse(&text).map_err(|source| CliError::Keyring { origin: path.display().to_string(), source })
}

/// The value of an environment variable that must be set and non-empty.
pub fn env_secret(var: &str) -> Result<Zeroizing<String>> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Zeroizing::new(v)),
        _ => Err(CliError::MissingEnv(var.to_owned())),
    }
}

impl KeyringArgs {
    /// Whether any keyring source was given.
    pub fn is_given(&self) -> bool {
        self.keyring.is_some() || self.keyring_env.is_some() || self.passphrase_env.is_some()
    }

    /// Load the keyring from whichever source was given.
    pub fn load(&self) -> Result<Keyring> {
        if let Some(var) = &self.passphrase_env {
            let pass = env_secret(var)?;
            return Ok(Keyring::new(vec![Key::from_passphrase(&pass)])?);
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
