//! Recipients (ENCSTR v2 §2): the public text that lets anyone seal a value
//! that only holders of a keyring key can open.
//!
//! ```text
//! recipient = "ENCSTR-RECIPIENT:" base64( 0x02 || key_id(4) || sealing_pk(32) || check(4) )
//! check     = SHA-256( 0x02 || key_id || sealing_pk )[..4]
//! ```
//!
//! The check catches a mistyped or truncated recipient; it is not a
//! signature: a recipient is only as trustworthy as the place it was read
//! from.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hpke::{Deserializable as _, Serializable as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::error::Error;
use crate::keys::{KeyId, SealingKem};

/// The text every recipient starts with.
pub const PREFIX: &str = "ENCSTR-RECIPIENT:";
/// The version byte of a recipient (and of the tokens sealed to it).
pub const VERSION: u8 = 0x02;
const LEN: usize = 1 + 4 + 32 + 4;
const TEXT_LEN: usize = PREFIX.len() + LEN.div_ceil(3) * 4;

/// The public key of one keyring key: its id and its X25519 sealing public
/// key. Parsed from and shown as `ENCSTR-RECIPIENT:<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient {
    key_id: KeyId,
    public: [u8; 32],
}

/// What is wrong with a text that should be a recipient. The messages name
/// the problem and never echo the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecipientError {
    /// An `ENCSTR:` token was given where a recipient belongs.
    #[error("this is an ENCSTR: token (a sealed value), not a recipient (ENCSTR-RECIPIENT:…)")]
    Token,
    /// An age or SSH backup recipient was given where an ENCSTR recipient
    /// belongs.
    #[error(
        "this is an age/SSH backup recipient (for `encstr keys backup`), not an ENCSTR recipient (ENCSTR-RECIPIENT:…, from `encstr keys recipient`)"
    )]
    BackupRecipient,
    /// The text does not start with `ENCSTR-RECIPIENT:`.
    #[error("does not start with ENCSTR-RECIPIENT:")]
    Prefix,
    /// The text after the prefix is not canonical standard base64.
    #[error(
        "not canonical standard base64 after ENCSTR-RECIPIENT: (padded, no white space, unused bits zero)"
    )]
    Base64,
    /// The decoded recipient does not have 41 bytes.
    #[error("{0} bytes after decoding, a recipient has 41 (truncated or extended?)")]
    Length(usize),
    /// The version byte is not 2.
    #[error("version byte {0}, this encstr reads recipients of version 2")]
    Version(u8),
    /// The check bytes do not match the key id and public key.
    #[error("its check bytes do not match (mistyped or altered)")]
    Check,
    /// The public key cannot be sealed to (a low-order X25519 point).
    #[error("its public key is not a usable X25519 public key")]
    PublicKey,
}

