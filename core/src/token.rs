//! ENCSTR tokens: `ENCSTR:` + base64(payload), where the payload's first
//! byte is its version. Version 1 (made with a keyring) is written here;
//! version 2 (sealed to a recipient, [`seal_to`]) in `sealed`. Reading
//! ([`decrypt`], [`open`], [`key_id`], [`peek_key_id`]) takes both.
//!
//! Version 1:
//! ```text
//! payload   = 0x01 || key_id(4) || iv(16) || AES-256-CBC(PKCS#7(plaintext)) || tag(16)
//! tag       = HMAC-SHA256(mac_key, 0x01 || key_id || u32be(len(name)) || name || iv || ct)[..16]
//! ```
//!
//! Decryption checks structure, version and key id, then verifies the tag in
//! constant time, and only then decrypts and removes the padding; a padding
//! error after a valid tag is reported as an authentication failure too, so
//! the result never tells which check failed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit};
use hmac::Mac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::keys::{Key, KeyId};
use crate::recipient::Recipient;
use crate::sealed;

/// The text every token starts with.
pub const PREFIX: &str = "ENCSTR:";
/// The version of tokens made with a keyring (ENCSTR v1).
pub const VERSION: u8 = 0x01;
/// The version of tokens sealed to a recipient (ENCSTR v2).
pub const SEALED_VERSION: u8 = crate::recipient::VERSION;
const ID_LEN: usize = 4;
const IV_LEN: usize = 16;
const BLOCK: usize = 16;
const TAG_LEN: usize = 16;
const HEADER: usize = 1 + ID_LEN + IV_LEN;
/// Smallest possible payload: header, one ciphertext block and the tag.
const MIN_PAYLOAD: usize = HEADER + BLOCK + TAG_LEN;
/// The longest token this implementation reads or writes, in bytes of text
/// (`ENCSTR:` included): 1 MiB, room for a plaintext of about 768 KiB. A
/// longer value is `malformed` before any of it is decoded, so a hostile
/// file cannot make a reader allocate or hash more than this per value.
pub const MAX_TOKEN_LEN: usize = 1 << 20;
/// The longest plaintext whose token fits in [`MAX_TOKEN_LEN`].
pub const MAX_PLAINTEXT_LEN: usize =
    ((MAX_TOKEN_LEN - PREFIX.len()) / 4 * 3 - HEADER - TAG_LEN) / BLOCK * BLOCK - 1;
/// The longest plaintext whose sealed (version 2) token fits in
/// [`MAX_TOKEN_LEN`].
pub const MAX_SEALED_PLAINTEXT_LEN: usize = (MAX_TOKEN_LEN - PREFIX.len()) / 4 * 3 - sealed::OVERHEAD;

/// Whether a value is meant to be a token (starts with `ENCSTR:`).
///
/// A value that starts with the prefix but is not a valid token is still a
/// token for this purpose: it fails to decrypt as `malformed` instead of
/// passing through as plaintext.
pub fn is_token(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// Encrypt `plaintext` for the secret `name` under the keyring's primary key,
/// with a fresh random IV. Fails with `malformed` when the token would be
/// longer than [`MAX_TOKEN_LEN`].
pub fn encrypt(keyring: &Keyring, name: &str, plaintext: &[u8]) -> Result<String> {
    encrypt_with_key(keyring.primary(), name, plaintext)
}

/// Encrypt under a given key with a fresh random IV.
pub fn encrypt_with_key(key: &Key, name: &str, plaintext: &[u8]) -> Result<String> {
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(Error::Malformed { name: Some(name.to_owned()), reason: TOO_LONG });
    }
    let mut iv = [0u8; IV_LEN];
    getrandom::fill(&mut iv).map_err(|_| Error::Random)?;
    Ok(seal(key, name, plaintext, &iv))
}

/// Encrypt with a caller-chosen IV, to reproduce published test vectors.
/// Only with the `test-vectors` feature: an IV must never be reused with the
/// same key, so nothing else may choose one.
#[cfg(feature = "test-vectors")]
pub fn encrypt_with_iv(key: &Key, name: &str, plaintext: &[u8], iv: &[u8; IV_LEN]) -> String {
    seal(key, name, plaintext, iv)
}

