//! Configuration file formats: finding every value with its secret name, and
//! writing values back in each format's own syntax.
//!
//! Each format module has a `scan` that returns every scalar value of the
//! file as an [`Entry`] (its secret name, line, byte span and unquoted
//! value) and encoders that turn a token or a decrypted plaintext into text
//! that replaces the span. Everything outside the spans is left untouched,
//! so comments, order, quoting and white space survive byte for byte.

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub mod dotenv;
pub mod json;
pub mod path;
pub mod properties;
pub mod raw;
pub mod toml;
pub mod yaml;

/// Nesting deeper than this is rejected instead of recursing further.
pub(crate) const MAX_DEPTH: usize = 128;

/// A configuration file format (ENCSTR v1 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Java `.properties`.
    Properties,
    /// dotenv (`.env`, `*.env`).
    Dotenv,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
    /// TOML (`.toml`).
    Toml,
    /// Anything else: the whole file is one value named after the file.
    Raw,
}

impl Format {
    /// The format a file has by its name (ENCSTR v1 §4).
    pub fn for_path(path: &Path) -> Format {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let lower = name.to_ascii_lowercase();
        let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
        match ext {
            "properties" => Format::Properties,
            "env" => Format::Dotenv,
            "yaml" | "yml" => Format::Yaml,
            "json" => Format::Json,
            "toml" => Format::Toml,
            _ if lower == ".env" || lower.starts_with(".env.") => Format::Dotenv,
            _ => Format::Raw,
        }
    }

    /// The format's name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Properties => "properties",
            Format::Dotenv => "dotenv",
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Toml => "toml",
            Format::Raw => "raw",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "properties" | "props" => Format::Properties,
            "dotenv" | "env" => Format::Dotenv,
            "yaml" | "yml" => Format::Yaml,
            "json" => Format::Json,
            "toml" => Format::Toml,
            "raw" => Format::Raw,
            _ => return Err(Error::UnknownFormat(s.to_owned())),
        })
    }
}

/// How a value was quoted in the source, so a token can be written back in
/// the same style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quote {
    /// Bare / plain.
    None,
    /// `'...'`.
    Single,
    /// `"..."`.
    Double,
}

/// One scalar value of a configuration file.
#[derive(Debug)]
pub struct Entry {
    /// The secret name (without any configured prefix); `None` for a place
    /// that has no name (a value under a complex YAML key).
    pub name: Option<String>,
    /// 1-based line where the value (or its key) starts.
    pub line: usize,
    /// Byte range in the file that the value's text occupies, quotes
    /// included; this is what gets replaced.
    pub span: Range<usize>,
    /// The value after the format's unquoting and unescaping.
    pub value: Zeroizing<String>,
    pub(crate) quote: Quote,
    /// Text appended after a replacement (for example the line break a YAML
    /// block scalar's span swallowed, or a comment on its header line).
    pub(crate) trailer: String,
}

impl Entry {
    pub(crate) fn new(
        name: Option<String>,
        line: usize,
        span: Range<usize>,
        value: Zeroizing<String>,
        quote: Quote,
    ) -> Self {
        Entry { name, line, span, value, quote, trailer: String::new() }
    }

    /// The secret name, unless the place has none or it is empty (such a
    /// place cannot hold a token: `unnamed`, ENCSTR v1 §4).
    pub fn secret_name(&self) -> Option<&str> {
        self.name.as_deref().filter(|n| !n.is_empty())
    }

    /// Whether the value is an ENCSTR token (starts with `ENCSTR:`).
    pub fn is_token(&self) -> bool {
        crate::token::is_token(&self.value)
    }
}

/// Find every value of a text in the given format. `base_name` names a raw
/// file's value.
pub(crate) fn scan(format: Format, text: &str, base_name: &str) -> Result<Vec<Entry>> {
    match format {
        Format::Properties => properties::scan(text),
        Format::Dotenv => dotenv::scan(text),
        Format::Yaml => yaml::scan(text),
        Format::Json => json::scan(text),
        Format::Toml => toml::scan(text),
        Format::Raw => Ok(raw::scan(text, base_name)),
    }
}

/// The text that replaces `entry.span` to hold `token` (a token never needs
/// escaping, so the original quoting style is kept where the format allows).
pub(crate) fn encode_token(format: Format, entry: &Entry, token: &str) -> String {
    let quoted = match (format, entry.quote) {
        (Format::Json, _) | (_, Quote::Double) => format!("\"{token}\""),
        (_, Quote::Single) => format!("'{token}'"),
        (_, Quote::None) => token.to_owned(),
    };
    quoted + &entry.trailer
}

/// The bytes that replace `entry.span` so that the format's standard parser
/// returns exactly `plaintext`.
pub(crate) fn encode_plaintext(
    format: Format,
    entry: &Entry,
    plaintext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    if format == Format::Raw {
        return Ok(Zeroizing::new(plaintext.to_vec()));
    }
    let text = std::str::from_utf8(plaintext).map_err(|_| Error::Unrepresentable {
        format: format.name(),
        line: entry.line,
        name: entry.name.clone().unwrap_or_default(),
        reason: "the decrypted value is not UTF-8 text",
    })?;
    let mut out = match format {
        Format::Properties => properties::encode(text, entry.trailer.len()),
        Format::Dotenv => dotenv::encode(text, entry.trailer.len()).map_err(|reason| {
            Error::Unrepresentable {
                format: "dotenv",
                line: entry.line,
                name: entry.name.clone().unwrap_or_default(),
                reason,
            }
        })?,
        Format::Yaml => yaml::encode(text, entry.trailer.len()),
        Format::Json => json::encode(text, entry.trailer.len()),
        Format::Toml => toml::encode(text, entry.trailer.len()),
        Format::Raw => unreachable!("handled above"),
    };
    out.push_str(&entry.trailer);
    Ok(into_bytes(out))
}

/// The bytes of a zeroizing string, without a copy.
pub(crate) fn into_bytes(mut text: Zeroizing<String>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(std::mem::take(&mut *text).into_bytes())
}

/// A string that is wiped on drop and never reallocates while it stays
/// within `capacity` (reserve enough up front: a reallocation would leave
/// the old buffer's bytes behind in freed memory).
pub(crate) fn secret_string(capacity: usize) -> Zeroizing<String> {
    Zeroizing::new(String::with_capacity(capacity))
}

/// 1-based line number of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// A `Parse` error.
pub(crate) fn parse_error(format: &'static str, line: usize, message: impl Into<String>) -> Error {
    Error::Parse { format, line, message: message.into() }
}
