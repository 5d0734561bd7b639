//! Raw files: the whole content is one value named after the file.
//!
//! A raw file holds a token when its whole content, less one trailing line
//! break, is the token. Decrypting writes exactly the plaintext bytes (no
//! line break added); sealing keeps the file's trailing line break.

use std::borrow::Cow;

use super::{Entry, Quote, Text};
use crate::error::{Error, Result};

/// The one value of a raw file. A file that holds `ENCSTR:` but is not
/// exactly one token (a byte order mark, white space around it, a second
/// line) is `malformed`: copied as it is, the app would take the ciphertext
/// for the secret.
pub(crate) fn scan<'t>(text: &'t str, base_name: &str) -> Result<Vec<Entry<'t>>> {
    let body = text.strip_suffix('\n').map(|b| b.strip_suffix('\r').unwrap_or(b)).unwrap_or(text);
    if !crate::token::is_token(body) && text.contains("ENCSTR:") {
        return Err(Error::Malformed {
            name: Some(base_name.to_owned()),
            reason: "the file holds ENCSTR: text but is not exactly one token (a byte order mark, white space around it, or more text)",
        });
    }
    let name = Some(Cow::Owned(base_name.to_owned()));
    let mut entry = Entry::new(name, 1, 0..text.len(), Text::Slice(body), Quote::None);
    entry.trailer = text[body.len()..].to_owned();
    Ok(vec![entry])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_with_anything_around_it_is_malformed() {
        for ok in ["ENCSTR:abc", "ENCSTR:abc\n", "ENCSTR:abc\r\n", "plain secret", "  plain  \n\n"] {
            assert!(scan(ok, "f").is_ok(), "{ok:?}");
        }
        // (Text after a token is read as part of it: decryption fails,
        // malformed, later.)
        for bad in ["\u{feff}ENCSTR:abc", " ENCSTR:abc", "\tENCSTR:abc", "x\nENCSTR:abc"] {
            let err = scan(bad, "f").unwrap_err();
            assert_eq!(err.kind(), "malformed", "{bad:?}");
            assert!(err.to_string().starts_with("f: malformed"), "{err}");
        }
    }
}
