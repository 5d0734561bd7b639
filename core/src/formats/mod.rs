//! Configuration file formats: finding every value with its secret name, and
//! writing values back in each format's own syntax.
//!
//! Each format module has a `scan` that returns every scalar value of the
//! file as an [`Entry`] (its secret name, line, byte span and unquoted
//! value) and encoders that turn a token or a decrypted plaintext into text
//! that replaces the span. Everything outside the spans is left untouched,
//! so comments, order, quoting and white space survive byte for byte.

use std::borrow::Cow;
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

/// The longest secret name, in bytes.
pub(crate) const MAX_NAME: usize = 4096;

/// Bounds the memory the names of a file's values take. Each value owns
/// its full name, so a long key above many values, or deep nesting, would
/// multiply a small file many times over (a 100 KB ConfigMap could take
/// gigabytes): no name may exceed [`MAX_NAME`], and all of them together
/// at most eight times the file's size (plus 64 KiB).
pub(crate) struct NameBudget {
    format: &'static str,
    left: usize,
}

impl NameBudget {
    /// The budget for a text of `len` bytes.
    pub(crate) fn for_text(format: &'static str, len: usize) -> Self {
        NameBudget { format, left: len.saturating_mul(8).saturating_add(64 << 10) }
    }

    /// A name is kept: refuse it if it is too long or the names add up to
    /// too much.
    pub(crate) fn charge(&mut self, line: usize, name: &str) -> Result<()> {
        self.charge_at(|| line, name)
    }

    /// [`NameBudget::charge`], the line worked out only for an error.
    pub(crate) fn charge_at(&mut self, line: impl Fn() -> usize, name: &str) -> Result<()> {
        if name.len() > MAX_NAME {
            return Err(parse_error(
                self.format,
                line(),
                format!(
                    "a value's name is {} bytes long (at most {MAX_NAME}: keys too long or nested too deep)",
                    name.len()
                ),
            ));
        }
        self.left = self.left.checked_sub(name.len()).ok_or_else(|| {
            parse_error(
                self.format,
                line(),
                "the names of the values add up to more than eight times the file's size (long keys above many values, or deep nesting)",
            )
        })?;
        Ok(())
    }
}

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

/// The text of a value: a slice of the file when it needed no unquoting or
/// unescaping (no copy is made), else the decoded text, wiped on drop. Its
/// `Debug` shows a token's key-id-free head and a plaintext's length only:
/// a value may be a plaintext about to be sealed.
pub enum Text<'t> {
    /// Exactly these bytes of the file.
    Slice(&'t str),
    /// Decoded from the file's escapes.
    Decoded(Zeroizing<String>),
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if crate::token::is_token(self.as_str()) {
            write!(f, "Text(ENCSTR:… {} bytes)", self.as_str().len())
        } else {
            write!(f, "Text([redacted] {} bytes)", self.as_str().len())
        }
    }
}

impl<'t> Text<'t> {
    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            Text::Slice(s) => s,
            Text::Decoded(s) => s,
        }
    }

    /// A slice of the file, or `decode`'s result when `raw` holds an escape
    /// (`esc`).
    pub(crate) fn unescaped(raw: &'t str, esc: char, decode: impl FnOnce(&str) -> Zeroizing<String>) -> Self {
        if raw.contains(esc) { Text::Decoded(decode(raw)) } else { Text::Slice(raw) }
    }

    /// A copy that no longer borrows the file (wiped on drop).
    pub(crate) fn into_owned(self) -> Text<'static> {
        match self {
            Text::Slice(s) => {
                let mut owned = secret_string(s.len());
                owned.push_str(s);
                Text::Decoded(owned)
            }
            Text::Decoded(s) => Text::Decoded(s),
        }
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// One scalar value of a configuration file; `'t` is the file's text.
#[derive(Debug)]
pub struct Entry<'t> {
    /// The secret name (without any configured prefix); `None` for a place
    /// that has no name (a value under a complex YAML key).
    pub name: Option<Cow<'t, str>>,
    /// 1-based line where the value (or its key) starts.
    pub line: usize,
    /// Byte range in the file that the value's text occupies, quotes
    /// included; this is what gets replaced.
    pub span: Range<usize>,
    /// The value after the format's unquoting and unescaping.
    pub value: Text<'t>,
    pub(crate) quote: Quote,
    /// Text appended after a replacement (for example the line break a YAML
    /// block scalar's span swallowed, or a comment on its header line).
    pub(crate) trailer: String,
    /// Another place that reads this value too (a YAML alias or merge key
    /// of an anchor on it or on a collection holding it, or a dotenv
    /// `${NAME}` reference to its variable): the first such place.
    pub aliased: Option<Alias>,
}

