//! JSON (RFC 8259) with byte positions: a small validating parser that
//! records every string value with its path (ENCSTR v1 §4: `a[0]["b.c"]`).

use std::fmt;

use super::{
    Entry, Esc, MAX_DEPTH, NameBudget, Quote, Text, parse_error, path, plain_ascii, secret_string,
    write_escaped,
};
use crate::error::{Error, Result};

const FORMAT: &str = "json";
/// The printable ASCII bytes values are written with as they are.
const PLAIN: [bool; 128] = plain_ascii(b"\"\\");

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    entries: Vec<Entry<'a>>,
    budget: NameBudget,
}

/// Find every string value of a JSON document.
pub(crate) fn scan(text: &str) -> Result<Vec<Entry<'_>>> {
    let budget = NameBudget::for_text(FORMAT, text.len());
    let mut p = Parser { text, bytes: text.as_bytes(), pos: 0, line: 1, entries: Vec::new(), budget };
    // A UTF-8 byte order mark is tolerated, as most readers do.
    if text.starts_with('\u{feff}') {
        p.pos = 3;
    }
    p.ws();
    p.value("", 0)?;
    p.ws();
    if p.pos < p.bytes.len() {
        return Err(p.err("unexpected text after the document"));
    }
    Ok(p.entries)
}

impl<'a> Parser<'a> {
    fn err(&self, message: &str) -> Error {
        parse_error(FORMAT, self.line, message)
    }

    fn ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                }
                _ => break,
            }
        }
    }

    fn expect(&mut self, b: u8, what: &str) -> Result<()> {
        if self.bytes.get(self.pos) == Some(&b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    fn value(&mut self, path: &str, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.bytes.get(self.pos) {
            Some(b'{') => self.object(path, depth),
            Some(b'[') => self.array(path, depth),
            Some(b'"') => {
                let (line, start) = (self.line, self.pos);
                let s = self.string()?;
                self.budget.charge(line, path)?;
                let name = Some(path.to_owned().into());
                self.entries.push(Entry::new(name, line, start..self.pos, s, Quote::Double));
                Ok(())
            }
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("expected a value")),
            None => Err(self.err("unexpected end of document")),
        }
    }

    fn object(&mut self, path: &str, depth: usize) -> Result<()> {
        self.pos += 1;
        self.ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.err("expected a quoted key"));
            }
            let key = self.string()?;
            self.ws();
            self.expect(b':', "expected ':' after a key")?;
            self.ws();
            self.value(&path::key(path, &key), depth + 1)?;
            self.ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, path: &str, depth: usize) -> Result<()> {
        self.pos += 1;
        self.ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(());
        }
        let mut i = 0;
        loop {
            self.ws();
            self.value(&path::index(path, i), depth + 1)?;
            i += 1;
            self.ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn literal(&mut self, word: &str) -> Result<()> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn number(&mut self) -> Result<()> {
        let digits = |p: &mut Self| {
            let s = p.pos;
            while p.bytes.get(p.pos).is_some_and(u8::is_ascii_digit) {
                p.pos += 1;
            }
            p.pos > s
        };
        if self.bytes[self.pos] == b'-' {
            self.pos += 1;
        }
        if self.bytes.get(self.pos) == Some(&b'0') {
            self.pos += 1;
        } else if !digits(self) {
            return Err(self.err("invalid number"));
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.err("invalid number"));
            }
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.err("invalid number"));
            }
        }
        Ok(())
    }

    /// A string at `pos` (on its opening quote); leaves `pos` after it. The
    /// decoded text is never longer than its source, so its buffer is sized
    /// once (it may hold a secret: no reallocation may leave copies).
    fn string(&mut self) -> Result<Text<'a>> {
        self.pos += 1;
        let mut end = self.pos;
        let mut escaped = false;
        while let Some(&b) = self.bytes.get(end) {
            match b {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    end += 2;
                }
                b if b < b' ' => break,
                _ => end += 1,
            }
        }
        if !escaped && self.bytes.get(end) == Some(&b'"') {
            let s = &self.text[self.pos..end];
            self.pos = end + 1;
            return Ok(Text::Slice(s));
        }
        let mut out = secret_string(end.min(self.bytes.len()) - self.pos);
        loop {
            let run = self.text[self.pos..].find(|c: char| c == '"' || c == '\\' || c < ' ');
            let Some(run) = run else {
                return Err(self.err("unterminated string"));
            };
            out.push_str(&self.text[self.pos..self.pos + run]);
            self.pos += run;
            match self.bytes[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok(Text::Decoded(out));
                }
                b'\\' => {
                    let e = self.bytes.get(self.pos + 1).copied();
                    self.pos += 2;
                    match e {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\x08'),
                        Some(b'f') => out.push('\x0c'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) {
                                if !self.text[self.pos..].starts_with("\\u") {
                                    return Err(self.err("unpaired UTF-16 surrogate escape"));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("unpaired UTF-16 surrogate escape"));
                                }
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                            } else {
                                char::from_u32(hi)
                            };
                            out.push(c.ok_or_else(|| self.err("unpaired UTF-16 surrogate escape"))?);
                        }
                        _ => return Err(self.err("invalid escape in string")),
                    }
                }
                _ => return Err(self.err("control character in string (escape it)")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32> {
        let hex = self.text.get(self.pos..self.pos + 4).ok_or_else(|| self.err("invalid \\u escape"))?;
        let v = u32::from_str_radix(hex, 16).map_err(|_| self.err("invalid \\u escape"))?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.err("invalid \\u escape"));
        }
        self.pos += 4;
        Ok(v)
    }
}

/// A JSON string literal that every JSON parser reads back exactly.
pub(crate) fn encode(value: &str, out: &mut impl fmt::Write) {
    let _ = out.write_char('"');
    write_escaped(value, out, &PLAIN, |_, c| match c {
        '"' => Some(Esc::Text("\\\"")),
        '\\' => Some(Esc::Text("\\\\")),
        '\n' => Some(Esc::Text("\\n")),
        '\r' => Some(Esc::Text("\\r")),
        '\t' => Some(Esc::Text("\\t")),
        '\x08' => Some(Esc::Text("\\b")),
        '\x0c' => Some(Esc::Text("\\f")),
        c if c < ' ' || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => Some(Esc::Hex4Lower),
        _ => None,
    });
    let _ = out.write_char('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lines_and_spans() {
        let text = "{\n  \"db\": {\"password\": \"ENCSTR:x\", \"port\": 5432},\n  \"servers\": [{\"token\": \"t\\u00e9\"}, null, -1.5e3]\n}";
        let e = scan(text).unwrap();
        let got: Vec<_> = e.iter().map(|e| (e.name.as_deref().unwrap(), e.value.as_str(), e.line)).collect();
        assert_eq!(got, vec![("db.password", "ENCSTR:x", 2), ("servers[0].token", "té", 3)]);
        assert_eq!(&text[e[0].span.clone()], "\"ENCSTR:x\"");
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            scan("{\n\"a\": 1,\n}").unwrap_err().to_string(),
            "line 3: invalid json: expected a quoted key"
        );
        assert!(scan("[1] x").is_err());
        assert!(scan("\"\\ud800\"").is_err());
        assert!(scan(&"[".repeat(100_000)).is_err());
    }

    #[test]
    fn encode_round_trips() {
        for v in ["q\"b\\s/", "\u{1}\u{7f}\n\r\t", "🔑 ünï", "\u{2028}"] {
            let doc = super::super::encoded(super::super::Format::Json, v);
            let e = scan(&doc).unwrap();
            assert_eq!(e[0].value.as_str(), v);
        }
    }
}
