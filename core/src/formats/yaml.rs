//! YAML through the `granit-parser` event stream (the parser behind
//! `serde-saphyr`), which reports byte spans for every scalar.
//!
//! Values are named by their path (ENCSTR v1 §4, [`super::path`]); a key that
//! is not a string is named by its scalar text, and a value under a complex
//! key (a mapping or sequence used as a key) has no name. Decrypted values
//! are written as double-quoted scalars, escaped so every YAML 1.1/1.2
//! reader returns the exact text.

use std::fmt;

use granit_parser::{Event, Parser, ScalarStyle};
use zeroize::Zeroizing;

use std::borrow::Cow;

use super::{
    Alias, Entry, Esc, MAX_DEPTH, NameBudget, Quote, Text, parse_error, path, plain_ascii, secret_string,
    write_escaped,
};
use crate::error::Result;

const FORMAT: &str = "yaml";
/// The printable ASCII bytes values are written with as they are.
const PLAIN: [bool; 128] = plain_ascii(b"\"\\");

enum Frame {
    /// A mapping; `key` is the current key's path (`None`: not a scalar key,
    /// so its value has no name).
    Map { path: Option<String>, key: Option<String>, expecting_key: bool },
    /// A sequence and the index of its next item.
    Seq { path: Option<String>, next: usize },
}

/// What a node starting at the top of the stack is.
enum Role {
    /// A mapping key.
    Key,
    /// A value, and its name (`None`: the place has no name).
    Value(Option<String>),
}

/// The first NEL, LS or PS (U+0085, U+2028, U+2029) outside a quoted or
/// block scalar value: its line and character. YAML 1.2 readers (granit,
/// here) take these as ordinary characters, YAML 1.1 readers (PyYAML,
/// SnakeYAML, libyaml) as line breaks, so around one the two see different
/// keys: a comment could hide a key from encstr that the app reads, and
/// move a verified token under a name an attacker chose.
pub(crate) fn line_break_hazard(text: &str, entries: &[Entry<'_>]) -> Option<(usize, char)> {
    // A block scalar's content starts after its header line (whose comment
    // is outside it).
    let safe = |at: usize| {
        entries.iter().any(|e| {
            let quoted = matches!(e.quote, Quote::Single | Quote::Double) && e.span.contains(&at);
            let block = matches!(text.as_bytes().get(e.span.start), Some(b'|' | b'>'))
                && text[e.span.clone()]
                    .find(['\n', '\r'])
                    .is_some_and(|h| (e.span.start + h..e.span.end).contains(&at));
            quoted || block
        })
    };
    let (at, c) =
        text.char_indices().find(|&(i, c)| matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') && !safe(i))?;
    Some((super::line_at(text, at), c))
}

/// The refusal of a [`line_break_hazard`].
pub(crate) fn hazard_error((line, c): (usize, char)) -> crate::error::Error {
    let what = match c {
        '\u{85}' => "U+0085 (NEL)",
        '\u{2028}' => "U+2028 (LINE SEPARATOR)",
        _ => "U+2029 (PARAGRAPH SEPARATOR)",
    };
    parse_error(
        FORMAT,
        line,
        format!(
            "{what} outside a quoted or block scalar: YAML 1.1 readers (PyYAML, SnakeYAML) break the line there and would read other keys than encstr; remove it, or quote the value that holds it"
        ),
    )
}

/// Find every scalar value of a YAML stream. A value an alias or merge key
/// reads too (through an anchor on it or on a collection holding it) is
/// marked [`Entry::aliased`].
pub(crate) fn scan(text: &str) -> Result<Vec<Entry<'_>>> {
    let mut entries = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    // For each open collection: its anchor id and its first entry.
    let mut opened: Vec<(usize, usize)> = Vec::new();
    // Each anchor id: the entries its node holds.
    let mut anchors: std::collections::HashMap<usize, std::ops::Range<usize>> = Default::default();
    let mut aliases: Vec<(usize, Alias)> = Vec::new();
    let mut budget = NameBudget::for_text(FORMAT, text.len());
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let mut msg = e.kind().to_string();
            msg.truncate(120);
            parse_error(FORMAT, e.marker().line(), msg)
        })?;
        match event {
            Event::DocumentStart(..) | Event::DocumentEnd => {
                stack.clear();
                opened.clear();
            }
            Event::MappingStart(_, anchor, _) => {
                let path = value_path(node_role(&mut stack, None));
                nested(&stack, path.as_deref(), span.start.line())?;
                stack.push(Frame::Map { path, key: None, expecting_key: true });
                opened.push((anchor, entries.len()));
            }
            Event::SequenceStart(_, anchor, _) => {
                let path = value_path(node_role(&mut stack, None));
                nested(&stack, path.as_deref(), span.start.line())?;
                stack.push(Frame::Seq { path, next: 0 });
                opened.push((anchor, entries.len()));
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                if let Some((anchor, first)) = opened.pop()
                    && anchor != 0
                {
                    anchors.insert(anchor, first..entries.len());
                }
            }
            Event::Alias(anchor) => {
                let name = match node_role(&mut stack, None) {
                    Role::Key => None,
                    Role::Value(name) => name,
                };
                aliases.push((anchor, Alias { name, line: span.start.line() }));
            }
            Event::UnresolvedAlias(_) => {
                node_role(&mut stack, None);
            }
            Event::Scalar(value, style, anchor, _) => {
                let Role::Value(name) = node_role(&mut stack, Some(&value)) else {
                    continue;
                };
                if let Some(n) = &name {
                    budget.charge(span.start.line(), n)?;
                }
                if anchor != 0 {
                    anchors.insert(anchor, entries.len()..entries.len() + 1);
                }
                let name = name.map(Cow::Owned);
                // A scalar the parser did not have to decode is a slice of the
                // text; a decoded one is kept in (and wiped with) its buffer.
                let value = match value {
                    Cow::Borrowed(s) => Text::Slice(s),
                    Cow::Owned(s) => Text::Decoded(Zeroizing::new(s)),
                };
                let (Some(start), Some(end)) = (span.start.byte_offset(), span.end.byte_offset()) else {
                    return Err(parse_error(FORMAT, span.start.line(), "scalar without a source position"));
                };
                let line = span.start.line();
                let entry = match style {
                    ScalarStyle::Plain => Entry::new(name, line, start..end, value, Quote::None),
                    ScalarStyle::SingleQuoted => Entry::new(name, line, start..end, value, Quote::Single),
                    ScalarStyle::DoubleQuoted => Entry::new(name, line, start..end, value, Quote::Double),
                    _ => block_entry(text, name, line, start..end, value)?,
                };
                entries.push(entry);
            }
            _ => {}
        }
    }
    for (anchor, alias) in aliases {
        for e in anchors.get(&anchor).and_then(|r| entries.get_mut(r.clone())).into_iter().flatten() {
            e.aliased.get_or_insert_with(|| alias.clone());
        }
    }
    Ok(entries)
}