const TOO_LONG: &str = "longer than the 1 MiB a token may have";

/// Seal `plaintext` for the secret `name` to a recipient (ENCSTR v2): no
/// keyring needed, and only holders of the recipient's key can open it. A
/// fresh ephemeral key pair is drawn from the OS for every token. Fails
/// with `malformed` when the token would be longer than [`MAX_TOKEN_LEN`].
pub fn seal_to(recipient: &Recipient, name: &str, plaintext: &[u8]) -> Result<String> {
    if plaintext.len() > MAX_SEALED_PLAINTEXT_LEN {
        return Err(Error::Malformed { name: Some(name.to_owned()), reason: TOO_LONG });
    }
    let mut ikm_e = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut ikm_e[..]).map_err(|_| Error::Random)?;
    sealed::seal(recipient, name, plaintext, &ikm_e)
}

/// Seal with a caller-chosen ephemeral input, to reproduce published test
/// vectors. Only with the `test-vectors` feature: a sealed token's secrecy
/// rests on its ephemeral key, so nothing else may choose one.
#[cfg(feature = "test-vectors")]
#[doc(hidden)]
pub fn seal_to_with_ephemeral_input(
    recipient: &Recipient,
    name: &str,
    plaintext: &[u8],
    ikm_e: &[u8; 32],
) -> Result<String> {
    sealed::seal(recipient, name, plaintext, ikm_e)
}

/// `ENCSTR:` and the canonical base64 of a payload.
pub(crate) fn encode(payload: &[u8]) -> String {
    let mut out = String::with_capacity(PREFIX.len() + payload.len().div_ceil(3) * 4);
    out.push_str(PREFIX);
    STANDARD.encode_string(payload, &mut out);
    out
}

fn seal(key: &Key, name: &str, plaintext: &[u8], iv: &[u8; IV_LEN]) -> String {
    let padded_len = (plaintext.len() / BLOCK + 1) * BLOCK;
    let mut payload = Zeroizing::new(Vec::with_capacity(HEADER + padded_len + TAG_LEN));
    payload.push(VERSION);
    payload.extend_from_slice(&key.id().0);
    payload.extend_from_slice(iv);
    payload.extend_from_slice(plaintext);
    payload.resize(HEADER + padded_len, 0);
    cbc::Encryptor::inner_iv_init(key.encryptor(), iv.into())
        .encrypt_padded::<Pkcs7>(&mut payload[HEADER..], plaintext.len())
        .expect("buffer holds the padded plaintext");
    let tag = compute_tag(key, name, &payload[..1 + ID_LEN], &payload[1 + ID_LEN..]);
    payload.extend_from_slice(&tag);
    encode(&payload)
}

/// Decrypt a token made for the secret `name` with any key of the keyring:
/// version 1 (made with a keyring) or 2 (sealed to one of its recipients).
///
/// Errors are of the four kinds of the specification (`malformed`,
/// `unsupported_version`, `unknown_key`, `authentication_failed`) and carry
/// the secret name and, where known, the key id.
pub fn decrypt(keyring: &Keyring, name: &str, token: &str) -> Result<Zeroizing<Vec<u8>>> {
    open(keyring, name, token).map(|opened| opened.plaintext)
}

/// A decrypted token and the key that verified it.
#[derive(Debug)]
pub struct Opened<'k> {
    /// The plaintext (wiped on drop).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The key whose tag matched. Two keys of a keyring may share an id, so
    /// this, not the token's key id, says which key made the token.
    pub key: &'k Key,
    /// The token's version: 1 (made with a keyring) or 2 (sealed to a
    /// recipient).
    pub version: u8,
}

/// Like [`decrypt`], also returning the key that verified the token.
pub fn open<'k>(keyring: &'k Keyring, name: &str, token: &str) -> Result<Opened<'k>> {
    decrypt_inner(keyring, name, token).map_err(|e| e.with_name(name))
}

