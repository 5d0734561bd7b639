//! The published ENCSTR v1 vectors (made by an independent implementation,
//! Python `cryptography`), one test per case, exact error kinds.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use encstr_core::keys::{Key, Seed};
use encstr_core::{Keyring, token};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    keys: Vec<KeyVector>,
    encrypt: Vec<EncryptVector>,
    decrypt_errors: Vec<ErrorVector>,
    passphrase: Vec<PassphraseVector>,
}

#[derive(Deserialize)]
struct KeyVector {
    label: String,
    seed_b64: String,
    key_id_hex: String,
    enc_key_hex: String,
    mac_key_hex: String,
}

#[derive(Deserialize)]
struct EncryptVector {
    key: String,
    name: String,
    plaintext_utf8: String,
    iv_hex: String,
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
struct PassphraseVector {
    passphrase: String,
    seed_b64: String,
}

fn vectors() -> &'static Vectors {
    static V: OnceLock<Vectors> = OnceLock::new();
    V.get_or_init(|| {
        serde_json::from_str(include_str!("data/encstr-v1-vectors.json")).expect("vector file parses")
    })
}

fn key(label: &str) -> Key {
    let v = vectors().keys.iter().find(|k| k.label == label).expect("key label exists");
    Key::from_seed(Seed::from_base64(&v.seed_b64).expect("seed is base64 of 32 bytes"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn check_key(i: usize) {
    let v = &vectors().keys[i];
    let k = key(&v.label);
    assert_eq!(k.id().to_string(), v.key_id_hex);
    let (enc, mac) = k.derived_keys_for_tests();
    assert_eq!(hex(&enc[..]), v.enc_key_hex);
    assert_eq!(hex(&mac[..]), v.mac_key_hex);
}

fn check_encrypt(i: usize) {
    let v = &vectors().encrypt[i];
    let k = key(&v.key);
    let iv: [u8; 16] = unhex(&v.iv_hex).try_into().unwrap();
    let made = token::encrypt_with_iv(&k, &v.name, v.plaintext_utf8.as_bytes(), &iv);
    assert_eq!(made, v.token, "byte-exact token");
    let ring = Keyring::new(vec![key("a"), key("b"), key("c")]).unwrap();
    let plain = token::decrypt(&ring, &v.name, &v.token).unwrap();
    assert_eq!(plain.as_slice(), v.plaintext_utf8.as_bytes());
    assert_eq!(token::key_id(&v.token).unwrap(), k.id());
}

fn check_error(i: usize) {
    let v = &vectors().decrypt_errors[i];
    let ring = Keyring::new(v.keyring.iter().map(|l| key(l)).collect()).unwrap();
    let err = token::decrypt(&ring, &v.name, &v.token).expect_err(&v.why);
    assert_eq!(err.kind(), v.error, "{}: {err}", v.why);
    // The message names the secret and never shows the token body.
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}: ", v.name)), "{msg}");
    if let Some(body) = v.token.get(7..27) {
        assert!(!msg.contains(body), "{msg}");
    }
}

fn check_passphrase(i: usize) {
    let v = &vectors().passphrase[i];
    let seed = Seed::from_passphrase(&v.passphrase);
    assert_eq!(STANDARD.encode(seed.as_bytes()), v.seed_b64);
}

macro_rules! cases {
    ($check:ident: $($name:ident = $i:expr),* $(,)?) => {
        $( #[test] fn $name() { $check($i) } )*
    };
}

cases!(check_key: key_a = 0, key_b = 1, key_c = 2);
cases!(check_encrypt:
    encrypt_db_password = 0,
    encrypt_empty_plaintext = 1,
    encrypt_exactly_one_block = 2,
    encrypt_unicode_and_specials = 3,
    encrypt_control_characters = 4,
    encrypt_empty_name = 5,
    encrypt_unicode_name_multi_block = 6,
);
cases!(check_error:
    error_last_tag_byte_flipped = 0,
    error_ciphertext_bit_flipped = 1,
    error_wrong_secret_name = 2,
    error_version_2 = 3,
    error_unknown_key_id = 4,
    error_truncated = 5,
    error_not_base64 = 6,
    error_empty_payload = 7,
    error_wrong_prefix = 8,
);
cases!(check_passphrase: passphrase_ascii = 0, passphrase_unicode = 1);

/// Every vector in the file has a test above: a new vector cannot be skipped.
#[test]
fn every_vector_has_a_test() {
    let v = vectors();
    assert_eq!((v.keys.len(), v.encrypt.len(), v.decrypt_errors.len(), v.passphrase.len()), (3, 7, 9, 2));
}

/// The copy in the crate is the published file.
#[test]
fn test_data_matches_the_published_spec() {
    let published =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec/encstr-v1-vectors.json");
    if let Ok(text) = std::fs::read_to_string(published) {
        assert_eq!(text, include_str!("data/encstr-v1-vectors.json"));
    }
}
