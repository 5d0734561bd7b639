//! dotenv files, read the way python-dotenv reads them.
//!
//! `[export ]KEY=VALUE` per line; values are bare (cut at ` #`, trailing
//! white space removed), single-quoted (`\\` and `\'` escapes) or
//! double-quoted (`\\ \' \" \a \b \f \n \r \t \v` escapes); quoted values may
//! span lines. Decrypted values are written single-quoted when nothing in
//! them needs escaping, otherwise double-quoted.

use zeroize::Zeroizing;

use super::{Entry, Quote, parse_error, secret_string};
use crate::error::Result;

const FORMAT: &str = "dotenv";

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

/// Find every assignment of a dotenv text.
pub(crate) fn scan(text: &str) -> Result<Vec<Entry>> {
    let mut r = Reader { text, pos: 0, line: 1 };
    let mut entries = Vec::new();
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
                let key = body[..end].to_owned();
                r.advance(end + 2);
                Some(key)
            }
            _ => {
                let n =
                    r.rest().find(|c: char| c == '=' || c == '#' || is_space(c)).unwrap_or(r.rest().len());
                if n == 0 {
                    return Err(r.error("expected a variable name"));
                }
                let key = r.rest()[..n].to_owned();
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
            entries.push(Entry::new(Some(key), line, start..start + len, value, quote));
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
fn parse_value(r: &Reader<'_>) -> Result<(Zeroizing<String>, usize, Quote)> {
    let rest = r.rest();
    match r.peek() {
        Some(q @ ('\'' | '"')) => {
            let body = &rest[1..];
            let end = closing_quote(body, q).ok_or_else(|| r.error("unterminated quoted value"))?;
            let raw = &body[..end];
            let value = if q == '\'' { unescape(raw, "\\'") } else { unescape(raw, "\\'\"abfnrtv") };
            Ok((value, end + 2, if q == '\'' { Quote::Single } else { Quote::Double }))
        }
        None | Some('\r' | '\n') => Ok((secret_string(0), 0, Quote::None)),
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
            let mut owned = secret_string(value.len());
            owned.push_str(value);
            Ok((owned, value.len(), Quote::None))
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

/// Write a value so that python-dotenv reads it back exactly. `extra` bytes
/// are reserved for what the caller appends.
pub(crate) fn encode(value: &str, extra: usize) -> std::result::Result<Zeroizing<String>, &'static str> {
    if has_interpolation(value) {
        return Err("dotenv readers expand ${...} inside values");
    }
    let plain_single =
        !value.chars().any(|c| c == '\'' || c == '\\' || (c.is_control() && c != '\t' && c != '\n'));
    let mut out = secret_string(value.len() * 2 + 2 + extra);
    if plain_single {
        out.push('\'');
        out.push_str(value);
        out.push('\'');
        return Ok(out);
    }
    if !value.ends_with('\\') {
        out.push('"');
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0b' => out.push_str("\\v"),
                '\x0c' => out.push_str("\\f"),
                _ => out.push(c),
            }
        }
        out.push('"');
        return Ok(out);
    }
    // A quoted value cannot end in a backslash (its closing quote would read
    // as escaped); bare is the only way, when nothing else forbids it.
    let bare_ok = !value.starts_with(['\'', '"'])
        && !value.starts_with(is_space)
        && !value.ends_with(is_space)
        && !value.contains(['\r', '\n'])
        && !value.chars().zip(value.chars().skip(1)).any(|(a, b)| is_space(a) && b == '#');
    if bare_ok {
        out.push_str(value);
        return Ok(out);
    }
    Err("dotenv cannot hold a value that ends in a backslash and needs quoting")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Vec<(String, String, usize)> {
        scan(text).unwrap().into_iter().map(|e| (e.name.clone().unwrap(), e.value.to_string(), e.line)).collect()
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
            let enc = encode(v, 0).unwrap();
            let e = scan(&format!("K={}\n", enc.as_str())).unwrap();
            assert_eq!(e[0].value.as_str(), v, "{}", enc.as_str());
        }
        assert!(encode("a${B}c", 0).is_err());
        assert!(encode(" a\\", 0).is_err());
    }
}
