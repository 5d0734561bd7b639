//! Token decoding and decryption never panic; anything that decrypts was
//! made by the key (tokens are not malleable).
#![no_main]

use encstr_core::keys::{Key, Seed};
use encstr_core::{Keyring, token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let ring = Keyring::new(vec![Key::from_seed(Seed::from_bytes([1; 32]))]).unwrap();
    let _ = token::key_id(text);
    if let Ok(plain) = token::decrypt(&ring, "fuzz", text) {
        // Only a token made by the key can decrypt; re-encrypting round-trips.
        let again = token::encrypt(&ring, "fuzz", &plain).unwrap();
        assert_eq!(token::decrypt(&ring, "fuzz", &again).unwrap().as_slice(), plain.as_slice());
    }
    // With the prefix forced, the payload parser sees arbitrary base64 too.
    let _ = token::decrypt(&ring, "fuzz", &format!("ENCSTR:{text}"));
});