impl Recipient {
    /// The recipient of a key id and an X25519 sealing public key.
    pub(crate) fn from_public_key(key_id: KeyId, public: &<SealingKem as hpke::Kem>::PublicKey) -> Self {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&public.to_bytes());
        Recipient { key_id, public: bytes }
    }

    /// The id of the key this recipient seals to (every token sealed to it
    /// carries this id).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The X25519 sealing public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    pub(crate) fn kem_public_key(&self) -> Result<<SealingKem as hpke::Kem>::PublicKey, RecipientError> {
        <SealingKem as hpke::Kem>::PublicKey::from_bytes(&self.public).map_err(|_| RecipientError::PublicKey)
    }

    fn check(key_id: KeyId, public: &[u8; 32]) -> [u8; 4] {
        let digest =
            Sha256::new().chain_update([VERSION]).chain_update(key_id.0).chain_update(public).finalize();
        digest[..4].try_into().expect("4 bytes")
    }

    fn bytes(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0] = VERSION;
        out[1..5].copy_from_slice(&self.key_id.0);
        out[5..37].copy_from_slice(&self.public);
        out[37..].copy_from_slice(&Recipient::check(self.key_id, &self.public));
        out
    }

    /// Parse a recipient; white space around it is ignored. The error says
    /// what is wrong: another prefix (naming a token or a backup recipient
    /// when it is one), non-canonical base64, a wrong length, version or
    /// check.
    pub fn parse(text: &str) -> Result<Self, RecipientError> {
        let text = text.trim();
        let Some(body) = text.strip_prefix(PREFIX) else {
            return Err(if text.starts_with(crate::token::PREFIX) {
                RecipientError::Token
            } else if text.starts_with("age1") || text.starts_with("ssh-") {
                RecipientError::BackupRecipient
            } else {
                RecipientError::Prefix
            });
        };
        // Refuse long text before decoding any of it (by what it would decode to).
        if text.len() > TEXT_LEN + 8 {
            let base64 =
                body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
            return Err(if base64 {
                RecipientError::Length(body.len() / 4 * 3)
            } else {
                RecipientError::Base64
            });
        }
        let mut buf = [0u8; LEN + 8];
        let len = STANDARD.decode_slice(body, &mut buf).map_err(|_| RecipientError::Base64)?;
        if len != LEN {
            return Err(RecipientError::Length(len));
        }
        if buf[0] != VERSION {
            return Err(RecipientError::Version(buf[0]));
        }
        let key_id = KeyId(buf[1..5].try_into().expect("4 bytes"));
        let public: [u8; 32] = buf[5..37].try_into().expect("32 bytes");
        if !bool::from(Recipient::check(key_id, &public).ct_eq(&buf[37..LEN])) {
            return Err(RecipientError::Check);
        }
        Ok(Recipient { key_id, public })
    }
}

impl FromStr for Recipient {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Recipient::parse(s).map_err(Error::InvalidRecipient)
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        f.write_str(&STANDARD.encode(self.bytes()))
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Key, Seed};

    fn recipient() -> Recipient {
        Key::from_seed(Seed::from_bytes([1; 32])).recipient().clone()
    }

    #[test]
    fn text_round_trips_and_has_its_length() {
        let r = recipient();
        let text = r.to_string();
        assert_eq!(text.len(), TEXT_LEN);
        assert_eq!(text.len(), 17 + 56);
        assert_eq!(Recipient::parse(&text), Ok(r.clone()));
        assert_eq!(Recipient::parse(&format!(" \t{text}\r\n")), Ok(r.clone()), "white space around");
        assert_eq!(text.parse::<Recipient>().unwrap(), r);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let text = recipient().to_string();
        let body = &text[PREFIX.len()..];
        assert_eq!(Recipient::parse(&format!("ENCSTR:{body}")), Err(RecipientError::Token));
        assert_eq!(
            Recipient::parse("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"),
            Err(RecipientError::BackupRecipient)
        );
        assert_eq!(Recipient::parse("ssh-ed25519 AAAA"), Err(RecipientError::BackupRecipient));
        assert_eq!(Recipient::parse(body), Err(RecipientError::Prefix));
        assert_eq!(Recipient::parse(&format!("{PREFIX}{}", &body[..52])), Err(RecipientError::Length(39)));
        assert_eq!(
            Recipient::parse(&format!("{PREFIX}{}", STANDARD.encode([2; 44]))),
            Err(RecipientError::Length(44))
        );
        assert_eq!(
            Recipient::parse(&format!("{PREFIX}{}", STANDARD.encode([2; 3000]))),
            Err(RecipientError::Length(3000))
        );
        assert_eq!(Recipient::parse(&format!("{PREFIX} {body}")), Err(RecipientError::Base64));
        assert_eq!(Recipient::parse(&format!("{PREFIX}{}", "!".repeat(5000))), Err(RecipientError::Base64));
        let err = Error::InvalidRecipient(RecipientError::Check);
        assert_eq!(err.kind(), "invalid_recipient");
        assert!(err.to_string().contains("check bytes"), "{err}");
    }
}