/// A collection may open here: not nested deeper than [`MAX_DEPTH`], its
/// name not longer than a value's may be.
fn nested(stack: &[Frame], path: Option<&str>, line: usize) -> Result<()> {
    if stack.len() >= MAX_DEPTH {
        return Err(parse_error(FORMAT, line, format!("nested deeper than {MAX_DEPTH} levels")));
    }
    NameBudget::for_text(FORMAT, usize::MAX).charge(line, path.unwrap_or_default())
}

/// Account for a node starting at the top of the stack. `scalar` is the text
/// of a scalar node (`None` for collections and aliases, which as keys leave
/// their value without a name).
fn node_role(stack: &mut [Frame], scalar: Option<&str>) -> Role {
    match stack.last_mut() {
        None => Role::Value(Some(String::new())),
        Some(Frame::Map { path, key: current, expecting_key }) => {
            if *expecting_key {
                *expecting_key = false;
                *current = match (path.as_deref(), scalar) {
                    (Some(p), Some(k)) => Some(path::key(p, k)),
                    _ => None,
                };
                Role::Key
            } else {
                *expecting_key = true;
                Role::Value(current.take())
            }
        }
        Some(Frame::Seq { path, next }) => {
            let i = *next;
            *next += 1;
            Role::Value(path.as_deref().map(|p| path::index(p, i)))
        }
    }
}

fn value_path(role: Role) -> Option<String> {
    match role {
        Role::Key => None,
        Role::Value(name) => name,
    }
}

