//! The one error type of `encstr-core`.

use crate::keys::KeyId;

/// Everything that can go wrong in `encstr-core`.
///
/// No variant ever holds plaintext, token bodies or key material: messages
/// are safe to log, to show in Kubernetes events and to return to callers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not an ENCSTR token: wrong prefix, not base64, or a
    /// payload of impossible length.
    #[error("{}malformed: not a valid token: {reason}", name_prefix(.name))]
    Malformed {
        /// Secret name the token was read for, when known.
        name: Option<String>,
        /// Which structural check failed (static text, never token content).
        reason: &'static str,
    },

    /// The token's version byte is not one this implementation reads.
    #[error("{}unsupported_version: token version {version} (this encstr reads versions 1 and 2)", name_prefix(.name))]
    UnsupportedVersion {
        /// Secret name the token was read for, when known.
        name: Option<String>,
        /// The version byte found.
        version: u8,
    },

    /// No key in the keyring has the token's key id.
    #[error("{}unknown_key: no key {key_id} in the keyring (was it pruned, or is this the wrong keyring?)", name_prefix(.name))]
    UnknownKey {
        /// Secret name the token was read for, when known.
        name: Option<String>,
        /// Key id carried by the token.
        key_id: KeyId,
    },

    /// The token did not authenticate: it was altered, it was made for
    /// another secret name, or it was made by a different key with the same
    /// id. Deliberately opaque about which.
    #[error("{}authentication_failed: key {key_id} does not verify the token (altered, made for another secret name, or made with another key)", name_prefix(.name))]
    AuthenticationFailed {
        /// Secret name the token was read for, when known.
        name: Option<String>,
        /// Key id carried by the token.
        key_id: KeyId,
    },

    /// A token (or a value to seal) sits in a place that has no secret name,
    /// or whose name is empty: a top-level value, an empty key, or a value
    /// under a complex YAML key. It cannot be bound to a name (ENCSTR v1 §4).
    #[error(
        "unnamed: this place has no secret name (a top-level value, an empty key, or a value under a complex key), so no value here can be bound to a name"
    )]
    Unnamed,

    /// A token (or a value to seal) is also read at another place, under
    /// another name: a YAML alias or merge key of an anchor on it (or on a
    /// collection holding it), or a dotenv `${NAME}` reference. Verified
    /// under its own name, the plaintext would reach the app under the
    /// other one too.
    #[error(
        "{name}: aliased: this value is also read at line {alias_line} as {alias} (a YAML alias or merge key, or a dotenv ${{...}} reference), where the app would find it under that name too"
    )]
    Aliased {
        /// The value's own secret name.
        name: String,
        /// The other place's name (or a description of a place without one).
        alias: String,
        /// 1-based line of the alias or reference.
        alias_line: usize,
    },

    /// A line of a keyring file is not the base64 of a 32-byte seed.
    #[error("keyring line {line}: not a key (expected base64 of 32 bytes)")]
    InvalidKeyLine {
        /// 1-based line number.
        line: usize,
    },

    /// The same key appears twice in a keyring.
    #[error("keyring line {line}: duplicate of key {key_id}")]
    DuplicateKey {
        /// 1-based line number of the second occurrence.
        line: usize,
        /// Id of the duplicated key.
        key_id: KeyId,
    },

    /// A keyring holds no key.
    #[error("keyring holds no key")]
    EmptyKeyring,

    /// A key id names no key of the keyring.
    #[error("no key {key_id} in the keyring")]
    KeyNotFound {
        /// The id that was asked for.
        key_id: KeyId,
    },

    /// More than one key of the keyring has the same id, so the id alone does
    /// not say which one to change.
    #[error("key id {key_id} is shared by several keys of the keyring")]
    AmbiguousKeyId {
        /// The ambiguous id.
        key_id: KeyId,
    },

    /// The primary key cannot be removed: it is the one that encrypts.
    #[error("key {key_id} is the primary key and cannot be removed (rotate first)")]
    PrimaryKey {
        /// Id of the primary key.
        key_id: KeyId,
    },

    /// Text that should be a key id is not 8 hex digits.
    #[error("not a key id (expected 8 hex digits)")]
    InvalidKeyId,

    /// A text given as a recipient (ENCSTR v2 §2) is not one; the inner
    /// error says what is wrong (never echoing the text).
    #[error("not a recipient: {0}")]
    InvalidRecipient(#[from] crate::recipient::RecipientError),

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,

    /// A configuration file could not be parsed.
    #[error("line {line}: invalid {format}: {message}")]
    Parse {
        /// Format name (`properties`, `yaml`, ...).
        format: &'static str,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong (never file content).
        message: String,
    },

    /// A decrypted value cannot be written back in the file's format so that
    /// the format's parser returns it exactly.
    #[error("line {line} {name}: value cannot be written as {format} ({reason})")]
    Unrepresentable {
        /// Format name.
        format: &'static str,
        /// 1-based line of the value.
        line: usize,
        /// Secret name of the value.
        name: String,
        /// Why (static text, never the value).
        reason: &'static str,
    },

    /// A file is not text in the encoding its format requires.
    #[error("not valid UTF-8 text")]
    NotUtf8,

    /// A backup could not be written or read: a bad recipient or identity,
    /// no identity that opens it, or not an age file (never key material).
    #[error("backup: {0}")]
    Backup(String),

    /// An unknown format name was given.
    #[error("unknown format {0:?} (expected properties, dotenv, yaml, json, toml or raw)")]
    UnknownFormat(String),

    /// A name pattern is not a valid glob.
    #[error("invalid pattern {0:?}")]
    InvalidPattern(String),
}

