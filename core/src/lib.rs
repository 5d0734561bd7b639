//! # encstr-core
//!
//! The ENCSTR formats: secrets inside configuration files stored as
//! `ENCSTR:<base64>` tokens bound to **the secret's name**, so a token cannot
//! be moved to another field. Version 1 is AES-256-CBC with a random IV,
//! authenticated by HMAC-SHA256, made with a keyring; version 2 is HPKE
//! (X25519, AES-256-GCM) sealed to a key's public *recipient*, so sealing
//! needs no secret. Keys live in keyrings whose last key encrypts and all of
//! whose keys decrypt both versions.
//!
//! ```
//! use encstr_core::{Keyring, token};
//!
//! let keyring = Keyring::generate()?;
//! let sealed = token::encrypt(&keyring, "db.password", b"s3cr3t")?;
//! assert!(sealed.starts_with("ENCSTR:"));
//! assert_eq!(token::decrypt(&keyring, "db.password", &sealed)?.as_slice(), b"s3cr3t");
//!
//! // The name is authenticated: the token does not decrypt anywhere else.
//! let err = token::decrypt(&keyring, "ldap.password", &sealed).unwrap_err();
//! assert_eq!(err.kind(), "authentication_failed");
//!
//! // ENCSTR v2: anyone with a key's public recipient can seal a value
//! // (no keyring needed); only holders of the keyring can open it.
//! let recipient: encstr_core::Recipient = keyring.primary().recipient().to_string().parse()?;
//! let sealed = token::seal_to(&recipient, "smtp.password", b"hunter2")?;
//! assert_eq!(token::decrypt(&keyring, "smtp.password", &sealed)?.as_slice(), b"hunter2");
//!
//! // Whole files, format-preserving:
//! use encstr_core::{ConfigFile, Format, glob::Pattern};
//! let text = b"# database\ndb.password = s3cr3t\ndb.user = app\n";
//! let file = ConfigFile::parse(Format::Properties, text, "app.properties")?;
//! let sealed = file.seal(&keyring, &Pattern::defaults(), "").expect("sealable").expect("one value matches");
//! assert_eq!(sealed.changed[0].name, "db.password");
//! let file = ConfigFile::parse(Format::Properties, &sealed.bytes, "app.properties")?;
//! let rendered = file.render(&keyring, "", &[]).unwrap();
//! assert_eq!(rendered.bytes.as_slice(), text);
//! # Ok::<(), encstr_core::Error>(())
//! ```
//!
//! ## Modules
//! - [`keys`]: seeds, HKDF-derived keys (and each key's X25519 sealing key
//!   pair), key ids, passphrase-derived seeds.
//! - [`recipient`]: the public text anyone may use to seal to a key.
//! - [`keyring`]: ordered keyrings and their text format.
//! - [`token`]: encrypting, sealing and decrypting single values (v1 and v2).
//! - [`formats`]: finding values in properties, dotenv, YAML, JSON, TOML and
//!   raw files, and writing them back in each format's syntax.
//! - [`document`]: sealing, re-encrypting, checking and rendering whole files.
//!
//! ## Security notes
//! - Only RustCrypto primitives are used (`aes`, `cbc`, `hmac`, `sha2`,
//!   `hkdf`, `pbkdf2`), and for sealed (v2) tokens the `hpke` crate (RFC 9180
//!   on `x25519-dalek` and `aes-gcm`); nothing is hand-rolled.
//! - A sealed token's ephemeral input is drawn from the OS for every token;
//!   no public API lets a caller choose it. Any failure to open a sealed
//!   token (wrong name, altered bytes, a bad encapsulated key) is the same
//!   opaque `authentication_failed`.
//! - A recipient's check bytes catch typos, not forgeries: a recipient is
//!   only as trustworthy as the place it was read from.
//! - The tag is verified in constant time (`subtle`) **before** any padding
//!   is looked at, and a padding error after a valid tag is reported as the
//!   same opaque `authentication_failed`: there is no padding oracle.
//! - Key seeds, derived keys and decrypted plaintexts are wiped from memory
//!   when dropped (`zeroize`); key types print only their public id.
//! - No error carries plaintext, token bodies or key material, so errors can
//!   be logged and shown in Kubernetes events.
//! - CBC+HMAC is authenticated but not misuse-resistant: never reuse an IV
//!   ([`token::encrypt`] always draws a fresh one from the OS).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "backup")]
pub mod backup;
pub mod document;
pub mod error;
pub mod formats;
pub mod glob;
pub mod keyring;
pub mod keys;
pub mod recipient;
mod sealed;
pub mod token;

pub use document::{ConfigFile, ValueError};
pub use error::{Error, Result};
pub use formats::Format;
pub use keyring::Keyring;
pub use keys::{Key, KeyId, Seed};
pub use recipient::Recipient;
