//! Names of places in tree-shaped documents (YAML, JSON, TOML), ENCSTR v1 §4.
//!
//! A name is the mapping keys and sequence indexes from the root: a key is
//! written bare (`db.password`) when it is non-empty and holds none of
//! `.` `[` `]` `"` `\` and no control character, otherwise quoted as a JSON
//! string in brackets (`["a.b"].c`, `x["a.b"]`, `[""]`); an index is `[i]`.
//! The encoding is injective — [`segments`] inverts it — so no two places
//! of a document share a name.

use std::fmt::Write as _;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key (a table key in TOML).
    Key(String),
    /// A sequence index (an array index in TOML, 0-based).
    Index(usize),
}

/// Whether a key may be written bare.
fn is_bare(key: &str) -> bool {
    !key.is_empty() && !key.chars().any(|c| matches!(c, '.' | '[' | ']' | '"' | '\\') || c.is_control())
}

/// The name of the value under `key` in the mapping named `parent` (`""`
/// for the root).
pub fn key(parent: &str, key: &str) -> String {
    let mut out = String::with_capacity(parent.len() + key.len() + 5);
    out.push_str(parent);
    if is_bare(key) {
        if !parent.is_empty() {
            out.push('.');
        }
        out.push_str(key);
    } else {
        out.push('[');
        push_json_string(&mut out, key);
        out.push(']');
    }
    out
}

/// The name of item `index` of the sequence named `parent`.
pub fn index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// A JSON string literal as Python's `json.dumps(s, ensure_ascii=False)`
/// writes it: `"` and `\` escaped, control characters below U+0020 as
/// `\n \r \t \b \f` or `\u00xx`, everything else as is.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The segments a name is made of: the inverse of [`key`] and [`index`].
/// `None` when `name` is not a name these functions can produce. The empty
/// name (the root itself) has no segments.
pub fn segments(name: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'[' => {
                i += 1;
                if b.get(i) == Some(&b'"') {
                    let (key, used) = read_json_string(&name[i..])?;
                    i += used;
                    if is_bare(&key) {
                        return None; // would have been written bare
                    }
                    out.push(Segment::Key(key));
                } else {
                    let digits = name[i..].bytes().take_while(u8::is_ascii_digit).count();
                    let text = &name[i..i + digits];
                    if digits == 0 || (digits > 1 && text.starts_with('0')) {
                        return None;
                    }
                    out.push(Segment::Index(text.parse().ok()?));
                    i += digits;
                }
                if b.get(i) != Some(&b']') {
                    return None;
                }
                i += 1;
            }
            _ => {
                if i > 0 {
                    if b[i] != b'.' {
                        return None;
                    }
                    i += 1;
                }
                let len = name[i..].find(['.', '[']).unwrap_or(name.len() - i);
                let key = &name[i..i + len];
                if !is_bare(key) {
                    return None;
                }
                out.push(Segment::Key(key.to_owned()));
                i += len;
            }
        }
    }
    Some(out)
}

/// A JSON string at the start of `s` as [`push_json_string`] writes it: the
/// decoded text and the bytes it took.
fn read_json_string(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => out.push(match chars.next()?.1 {
                '"' => '"',
                '\\' => '\\',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'b' => '\x08',
                'f' => '\x0c',
                'u' => {
                    let hex: String = (0..4).map(|_| chars.next().map(|(_, c)| c)).collect::<Option<_>>()?;
                    char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
                }
                _ => return None,
            }),
            c if c < ' ' => return None,
            c => out.push(c),
        }
    }
    None
}

/// Rebuild a name from segments (tests and tools).
pub fn join(segments: &[Segment]) -> String {
    segments.iter().fold(String::new(), |name, s| match s {
        Segment::Key(k) => key(&name, k),
        Segment::Index(i) => index(&name, *i),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert_eq!(key(&key("", "db"), "password"), "db.password");
        assert_eq!(key(&key("", "a.b"), "c"), "[\"a.b\"].c");
        assert_eq!(key(&key("", "x"), "a.b"), "x[\"a.b\"]");
        assert_eq!(key("", ""), "[\"\"]");
        assert_eq!(key(&index(&key("", "servers"), 0), "token"), "servers[0].token");
        assert_eq!(index("", 2), "[2]");
        assert_eq!(key("", "we\"ird"), "[\"we\\\"ird\"]");
        assert_eq!(key("", "my key"), "my key");
        assert_eq!(key("", "名前"), "名前");
        assert_eq!(key("", "tab\there"), "[\"tab\\there\"]");
        assert_eq!(key("", "\u{1}"), "[\"\\u0001\"]");
        assert_eq!(
            key("", "\u{7f}"),
            "[\"\u{7f}\"]",
            "DEL is a control character: quoted, but JSON leaves it"
        );
    }

    #[test]
    fn the_three_ambiguous_documents_of_the_old_naming_differ() {
        let a = key(&key("", "a.b"), "c");
        let b = key(&key(&key("", "a"), "b"), "c");
        let c = key(&key("", "a"), "b.c");
        assert_eq!([a.as_str(), b.as_str(), c.as_str()], ["[\"a.b\"].c", "a.b.c", "a[\"b.c\"]"]);
    }

    #[test]
    fn segments_invert_the_naming() {
        for segs in [
            vec![],
            vec![Segment::Key("a".into())],
            vec![Segment::Index(3), Segment::Key("".into()), Segment::Key("x.y".into())],
            vec![Segment::Key("\"\\\n\u{1}]".into()), Segment::Index(0), Segment::Index(10)],
            vec![Segment::Key("0".into()), Segment::Key("[0]".into())],
        ] {
            let name = join(&segs);
            assert_eq!(segments(&name), Some(segs), "{name}");
        }
        for bad in [".a", "a.", "a..b", "[01]", "[x]", "[\"a\"]", "a[\"b\"", "a]", "[\"\\q\"]", "a\"b"] {
            assert_eq!(segments(bad), None, "{bad}");
        }
    }
}
