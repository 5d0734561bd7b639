//! The ENCSTR v2 payload: a value sealed to a key's recipient with HPKE
//! (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! AES-256-GCM, single-shot), from the `hpke` crate.
//!
//! ```text
//! payload   = 0x02 || key_id(4) || enc(32) || ct
//! (enc, ct) = SealBase(pkR = sealing_pk, info = "ENCSTR v2", aad, pt = plaintext)
//! aad       = 0x02 || key_id || u32_be(len(name)) || name
//! ```
//!
//! Opening finds the candidate keys by the key id (the keyring's index) and
//! tries each; any failure — wrong name, altered bytes, an `enc` that is no
//! usable X25519 public key — is the one opaque `authentication_failed`.

use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::{Deserializable as _, OpModeR, OpModeS, Serializable as _};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::keys::{KeyId, SealingKem};
use crate::recipient::{Recipient, RecipientError, VERSION};
use crate::token::Opened;

/// HPKE `info` of every v2 token.
const INFO: &[u8] = b"ENCSTR v2";
const ID_LEN: usize = 4;
const ENC_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// Version, key id and encapsulated key.
pub(crate) const HEADER: usize = 1 + ID_LEN + ENC_LEN;
/// Smallest payload: header and the tag of an empty plaintext.
pub(crate) const MIN_PAYLOAD: usize = HEADER + TAG_LEN;
/// Bytes a v2 payload adds to its plaintext.
pub(crate) const OVERHEAD: usize = MIN_PAYLOAD;

/// `0x02 ‖ key_id ‖ u32be(len(name)) ‖ name`.
fn aad(key_id: KeyId, name: &str) -> Vec<u8> {
    let name_len = u32::try_from(name.len()).expect("secret names are shorter than 4 GiB");
    let mut aad = Vec::with_capacity(1 + ID_LEN + 4 + name.len());
    aad.push(VERSION);
    aad.extend_from_slice(&key_id.0);
    aad.extend_from_slice(&name_len.to_be_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// An RNG that hands out one 32-byte ephemeral input, once: what
/// `GenerateKeyPair` draws (`DeriveKeyPair` of 32 random bytes, RFC 9180
/// §7.1.3), so that the input comes from the caller (the OS RNG, or a test
/// vector) and an RNG failure is an error, not a panic inside `hpke`.
struct EphemeralInput<'a> {
    ikm: &'a [u8; 32],
    used: bool,
}

impl hpke::rand_core::TryRng for EphemeralInput<'_> {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        unreachable!("hpke draws the ephemeral input as bytes")
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        unreachable!("hpke draws the ephemeral input as bytes")
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        assert!(!self.used && dst.len() == 32, "hpke draws one 32-byte ephemeral input per seal");
        dst.copy_from_slice(self.ikm);
        self.used = true;
        Ok(())
    }
}

impl hpke::rand_core::TryCryptoRng for EphemeralInput<'_> {}

/// Seal with a given ephemeral input (`ikm_e`). The caller draws it fresh
/// from the OS for every token; only the published vectors fix it.
pub(crate) fn seal(recipient: &Recipient, name: &str, plaintext: &[u8], ikm_e: &[u8; 32]) -> Result<String> {
    let pk = recipient.kem_public_key()?;
    let key_id = recipient.key_id();
    let mut rng = EphemeralInput { ikm: ikm_e, used: false };
    let (enc, ct) = hpke::single_shot_seal_with_rng::<AesGcm256, HkdfSha256, SealingKem>(
        &OpModeS::Base,
        &pk,
        INFO,
        plaintext,
        &aad(key_id, name),
        &mut rng,
    )
    // Sealing fails only when the public key gives an all-zero shared
    // secret (a low-order point that passed the check bytes).
    .map_err(|_| Error::InvalidRecipient(RecipientError::PublicKey))?;
    let ct = Zeroizing::new(ct);
    let mut payload = Vec::with_capacity(HEADER + ct.len());
    payload.push(VERSION);
    payload.extend_from_slice(&key_id.0);
    payload.extend_from_slice(&enc.to_bytes());
    payload.extend_from_slice(&ct);
    Ok(crate::token::encode(&payload))
}

/// Steps 4–5 of ENCSTR v2 §4 on a payload whose version (2) and length were
/// checked: every key with the token's id is tried.
pub(crate) fn open<'k>(keyring: &'k Keyring, name: &str, payload: &[u8]) -> Result<Opened<'k>> {
    let key_id = KeyId(payload[1..1 + ID_LEN].try_into().expect("length checked"));
    let mut candidates = keyring.candidates(key_id).peekable();
    if candidates.peek().is_none() {
        return Err(Error::UnknownKey { name: None, key_id });
    }
    // Any 32 bytes are an X25519 public key; a low-order one makes the
    // decapsulation fail below, as an authentication failure.
    let enc = <SealingKem as hpke::Kem>::EncappedKey::from_bytes(&payload[1 + ID_LEN..HEADER])
        .map_err(|_| Error::AuthenticationFailed { name: None, key_id })?;
    let aad = aad(key_id, name);
    for key in candidates {
        if let Ok(plain) = hpke::single_shot_open::<AesGcm256, HkdfSha256, SealingKem>(
            &OpModeR::Base,
            key.sealing_secret(),
            &enc,
            INFO,
            &payload[HEADER..],
            &aad,
        ) {
            return Ok(Opened { plaintext: Zeroizing::new(plain), key, version: VERSION });
        }
    }
    Err(Error::AuthenticationFailed { name: None, key_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Key, Seed};

    #[test]
    #[should_panic(expected = "one 32-byte ephemeral input")]
    fn the_ephemeral_input_is_used_once() {
        use hpke::rand_core::Rng as _;
        let ikm = [1u8; 32];
        let mut rng = EphemeralInput { ikm: &ikm, used: false };
        let mut out = [0u8; 32];
        rng.fill_bytes(&mut out);
        assert_eq!(out, ikm);
        rng.fill_bytes(&mut out);
    }

    #[test]
    fn payload_layout_is_byte_exact() {
        let key = Key::from_seed(Seed::from_bytes([3; 32]));
        let token = seal(key.recipient(), "n", b"hello", &[5; 32]).unwrap();
        let payload = crate::token::decode_for_tests(&token);
        assert_eq!(payload.len(), HEADER + 5 + TAG_LEN);
        assert_eq!(payload[0], 2);
        assert_eq!(&payload[1..5], &key.id().0);
        let (_, enc_pk) = <SealingKem as hpke::Kem>::derive_keypair(&[5; 32]);
        assert_eq!(&payload[5..HEADER], &enc_pk.to_bytes()[..]);
        let ring = Keyring::single(key);
        let opened = open(&ring, "n", &payload).unwrap();
        assert_eq!((opened.plaintext.as_slice(), opened.version), (&b"hello"[..], 2));
    }
}
