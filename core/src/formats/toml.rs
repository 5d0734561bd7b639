//! TOML through `toml_edit`, which validates the document (TOML 1.0/1.1:
//! duplicate keys and table redefinitions are errors) and gives the byte
//! span of every value. Values are named by their path (ENCSTR v1 §4):
//! tables, dotted keys and inline tables by their keys, arrays and arrays of
//! tables by index (`servers[0].token`, `x["y.z"]`).
//!
//! Only the spans are used to rewrite a file, so everything that is not a
//! replaced value stays byte for byte. The strings `toml_edit` decoded are
//! wiped once the values are read.

use std::fmt;
use std::ops::Range;

use toml_edit::{Document, InlineTable, Item, Table, Value};
use zeroize::{Zeroize as _, Zeroizing};

use super::{
    Entry, Esc, NameBudget, Quote, Text, parse_error, path, plain_ascii, secret_string, write_escaped,
};
use crate::error::Result;

const FORMAT: &str = "toml";
/// The printable ASCII bytes values are written with as they are.
const PLAIN: [bool; 128] = plain_ascii(b"\"\\");

/// A string value found in the document, before lines are known.
struct Found {
    name: String,
    span: Range<usize>,
    value: Zeroizing<String>,
}

/// The values found so far, and the budget of their names.
struct Collected<'t> {
    text: &'t str,
    list: Vec<Found>,
    budget: NameBudget,
}

/// Find every string value of a TOML document.
pub(crate) fn scan(text: &str) -> Result<Vec<Entry<'static>>> {
    let doc = Document::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| super::line_of(text, s.start));
        let mut message = e.message().lines().next().unwrap_or("invalid document").to_owned();
        message.truncate(120);
        parse_error(FORMAT, line, message)
    })?;
    let mut collected =
        Collected { text, list: Vec::new(), budget: NameBudget::for_text(FORMAT, text.len()) };
    let walked = table(doc.as_table(), "", &mut collected);
    let mut found = collected.list;
    // Whatever happened, wipe the strings toml_edit decoded (they may be
    // plaintexts being sealed); `into_table` keeps the spans (no copies of
    // the source are made, unlike `into_mut`).
    let mut root = doc.into_table();
    wipe_table(&mut root);
    walked?;
    found.sort_by_key(|f| f.span.start);
    // Lines in one pass over the text (per-value counting would be quadratic).
    let (mut line, mut at) = (1, 0);
    let bytes = text.as_bytes();
    Ok(found
        .into_iter()
        .map(|f| {
            line += bytes[at..f.span.start].iter().filter(|&&b| b == b'\n').count();
            at = f.span.start;
            let quote = if text[f.span.clone()].starts_with('\'') { Quote::Single } else { Quote::Double };
            Entry::new(Some(f.name.into()), line, f.span, Text::Decoded(f.value), quote)
        })
        .collect())
}

fn table(t: &Table, at: &str, found: &mut Collected<'_>) -> Result<()> {
    for (key, item) in t.iter() {
        self::item(item, &path::key(at, key), found)?;
    }
    Ok(())
}

fn item(item: &Item, name: &str, found: &mut Collected<'_>) -> Result<()> {
    match item {
        Item::None => Ok(()),
        Item::Value(v) => value(v, name, found),
        Item::Table(t) => table(t, name, found),
        Item::ArrayOfTables(a) => {
            a.iter().enumerate().try_for_each(|(i, t)| table(t, &path::index(name, i), found))
        }
    }
}

fn value(v: &Value, name: &str, found: &mut Collected<'_>) -> Result<()> {
    match v {
        Value::String(s) => {
            let span = s.span().ok_or_else(|| parse_error(FORMAT, 1, "string without a source position"))?;
            let mut owned = secret_string(s.value().len());
            owned.push_str(s.value());
            let text = found.text;
            found.budget.charge_at(|| super::line_of(text, span.start), name)?;
            found.list.push(Found { name: name.to_owned(), span, value: owned });
            Ok(())
        }
        Value::Array(a) => a.iter().enumerate().try_for_each(|(i, v)| value(v, &path::index(name, i), found)),
        Value::InlineTable(t) => inline(t, name, found),
        _ => Ok(()),
    }
}

fn inline(t: &InlineTable, at: &str, found: &mut Collected<'_>) -> Result<()> {
    t.iter().try_for_each(|(key, v)| value(v, &path::key(at, key), found))
}

fn wipe_table(t: &mut Table) {
    for (_, item) in t.iter_mut() {
        match item {
            Item::Value(v) => wipe_value(v),
            Item::Table(t) => wipe_table(t),
            Item::ArrayOfTables(a) => a.iter_mut().for_each(wipe_table),
            Item::None => {}
        }
    }
}

fn wipe_value(v: &mut Value) {
    match v {
        Value::String(_) => {
            if let Value::String(s) = std::mem::replace(v, Value::from(false)) {
                s.into_value().zeroize();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(wipe_value),
        Value::InlineTable(t) => t.iter_mut().for_each(|(_, v)| wipe_value(v)),
        _ => {}
    }
}

/// A TOML basic string that TOML parsers read back exactly.
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
        c if c < ' ' || c == '\u{7f}' => Some(Esc::Hex4Upper),
        _ => None,
    });
    let _ = out.write_char('"');
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
        let got: Vec<_> = e.iter().map(|e| (e.name.as_deref().unwrap(), e.value.as_str(), e.line)).collect();
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
                ("owner[\"a.b\"].c", "quoted", 18),
                ("owner.inline.user", "u", 19),
                ("owner.inline.pw.word", "w", 19),
            ]
        );
        assert_eq!(&text[e[1].span.clone()], "'ENCSTR:lit'");
        assert_eq!(e[1].quote, Quote::Single);
        assert_eq!(&text[e[3].span.clone()], "\"\"\"\nb\"\"\"");
    }

    #[test]
    fn the_three_spellings_of_a_dotted_name_differ() {
        let names = |t: &str| -> Vec<String> {
            scan(t).unwrap().into_iter().filter_map(|e| e.name.map(|n| n.into_owned())).collect()
        };
        assert_eq!(names("[\"a.b\"]\nc = \"v\"\n"), ["[\"a.b\"].c"]);
        assert_eq!(names("[a]\nb.c = \"v\"\n"), ["a.b.c"]);
        assert_eq!(names("[a]\n\"b.c\" = \"v\"\n"), ["a[\"b.c\"]"]);
    }

    #[test]
    fn errors_name_the_line_and_never_echo_content() {
        let err = scan("a = 1\nb = bare-s3cr3t\n").unwrap_err();
        assert!(err.to_string().starts_with("line 2: invalid toml: "), "{err}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        assert!(scan("a = \"open\n").is_err());
        assert!(scan("[a\n").is_err());
        assert_eq!(scan("a = 1\na = 2\n").unwrap_err().kind(), "parse", "duplicate key");
        assert_eq!(scan("[t]\nx = 1\n[t]\ny = 2\n").unwrap_err().kind(), "parse", "table defined twice");
        assert!(scan(&format!("a = {}", "[".repeat(10_000))).is_err());
    }

    #[test]
    fn encode_round_trips() {
        for v in ["q\"b\\s", "\u{1}\u{7f}\n\r\t", "🔑 ünï", "'''"] {
            let e = scan(&format!("k = {}\n", super::super::encoded(super::super::Format::Toml, v).as_str()))
                .unwrap();
            assert_eq!(e[0].value.as_str(), v);
        }
    }
}
