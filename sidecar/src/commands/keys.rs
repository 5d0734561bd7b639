//! `encstr keys init|rotate|list|prune|derive`.

use encstr_core::{Key, KeyId, Keyring, Seed};
use serde::Serialize;

use super::say;
use crate::cli::KeysCommand;
use crate::error::{CliError, Result};
use crate::fsio;
use crate::keyring_source::{env_secret, load_file};

/// Mode of keyring files.
pub const KEYRING_MODE: u32 = 0o600;

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
            let ring = Keyring::generate()?;
            fsio::write_new(&file.keyring, ring.to_text().as_bytes(), KEYRING_MODE)?;
            say(format_args!(
                "created {} with key {} (mode 0600)",
                file.keyring.display(),
                ring.primary().id()
            ))
        }
        KeysCommand::Rotate { file } => {
            let mut ring = load_file(&file.keyring)?;
            let key = Key::generate()?;
            let id = key.id();
            ring.append(key)?;
            fsio::write_atomic(&file.keyring, ring.to_text().as_bytes(), KEYRING_MODE)?;
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
        KeysCommand::Prune { file, keep, remove } => {
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
            fsio::write_atomic(&file.keyring, ring.to_text().as_bytes(), KEYRING_MODE)?;
            for id in removed {
                say(format_args!("removed {id}"))?;
            }
            say(format_args!("{} key(s) left, primary {}", ring.len(), ring.primary().id()))
        }
        KeysCommand::Derive { passphrase_env } => {
            let pass = env_secret(&passphrase_env)?;
            let seed = Seed::from_passphrase(&pass);
            say(seed.to_base64().as_str())
        }
    }
}