fn decrypt_inner<'k>(keyring: &'k Keyring, name: &str, token: &str) -> Result<Opened<'k>> {
    let payload = decode_payload(token)?;
    if payload[0] == SEALED_VERSION {
        return sealed::open(keyring, name, &payload);
    }
    open_v1(keyring, name, payload)
}

fn open_v1<'k>(keyring: &'k Keyring, name: &str, mut payload: Zeroizing<Vec<u8>>) -> Result<Opened<'k>> {
    let key_id = payload_key_id(&payload);
    let tag_at = payload.len() - TAG_LEN;
    let mut candidates = keyring.candidates(key_id).peekable();
    if candidates.peek().is_none() {
        return Err(Error::UnknownKey { name: None, key_id });
    }
    let key = candidates
        .find(|key| {
            let tag = compute_tag(key, name, &payload[..1 + ID_LEN], &payload[1 + ID_LEN..tag_at]);
            bool::from(tag.ct_eq(&payload[tag_at..]))
        })
        .ok_or(Error::AuthenticationFailed { name: None, key_id })?;
    let iv: [u8; IV_LEN] = payload[1 + ID_LEN..HEADER].try_into().expect("IV is 16 bytes");
    let plain_len = cbc::Decryptor::inner_iv_init(key.decryptor(), (&iv).into())
        .decrypt_padded::<Pkcs7>(&mut payload[HEADER..tag_at])
        .map_err(|_| Error::AuthenticationFailed { name: None, key_id })?
        .len();
    payload.copy_within(HEADER..HEADER + plain_len, 0);
    payload.truncate(plain_len);
    Ok(Opened { plaintext: payload, key, version: VERSION })
}

/// The id of the key that made a token (of either version), read without
/// decrypting. The whole token is checked (prefix, canonical base64,
/// version, length).
pub fn key_id(token: &str) -> Result<KeyId> {
    decode_payload(token).map(|p| payload_key_id(&p))
}

/// The key id in a token's first bytes, without looking at the rest: text
/// that starts with `ENCSTR:` and eight base64 characters holding version 1
/// or 2 and the id. Cheap, and it still finds the key of a token whose tail
/// was wrapped, escaped or cut (for counting which keys are in use: a key
/// that only sealed tokens use is in use); `None` when even the start is not
/// a token's.
pub fn peek_key_id(text: &str) -> Option<KeyId> {
    peek(text).map(|(_, id)| id)
}

/// The version and key id in a token's first bytes (see [`peek_key_id`]).
pub fn peek(text: &str) -> Option<(u8, KeyId)> {
    let head = text.strip_prefix(PREFIX)?.get(..8)?;
    let mut buf = [0u8; 6];
    match STANDARD.decode_slice(head, &mut buf) {
        Ok(6) if buf[0] == VERSION || buf[0] == SEALED_VERSION => {
            Some((buf[0], KeyId(buf[1..5].try_into().expect("4 bytes"))))
        }
        _ => None,
    }
}

/// A token's payload, for byte-exact tests of the v2 layout.
#[cfg(test)]
pub(crate) fn decode_for_tests(token: &str) -> Zeroizing<Vec<u8>> {
    decode_payload(token).expect("a valid token")
}

/// Steps 1–3 of decryption (v1 §3, v2 §4): prefix, canonical base64,
/// version, and the length that version requires.
fn decode_payload(token: &str) -> Result<Zeroizing<Vec<u8>>> {
    let body = token
        .strip_prefix(PREFIX)
        .ok_or(Error::Malformed { name: None, reason: "does not start with ENCSTR:" })?;
    if token.len() > MAX_TOKEN_LEN {
        return Err(Error::Malformed { name: None, reason: TOO_LONG });
    }
    // Decode into a buffer of its final size: no reallocation leaves a copy.
    let mut payload = Zeroizing::new(vec![0u8; body.len() / 4 * 3]);
    let len = STANDARD.decode_slice(body, &mut payload[..]).map_err(|_| Error::Malformed {
        name: None,
        reason: "not canonical standard base64 (padded, no white space, unused bits zero)",
    })?;
    payload.truncate(len);
    match payload.first() {
        None => {
            return Err(Error::Malformed { name: None, reason: "empty payload" });
        }
        Some(&VERSION) => {
            if payload.len() < MIN_PAYLOAD || !(payload.len() - HEADER - TAG_LEN).is_multiple_of(BLOCK) {
                return Err(Error::Malformed { name: None, reason: "payload has an impossible length" });
            }
        }
        Some(&SEALED_VERSION) => {
            if payload.len() < sealed::MIN_PAYLOAD {
                return Err(Error::Malformed {
                    name: None,
                    reason: "sealed payload shorter than version, key id, encapsulated key and tag",
                });
            }
        }
        Some(&version) => {
            return Err(Error::UnsupportedVersion { name: None, version });
        }
    }
    Ok(payload)
}