/// The longest secret name an error carries; a longer one is cut (at a
/// character boundary) and ends in `…`. Thousands of failing values under
/// 4 KiB names must not take megabytes of error text.
pub const MAX_SHOWN_NAME: usize = 256;

/// A secret name as errors carry it (see [`MAX_SHOWN_NAME`]).
pub fn shown_name(name: &str) -> String {
    if name.len() <= MAX_SHOWN_NAME {
        return name.to_owned();
    }
    let mut cut = MAX_SHOWN_NAME;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &name[..cut])
}

fn name_prefix(name: &Option<String>) -> String {
    match name {
        Some(n) => format!("{n}: "),
        None => String::new(),
    }
}

impl Error {
    /// A short, stable identifier of the kind of error, suitable as a metric
    /// label or event reason (`malformed`, `unsupported_version`,
    /// `unknown_key`, `authentication_failed`, `unnamed`, `invalid_keyring`,
    /// ...). The message of every per-value error starts with it.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Malformed { .. } => "malformed",
            Error::UnsupportedVersion { .. } => "unsupported_version",
            Error::UnknownKey { .. } => "unknown_key",
            Error::AuthenticationFailed { .. } => "authentication_failed",
            Error::Unnamed => "unnamed",
            Error::Aliased { .. } => "aliased",
            Error::InvalidKeyLine { .. } | Error::DuplicateKey { .. } | Error::EmptyKeyring => {
                "invalid_keyring"
            }
            Error::KeyNotFound { .. } | Error::AmbiguousKeyId { .. } => "key_not_found",
            Error::PrimaryKey { .. } => "primary_key",
            Error::InvalidKeyId => "invalid_key_id",
            Error::InvalidRecipient(_) => "invalid_recipient",
            Error::Random => "random",
            Error::Parse { .. } | Error::NotUtf8 => "parse",
            Error::Unrepresentable { .. } => "unrepresentable",
            Error::UnknownFormat(_) | Error::InvalidPattern(_) => "usage",
            Error::Backup(_) => "backup",
        }
    }

    /// Whether this is one of the four decryption error kinds of the ENCSTR
    /// v1 specification (§3), which v2 (§4) shares.
    pub fn is_decrypt_error(&self) -> bool {
        matches!(
            self,
            Error::Malformed { .. }
                | Error::UnsupportedVersion { .. }
                | Error::UnknownKey { .. }
                | Error::AuthenticationFailed { .. }
        )
    }

    /// Whether this error concerns one value of a file: a decryption error,
    /// `unnamed` or `aliased`. These are the values of the sidecar's
    /// `encstr_decrypt_failures_total{reason}` label.
    pub fn is_value_error(&self) -> bool {
        self.is_decrypt_error() || matches!(self, Error::Unnamed | Error::Aliased { .. })
    }

    /// Attach the secret name to a token error that does not carry one yet.
    pub(crate) fn with_name(mut self, secret_name: &str) -> Self {
        match &mut self {
            Error::Malformed { name, .. }
            | Error::UnsupportedVersion { name, .. }
            | Error::UnknownKey { name, .. }
            | Error::AuthenticationFailed { name, .. }
                if name.is_none() =>
            {
                *name = Some(shown_name(secret_name));
            }
            _ => {}
        }
        self
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
