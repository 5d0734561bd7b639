//! TOML with byte positions: a validating scanner for TOML 1.0 documents
//! that records every string value with its path. Tables and dotted keys
//! join with `.`, arrays and arrays of tables index with `[i]`
//! (`servers[0].token`).

use std::collections::HashMap;
use std::fmt::Write as _;

use zeroize::Zeroizing;

use super::{Entry, MAX_DEPTH, Quote, index_path, join_path, parse_error};
use crate::error::{Error, Result};

const FORMAT: &str = "toml";

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    entries: Vec<Entry>,
}

/// Find every string value of a TOML document.
pub(crate) fn scan(text: &str) -> Result<Vec<Entry>> {
    let mut p = Parser { text, bytes: text.as_bytes(), pos: 0, line: 1, entries: Vec::new() };
    if text.starts_with('\u{feff}') {
        p.pos = 3;
    }
    let mut table = String::new();
    let mut array_tables: HashMap<String, usize> = HashMap::new();
    loop {
        p.blank();
        let Some(b) = p.peek() else { break };
        match b {
            b'#' => p.comment(),
            b'\n' | b'\r' => {}
            b'[' => {
                let array = p.bytes.get(p.pos + 1) == Some(&b'[');
                p.pos += if array { 2 } else { 1 };
                p.blank();
                let keys = p.dotted_key()?;
                p.blank();
                let close: &[u8] = if array { b"]]" } else { b"]" };
                if !p.bytes[p.pos..].starts_with(close) {
                    return Err(p.err("expected ']' to close the table header"));
                }
                p.pos += close.len();
                table = resolve_header(&keys, array, &mut array_tables);
            }
            _ => {
                let keys = p.dotted_key()?;
                p.blank();
                if p.peek() != Some(b'=') {
                    return Err(p.err("expected '=' after a key"));
                }
                p.pos += 1;
                p.blank();
                let path = keys.iter().fold(table.clone(), |acc, k| join_path(&acc, k));
                p.value(&path, 0)?;
            }
        }
        p.blank();
        if p.peek() == Some(b'#') {
            p.comment();
        }
        p.end_of_line()?;
    }
    Ok(p.entries)
}

/// The path a table header names, with the current index of every array of
/// tables on the way.
fn resolve_header(keys: &[String], array: bool, counts: &mut HashMap<String, usize>) -> String {
    let mut path = String::new();
    for (i, key) in keys.iter().enumerate() {
        path = join_path(&path, key);
        if array && i == keys.len() - 1 {
            let n = counts.entry(path.clone()).or_insert(0);
            *n += 1;
            path = index_path(&path, *n - 1);
        } else if let Some(&n) = counts.get(&path) {
            path = index_path(&path, n - 1);
        }
    }
    path
}