fn payload_key_id(payload: &[u8]) -> KeyId {
    KeyId(payload[1..1 + ID_LEN].try_into().expect("length checked"))
}

/// `HMAC(mac_key, version ‖ key_id ‖ u32be(len(name)) ‖ name ‖ iv ‖ ct)[..16]`.
fn compute_tag(key: &Key, name: &str, version_and_id: &[u8], iv_and_ct: &[u8]) -> [u8; TAG_LEN] {
    let name_len = u32::try_from(name.len()).expect("secret names are shorter than 4 GiB");
    let mut mac = key.mac();
    mac.update(version_and_id);
    mac.update(&name_len.to_be_bytes());
    mac.update(name.as_bytes());
    mac.update(iv_and_ct);
    let full = mac.finalize().into_bytes();
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&full[..TAG_LEN]);
    tag
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Seed;

    fn ring() -> Keyring {
        Keyring::new(vec![Key::from_seed(Seed::from_bytes([3; 32]))]).unwrap()
    }

    #[test]
    fn round_trip_and_fresh_iv() {
        let ring = ring();
        let a = encrypt(&ring, "db.password", b"hunter2").unwrap();
        let b = encrypt(&ring, "db.password", b"hunter2").unwrap();
        assert_ne!(a, b, "each encryption uses a fresh IV");
        assert_eq!(decrypt(&ring, "db.password", &a).unwrap().as_slice(), b"hunter2");
        assert_eq!(key_id(&a).unwrap(), ring.primary().id());
    }

    #[test]
    fn payload_round_trips_byte_for_byte() {
        let ring = ring();
        let token = seal(ring.primary(), "n", b"0123456789abcdef", &[9; 16]);
        let payload = decode_payload(&token).unwrap();
        assert_eq!(payload.len(), HEADER + 32 + TAG_LEN);
        assert_eq!(payload[0], VERSION);
        assert_eq!(&payload[1..5], &ring.primary().id().0);
        assert_eq!(&payload[5..21], &[9; 16]);
        assert_eq!(format!("{PREFIX}{}", STANDARD.encode(&payload[..])), token);
    }

    #[test]
    fn peek_reads_the_key_id_from_the_first_bytes() {
        let ring = ring();
        let t = encrypt(&ring, "n", b"v").unwrap();
        let id = Some(ring.primary().id());
        assert_eq!(peek_key_id(&t), id);
        assert_eq!(peek_key_id(&t[..15]), id, "a cut token still names its key");
        assert_eq!(peek_key_id(&format!("{}\\\n  {}", &t[..20], &t[20..])), id, "wrapped");
        assert_eq!(peek_key_id(&t[..14]), None);
        assert_eq!(peek_key_id("ENCSTR:Ai01PUr3"), Some("2d353d4a".parse().unwrap()), "version 2");
        assert_eq!(peek("ENCSTR:Ai01PUr3"), Some((2, "2d353d4a".parse().unwrap())));
        assert_eq!(peek_key_id("ENCSTR:Ay01PUr3"), None, "version 3");
        assert_eq!(peek_key_id("ENCSTR:AC01PUr3"), None, "version 0");
        assert_eq!(peek_key_id("ENCSTR:!!!!!!!!"), None);
        assert_eq!(peek_key_id("ENCSTR:AS01PUr3"), Some("2d353d4a".parse().unwrap()));
    }

    #[test]
    fn length_limits() {
        let ring = ring();
        let longest = encrypt(&ring, "n", &vec![7; MAX_PLAINTEXT_LEN]).unwrap();
        assert!(longest.len() <= MAX_TOKEN_LEN && longest.len() > MAX_TOKEN_LEN - 24, "{}", longest.len());
        assert_eq!(decrypt(&ring, "n", &longest).unwrap().len(), MAX_PLAINTEXT_LEN);
        let err = encrypt(&ring, "n", &vec![7; MAX_PLAINTEXT_LEN + 1]).unwrap_err();
        assert_eq!((err.kind(), err.to_string().starts_with("n: malformed: ")), ("malformed", true));
        let too_long = format!("{PREFIX}{}", "A".repeat(MAX_TOKEN_LEN));
        assert_eq!(decrypt(&ring, "n", &too_long).unwrap_err().kind(), "malformed");
    }

    #[test]
    fn sealed_tokens_open_with_the_keyring_and_name_their_key() {
        let mut ring = ring();
        ring.append(Key::from_seed(Seed::from_bytes([4; 32]))).unwrap();
        let old = ring.keys().next().unwrap();
        let a = seal_to(old.recipient(), "db.password", b"hunter2").unwrap();
        let b = seal_to(old.recipient(), "db.password", b"hunter2").unwrap();
        assert_ne!(a, b, "a fresh ephemeral key for every token");
        let opened = open(&ring, "db.password", &a).unwrap();
        assert_eq!((opened.plaintext.as_slice(), opened.version), (&b"hunter2"[..], 2));
        assert!(!ring.is_primary(opened.key));
        assert_eq!(key_id(&a).unwrap(), old.id());
        assert_eq!(peek(&a), Some((2, old.id())));
        let err = decrypt(&ring, "ldap.password", &a).unwrap_err();
        assert_eq!(err.kind(), "authentication_failed");
        assert!(err.to_string().starts_with("ldap.password: "), "{err}");
        let other = Keyring::single(Key::from_seed(Seed::from_bytes([5; 32])));
        assert_eq!(decrypt(&other, "db.password", &a).unwrap_err().kind(), "unknown_key");
    }

    #[test]
    fn sealed_length_limits() {
        let r = ring().primary().recipient().clone();
        let longest = seal_to(&r, "n", &vec![7; MAX_SEALED_PLAINTEXT_LEN]).unwrap();
        assert!(longest.len() <= MAX_TOKEN_LEN && longest.len() > MAX_TOKEN_LEN - 4, "{}", longest.len());
        assert_eq!(decrypt(&ring(), "n", &longest).unwrap().len(), MAX_SEALED_PLAINTEXT_LEN);
        let err = seal_to(&r, "n", &vec![7; MAX_SEALED_PLAINTEXT_LEN + 1]).unwrap_err();
        assert_eq!((err.kind(), err.to_string().starts_with("n: malformed: ")), ("malformed", true));
    }

    #[test]
    fn open_names_the_verifying_key() {
        let mut ring = ring();
        let old = encrypt(&ring, "n", b"v").unwrap();
        ring.append(Key::from_seed(Seed::from_bytes([4; 32]))).unwrap();
        let opened = open(&ring, "n", &old).unwrap();
        assert!(!ring.is_primary(opened.key));
        let new = encrypt(&ring, "n", b"v").unwrap();
        assert!(ring.is_primary(open(&ring, "n", &new).unwrap().key));
    }

    #[test]
    fn error_carries_name_and_key_id_but_no_token_body() {
        let ring = ring();
        let token = encrypt(&ring, "a", b"x").unwrap();
        let err = decrypt(&ring, "b", &token).unwrap_err();
        assert_eq!(err.kind(), "authentication_failed");
        let msg = err.to_string();
        assert!(msg.starts_with("b: "), "{msg}");
        assert!(msg.contains(&ring.primary().id().to_string()), "{msg}");
        assert!(!msg.contains(&token[PREFIX.len()..PREFIX.len() + 12]), "{msg}");
    }
}
