//! Java `.properties` files, read as `java.util.Properties.load` reads them.
//!
//! Natural lines end with `\n`, `\r` or `\r\n`; a line ending in an odd number
//! of backslashes continues on the next one (whose leading white space is
//! dropped); lines whose first non-blank character is `#` or `!` are
//! comments. The key ends at the first unescaped `=`, `:` or white space.
//! Values are written back the way `Properties.store` writes them, with
//! `\uXXXX` for everything outside printable ASCII, so both ISO-8859-1 and
//! UTF-8 loaders read them.

use std::borrow::Cow;
use std::fmt;

use zeroize::Zeroizing;

use super::{Entry, Esc, Quote, Text, parse_error, plain_ascii, secret_string, write_escaped};
use crate::error::Result;

const FORMAT: &str = "properties";
/// The printable ASCII bytes values are written with as they are.
const PLAIN: [bool; 128] = plain_ascii(b"\\=:#!");

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

/// One character of a logical line and the byte offset it came from.
type Located = (char, usize);

/// Find every property of a properties text.
pub(crate) fn scan(text: &str) -> Result<Vec<Entry<'_>>> {
    // At most one entry per line: sized once, never moved while it grows.
    let mut entries = Vec::with_capacity(memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1);
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut line = 1;
    while pos < text.len() {
        let start_line = line;
        // Skip leading blanks of the natural line.
        let mut i = pos;
        while i < text.len() && matches!(bytes[i], b' ' | b'\t' | b'\x0c') {
            i += 1;
        }
        let (eol, next) = line_end(text, i);
        if i == eol || bytes[i] == b'#' || bytes[i] == b'!' {
            // Blank or comment line: never continued.
            pos = next;
            line += 1;
            continue;
        }
        let trailing = text[i..eol].bytes().rev().take_while(|&b| b == b'\\').count();
        if trailing % 2 == 0 {
            // One natural line (the common case): work on the text itself.
            entries.push(parse_line(text, i, eol, line)?);
            pos = next;
            line += 1;
            continue;
        }
        // Gather the logical line, joining continuations. It may hold a
        // plaintext (when sealing): wiped on drop, sized before it grows.
        let mut chars: Zeroizing<Vec<Located>> = Zeroizing::new(Vec::new());
        let mut seg_start = i;
        let mut seg_end = eol;
        let mut end;
        loop {
            let trailing = text[seg_start..seg_end].bytes().rev().take_while(|&b| b == b'\\').count();
            let continues = trailing % 2 == 1;
            let keep_to = if continues { seg_end - 1 } else { seg_end };
            reserve_secret(&mut chars, keep_to - seg_start);
            chars.extend(text[seg_start..keep_to].char_indices().map(|(o, c)| (c, seg_start + o)));
            end = keep_to;
            let (_, after) = line_end(text, seg_start);
            line += 1;
            pos = after;
            if !continues || after >= text.len() {
                break;
            }
            // Next natural line, leading blanks dropped.
            let mut j = after;
            while j < text.len() && matches!(bytes[j], b' ' | b'\t' | b'\x0c') {
                j += 1;
            }
            seg_start = j;
            seg_end = line_end(text, j).0;
        }
        entries.push(parse_logical(&chars, end, start_line)?);
    }
    Ok(entries)
}

/// End of the natural line starting at or before `from` (index of its line
/// terminator) and the start of the next line.
fn line_end(text: &str, from: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let i = memchr::memchr2(b'\n', b'\r', &bytes[from..]).map_or(bytes.len(), |n| from + n);
    let next = if i >= bytes.len() {
        bytes.len()
    } else if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
        i + 2
    } else {
        i + 1
    };
    (i, next)
}

/// A logical line that is one natural line, `text[start..end]`, starting
/// with its key.
fn parse_line(text: &str, start: usize, end: usize, line: usize) -> Result<Entry<'_>> {
    let b = text.as_bytes();
    let mut k = start;
    while k < end {
        match b[k] {
            b'\\' => k += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => k += 1,
        }
    }
    let key_end = k.min(end);
    let blanks = |mut v: usize| {
        while v < end && matches!(b[v], b' ' | b'\t' | b'\x0c') {
            v += 1;
        }
        v
    };
    let mut v = blanks(key_end);
    if v < end && matches!(b[v], b'=' | b':') {
        v = blanks(v + 1);
    }
    let name = match unescape_str(&text[start..key_end], line)? {
        Text::Slice(s) => Cow::Borrowed(s),
        Text::Decoded(s) => Cow::Owned(s.as_str().to_owned()),
    };
    let value = unescape_str(&text[v..end], line)?;
    Ok(Entry::new(Some(name), line, v..end, value, Quote::None))
}

/// [`unescape`] of a piece of text: the text itself when it holds no escape.
fn unescape_str(s: &str, line: usize) -> Result<Text<'_>> {
    if !s.contains('\\') {
        return Ok(Text::Slice(s));
    }
    let mut chars: Zeroizing<Vec<Located>> = Zeroizing::new(Vec::with_capacity(s.len()));
    chars.extend(s.chars().map(|c| (c, 0)));
    unescape(&chars, line).map(Text::Decoded)
}

