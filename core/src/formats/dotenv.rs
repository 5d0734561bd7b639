//! dotenv files, read the way python-dotenv reads them.
//!
//! `[export ]KEY=VALUE` per line; values are bare (cut at ` #`, trailing
//! white space removed), single-quoted (`\\` and `\'` escapes) or
//! double-quoted (`\\ \' \" \a \b \f \n \r \t \v` escapes); quoted values may
//! span lines. Decrypted values are written single-quoted when nothing in
//! them needs escaping, otherwise double-quoted.

use std::fmt;

use zeroize::Zeroizing;

use super::{Alias, Entry, Esc, Quote, Text, parse_error, plain_ascii, secret_string, write_escaped};
use crate::error::Result;

const FORMAT: &str = "dotenv";
/// The printable ASCII bytes values are written with as they are.
const PLAIN: [bool; 128] = plain_ascii(b"\\\"");

/// Python's `str.isspace()` for the characters that matter here.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// White space other than line breaks (`[^\S\r\n]`).
fn is_inline_space(c: char) -> bool {
    is_space(c) && c != '\r' && c != '\n'
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Advance over `n` bytes, counting line breaks.
    fn advance(&mut self, n: usize) {
        let taken = &self.text[self.pos..self.pos + n];
        let b = taken.as_bytes();
        let crlf = b.windows(2).filter(|w| w == b"\r\n").count();
        self.line += b.iter().filter(|&&c| c == b'\n' || c == b'\r').count() - crlf;
        self.pos += n;
    }

    fn skip_while(&mut self, f: impl Fn(char) -> bool) -> usize {
        let n = self.rest().find(|c: char| !f(c)).unwrap_or(self.rest().len());
        self.advance(n);
        n
    }

    /// Skip to the start of the next line (error recovery never needed: a
    /// line that does not parse is an error).
    fn error(&self, message: &str) -> crate::error::Error {
        parse_error(FORMAT, self.line, message)
    }
}

/// Find every assignment of a dotenv text. A variable another value
/// refers to (`${NAME}`, which python-dotenv expands in bare and
/// double-quoted values) is marked [`Entry::aliased`].
pub(crate) fn scan(text: &str) -> Result<Vec<Entry<'_>>> {
    let mut entries = assignments(text)?;
    let mut references: Vec<(&str, Alias)> = Vec::new();
    for e in entries.iter().filter(|e| e.quote != Quote::Single) {
        for name in referenced(&e.value) {
            references.push((name, Alias { name: e.name.as_deref().map(str::to_owned), line: e.line }));
        }
    }
    let references: Vec<(String, Alias)> = references.into_iter().map(|(n, a)| (n.to_owned(), a)).collect();
    for e in &mut entries {
        if let Some((_, alias)) = references.iter().find(|(n, _)| e.name.as_deref() == Some(n.as_str())) {
            e.aliased = Some(alias.clone());
        }
    }
    Ok(entries)
}

/// The variables a value refers to: python-dotenv's
/// `\$\{(?P<name>[^\}:]*)(?::-(?P<default>[^\}]*))?\}`.
fn referenced(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find("${")?;
            let after = &rest[start + 2..];
            let close = after.find('}')?;
            rest = &after[close + 1..];
            let inner = &after[..close];
            let name = inner.split_once(":-").map_or(inner, |(n, _)| n);
            if !name.contains(':') {
                return Some(name);
            }
        }
    })
}

fn assignments(text: &str) -> Result<Vec<Entry<'_>>> {
    let mut r = Reader { text, pos: 0, line: 1 };
    // At most one entry per line: sized once, never moved while it grows.
    let mut entries = Vec::with_capacity(memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1);
    loop {
        r.skip_while(is_space);
        if r.pos >= text.len() {
            return Ok(entries);
        }
        let line = r.line;
        // Optional `export ` prefix.
        if let Some(after) = r.rest().strip_prefix("export") {
            let ws = after.find(|c: char| !is_inline_space(c)).unwrap_or(after.len());
            if ws > 0 {
                r.advance("export".len() + ws);
            }
        }
        let key = match r.peek() {
            Some('#') => None,
            Some('\'') => {
                let body = &r.rest()[1..];
                let end =
                    body.find('\'').filter(|&e| e > 0).ok_or_else(|| r.error("unterminated quoted key"))?;
                let key = &body[..end];
                r.advance(end + 2);
                Some(key)
            }
            _ => {
                let n =
                    r.rest().find(|c: char| c == '=' || c == '#' || is_space(c)).unwrap_or(r.rest().len());
                if n == 0 {
                    return Err(r.error("expected a variable name"));
                }
                let key = &r.rest()[..n];
                r.advance(n);
                Some(key)
            }
        };
        r.skip_while(is_inline_space);
        if let Some(key) = key
            && r.peek() == Some('=')
        {
            r.advance(1);
            r.skip_while(is_inline_space);
            let start = r.pos;
            let (value, len, quote) = parse_value(&r)?;
            r.advance(len);
            entries.push(Entry::new(Some(key.into()), line, start..start + len, value, quote));
        }
        // Optional comment, then the end of the line.
        let rest = r.rest();
        let ws = rest.find(|c: char| !is_inline_space(c)).unwrap_or(rest.len());
        if rest[ws..].starts_with('#') {
            let n = rest.find(['\r', '\n']).unwrap_or(rest.len());
            r.advance(n);
        }
        r.skip_while(is_inline_space);
        match r.peek() {
            None => {}
            Some('\r') if r.rest().starts_with("\r\n") => r.advance(2),
            Some('\r' | '\n') => r.advance(1),
            Some(_) => return Err(r.error("unexpected text after the value (quote it?)")),
        }
    }
}