/// A block scalar (`|` or `>`): its span starts at the header's indicator so
/// the whole scalar can be replaced, and ends after the line break of its
/// last line (the parser's span may run on into the next line's
/// indentation, which is not the scalar's); what follows the indicators on
/// the header line (a comment) and that line break are kept as trailer.
/// Line breaks are LF, CR LF or a lone CR, as YAML has them.
fn block_entry<'t>(
    text: &'t str,
    name: Option<Cow<'t, str>>,
    scalar_line: usize,
    span: std::ops::Range<usize>,
    value: Text<'t>,
) -> Result<Entry<'t>> {
    let (start, end) = (span.start, span.end);
    let broken = |why: &str| parse_error(FORMAT, scalar_line, format!("block scalar: {why}"));
    if start > end || end > text.len() {
        return Err(broken("its position is outside the text"));
    }
    // A token in a block scalar is read without its final line breaks.
    let value = if crate::token::is_token(&value) {
        let token = value.trim_end_matches(['\n', '\r']);
        let mut owned = secret_string(token.len());
        owned.push_str(token);
        Text::Decoded(owned)
    } else {
        value
    };
    // The scalar ends after the line break of its last line.
    let end = match text[start..end].rfind(['\n', '\r']) {
        Some(i) => start + i + 1,
        None => end,
    };
    let newline = if text[..end].ends_with("\r\n") {
        "\r\n"
    } else if text[..end].ends_with('\n') {
        "\n"
    } else if text[..end].ends_with('\r') {
        "\r"
    } else {
        ""
    };
    // Walk back over blank lines to the header line.
    let mut line_end = line_start(text, start).saturating_sub(1);
    loop {
        let this_start = line_start(text, line_end);
        let line = text[this_start..line_end].trim_end_matches('\r');
        if !line.trim().is_empty() || this_start == 0 {
            let line_no = super::line_at(text, this_start);
            let header = find_indicator(line).ok_or_else(|| broken("header not found"))?;
            let indicator = this_start + header;
            let rest = &line[header..];
            let after_indicators =
                rest[1..].find(|c: char| !matches!(c, '-' | '+' | '0'..='9')).map_or(rest.len(), |i| i + 1);
            let comment = &rest[after_indicators..];
            if indicator > end {
                return Err(broken("header after its content"));
            }
            let mut entry = Entry::new(name, line_no, indicator..end, value, Quote::None);
            entry.trailer = format!("{comment}{newline}");
            return Ok(entry);
        }
        line_end = this_start.saturating_sub(1);
    }
}

/// Where the line holding byte `at` starts (after an LF, a CR LF or a lone
/// CR).
fn line_start(text: &str, at: usize) -> usize {
    let b = text.as_bytes();
    let mut i = at.min(b.len());
    // `at` on the LF of a CR LF belongs to the line the CR ends.
    while i > 0 {
        let c = b[i - 1];
        if c == b'\n' || (c == b'\r' && b.get(i) != Some(&b'\n')) {
            return i;
        }
        i -= 1;
    }
    0
}

/// Position of the `|` or `>` indicator of a block scalar header line.
fn find_indicator(line: &str) -> Option<usize> {
    let code = match line.find(" #") {
        Some(i) => &line[..i],
        None => line,
    };
    let code = code.trim_end();
    let trailing = code.bytes().rev().take_while(|b| matches!(b, b'-' | b'+' | b'0'..=b'9')).count();
    let i = code.len().checked_sub(trailing + 1)?;
    matches!(code.as_bytes()[i], b'|' | b'>').then_some(i)
}

/// Whether a plain scalar reads as something other than a string to a
/// YAML 1.1 or 1.2 reader: null, a boolean, an integer or a float (as
/// PyYAML's and the core schema's resolvers see them). Sealed, it would
/// render as a quoted string: the app would read another type.
pub(crate) fn implicit_non_string(v: &str) -> bool {
    let lower = v.to_ascii_lowercase();
    let words = [
        "", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", "-.inf", "+.inf",
        ".nan",
    ];
    if words.contains(&lower.as_str()) {
        return true;
    }
    let body = lower.strip_prefix(['-', '+']).unwrap_or(&lower).replace('_', "");
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    let int = digits(&body, 10)
        || body.strip_prefix("0x").is_some_and(|s| digits(s, 16))
        || body.strip_prefix("0o").is_some_and(|s| digits(s, 8))
        || body.strip_prefix("0b").is_some_and(|s| digits(s, 2))
        // YAML 1.1 base 60: 1:30, 190:20:30
        || (body.contains(':') && body.split(':').all(|p| digits(p, 10)));
    let float = body.parse::<f64>().is_ok() && body.chars().any(|c| c.is_ascii_digit());
    int || float
}

