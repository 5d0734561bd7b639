//! The published ENCSTR v2 vectors (sealed to a recipient; made by an
//! independent implementation, RFC 9180 on Python `cryptography`, checked
//! with `pyhpke`), one test per case, exact error kinds.

#[macro_use]
mod common;

use std::sync::OnceLock;

use encstr_core::keys::{Key, Seed};
use encstr_core::recipient::RecipientError;
use encstr_core::{Keyring, Recipient, token};
use serde::Deserialize;

use common::{hex, unhex};

#[derive(Deserialize)]
struct Vectors {
    keys: Vec<KeyVector>,
    seal: Vec<SealVector>,
    open_errors: Vec<ErrorVector>,
    recipients_invalid: Vec<InvalidRecipient>,
}

#[derive(Deserialize)]
struct KeyVector {
    label: String,
    seed_b64: String,
    key_id_hex: String,
    sealing_ikm_hex: String,
    sealing_private_hex: String,
    sealing_public_hex: String,
    recipient: String,
}

#[derive(Deserialize)]
struct SealVector {
    key: String,
    name: String,
    plaintext_utf8: String,
    ikm_e_hex: String,
    token: String,
}

#[derive(Deserialize)]
struct ErrorVector {
    keyring: Vec<String>,
    name: String,
    token: String,
    error: String,
    why: String,
}

#[derive(Deserialize)]
struct InvalidRecipient {
    recipient: String,
    why: String,
}

fn vectors() -> &'static Vectors {
    static V: OnceLock<Vectors> = OnceLock::new();
    V.get_or_init(|| {
        serde_json::from_str(include_str!("data/encstr-v2-vectors.json")).expect("vector file parses")
    })
}

fn key(label: &str) -> Key {
    let v = vectors().keys.iter().find(|k| k.label == label).expect("key label exists");
    Key::from_seed(Seed::from_base64(&v.seed_b64).expect("seed is base64 of 32 bytes"))
}

fn ring() -> Keyring {
    Keyring::new(vec![key("a"), key("b"), key("c")]).unwrap()
}

/// §1 and §2: the sealing key pair derived from the seed, and its recipient.
fn check_key(i: usize) {
    let v = &vectors().keys[i];
    let k = key(&v.label);
    assert_eq!(k.id().to_string(), v.key_id_hex);
    let (ikm, sk) = k.sealing_keys_for_tests();
    assert_eq!(hex(&ikm[..]), v.sealing_ikm_hex);
    // RFC 9180 serializes an X25519 private key clamped; the vector holds
    // DeriveKeyPair's output before clamping.
    let mut clamped = unhex(&v.sealing_private_hex);
    clamped[0] &= 248;
    clamped[31] &= 127;
    clamped[31] |= 64;
    assert_eq!(hex(&sk[..]), hex(&clamped));
    assert_eq!(hex(k.recipient().public_key()), v.sealing_public_hex);
    assert_eq!(k.recipient().to_string(), v.recipient, "byte-exact recipient");
    let parsed: Recipient = v.recipient.parse().unwrap();
    assert_eq!((&parsed, parsed.key_id()), (k.recipient(), k.id()));
}

/// §3: the token is reproduced byte for byte from the vector's ephemeral
/// input, and opens (§4) with the keyring, under its name only.
fn check_seal(i: usize) {
    let v = &vectors().seal[i];
    let k = key(&v.key);
    let recipient: Recipient =
        vectors().keys.iter().find(|x| x.label == v.key).unwrap().recipient.parse().unwrap();
    let ikm_e: [u8; 32] = unhex(&v.ikm_e_hex).try_into().unwrap();
    let made = token::seal_to_with_ephemeral_input(&recipient, &v.name, v.plaintext_utf8.as_bytes(), &ikm_e)
        .unwrap();
    assert_eq!(made, v.token, "byte-exact token");
    let ring = ring();
    let opened = token::open(&ring, &v.name, &v.token).unwrap();
    assert_eq!(opened.plaintext.as_slice(), v.plaintext_utf8.as_bytes());
    assert_eq!((opened.key.id(), opened.version), (k.id(), 2));
    assert_eq!(token::key_id(&v.token).unwrap(), k.id());
    assert_eq!(token::peek_key_id(&v.token), Some(k.id()), "a key that sealed tokens use is in use");
    let err = token::decrypt(&ring, &format!("{}x", v.name), &v.token).unwrap_err();
    assert_eq!(err.kind(), "authentication_failed");
    // A fresh seal of the same value differs (a new ephemeral key) and opens.
    let fresh = token::seal_to(&recipient, &v.name, v.plaintext_utf8.as_bytes()).unwrap();
    assert_ne!(fresh, v.token);
    assert_eq!(token::decrypt(&ring, &v.name, &fresh).unwrap().as_slice(), v.plaintext_utf8.as_bytes());
}

