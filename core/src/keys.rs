//! Keys: 32-byte seeds, the values HKDF derives from them, and key ids.
//!
//! A [`Key`] holds its seed and the prepared primitives (AES key schedules, a
//! keyed HMAC state, and the X25519 sealing key pair of ENCSTR v2), so that
//! decrypting a value costs no key setup. All of it is wiped from memory when
//! the key is dropped, and none of it is ever printed: `Debug` shows only the
//! public key id.

use std::fmt;
use std::str::FromStr;

use aes::cipher::KeyInit;
use aes::{Aes256Dec, Aes256Enc};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use hmac::Hmac;
use hpke::Kem as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};
use crate::recipient::Recipient;

/// Length of a key seed in bytes.
pub const SEED_LEN: usize = 32;
/// HKDF `info` for the AES-256 key.
const INFO_ENC: &[u8] = b"ENCSTR v1 encryption";
/// HKDF `info` for the HMAC-SHA256 key.
const INFO_MAC: &[u8] = b"ENCSTR v1 authentication";
/// HKDF `info` for the public key id.
const INFO_ID: &[u8] = b"ENCSTR v1 key id";
/// HKDF `info` for the input of the v2 sealing key pair (ENCSTR v2 §1).
const INFO_SEALING: &[u8] = b"ENCSTR v2 sealing key";
/// The PBKDF2 salt of passphrase-derived seeds when a deployment chooses
/// none (ENCSTR v1 §1). Choose one per deployment instead: with this one, a
/// single precomputed dictionary attacks every deployment.
pub const DEFAULT_PASSPHRASE_SALT: &str = "ENCSTR v1 passphrase";
/// PBKDF2-HMAC-SHA256 iterations for passphrase-derived seeds.
pub const PASSPHRASE_ITERATIONS: u32 = 600_000;

pub(crate) type HmacSha256 = Hmac<Sha256>;
/// The KEM of ENCSTR v2: DHKEM(X25519, HKDF-SHA256).
pub(crate) type SealingKem = hpke::kem::X25519HkdfSha256;
/// An X25519 sealing private key (wiped on drop by `x25519-dalek`).
pub(crate) type SealingSecret = <SealingKem as hpke::Kem>::PrivateKey;

/// The public 4-byte identifier of a key, shown as 8 lowercase hex digits.
///
/// It is derived from the seed by HKDF and reveals nothing about it; every
/// token carries the id of the key that made it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 4]);

impl KeyId {
    /// The 8 lowercase hex digits, as ASCII bytes.
    pub fn hex(self) -> [u8; 8] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 8];
        for (i, b) in self.0.iter().enumerate() {
            text[2 * i] = HEX[usize::from(b >> 4)];
            text[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        text
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(std::str::from_utf8(&self.hex()).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidKeyId);
        }
        let mut id = [0u8; 4];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| Error::InvalidKeyId)?;
        }
        Ok(KeyId(id))
    }
}

/// A 32-byte key seed. Wiped on drop; never printed; compared in constant
/// time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Seed([u8; SEED_LEN]);

impl PartialEq for Seed {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Seed {}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed([redacted])")
    }
}

impl Seed {
    /// A fresh seed from the operating system's random number generator.
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; SEED_LEN];
        getrandom::fill(&mut seed).map_err(|_| Error::Random)?;
        Ok(Seed(seed))
    }

    /// Wrap existing seed bytes.
    pub fn from_bytes(bytes: [u8; SEED_LEN]) -> Self {
        Seed(bytes)
    }

    /// The seed derived from a passphrase: PBKDF2-HMAC-SHA256 over the
    /// UTF-8 passphrase with the UTF-8 `salt` and 600,000 iterations
    /// (ENCSTR v1 §1). The same passphrase and salt give the same seed on
    /// every replica; [`DEFAULT_PASSPHRASE_SALT`] is the salt when a
    /// deployment chooses none.
    pub fn from_passphrase(passphrase: &str, salt: &str) -> Self {
        let mut seed = Seed([0u8; SEED_LEN]);
        pbkdf2::pbkdf2::<HmacSha256>(
            passphrase.as_bytes(),
            salt.as_bytes(),
            PASSPHRASE_ITERATIONS,
            &mut seed.0,
        )
        .expect("HMAC takes keys of any length");
        seed
    }

    /// Decode the base64 text of one keyring line. `None` if it is not the
    /// standard base64 (with padding) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Option<Self> {
        // 32 bytes encode to exactly 44 characters; refusing anything else
        // up front keeps long garbage from being decoded at all.
        if text.len() != 44 {
            return None;
        }
        let mut buf = Zeroizing::new([0u8; 33]);
        match STANDARD.decode_slice(text.as_bytes(), &mut buf[..]) {
            Ok(SEED_LEN) => {
                let mut seed = Seed([0u8; SEED_LEN]);
                seed.0.copy_from_slice(&buf[..SEED_LEN]);
                Some(seed)
            }
            _ => None,
        }
    }

    /// The standard base64 text of this seed: one keyring line.
    ///
    /// This is key material: write it only to keyring files or Secrets.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0))
    }

    /// The raw seed bytes. This is key material.
    pub fn as_bytes(&self) -> &[u8; SEED_LEN] {
        &self.0
    }
}