/// The value at the reader: its decoded text, the length of its source text
/// (quotes included) and its quoting.
fn parse_value<'t>(r: &Reader<'t>) -> Result<(Text<'t>, usize, Quote)> {
    let rest = r.rest();
    match r.peek() {
        Some(q @ ('\'' | '"')) => {
            let body = &rest[1..];
            let end = closing_quote(body, q).ok_or_else(|| r.error("unterminated quoted value"))?;
            let raw = &body[..end];
            let escapable = if q == '\'' { "\\'" } else { "\\'\"abfnrtv" };
            let value = Text::unescaped(raw, '\\', |raw| unescape(raw, escapable));
            Ok((value, end + 2, if q == '\'' { Quote::Single } else { Quote::Double }))
        }
        None | Some('\r' | '\n') => Ok((Text::Slice(""), 0, Quote::None)),
        Some(_) => {
            let part = &rest[..rest.find(['\r', '\n']).unwrap_or(rest.len())];
            // `re.sub(r"\s+#.*", "", part).rstrip()`
            let mut cut = part.len();
            let mut prev_space_start: Option<usize> = None;
            for (i, c) in part.char_indices() {
                if c == '#'
                    && let Some(s) = prev_space_start
                {
                    cut = s;
                    break;
                }
                if is_space(c) {
                    prev_space_start.get_or_insert(i);
                } else {
                    prev_space_start = None;
                }
            }
            let value = part[..cut].trim_end_matches(is_space);
            Ok((Text::Slice(value), value.len(), Quote::None))
        }
    }
}

/// python-dotenv's `'((?:\\'|[^'])*)'`: the content ends at the first quote
/// not preceded by a backslash or, failing that, at the last quote.
fn closing_quote(body: &str, q: char) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut last = None;
    for (i, c) in body.char_indices() {
        if c == q {
            if i == 0 || bytes[i - 1] != b'\\' {
                return Some(i);
            }
            last = Some(i);
        }
    }
    last
}

