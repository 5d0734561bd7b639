//! The `encstr` subcommands (except `render`).

pub mod backup;
pub mod files;
pub mod keys;
pub mod values;

use std::io::Write;

use crate::error::{CliError, Result};

/// Write one line to standard output; a closed pipe is not an error.
pub(crate) fn say(line: impl std::fmt::Display) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}") {
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
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Stdio { what: "writing standard output", source: e })
        }
        _ => Ok(()),
    }
}

/// Write one line to standard error.
pub(crate) fn warn(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