/// One key: a seed with the primitives derived from it, prepared for use.
///
/// The ENCSTR v2 sealing key pair (X25519, RFC 9180 `DeriveKeyPair`) is
/// derived here too, once, when the key is made (so when a keyring loads):
/// opening a v2 token costs no key derivation, and the private half is wiped
/// with the key.
pub struct Key {
    seed: Seed,
    id: KeyId,
    enc: Aes256Enc,
    dec: Aes256Dec,
    mac: HmacSha256,
    sealing: SealingSecret,
    recipient: Recipient,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Clone for Key {
    fn clone(&self) -> Self {
        Key::from_seed(self.seed.clone())
    }
}

impl Key {
    /// Derive everything a key needs from its seed (HKDF-SHA256, empty salt).
    pub fn from_seed(seed: Seed) -> Self {
        let (enc_key, mac_key, id) = derive(&seed);
        let enc = Aes256Enc::new_from_slice(&enc_key[..]).expect("AES-256 key is 32 bytes");
        let dec = Aes256Dec::new_from_slice(&enc_key[..]).expect("AES-256 key is 32 bytes");
        let mac = HmacSha256::new_from_slice(&mac_key[..]).expect("HMAC takes keys of any length");
        let (sealing, public) = SealingKem::derive_keypair(&sealing_ikm(&seed)[..]);
        let recipient = Recipient::from_public_key(id, &public);
        Key { seed, id, enc, dec, mac, sealing, recipient }
    }

    /// A new random key.
    pub fn generate() -> Result<Self> {
        Ok(Key::from_seed(Seed::generate()?))
    }

    /// The key derived from a passphrase and salt (see
    /// [`Seed::from_passphrase`]).
    pub fn from_passphrase(passphrase: &str, salt: &str) -> Self {
        Key::from_seed(Seed::from_passphrase(passphrase, salt))
    }

    /// The public key id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The seed. This is key material.
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    pub(crate) fn encryptor(&self) -> &Aes256Enc {
        &self.enc
    }

    pub(crate) fn decryptor(&self) -> &Aes256Dec {
        &self.dec
    }

    /// A fresh copy of the keyed HMAC state (no re-keying per value).
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }

    /// The key's public recipient (ENCSTR v2 §2): what anyone needs to seal
    /// a value that only holders of this key can open. Not key material.
    pub fn recipient(&self) -> &Recipient {
        &self.recipient
    }

    /// The X25519 sealing private key, to open v2 tokens.
    pub(crate) fn sealing_secret(&self) -> &SealingSecret {
        &self.sealing
    }

    /// The v2 sealing key pair's input and its private key as RFC 9180
    /// serializes it (clamped), to check them against published vectors.
    /// Only with the `test-vectors` feature.
    #[cfg(feature = "test-vectors")]
    #[doc(hidden)]
    pub fn sealing_keys_for_tests(&self) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
        use hpke::Serializable as _;
        let mut sk = Zeroizing::new([0u8; 32]);
        sk.copy_from_slice(&self.sealing.to_bytes());
        (sealing_ikm(&self.seed), sk)
    }

    /// The derived AES-256 and HMAC keys, to check them against published
    /// vectors. Only with the `test-vectors` feature: nothing else needs key
    /// material outside this crate.
    #[cfg(feature = "test-vectors")]
    pub fn derived_keys_for_tests(&self) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
        let (enc_key, mac_key, _) = derive(&self.seed);
        (enc_key, mac_key)
    }
}

