//! Raw files: the whole content is one value named after the file.
//!
//! A raw file holds a token when its whole content, less one trailing line
//! break, is the token. Decrypting writes exactly the plaintext bytes (no
//! line break added); sealing keeps the file's trailing line break.

use super::{Entry, Quote, secret_string};

/// The one value of a raw file.
pub(crate) fn scan(text: &str, base_name: &str) -> Vec<Entry> {
    let body = text.strip_suffix('\n').map(|b| b.strip_suffix('\r').unwrap_or(b)).unwrap_or(text);
    let mut value = secret_string(body.len());
    value.push_str(body);
    let mut entry = Entry::new(Some(base_name.to_owned()), 1, 0..text.len(), value, Quote::None);
    entry.trailer = text[body.len()..].to_owned();
    vec![entry]
}