/// A double-quoted YAML scalar that returns exactly `value`: everything a
/// YAML reader would reject or fold is escaped.
pub(crate) fn encode(value: &str, out: &mut impl fmt::Write) {
    let _ = out.write_char('"');
    write_escaped(value, out, &PLAIN, |_, c| match c {
        '"' => Some(Esc::Text("\\\"")),
        '\\' => Some(Esc::Text("\\\\")),
        '\n' => Some(Esc::Text("\\n")),
        '\r' => Some(Esc::Text("\\r")),
        '\t' => Some(Esc::Text("\\t")),
        '\0' => Some(Esc::Text("\\0")),
        ' '..='~' => None,
        // Outside YAML's printable set, or line breaks in YAML 1.1.
        c if (c as u32) < 0xA0
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}' | '\u{FFFE}' | '\u{FFFF}') =>
        {
            Some(Esc::Hex4Upper)
        }
        _ => None,
    });
    let _ = out.write_char('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_spans() {
        let text = "db:\n  password: ENCSTR:abc # c\n  user: 'u'\nservers:\n  - token: \"t\"\n  - [a, {k: v}]\n? [complex]\n: skipped\nanchor: &x val\nref: *x\n---\nsecond: doc\n";
        // The scalar inside the complex key is a value of no name too.
        let e = scan(text).unwrap();
        let got: Vec<_> = e.iter().map(|e| (e.name.as_deref(), e.value.as_str(), e.line)).collect();
        assert_eq!(
            got,
            vec![
                (Some("db.password"), "ENCSTR:abc", 2),
                (Some("db.user"), "u", 3),
                (Some("servers[0].token"), "t", 5),
                (Some("servers[1][0]"), "a", 6),
                (Some("servers[1][1].k"), "v", 6),
                (None, "complex", 7),
                (None, "skipped", 8),
                (Some("anchor"), "val", 9),
                (Some("second"), "doc", 12),
            ]
        );
        assert_eq!(&text[e[0].span.clone()], "ENCSTR:abc");
        assert_eq!(&text[e[1].span.clone()], "'u'");
    }

    #[test]
    fn block_scalars_are_replaced_whole() {
        let text = "a: |- # keep\n  ENCSTR:abc\nb: >\n\n  folded\n  text\nc: 1\n";
        let e = scan(text).unwrap();
        assert_eq!(e[0].value.as_str(), "ENCSTR:abc");
        assert_eq!(&text[e[0].span.clone()], "|- # keep\n  ENCSTR:abc\n");
        assert_eq!(e[0].trailer, " # keep\n");
        assert_eq!(&text[e[1].span.clone()], ">\n\n  folded\n  text\n");
        assert_eq!(e[1].trailer, "\n");
    }

    #[test]
    fn values_an_alias_or_merge_key_reads_too_are_marked_with_the_first_such_place() {
        let text = "db: &d\n  password: &p ENCSTR:abc\n  user: u\nui:\n  banner: *p\nother:\n  <<: *d\n  port: 1\nplain: &q x\nlist: [*q]\nunused: &n ENCSTR:def\n";
        let e = scan(text).unwrap();
        let aliased: Vec<_> = e
            .iter()
            .map(|e| {
                (
                    e.name.as_deref().unwrap_or_default(),
                    e.aliased.as_ref().map(|a| (a.name.as_deref(), a.line)),
                )
            })
            .collect();
        assert_eq!(
            aliased,
            vec![
                ("db.password", Some((Some("ui.banner"), 5))),
                ("db.user", Some((Some("other.<<"), 7))),
                ("other.port", None),
                ("plain", Some((Some("list[0]"), 10))),
                ("unused", None),
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let err = scan("a: 1\nb: [unclosed\nc: 2\n").unwrap_err();
        assert!(err.to_string().starts_with("line "), "{err}");
        assert_eq!(err.kind(), "parse");
    }
}
