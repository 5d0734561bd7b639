//! What the published-vector tests share: hex, one test per case, and the
//! check that the crate's copy of a vector file is the published one.

#![allow(dead_code)]

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The copy in the crate (`copy`) is the published `../shared/spec/<file>`,
/// when the published file is there beside the checkout.
pub fn assert_published(file: &str, copy: &str) {
    let published = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec").join(file);
    if let Ok(text) = std::fs::read_to_string(published) {
        assert_eq!(text, copy, "core/tests/data/{file} differs from the published spec");
    }
}

/// One `#[test]` per vector case: `cases!(check: name = index, ...)`.
macro_rules! cases {
    ($check:ident: $($name:ident = $i:expr),* $(,)?) => {
        $( #[test] fn $name() { $check($i) } )*
    };
}