/// Decode `\x` escapes for the characters in `escapable` (left to right,
/// non-overlapping, as `re.sub` does).
fn unescape(raw: &str, escapable: &str) -> Zeroizing<String> {
    let mut out = secret_string(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&e) = chars.peek()
            && (e == '\\' || escapable.contains(e))
        {
            chars.next();
            out.push(match e {
                'a' => '\x07',
                'b' => '\x08',
                'f' => '\x0c',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'v' => '\x0b',
                other => other,
            });
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether python-dotenv would expand `${...}` in the value.
fn has_interpolation(value: &str) -> bool {
    value.find("${").is_some_and(|i| value[i..].contains('}'))
}

/// Whether python-dotenv can read `value` back exactly from some spelling.
pub(crate) fn representable(value: &str) -> std::result::Result<(), &'static str> {
    if has_interpolation(value) {
        return Err("dotenv readers expand ${...} inside values");
    }
    if single_quotable(value) || !value.ends_with('\\') || bare_ok(value) {
        return Ok(());
    }
    Err("dotenv cannot hold a value that ends in a backslash and needs quoting")
}

/// Nothing in it needs escaping: single quotes hold it as is.
fn single_quotable(value: &str) -> bool {
    !value.chars().any(|c| c == '\'' || c == '\\' || (c.is_control() && c != '\t' && c != '\n'))
}

/// It can be written bare (python-dotenv cuts bare values at ` #` and trims
/// them).
fn bare_ok(value: &str) -> bool {
    !value.starts_with(['\'', '"'])
        && !value.starts_with(is_space)
        && !value.ends_with(is_space)
        && !value.contains(['\r', '\n'])
        && !value.chars().zip(value.chars().skip(1)).any(|(a, b)| is_space(a) && b == '#')
}

/// Write a [`representable`] value so that python-dotenv reads it back
/// exactly: single-quoted when nothing needs escaping, else double-quoted,
/// else (a value ending in a backslash, which a quote cannot follow) bare.
pub(crate) fn encode(value: &str, out: &mut impl fmt::Write) {
    if single_quotable(value) {
        let _ = write!(out, "'{value}'");
    } else if !value.ends_with('\\') {
        let _ = out.write_char('"');
        write_escaped(value, out, &PLAIN, |_, c| match c {
            '\\' => Some(Esc::Text("\\\\")),
            '"' => Some(Esc::Text("\\\"")),
            '\n' => Some(Esc::Text("\\n")),
            '\r' => Some(Esc::Text("\\r")),
            '\t' => Some(Esc::Text("\\t")),
            '\x07' => Some(Esc::Text("\\a")),
            '\x08' => Some(Esc::Text("\\b")),
            '\x0b' => Some(Esc::Text("\\v")),
            '\x0c' => Some(Esc::Text("\\f")),
            _ => None,
        });
        let _ = out.write_char('"');
    } else {
        let _ = out.write_str(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_another_value_expands_is_marked_with_the_first_reference() {
        let text = "DB_PASSWORD=ENCSTR:abc\nBANNER=hello ${DB_PASSWORD}\nQUOTED=\"${API_KEY:-none}\"\nAPI_KEY=ENCSTR:def\nLITERAL='${OTHER}'\nOTHER=ENCSTR:ghi\n";
        let e = scan(text).unwrap();
        let aliased: Vec<_> = e
            .iter()
            .map(|e| (e.name.as_deref().unwrap(), e.aliased.as_ref().map(|a| (a.name.as_deref(), a.line))))
            .collect();
        assert_eq!(
            aliased,
            vec![
                ("DB_PASSWORD", Some((Some("BANNER"), 2))),
                ("BANNER", None),
                ("QUOTED", None),
                ("API_KEY", Some((Some("QUOTED"), 3))),
                ("LITERAL", None),
                ("OTHER", None),
            ],
            "single quotes do not expand"
        );
        assert_eq!(referenced("${A}${B:-x}${C:y}${").collect::<Vec<_>>(), ["A", "B"]);
    }

    fn parsed(text: &str) -> Vec<(String, String, usize)> {
        scan(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.name.clone().unwrap().into_owned(), e.value.to_string(), e.line))
            .collect()
    }

    #[test]
    fn python_dotenv_semantics() {
        let text = "# c\nA=1\nexport B = two words # comment\nC='sq \\' \\\\ \\n'\nD=\"dq \\\" \\n\\t\"\n\nE=\nF=a#b\n'G'=x\nH\nI=\"multi\nline\"\n";
        assert_eq!(
            parsed(text),
            vec![
                ("A".into(), "1".into(), 2),
                ("B".into(), "two words".into(), 3),
                ("C".into(), "sq ' \\ \\n".into(), 4),
                ("D".into(), "dq \" \n\t".into(), 5),
                ("E".into(), "".into(), 7),
                ("F".into(), "a#b".into(), 8),
                ("G".into(), "x".into(), 9),
                ("I".into(), "multi\nline".into(), 11),
            ]
        );
    }

    #[test]
    fn spans_include_quotes() {
        let text = "A=\"ENCSTR:x\"  # c\nB=ENCSTR:y # c\r\n";
        let e = scan(text).unwrap();
        assert_eq!(&text[e[0].span.clone()], "\"ENCSTR:x\"");
        assert_eq!(e[0].quote, Quote::Double);
        assert_eq!(&text[e[1].span.clone()], "ENCSTR:y");
        assert_eq!(e[1].line, 2);
    }

    #[test]
    fn garbage_after_a_value_is_an_error_with_its_line() {
        let err = scan("A=1\nB='x' y\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: invalid dotenv: unexpected text after the value (quote it?)");
    }

    #[test]
    fn encode_round_trips() {
        for v in [
            "plain",
            "it's",
            "back\\slash",
            "nl\nand\ttab",
            "cr\r",
            "\"dq\"",
            " lead",
            "trail ",
            "# x",
            "a\\",
            "",
        ] {
            representable(v).unwrap();
            let enc = super::super::encoded(super::super::Format::Dotenv, v);
            let doc = format!("K={}\n", enc.as_str());
            let e = scan(&doc).unwrap();
            assert_eq!(e[0].value.as_str(), v, "{}", enc.as_str());
        }
        assert!(representable("a${B}c").is_err());
        assert!(representable(" a\\").is_err());
    }
}
