//! Raw files: the whole content is one value named after the file.
//!
//! A raw file holds a token when its whole content, less one trailing line
//! break, is the token. Decrypting writes exactly the plaintext bytes (no
//! line break added); sealing keeps the file's trailing line break.

use std::borrow::Cow;

use super::{Entry, Quote, Text};

/// The one value of a raw file.
pub(crate) fn scan<'t>(text: &'t str, base_name: &str) -> Vec<Entry<'t>> {
    let body = text.strip_suffix('\n').map(|b| b.strip_suffix('\r').unwrap_or(b)).unwrap_or(text);
    let name = Some(Cow::Owned(base_name.to_owned()));
    let mut entry = Entry::new(name, 1, 0..text.len(), Text::Slice(body), Quote::None);
    entry.trailer = text[body.len()..].to_owned();
    vec![entry]
}