impl Parser<'_> {
    fn err(&self, message: &str) -> Error {
        parse_error(FORMAT, self.line, message)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Spaces and tabs.
    fn blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn comment(&mut self) {
        while !matches!(self.peek(), None | Some(b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn end_of_line(&mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(b'\n') => {
                self.pos += 1;
                self.line += 1;
                Ok(())
            }
            Some(b'\r') if self.bytes.get(self.pos + 1) == Some(&b'\n') => {
                self.pos += 2;
                self.line += 1;
                Ok(())
            }
            _ => Err(self.err("expected the end of the line")),
        }
    }

    /// White space, line breaks and comments (inside arrays).
    fn blank_lines(&mut self) -> Result<()> {
        loop {
            self.blank();
            match self.peek() {
                Some(b'#') => self.comment(),
                Some(b'\n' | b'\r') => self.end_of_line()?,
                _ => return Ok(()),
            }
        }
    }

    fn dotted_key(&mut self) -> Result<Vec<String>> {
        let mut keys = vec![self.simple_key()?];
        loop {
            let save = self.pos;
            self.blank();
            if self.peek() == Some(b'.') {
                self.pos += 1;
                self.blank();
                keys.push(self.simple_key()?);
            } else {
                self.pos = save;
                return Ok(keys);
            }
        }
    }

    fn simple_key(&mut self) -> Result<String> {
        match self.peek() {
            Some(b'"') => self.basic_string(),
            Some(b'\'') => self.literal_string(),
            _ => {
                let start = self.pos;
                while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(self.err("expected a key"));
                }
                Ok(self.text[start..self.pos].to_owned())
            }
        }
    }

    fn value(&mut self, path: &str, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        let (start, line) = (self.pos, self.line);
        let (value, quote) = match self.peek() {
            Some(b'"') if self.bytes[self.pos..].starts_with(b"\"\"\"") => {
                (self.multiline(b'"')?, Quote::Double)
            }
            Some(b'\'') if self.bytes[self.pos..].starts_with(b"'''") => {
                (self.multiline(b'\'')?, Quote::Single)
            }
            Some(b'"') => (self.basic_string()?, Quote::Double),
            Some(b'\'') => (self.literal_string()?, Quote::Single),
            Some(b'[') => return self.array(path, depth),
            Some(b'{') => return self.inline_table(path, depth),
            Some(_) => return self.atom(),
            None => return Err(self.err("expected a value")),
        };
        self.entries.push(Entry::new(path.to_owned(), line, start..self.pos, value, quote));
        Ok(())
    }

    fn array(&mut self, path: &str, depth: usize) -> Result<()> {
        self.pos += 1;
        let mut i = 0;
        loop {
            self.blank_lines()?;
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(());
            }
            self.value(&index_path(path, i), depth + 1)?;
            i += 1;
            self.blank_lines()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or ']' in an array")),
            }
        }
    }

    fn inline_table(&mut self, path: &str, depth: usize) -> Result<()> {
        self.pos += 1;
        loop {
            self.blank_lines()?;
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(());
            }
            let keys = self.dotted_key()?;
            self.blank();
            if self.peek() != Some(b'=') {
                return Err(self.err("expected '=' after a key"));
            }
            self.pos += 1;
            self.blank();
            let sub = keys.iter().fold(path.to_owned(), |acc, k| join_path(&acc, k));
            self.value(&sub, depth + 1)?;
            self.blank_lines()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or '}' in an inline table")),
            }
        }
    }

    /// Numbers, booleans, dates and times.
    fn atom(&mut self) -> Result<()> {
        let start = self.pos;
        let is_atom = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.' | b':');
        while self.peek().is_some_and(is_atom) {
            self.pos += 1;
        }
        let word = &self.text[start..self.pos];
        // A date and a time may be separated by one space.
        let is_date = word.len() == 10 && word.as_bytes()[4] == b'-' && word.as_bytes()[7] == b'-';
        if is_date
            && self.peek() == Some(b' ')
            && self.bytes.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
        {
            self.pos += 1;
            while self.peek().is_some_and(is_atom) {
                self.pos += 1;
            }
        }
        let word = &self.text[start..self.pos];
        let valid = matches!(word, "true" | "false" | "inf" | "+inf" | "-inf" | "nan" | "+nan" | "-nan")
            || word.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'+' || b == b'-');
        if !valid {
            return Err(self.err("expected a value (strings must be quoted)"));
        }
        Ok(())
    }

    fn literal_string(&mut self) -> Result<String> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                Some(b'\'') => {
                    let s = self.text[start..self.pos].to_owned();
                    self.pos += 1;
                    return Ok(s);
                }
                Some(b'\t') => self.pos += 1,
                Some(b) if b < 0x20 || b == 0x7f => {
                    return Err(self.err("unterminated or invalid string"));
                }
                Some(_) => self.pos += 1,
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    fn basic_string(&mut self) -> Result<String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run = self.text[self.pos..]
                .find(|c: char| c == '"' || c == '\\' || (c < ' ' && c != '\t') || c == '\u{7f}');
            let Some(run) = run else {
                return Err(self.err("unterminated string"));
            };
            out.push_str(&self.text[self.pos..self.pos + run]);
            self.pos += run;
            match self.bytes[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => self.escape(&mut out)?,
                _ => return Err(self.err("unterminated or invalid string")),
            }
        }
    }

    /// `"""…"""` or `'''…'''`.
    fn multiline(&mut self, q: u8) -> Result<String> {
        self.pos += 3;
        // A line break right after the opening delimiter is trimmed.
        if self.bytes[self.pos..].starts_with(b"\r\n") {
            self.pos += 2;
            self.line += 1;
        } else if self.peek() == Some(b'\n') {
            self.pos += 1;
            self.line += 1;
        }
        let mut out = String::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.err("unterminated multi-line string"));
            };
            match b {
                _ if b == q && self.bytes[self.pos..].starts_with(&[q, q, q]) => {
                    // Up to two more quotes belong to the content.
                    let mut n = 3;
                    while n < 5 && self.bytes.get(self.pos + n) == Some(&q) {
                        n += 1;
                    }
                    for _ in 3..n {
                        out.push(q as char);
                    }
                    self.pos += n;
                    return Ok(out);
                }
                b'\\' if q == b'"' => {
                    // Line-ending backslash: drop white space and line breaks.
                    let rest = &self.text[self.pos + 1..];
                    let ws = rest.find(|c: char| c != ' ' && c != '\t').unwrap_or(rest.len());
                    if rest[ws..].starts_with('\n') || rest[ws..].starts_with("\r\n") {
                        self.pos += 1;
                        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                            if self.peek() == Some(b'\n') {
                                self.line += 1;
                            }
                            self.pos += 1;
                        }
                    } else {
                        self.escape(&mut out)?;
                    }
                }
                b'\n' => {
                    out.push('\n');
                    self.pos += 1;
                    self.line += 1;
                }
                b'\r' if self.bytes.get(self.pos + 1) == Some(&b'\n') => {
                    out.push_str("\r\n");
                    self.pos += 2;
                    self.line += 1;
                }
                b if (b < 0x20 && b != b'\t') || b == 0x7f => {
                    return Err(self.err("control character in string"));
                }
                _ => {
                    let c = self.text[self.pos..].chars().next().expect("not at the end");
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    /// An escape at `pos` (on the backslash) in a basic string.
    fn escape(&mut self, out: &mut String) -> Result<()> {
        let e = self.bytes.get(self.pos + 1).copied();
        self.pos += 2;
        let c = match e {
            Some(b'b') => '\x08',
            Some(b't') => '\t',
            Some(b'n') => '\n',
            Some(b'f') => '\x0c',
            Some(b'r') => '\r',
            Some(b'e') => '\x1b',
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'x') => self.hex(2)?,
            Some(b'u') => self.hex(4)?,
            Some(b'U') => self.hex(8)?,
            _ => return Err(self.err("invalid escape in string")),
        };
        out.push(c);
        Ok(())
    }

    fn hex(&mut self, n: usize) -> Result<char> {
        let digits =
            self.text.get(self.pos..self.pos + n).ok_or_else(|| self.err("invalid escape in string"))?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.err("invalid escape in string"));
        }
        let c = u32::from_str_radix(digits, 16).ok().and_then(char::from_u32);
        self.pos += n;
        c.ok_or_else(|| self.err("escape is not a Unicode scalar value"))
    }
}

