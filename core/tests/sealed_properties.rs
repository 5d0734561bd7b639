//! Property tests of ENCSTR v2 (sealed) tokens and recipients: round trips,
//! tampering, and no panic on arbitrary input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use encstr_core::keys::{Key, Seed};
use encstr_core::{Keyring, Recipient, token};
use proptest::prelude::*;

fn ring() -> Keyring {
    Keyring::new(vec![Key::from_seed(Seed::from_bytes([21; 32])), Key::from_seed(Seed::from_bytes([22; 32]))])
        .unwrap()
}

fn recipient(ring: &Keyring, which: usize) -> Recipient {
    ring.keys().nth(which).unwrap().recipient().clone()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Sealed to either key's recipient, a value opens with the keyring
    /// under its name, and only under its name.
    #[test]
    fn seal_open_round_trip(
        name in any::<String>(),
        other in any::<String>(),
        plain in prop::collection::vec(any::<u8>(), 0..300),
        which in 0usize..2,
    ) {
        let ring = ring();
        let r = recipient(&ring, which);
        let t = token::seal_to(&r, &name, &plain).unwrap();
        let opened = token::open(&ring, &name, &t).unwrap();
        prop_assert_eq!(opened.plaintext.as_slice(), plain.as_slice());
        prop_assert_eq!((opened.key.id(), opened.version), (r.key_id(), 2));
        prop_assert_eq!(token::peek(&t), Some((2, r.key_id())));
        prop_assert_eq!(t.len(), 7 + (1 + 4 + 32 + plain.len() + 16).div_ceil(3) * 4);
        if name != other {
            prop_assert_eq!(token::decrypt(&ring, &other, &t).unwrap_err().kind(), "authentication_failed");
        }
    }

    /// Any bit flip of the payload fails: in the encapsulated key, the
    /// ciphertext or the tag with `authentication_failed`; in the version
    /// byte with `unsupported_version` and in the key id with `unknown_key`
    /// (ENCSTR v2 §4 steps 2 and 4). Never a panic, never a plaintext.
    #[test]
    fn any_bit_flip_is_rejected(plain in any::<Vec<u8>>(), bit in any::<prop::sample::Index>()) {
        let ring = ring();
        let t = token::seal_to(&recipient(&ring, 1), "n", &plain).unwrap();
        let mut payload = STANDARD.decode(&t[7..]).unwrap();
        let i = bit.index(payload.len() * 8);
        payload[i / 8] ^= 1 << (i % 8);
        let tampered = format!("ENCSTR:{}", STANDARD.encode(&payload));
        let kind = token::decrypt(&ring, "n", &tampered).unwrap_err().kind();
        let expected = match i / 8 {
            0 => "unsupported_version",
            1..=4 => "unknown_key",
            _ => "authentication_failed",
        };
        prop_assert_eq!(kind, expected);
    }

    /// Any change to the token's text (a character replaced, the text cut)
    /// fails with one of the decryption kinds, never a panic.
    #[test]
    fn any_text_change_is_rejected(
        plain in prop::collection::vec(any::<u8>(), 0..64),
        at in any::<prop::sample::Index>(),
        c in prop::sample::select(b"AZaz09+/=-_ .".to_vec()),
    ) {
        let ring = ring();
        let t = token::seal_to(&recipient(&ring, 0), "n", &plain).unwrap();
        let i = 7 + at.index(t.len() - 7);
        let mut changed = t.clone().into_bytes();
        prop_assume!(changed[i] != c);
        changed[i] = c;
        let changed = String::from_utf8(changed).unwrap();
        let kind = token::decrypt(&ring, "n", &changed).unwrap_err().kind();
        prop_assert!(
            matches!(kind, "malformed" | "authentication_failed" | "unknown_key" | "unsupported_version"),
            "{}", kind
        );
        // Cut inside a base64 quantum: not base64; cut between quanta: a
        // shorter payload, which is too short or fails its tag.
        let kind = token::decrypt(&ring, "n", &t[..i]).unwrap_err().kind();
        if (i - 7) % 4 == 0 {
            prop_assert!(matches!(kind, "malformed" | "authentication_failed"), "{}", kind);
        } else {
            prop_assert_eq!(kind, "malformed");
        }
    }

    /// Arbitrary payloads of version 2 never panic the opener.
    #[test]
    fn sealed_payloads_never_panic(tail in prop::collection::vec(any::<u8>(), 0..120), known in any::<bool>()) {
        let ring = ring();
        let mut payload = vec![2u8];
        payload.extend_from_slice(&if known { ring.primary().id().0 } else { [0, 1, 2, 3] });
        payload.extend_from_slice(&tail);
        let t = format!("ENCSTR:{}", STANDARD.encode(&payload));
        let kind = token::decrypt(&ring, "n", &t).unwrap_err().kind();
        prop_assert!(matches!(kind, "malformed" | "authentication_failed" | "unknown_key"), "{}", kind);
    }

    /// The recipient parser never panics, and every error is
    /// `invalid_recipient` without the text in its message.
    #[test]
    fn recipient_parser_never_panics(s in "ENCSTR-RECIPIENT:[A-Za-z0-9+/=]{0,80}|\\PC*") {
        if let Err(e) = s.parse::<Recipient>() {
            prop_assert_eq!(e.kind(), "invalid_recipient");
            let shown = e.to_string();
            if let Some(body) = s.strip_prefix("ENCSTR-RECIPIENT:").filter(|b| b.len() > 12) {
                prop_assert!(!shown.contains(body), "{}", shown);
            }
        }
    }

    /// Any bit flip of a recipient is caught (check bytes, version, length
    /// or base64), never accepted as another recipient.
    #[test]
    fn recipient_bit_flips_are_caught(bit in any::<prop::sample::Index>()) {
        let r = recipient(&ring(), 0).to_string();
        let mut bytes = STANDARD.decode(&r[17..]).unwrap();
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        let flipped = format!("ENCSTR-RECIPIENT:{}", STANDARD.encode(&bytes));
        prop_assert!(Recipient::parse(&flipped).is_err());
    }
}

#[test]
fn the_longest_sealed_plaintext_round_trips() {
    let ring = ring();
    let plain: Vec<u8> = (0..token::MAX_SEALED_PLAINTEXT_LEN).map(|i| (i * 7 + 3) as u8).collect();
    let t = token::seal_to(&recipient(&ring, 0), "big", &plain).unwrap();
    assert!(t.len() <= token::MAX_TOKEN_LEN);
    assert_eq!(token::decrypt(&ring, "big", &t).unwrap().as_slice(), plain.as_slice());
}