fn parse_logical(chars: &[Located], end: usize, line: usize) -> Result<Entry<'static>> {
    // Key: up to the first unescaped separator.
    let mut k = 0;
    while k < chars.len() {
        match chars[k].0 {
            '\\' => k += 2,
            '=' | ':' => break,
            c if is_blank(c) => break,
            _ => k += 1,
        }
    }
    let key_end = k.min(chars.len());
    let mut v = key_end;
    while v < chars.len() && is_blank(chars[v].0) {
        v += 1;
    }
    if v < chars.len() && matches!(chars[v].0, '=' | ':') {
        v += 1;
        while v < chars.len() && is_blank(chars[v].0) {
            v += 1;
        }
    }
    let name = unescape(&chars[..key_end], line)?;
    let value = unescape(&chars[v..], line)?;
    let span_start = chars.get(v).map_or(end, |&(_, o)| o);
    Ok(Entry::new(
        Some(Cow::Owned(name.as_str().to_owned())),
        line,
        span_start..end,
        Text::Decoded(value),
        Quote::None,
    ))
}

/// Make room for `more` elements in a secret buffer without leaving the old
/// contents behind: grow into a new zeroizing buffer, wipe the old one.
fn reserve_secret<T: Copy + zeroize::Zeroize>(buf: &mut Zeroizing<Vec<T>>, more: usize) {
    if buf.capacity() - buf.len() >= more {
        return;
    }
    let mut bigger = Zeroizing::new(Vec::with_capacity((buf.len() + more).max(buf.capacity() * 2)));
    bigger.extend_from_slice(buf);
    *buf = bigger;
}

/// `Properties.loadConvert`: `\uXXXX`, `\t \n \r \f`, and `\x` → `x`.
fn unescape(chars: &[Located], line: usize) -> Result<Zeroizing<String>> {
    // Every character decodes to at most itself: 4 bytes of UTF-8 at most.
    let mut out = secret_string(chars.len() * 4);
    let mut units: Zeroizing<Vec<u16>> = Zeroizing::new(Vec::with_capacity(chars.len()));
    let mut i = 0;
    let flush = |units: &mut Zeroizing<Vec<u16>>, out: &mut Zeroizing<String>| -> Result<()> {
        for c in char::decode_utf16(units.iter().copied()) {
            out.push(c.map_err(|_| parse_error(FORMAT, line, "\\u escape is an unpaired UTF-16 surrogate"))?);
        }
        units.clear();
        Ok(())
    };
    while i < chars.len() {
        let c = chars[i].0;
        if c != '\\' {
            flush(&mut units, &mut out)?;
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&(e, _)) = chars.get(i + 1) else {
            // A lone backslash at the very end: Java drops it.
            i += 1;
            continue;
        };
        if e == 'u' {
            let hex: String = chars.get(i + 2..i + 6).unwrap_or_default().iter().map(|&(c, _)| c).collect();
            let unit = (hex.len() == 4)
                .then(|| u16::from_str_radix(&hex, 16).ok())
                .flatten()
                .ok_or_else(|| parse_error(FORMAT, line, "malformed \\uxxxx escape"))?;
            units.push(unit);
            i += 6;
            continue;
        }
        flush(&mut units, &mut out)?;
        out.push(match e {
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'f' => '\x0c',
            other => other,
        });
        i += 2;
    }
    flush(&mut units, &mut out)?;
    Ok(out)
}

/// A value as `Properties.store` writes it: printable ASCII as is except
/// `\\ = : # !` (escaped), a leading space escaped, controls as `\\t \\n \\r \\f`,
/// everything else as `\\uXXXX` UTF-16 units.
pub(crate) fn encode(value: &str, out: &mut impl fmt::Write) {
    // A leading space would be read as white space before the value.
    let rest = match value.strip_prefix(' ') {
        Some(rest) => {
            let _ = out.write_str("\\ ");
            rest
        }
        None => value,
    };
    write_escaped(rest, out, &PLAIN, |_, c| match c {
        '\\' | '=' | ':' | '#' | '!' => Some(Esc::Backslash),
        '\t' => Some(Esc::Text("\\t")),
        '\n' => Some(Esc::Text("\\n")),
        '\r' => Some(Esc::Text("\\r")),
        '\x0c' => Some(Esc::Text("\\f")),
        ' '..='~' => None,
        _ => Some(Esc::Utf16Upper),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_values(text: &str) -> Vec<(String, String, usize)> {
        scan(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.name.clone().unwrap().into_owned(), e.value.to_string(), e.line))
            .collect()
    }

    #[test]
    fn separators_comments_and_continuations() {
        let text = "# c\n! c2\n  a=1\nb : 2\nc 3\nd\\ e=4\\\n   5\nf=\ng\n\\u00e9t\\u00e9=\\u00e9\n";
        assert_eq!(
            names_values(text),
            vec![
                ("a".into(), "1".into(), 3),
                ("b".into(), "2".into(), 4),
                ("c".into(), "3".into(), 5),
                ("d e".into(), "45".into(), 6),
                ("f".into(), "".into(), 8),
                ("g".into(), "".into(), 9),
                ("été".into(), "é".into(), 10),
            ]
        );
    }

    #[test]
    fn spans_cover_the_value_through_continuations() {
        let text = "k = ENCSTR:ab\\\n  cd # not a comment\r\nz=1";
        let e = &scan(text).unwrap()[0];
        assert_eq!(&text[e.span.clone()], "ENCSTR:ab\\\n  cd # not a comment");
        assert_eq!(e.value.as_str(), "ENCSTR:abcd # not a comment");
    }

    #[test]
    fn encode_round_trips() {
        for v in [" lead", "a\\b=c:d#e!f", "tab\tnl\ncr\r", "ünï🔑", "trail  ", ""] {
            let line = format!("k={}\n", super::super::encoded(super::super::Format::Properties, v).as_str());
            let e = &scan(&line).unwrap()[0];
            assert_eq!(e.value.as_str(), v, "{line}");
            assert!(line.is_ascii());
        }
    }

    #[test]
    fn bad_unicode_escape_names_the_line() {
        let err = scan("a=1\nb=\\u12\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: invalid properties: malformed \\uxxxx escape");
    }
}
