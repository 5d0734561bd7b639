//! Test fixtures shared by the unit tests: fixed keys and the status record
//! of handed-out keys.

use encstr_core::{Key, Seed};

use crate::crd::{KeyState, KeyStatus, KeyringStatus};

/// A key from a seed of 32 bytes `b`.
pub fn key(b: u8) -> Key {
    Key::from_seed(Seed::from_bytes([b; 32]))
}

/// A status recording the keys `keys` (by seed byte) as handed out
/// (decrypt-only), the master created as `secret_name`.
pub fn recorded(keys: &[u8], secret_name: &str) -> KeyringStatus {
    KeyringStatus {
        secret_name: Some(secret_name.into()),
        keys: keys
            .iter()
            .map(|b| KeyStatus {
                id: key(*b).id().to_string(),
                state: KeyState::DecryptOnly,
                created_at: None,
                promoted_at: None,
                retired_at: None,
                in_use: None,
                imported: false,
                kept: None,
            })
            .collect(),
        ..KeyringStatus::default()
    }
}