fn check_error(i: usize) {
    let v = &vectors().open_errors[i];
    let ring = Keyring::new(v.keyring.iter().map(|l| key(l)).collect()).unwrap();
    let err = token::decrypt(&ring, &v.name, &v.token).expect_err(&v.why);
    assert_eq!(err.kind(), v.error, "{}: {err}", v.why);
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}: ", v.name)), "{msg}");
    assert!(!msg.contains(&v.token[7..27]), "{msg}");
}

fn check_invalid_recipient(i: usize) {
    let v = &vectors().recipients_invalid[i];
    let expected = match v.why.as_str() {
        "checksum byte flipped" | "public key bit flipped (checksum no longer matches)" => {
            RecipientError::Check
        }
        "version byte 1" => RecipientError::Version(1),
        "40 bytes" => RecipientError::Length(40),
        "padding missing" => RecipientError::Base64,
        "token prefix instead of recipient prefix" => RecipientError::Token,
        why => panic!("a new invalid-recipient vector needs its expected error: {why}"),
    };
    assert_eq!(Recipient::parse(&v.recipient), Err(expected), "{}", v.why);
    let err = v.recipient.parse::<Recipient>().unwrap_err();
    assert_eq!(err.kind(), "invalid_recipient");
    assert!(!err.to_string().contains(&v.recipient[17..40]), "never echoes the text: {err}");
}

cases!(check_key: key_a = 0, key_b = 1, key_c = 2);
cases!(check_seal:
    seal_db_password = 0,
    seal_empty_plaintext = 1,
    seal_exactly_16_bytes = 2,
    seal_unicode_and_specials = 3,
    seal_control_characters = 4,
    seal_empty_name = 5,
    seal_unicode_name_long_value = 6,
);
cases!(check_error:
    error_wrong_secret_name = 0,
    error_last_tag_byte_flipped = 1,
    error_ciphertext_bit_flipped = 2,
    error_encapsulated_key_bit_flipped = 3,
    error_encapsulated_key_low_order_point = 4,
    error_unknown_key_id = 5,
    error_shorter_than_header_and_tag = 6,
    error_empty_ciphertext_wrong_tag = 7,
);
cases!(check_invalid_recipient:
    recipient_checksum_byte_flipped = 0,
    recipient_public_key_bit_flipped = 1,
    recipient_version_1 = 2,
    recipient_40_bytes = 3,
    recipient_padding_missing = 4,
    recipient_token_prefix = 5,
);

/// Every vector in the file has a test above: a new vector cannot be skipped.
#[test]
fn every_vector_has_a_test() {
    let v = vectors();
    assert_eq!((v.keys.len(), v.seal.len(), v.open_errors.len(), v.recipients_invalid.len()), (3, 7, 8, 6));
}

/// The vector descriptions match the test names above (a reordered file is
/// noticed, not silently tested under the wrong names).
#[test]
fn vector_order_is_as_expected() {
    let v = vectors();
    let whys: Vec<&str> = v.open_errors.iter().map(|e| e.why.as_str()).collect();
    assert_eq!(
        whys,
        [
            "right key, wrong secret name",
            "last AEAD tag byte flipped",
            "ciphertext bit flipped",
            "encapsulated key bit flipped",
            "encapsulated key is a low-order point (all-zero X25519 output)",
            "key id not in keyring",
            "shorter than version + key id + enc + tag (52 bytes)",
            "53 bytes: well-formed length, empty ciphertext body, wrong tag",
        ]
    );
    let names: Vec<&str> = v.seal.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "db.password",
            "ldap.bind.password",
            "smtp.password",
            "spring.datasource.password",
            "servers[0].token",
            "",
            "名前"
        ]
    );
    let whys: Vec<&str> = v.recipients_invalid.iter().map(|r| r.why.as_str()).collect();
    assert_eq!(
        whys,
        [
            "checksum byte flipped",
            "public key bit flipped (checksum no longer matches)",
            "version byte 1",
            "40 bytes",
            "padding missing",
            "token prefix instead of recipient prefix",
        ]
    );
}

/// The copy in the crate is the published file.
#[test]
fn test_data_matches_the_published_spec() {
    common::assert_published("encstr-v2-vectors.json", include_str!("data/encstr-v2-vectors.json"));
}
