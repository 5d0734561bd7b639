//! The published ENCSTR v1 vectors (made by an independent implementation,
//! Python `cryptography`), one test per case, exact error kinds.

#[macro_use]
mod common;

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use encstr_core::keys::{DEFAULT_PASSPHRASE_SALT, Key, Seed};
use encstr_core::{ConfigFile, Format, Keyring, token};
use serde::Deserialize;

use common::{hex, unhex};

#[derive(Deserialize)]
struct Vectors {
    keys: Vec<KeyVector>,
    encrypt: Vec<EncryptVector>,
    decrypt_errors: Vec<ErrorVector>,
    passphrase: Vec<PassphraseVector>,
    collision: CollisionVector,
    names: Vec<NamesVector>,
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
    /// Absent: the default salt.
    salt: Option<String>,
    seed_b64: String,
}

#[derive(Deserialize)]
struct CollisionVector {
    keyring_b64: Vec<String>,
    key_id_hex: String,
    name: String,
    tokens: Vec<CollisionToken>,
}

#[derive(Deserialize)]
struct CollisionToken {
    token: String,
    plaintext_utf8: String,
}

#[derive(Deserialize)]
struct NamesVector {
    file: String,
    format: String,
    content: String,
    names: Vec<String>,
    plaintexts_utf8: Vec<String>,
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
    let seed = Seed::from_passphrase(&v.passphrase, v.salt.as_deref().unwrap_or(DEFAULT_PASSPHRASE_SALT));
    assert_eq!(STANDARD.encode(seed.as_bytes()), v.seed_b64);
}

fn collision_ring() -> Keyring {
    let v = &vectors().collision;
    let keys = v.keyring_b64.iter().map(|b| Key::from_seed(Seed::from_base64(b).unwrap())).collect();
    Keyring::new(keys).expect("two different seeds with one id are a valid keyring")
}

fn check_collision_token(i: usize) {
    let v = &vectors().collision;
    let ring = collision_ring();
    assert!(ring.keys().all(|k| k.id().to_string() == v.key_id_hex), "both keys have the id");
    assert_eq!(ring.candidates(ring.primary().id()).count(), 2);
    let t = &v.tokens[i];
    let opened = token::open(&ring, &v.name, &t.token).unwrap();
    assert_eq!(opened.plaintext.as_slice(), t.plaintext_utf8.as_bytes());
    // The first token was made by the first key, the second by the second
    // (the primary): the verifying key tells them apart, the id cannot.
    assert_eq!(ring.is_primary(opened.key), i == 1);
    assert_eq!(token::key_id(&t.token).unwrap().to_string(), v.key_id_hex);
}

/// `reencrypt` tells the two colliding keys apart by the key that verifies
/// a token: the first key's token is moved to the primary although its id
/// is the primary's id; the primary's own token stays.
#[test]
fn collision_reencrypt_judges_by_the_verifying_key() {
    let v = &vectors().collision;
    let ring = collision_ring();
    // Both tokens were made for the vector's name: one file each.
    for (i, t) in v.tokens.iter().enumerate() {
        let text = format!("{}={}\n", v.name, t.token);
        let file = ConfigFile::parse(Format::Properties, text.as_bytes(), "f").unwrap();
        let out = file.reencrypt(&ring, "").unwrap();
        assert_eq!((out.changed.len(), out.current), if i == 0 { (1, 0) } else { (0, 1) }, "token {i}");
    }
}

/// Every token of the file was made for exactly the name the spec gives its
/// place: the file yields those names in order, each decrypts under it, and
/// the whole file renders.
fn check_names(i: usize) {
    let v = &vectors().names[i];
    let format: Format = v.format.parse().unwrap();
    assert_eq!(Format::for_path(std::path::Path::new(&v.file)), format, "format chosen by file name");
    let file = ConfigFile::parse(format, v.content.as_bytes(), &v.file).unwrap();
    let names: Vec<&str> = file.tokens().map(|e| e.secret_name().expect("named")).collect();
    assert_eq!(names, v.names);
    let ring = Keyring::new(vec![key("a"), key("b"), key("c")]).unwrap();
    for (entry, plain) in file.tokens().zip(&v.plaintexts_utf8) {
        let got = token::decrypt(&ring, entry.secret_name().unwrap(), &entry.value).unwrap();
        assert_eq!(got.as_slice(), plain.as_bytes());
    }
    let rendered = file.render(&ring, "", &[]).expect("every token decrypts under its name");
    assert_eq!(rendered.decrypted, v.names.len());
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
    error_version_3 = 3,
    error_version_0 = 4,
    error_unknown_key_id = 5,
    error_truncated = 6,
    error_not_base64 = 7,
    error_empty_payload = 8,
    error_wrong_prefix = 9,
    error_valid_tag_padding_byte_0 = 10,
    error_valid_tag_inconsistent_padding = 11,
    error_valid_tag_padding_length_17 = 12,
    error_base64_nonzero_unused_bits = 13,
    error_base64_padding_missing = 14,
    error_base64_url_safe_alphabet = 15,
    error_base64_white_space_inside = 16,
);
cases!(check_passphrase:
    passphrase_ascii = 0,
    passphrase_unicode = 1,
    passphrase_deployment_salt = 2,
    passphrase_empty_salt = 3,
);
cases!(check_collision_token: collision_token_of_the_first_key = 0, collision_token_of_the_second_key = 1);
cases!(check_names:
    names_yaml = 0,
    names_json = 1,
    names_toml = 2,
    names_properties = 3,
    names_dotenv_uppercase_extension = 4,
    names_dotenv_dot_env_dot_name = 5,
    names_raw_crlf = 6,
);

/// Every vector in the file has a test above: a new vector cannot be skipped.
#[test]
fn every_vector_has_a_test() {
    let v = vectors();
    assert_eq!((v.keys.len(), v.encrypt.len(), v.decrypt_errors.len(), v.passphrase.len()), (3, 7, 17, 4));
    assert_eq!((v.collision.tokens.len(), v.names.len()), (2, 7));
}

/// The vector descriptions match the test names above (a reordered file is
/// noticed, not silently tested under the wrong names).
#[test]
fn vector_order_is_as_expected() {
    let v = vectors();
    let whys: Vec<&str> = v.decrypt_errors[3..].iter().map(|e| e.why.as_str()).collect();
    assert_eq!(
        whys,
        [
            "version byte 3",
            "version byte 0",
            "key id not in keyring",
            "truncated by one byte",
            "not base64",
            "empty payload",
            "wrong prefix",
            "valid tag, padding byte 0",
            "valid tag, inconsistent padding bytes",
            "valid tag, padding length 17",
            "non-zero unused bits (non-canonical base64)",
            "padding missing",
            "URL-safe alphabet",
            "white space inside",
        ]
    );
    let files: Vec<&str> = v.names.iter().map(|n| n.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "config.yaml",
            "config.json",
            "config.toml",
            "app.properties",
            "prod.ENV",
            ".env.production",
            "ldap-bind"
        ]
    );
}

/// The copy in the crate is the published file.
#[test]
fn test_data_matches_the_published_spec() {
    common::assert_published("encstr-v1-vectors.json", include_str!("data/encstr-v1-vectors.json"));
}
