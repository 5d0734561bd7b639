//! Keyring parsing never panics, and what parses serializes back to a text
//! that parses to the same keys.
#![no_main]

use encstr_core::Keyring;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ring) = Keyring::parse(text) {
        let again = Keyring::parse(&ring.to_text()).expect("serialized keyring parses");
        assert_eq!(ring.ids(), again.ids());
    }
});
