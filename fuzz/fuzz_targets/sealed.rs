//! ENCSTR v2: recipient parsing and sealed-payload opening never panic; a
//! parsed recipient shows as its canonical text; anything that opens was
//! sealed to the key and re-seals and round-trips.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use encstr_core::keys::{Key, Seed};
use encstr_core::{Keyring, Recipient, token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let ring = Keyring::new(vec![Key::from_seed(Seed::from_bytes([1; 32]))]).unwrap();
    match mode % 3 {
        // Arbitrary text as a recipient, with and without the prefix.
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            for candidate in [text.to_owned(), format!("ENCSTR-RECIPIENT:{text}")] {
                if let Ok(r) = Recipient::parse(&candidate) {
                    assert_eq!(r.to_string(), candidate.trim(), "only canonical text parses");
                }
            }
        }
        // Arbitrary bytes as a recipient's decoded form (so the check bytes
        // are reached): whatever parses can be sealed to or is refused.
        1 => {
            let text = format!("ENCSTR-RECIPIENT:{}", STANDARD.encode(rest));
            if let Ok(r) = Recipient::parse(&text) {
                let _ = token::seal_to(&r, "fuzz", b"x");
            }
        }
        // Arbitrary bytes after the version byte and the keyring's key id:
        // the opener sees every encapsulated key and ciphertext.
        _ => {
            let mut payload = vec![2u8];
            payload.extend_from_slice(&ring.primary().id().0);
            payload.extend_from_slice(rest);
            let text = format!("ENCSTR:{}", STANDARD.encode(&payload));
            if let Ok(plain) = token::decrypt(&ring, "fuzz", &text) {
                let again = token::seal_to(ring.primary().recipient(), "fuzz", &plain).unwrap();
                assert_eq!(token::decrypt(&ring, "fuzz", &again).unwrap().as_slice(), plain.as_slice());
            }
            let _ = token::key_id(&text);
        }
    }
});
