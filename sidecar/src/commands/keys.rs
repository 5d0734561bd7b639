//! `encstr keys init|rotate|list|recipient|prune|derive`.

use std::path::Path;

use encstr_core::{Key, KeyId, Keyring};
use serde::Serialize;

use super::{say, warn};
use crate::cli::KeysCommand;
use crate::error::{CliError, Result};
use crate::fsio;
use crate::keyring_source::{load_file, passphrase_key};

/// Mode of keyring files, and the most a rewritten one keeps.
pub const KEYRING_MODE: u32 = 0o600;

/// Write a changed keyring over `path`: atomically, and with at most mode
/// 0600 whatever the old mode was (saying so when that tightens it).
fn rewrite_keyring(path: &Path, ring: &Keyring) -> Result<()> {
    let old = fsio::mode_of(path).unwrap_or(KEYRING_MODE);
    let mode = old & KEYRING_MODE;
    fsio::write_atomic_mode(path, ring.to_text().as_bytes(), mode)?;
    if mode != old {
        warn(format_args!("encstr: tightened the mode of {} from {old:04o} to {mode:04o}", path.display()));
    }
    Ok(())
}

/// A new random key whose id no key of `ring` has (ids are 32 bits: two
/// keys sharing one would make a token's key ambiguous).
fn fresh_key(ring: &Keyring, mut generate: impl FnMut() -> Result<Key>) -> Result<Key> {
    loop {
        let key = generate()?;
        if !ring.contains(key.id()) {
            return Ok(key);
        }
    }
}

#[derive(Serialize)]
struct ListedKey {
    position: usize,
    key_id: String,
    primary: bool,
}

/// Run a `keys` subcommand.
pub fn run(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Init { file } => {
            let _lock = fsio::lock_dir_of(&file.keyring)?;
            let ring = Keyring::generate()?;
            fsio::write_new(&file.keyring, ring.to_text().as_bytes(), KEYRING_MODE)?;
            say(format_args!(
                "created {} with key {} (mode 0600)",
                file.keyring.display(),
                ring.primary().id()
            ))
        }
        KeysCommand::Rotate { file } => {
            // Read, add, write under the lock: concurrent rotations all land.
            let _lock = fsio::lock_dir_of(&file.keyring)?;
            let mut ring = load_file(&file.keyring)?;
            let key = fresh_key(&ring, || Ok(Key::generate()?))?;
            let id = key.id();
            ring.append(key)?;
            rewrite_keyring(&file.keyring, &ring)?;
            say(id)
        }
        KeysCommand::List { file, json } => {
            let ring = load_file(&file.keyring)?;
            let listed: Vec<ListedKey> = ring
                .ids()
                .into_iter()
                .enumerate()
                .map(|(i, id)| ListedKey {
                    position: i + 1,
                    key_id: id.to_string(),
                    primary: i + 1 == ring.len(),
                })
                .collect();
            if json {
                return say(serde_json::to_string_pretty(&listed).expect("serializable"));
            }
            say("POS  KEY ID    ROLE")?;
            for k in listed {
                say(format_args!(
                    "{:<4} {}  {}",
                    k.position,
                    k.key_id,
                    if k.primary { "primary" } else { "decrypt-only" }
                ))?;
            }
            Ok(())
        }
        KeysCommand::Recipient { file, all } => {
            let ring = load_file(&file.keyring)?;
            if !all {
                return say(ring.primary().recipient());
            }
            for key in ring.keys() {
                let role = if ring.is_primary(key) { "primary" } else { "decrypt-only" };
                say(format_args!("{} {role:<12} {}", key.id(), key.recipient()))?;
            }
            Ok(())
        }
        KeysCommand::Prune { file, keep, remove } => {
            let _lock = fsio::lock_dir_of(&file.keyring)?;
            let mut ring = load_file(&file.keyring)?;
            let removed = match keep {
                Some(0) => {
                    return Err(CliError::Usage(
                        "--keep must be at least 1 (the primary key is always kept)".into(),
                    ));
                }
                Some(n) => ring.retain_newest(n),
                None => {
                    let ids = remove
                        .iter()
                        .map(|s| {
                            s.parse::<KeyId>()
                                .map_err(|_| CliError::Usage(format!("{s:?} is not a key id (8 hex digits)")))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    for id in &ids {
                        ring.remove(*id)?;
                    }
                    ids
                }
            };
            if removed.is_empty() {
                return say(format_args!(
                    "nothing to prune: {} key(s), primary {}",
                    ring.len(),
                    ring.primary().id()
                ));
            }
            rewrite_keyring(&file.keyring, &ring)?;
            for id in removed {
                say(format_args!("removed {id}"))?;
            }
            say(format_args!("{} key(s) left, primary {}", ring.len(), ring.primary().id()))
        }
        KeysCommand::Backup { file, recipient, recipients_file, output } => {
            super::backup::write(&file.keyring, &recipient, &recipients_file, output.as_deref())
        }
        KeysCommand::Restore { identity, output, entry, backup } => {
            super::backup::restore(&identity, output.as_deref(), entry.as_deref(), &backup)
        }
        KeysCommand::Inspect { identity, json, backup } => super::backup::inspect(&identity, json, &backup),
        KeysCommand::Derive { passphrase_env, passphrase } => {
            let key = passphrase_key(&passphrase_env, &passphrase)?;
            say(key.seed().to_base64().as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use encstr_core::Seed;

    use super::*;

    /// Two seeds with the same key id (the published collision vector).
    const COLLIDING: [&str; 2] =
        ["FK811ScOtkpJzVHsoBnkpPWqsAJxax/MEWkCTXJIV+A=", "GK27RhHUY1IBVag6nWk5UKFjHhjPMWb5w5VCvxFW0lI="];

    #[test]
    fn rotation_never_adds_a_key_whose_id_is_taken() {
        let key = |b64: &str| Key::from_seed(Seed::from_base64(b64).unwrap());
        let ring = Keyring::single(key(COLLIDING[0]));
        let mut offered = vec![Key::from_seed(Seed::from_bytes([9; 32])), key(COLLIDING[1])];
        let chosen = fresh_key(&ring, || Ok(offered.pop().unwrap())).unwrap();
        assert_ne!(chosen.id(), ring.primary().id());
        assert!(offered.is_empty(), "the colliding key was skipped");
    }
}