/// A TOML basic string that TOML parsers read back exactly.
pub(crate) fn encode(value: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(value.len() + 2));
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_arrays_and_paths() {
        let text = r#"# top
title = "t"
[db]
password = 'ENCSTR:lit'   # c
port = 5432
when = 1979-05-27 07:32:00Z
[[servers]]
token = "a"
[[servers]]
token = """
b"""
[servers.tls]
key = "k"
[[servers.alt]]
x = "y"
[owner]
names = ["p", 'q', { inner = "z" }, [1, 2]]
"a.b".c = "quoted"
inline = { user = "u", pw.word = "w" }
"#;
        let e = scan(text).unwrap();
        let got: Vec<_> = e.iter().map(|e| (e.name.as_str(), e.value.as_str(), e.line)).collect();
        assert_eq!(
            got,
            vec![
                ("title", "t", 2),
                ("db.password", "ENCSTR:lit", 4),
                ("servers[0].token", "a", 8),
                ("servers[1].token", "b", 10),
                ("servers[1].tls.key", "k", 13),
                ("servers[1].alt[0].x", "y", 15),
                ("owner.names[0]", "p", 17),
                ("owner.names[1]", "q", 17),
                ("owner.names[2].inner", "z", 17),
                ("owner.a.b.c", "quoted", 18),
                ("owner.inline.user", "u", 19),
                ("owner.inline.pw.word", "w", 19),
            ]
        );
        assert_eq!(&text[e[1].span.clone()], "'ENCSTR:lit'");
        assert_eq!(e[1].quote, Quote::Single);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            scan("a = 1\nb = bare\n").unwrap_err().to_string(),
            "line 2: invalid toml: expected a value (strings must be quoted)"
        );
        assert!(scan("a = \"open\n").is_err());
        assert!(scan("[a\n").is_err());
        assert!(scan(&format!("a = {}", "[".repeat(10_000))).is_err());
    }

    #[test]
    fn encode_round_trips() {
        for v in ["q\"b\\s", "\u{1}\u{7f}\n\r\t", "🔑 ünï", "'''"] {
            let e = scan(&format!("k = {}\n", encode(v).as_str())).unwrap();
            assert_eq!(e[0].value.as_str(), v);
        }
    }
}