/// `HKDF-SHA256(seed, salt = empty, info = "ENCSTR v2 sealing key")`: the
/// input of the sealing key pair (ENCSTR v2 §1).
fn sealing_ikm(seed: &Seed) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, seed.as_bytes())
        .expand(INFO_SEALING, &mut ikm[..])
        .expect("32 bytes is a valid HKDF length");
    ikm
}

/// HKDF-SHA256 (empty salt) of a seed: encryption key, MAC key, key id.
fn derive(seed: &Seed) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>, KeyId) {
    let hk = Hkdf::<Sha256>::new(None, seed.as_bytes());
    let mut enc_key = Zeroizing::new([0u8; 32]);
    let mut mac_key = Zeroizing::new([0u8; 32]);
    let mut id = [0u8; 4];
    hk.expand(INFO_ENC, &mut enc_key[..]).expect("32 bytes is a valid HKDF length");
    hk.expand(INFO_MAC, &mut mac_key[..]).expect("32 bytes is a valid HKDF length");
    hk.expand(INFO_ID, &mut id).expect("4 bytes is a valid HKDF length");
    (enc_key, mac_key, KeyId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_round_trips_through_text() {
        let id: KeyId = "2d353d4a".parse().unwrap();
        assert_eq!(id.to_string(), "2d353d4a");
        assert!("2d353d4".parse::<KeyId>().is_err());
        assert!("2d353d4g".parse::<KeyId>().is_err());
        assert!("2d353d4a0".parse::<KeyId>().is_err());
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = Key::from_seed(Seed::from_bytes([7; 32]));
        let shown = format!("{key:?} {:?}", key.seed());
        assert!(shown.contains(&key.id().to_string()));
        assert!(!shown.contains(key.seed().to_base64().as_str()));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn seed_base64_is_strict() {
        let seed = Seed::from_bytes([1; 32]);
        let text = seed.to_base64();
        assert_eq!(Seed::from_base64(&text), Some(seed));
        assert!(Seed::from_base64(&text[..43]).is_none());
        assert!(Seed::from_base64("AAAA").is_none());
        // 33 bytes of base64 text for 32 bytes plus trailing garbage.
        assert!(Seed::from_base64(&format!("{}A", &text[..43])).is_none());
    }

    #[test]
    fn generated_seeds_differ() {
        assert_ne!(Seed::generate().unwrap(), Seed::generate().unwrap());
    }

    #[test]
    fn seeds_compare_by_value() {
        let a = Seed::from_bytes([1; 32]);
        let mut b = [1; 32];
        assert!(a == Seed::from_bytes(b));
        b[31] = 0;
        assert!(a != Seed::from_bytes(b));
    }

    /// Every type that holds key material or keyed hash state wipes itself
    /// when dropped: this does not compile if a dependency loses its
    /// `zeroize` feature. The SHA-256 core state is what HMAC (our keyed
    /// states, ipad and opad absorbed), HKDF (its PRK is an HMAC) and PBKDF2
    /// keep; `hmac` does not mark `Hmac` itself, but wipes its cores.
    #[test]
    fn key_material_types_zeroize_on_drop() {
        fn wiped<T: ZeroizeOnDrop>() {}
        wiped::<Seed>();
        wiped::<Sha256>();
        wiped::<sha2::block_api::Sha256VarCore>();
        wiped::<Aes256Enc>();
        wiped::<Aes256Dec>();
        // hpke's X25519 private key wraps this type (its `zeroize` feature
        // is on); the wrapper itself has no marker to check.
        wiped::<x25519_dalek::StaticSecret>();
    }

    #[test]
    fn each_key_has_its_own_recipient() {
        let a = Key::from_seed(Seed::from_bytes([7; 32]));
        let b = Key::from_seed(Seed::from_bytes([8; 32]));
        assert_eq!(a.recipient().key_id(), a.id());
        assert_ne!(a.recipient(), b.recipient());
        assert_eq!(a.clone().recipient(), a.recipient(), "derived, not random");
        let shown = format!("{a:?}");
        assert!(!shown.contains(&a.recipient().to_string()[17..]), "{shown}");
    }
}
