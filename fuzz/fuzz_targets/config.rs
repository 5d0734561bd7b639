//! Every config format parser never panics, and rendering a file without
//! tokens reproduces it byte for byte. The first byte picks the format.
#![no_main]

use encstr_core::keys::{Key, Seed};
use encstr_core::{ConfigFile, Format, Keyring};
use libfuzzer_sys::fuzz_target;

const FORMATS: [Format; 6] = [Format::Properties, Format::Dotenv, Format::Yaml, Format::Json, Format::Toml, Format::Raw];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else { return };
    let format = FORMATS[pick as usize % FORMATS.len()];
    let Ok(file) = ConfigFile::parse(format, bytes, "fuzz") else { return };
    for e in file.entries() {
        assert!(e.span.start <= e.span.end && e.span.end <= bytes.len());
    }
    if !file.has_tokens() {
        let ring = Keyring::new(vec![Key::from_seed(Seed::from_bytes([1; 32]))]).unwrap();
        let out = file.render(&ring, "", &[]).expect("nothing to decrypt");
        assert_eq!(out.bytes.as_slice(), bytes);
    }
});