/// A place that reads a value defined elsewhere: where the app would find
/// the value under another name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// The place's name (`None`: it has none, such as a key or the top).
    pub name: Option<String>,
    /// 1-based line of the alias or reference.
    pub line: usize,
}

impl<'t> Entry<'t> {
    pub(crate) fn new(
        name: Option<Cow<'t, str>>,
        line: usize,
        span: Range<usize>,
        value: Text<'t>,
        quote: Quote,
    ) -> Self {
        Entry { name, line, span, value, quote, trailer: String::new(), aliased: None }
    }

    /// The same entry, borrowing nothing from the file's text.
    pub(crate) fn into_owned(self) -> Entry<'static> {
        Entry {
            name: self.name.map(|n| Cow::Owned(n.into_owned())),
            line: self.line,
            span: self.span,
            value: self.value.into_owned(),
            quote: self.quote,
            trailer: self.trailer,
            aliased: self.aliased,
        }
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
pub(crate) fn scan<'t>(format: Format, text: &'t str, base_name: &str) -> Result<Vec<Entry<'t>>> {
    match format {
        Format::Properties => properties::scan(text),
        Format::Dotenv => dotenv::scan(text),
        Format::Yaml => yaml::scan(text),
        Format::Json => json::scan(text),
        Format::Toml => toml::scan(text),
        Format::Raw => raw::scan(text, base_name),
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

/// Check that `plaintext` can be written as `entry`'s value so that the
/// format's standard parser returns it exactly (UTF-8 text, and nothing
/// dotenv would expand). Raw files take any bytes.
pub(crate) fn check_plaintext(format: Format, entry: &Entry, plaintext: &[u8]) -> Result<()> {
    if format == Format::Raw {
        return Ok(());
    }
    let unrepresentable = |reason| Error::Unrepresentable {
        format: format.name(),
        line: entry.line,
        name: entry.name.as_deref().unwrap_or_default().to_owned(),
        reason,
    };
    let text = std::str::from_utf8(plaintext)
        .map_err(|_| unrepresentable("the decrypted value is not UTF-8 text"))?;
    match format {
        Format::Dotenv => dotenv::representable(text).map_err(unrepresentable),
        _ => Ok(()),
    }
}

/// Counts the bytes written to it.
#[derive(Default)]
struct Len(usize);

impl fmt::Write for Len {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// Appends to a byte buffer whose capacity the caller reserved.
struct Append<'a>(&'a mut Vec<u8>);

impl fmt::Write for Append<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        debug_assert!(self.0.capacity() - self.0.len() >= s.len(), "the output never reallocates");
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Write a value checked by [`check_plaintext`] in the format's syntax.
fn write_value(format: Format, text: &str, out: &mut impl fmt::Write) {
    match format {
        Format::Properties => properties::encode(text, out),
        Format::Dotenv => dotenv::encode(text, out),
        Format::Yaml => yaml::encode(text, out),
        Format::Json => json::encode(text, out),
        Format::Toml => toml::encode(text, out),
        Format::Raw => unreachable!("raw values are bytes"),
    }
}

/// The length of what [`write_plaintext`] writes.
pub(crate) fn plaintext_len(format: Format, entry: &Entry, plaintext: &[u8]) -> usize {
    if format == Format::Raw {
        return plaintext.len();
    }
    let mut len = Len::default();
    write_value(format, std::str::from_utf8(plaintext).expect("checked"), &mut len);
    len.0 + entry.trailer.len()
}

/// Append the bytes that replace `entry.span` so that the format's standard
/// parser returns exactly `plaintext` (checked by [`check_plaintext`];
/// `out` has room for [`plaintext_len`] more bytes). A raw file becomes
/// exactly the plaintext, with no line break added.
pub(crate) fn write_plaintext(format: Format, entry: &Entry, plaintext: &[u8], out: &mut Vec<u8>) {
    if format == Format::Raw {
        out.extend_from_slice(plaintext);
        return;
    }
    write_value(format, std::str::from_utf8(plaintext).expect("checked"), &mut Append(out));
    out.extend_from_slice(entry.trailer.as_bytes());
}

/// How a character is escaped by [`write_escaped`].
pub(crate) enum Esc {
    /// This text instead.
    Text(&'static str),
    /// A backslash before the character.
    Backslash,
    /// `\uXXXX` (upper-case hex) of the code point (below U+10000).
    Hex4Upper,
    /// `\uxxxx` (lower-case hex) of the code point (below U+10000).
    Hex4Lower,
    /// `\uXXXX` of each UTF-16 unit (upper-case hex).
    Utf16Upper,
}

/// Printable ASCII but `specials`: the bytes [`write_escaped`] copies
/// without asking.
pub(crate) const fn plain_ascii(specials: &[u8]) -> [bool; 128] {
    let mut table = [false; 128];
    let mut b = 0x20;
    while b < 0x7f {
        table[b] = true;
        b += 1;
    }
    let mut i = 0;
    while i < specials.len() {
        table[specials[i] as usize] = false;
        i += 1;
    }
    table
}

/// Write `value`, replacing the characters `esc` picks (given each
/// character's byte offset). Bytes marked in `plain` are known not to need
/// escaping and are copied in runs without decoding; `esc` must return
/// `None` for them.
pub(crate) fn write_escaped(
    value: &str,
    out: &mut impl fmt::Write,
    plain: &[bool; 128],
    esc: impl Fn(usize, char) -> Option<Esc>,
) {
    let bytes = value.as_bytes();
    let (mut run, mut at) = (0, 0);
    while at < bytes.len() {
        let b = bytes[at];
        if b < 0x80 && plain[usize::from(b)] {
            at += 1;
            continue;
        }
        let c = value[at..].chars().next().expect("at a character boundary");
        let Some(e) = esc(at, c) else {
            at += c.len_utf8();
            continue;
        };
        let _ = out.write_str(&value[run..at]);
        at += c.len_utf8();
        run = at;
        let _ = match e {
            Esc::Text(t) => out.write_str(t),
            Esc::Backslash => out.write_char('\\').and_then(|()| out.write_char(c)),
            Esc::Hex4Upper => write!(out, "\\u{:04X}", c as u32),
            Esc::Hex4Lower => write!(out, "\\u{:04x}", c as u32),
            Esc::Utf16Upper => {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units).iter().try_for_each(|u| write!(out, "\\u{u:04X}"))
            }
        };
    }
    let _ = out.write_str(&value[run..]);
}

/// A value encoded on its own (tests and round-trip checks).
#[cfg(test)]
pub(crate) fn encoded(format: Format, value: &str) -> String {
    let mut out = String::new();
    write_value(format, value, &mut out);
    out
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

/// The 1-based line of byte `at`, with CR LF, lone CR and LF each one
/// line break.
pub(crate) fn line_at(text: &str, at: usize) -> usize {
    let b = &text.as_bytes()[..at];
    let crlf = memchr::memmem::find_iter(b, b"\r\n").count();
    1 + memchr::memchr2_iter(b'\n', b'\r', b).count() - crlf
}

/// A `Parse` error.
pub(crate) fn parse_error(format: &'static str, line: usize, message: impl Into<String>) -> Error {
    Error::Parse { format, line, message: message.into() }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    /// A file whose names would take many times its size (a long key above
    /// many values, deep nesting), or one very long name, is refused in
    /// every tree format before the names are built.
    #[test]
    fn names_are_bounded_in_length_nesting_and_total() {
        let long = "k".repeat(MAX_NAME + 1);
        let wide = "w".repeat(3000);
        let many_yaml: String = (0..4000).map(|_| "  - ENCSTR:x\n").collect();
        let many_json = vec!["\"ENCSTR:x\""; 4000].join(",");
        let many_toml = vec!["\"x\""; 4000].join(",");
        let cases = [
            // Implicit YAML keys stop at 1024 characters: these are explicit.
            (Format::Yaml, format!("? {long}\n: v\n"), "bytes long"),
            (Format::Yaml, format!("{}a{}\n", "[".repeat(200), "]".repeat(200)), "nested deeper than 128"),
            (Format::Yaml, format!("? {wide}\n:\n{many_yaml}"), "add up to more than eight times"),
            (Format::Json, format!("{{\"{long}\": \"v\"}}"), "bytes long"),
            (Format::Json, format!("{{\"{wide}\": [{many_json}]}}"), "add up to more than eight times"),
            (Format::Toml, format!("\"{long}\" = \"v\"\n"), "bytes long"),
            (Format::Toml, format!("{wide} = [{many_toml}]\n"), "add up to more than eight times"),
        ];
        for (format, doc, want) in cases {
            let err = scan(format, &doc, "x").unwrap_err();
            assert_eq!(err.kind(), "parse", "{format}");
            assert!(err.to_string().contains(want), "{format}: {err}");
        }
        // What configurations look like passes: nesting and keys of sane size.
        let sane: String = (0..500).map(|i| format!("svc{i}:\n  db:\n    password: ENCSTR:x\n")).collect();
        assert_eq!(scan(Format::Yaml, &sane, "x").unwrap().len(), 500);
    }
}
