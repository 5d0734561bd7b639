//! Where a recipient (ENCSTR v2) comes from: `--recipient` or
//! `--recipient-file`. Errors name the option or file and what is wrong
//! with the text, never echoing it.

use encstr_core::Recipient;

use crate::cli::RecipientArgs;
use crate::error::{CliError, Result};

/// Largest recipient file read (a recipient is 73 characters; comments are
/// allowed around it).
const MAX_RECIPIENT_FILE: u64 = 64 << 10;

impl RecipientArgs {
    /// Whether a recipient was given (then no keyring is needed).
    pub fn is_given(&self) -> bool {
        self.recipient.is_some() || self.recipient_file.is_some()
    }

    /// The recipient given, if any.
    pub fn load(&self) -> Result<Option<Recipient>> {
        if let Some(text) = &self.recipient {
            return parse(text, "--recipient").map(Some);
        }
        let Some(path) = &self.recipient_file else { return Ok(None) };
        let origin = path.display().to_string();
        let bytes = crate::fsio::read_limited(path, MAX_RECIPIENT_FILE)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| CliError::Usage(format!("{origin}: a recipient file must be text")))?;
        let lines: Vec<&str> =
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        match lines[..] {
            [line] => parse(line, &origin).map(Some),
            [] => Err(CliError::Usage(format!("{origin}: holds no recipient"))),
            _ => Err(CliError::Usage(format!(
                "{origin}: holds {} lines; a recipient file holds one recipient",
                lines.len()
            ))),
        }
    }
}

fn parse(text: &str, origin: &str) -> Result<Recipient> {
    text.parse().map_err(|source| CliError::Recipient { origin: origin.to_owned(), source })
}
