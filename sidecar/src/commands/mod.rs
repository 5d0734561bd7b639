//! The `encstr` subcommands (except `render`).

pub mod backup;
pub mod files;
pub mod keys;
pub mod values;

use std::io::Write;

use crate::error::{CliError, Result};

/// Text for a terminal or a log: control characters (other than the line
/// breaks and tabs `keep` allows) and the invisible bidirectional and
/// format marks (U+061C, U+200B–U+200F, U+202A–U+202E, U+2060–U+2069,
/// U+FEFF) are written as `\u{…}`, so a secret name chosen by whoever
/// wrote a config file cannot rewrite or reorder what an operator reads.
pub fn escape<'t>(text: &'t str, keep: &[char]) -> std::borrow::Cow<'t, str> {
    let hidden = |c: char| {
        !keep.contains(&c)
            && (c.is_control()
                || matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'))
    };
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Write one line to standard output; a closed pipe is not an error.
pub(crate) fn say(line: impl std::fmt::Display) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let line = line.to_string();
    match writeln!(out, "{}", escape(&line, &['\t', '\n'])) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Stdio { what: "writing standard output", source: e })
        }
        _ => Ok(()),
    }
}

/// Write text (already holding its line breaks) to standard output in one
/// go; a closed pipe is not an error.
pub(crate) fn say_raw(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let text = escape(text, &['\n', '\t']);
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Stdio { what: "writing standard output", source: e })
        }
        _ => Ok(()),
    }
}

/// Write one line to standard error.
pub(crate) fn warn(line: impl std::fmt::Display) {
    let line = line.to_string();
    let _ = writeln!(std::io::stderr().lock(), "{}", escape(&line, &['\t', '\n']));
}
