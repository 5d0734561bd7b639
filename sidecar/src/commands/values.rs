//! `encstr encrypt` and `encstr decrypt`: single values.

use std::io::{IsTerminal as _, Write as _};

use encstr_core::token;
use zeroize::Zeroizing;

use super::say;
use crate::cli::{KeyringArgs, RecipientArgs};
use crate::error::{CliError, Result};

/// Encrypt standard input for `name`; print the token: sealed to the
/// recipient when one is given (no keyring read), else with the keyring.
pub fn encrypt(
    name: &str,
    keep_newline: bool,
    recipient: &RecipientArgs,
    keyring: &KeyringArgs,
) -> Result<()> {
    // Check the recipient or keyring before reading the value.
    let to = match recipient.load()? {
        Some(r) => Ok(r),
        None => Err(keyring.load()?),
    };
    let mut plain = if std::io::stdin().is_terminal() { read_hidden(name)? } else { read_stdin()? };
    if !keep_newline && plain.last() == Some(&b'\n') {
        plain.pop();
        if plain.last() == Some(&b'\r') {
            plain.pop();
        }
    }
    say(match &to {
        Ok(recipient) => token::seal_to(recipient, name, &plain)?,
        Err(ring) => token::encrypt(ring, name, &plain)?,
    })
}

/// Decrypt a token (argument or standard input) for `name`; write the exact
/// plaintext bytes to standard output.
pub fn decrypt(name: &str, token_arg: Option<&str>, keyring: &KeyringArgs) -> Result<()> {
    let ring = keyring.load()?;
    let input;
    let text = match token_arg {
        Some(t) => t.trim(),
        None => {
            input = read_stdin()?;
            std::str::from_utf8(&input)
                .map_err(|_| {
                    CliError::Decrypt(encstr_core::Error::Malformed {
                        name: Some(name.to_owned()),
                        reason: "not text",
                    })
                })?
                .trim()
        }
    };
    let plain = token::decrypt(&ring, name, text).map_err(CliError::Decrypt)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&plain)
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Stdio { what: "writing standard output", source })
}

/// Standard input, at most a token's length (a longer input is no value
/// encstr can hold), in a buffer that is wiped and leaves no copies.
fn read_stdin() -> Result<Zeroizing<Vec<u8>>> {
    let limit = token::MAX_TOKEN_LEN as u64 + 2;
    crate::fsio::read_secret(std::io::stdin().lock(), 4096, limit)
        .map_err(|source| CliError::Stdio { what: "reading standard input", source })?
        .ok_or_else(|| CliError::Usage(format!("standard input is longer than {limit} bytes")))
}

/// Prompt on standard error and read one line from the terminal without
/// echoing it.
fn read_hidden(name: &str) -> Result<Zeroizing<Vec<u8>>> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let err = |source| CliError::Stdio { what: "reading the terminal", source };
    let saved = tcgetattr(&stdin).map_err(|e| err(e.into()))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    eprint!("value for {name} (not echoed): ");
    tcsetattr(&stdin, OptionalActions::Flush, &quiet).map_err(|e| err(e.into()))?;
    // A terminal line holds at most 4095 bytes (the kernel's line buffer):
    // this buffer never grows, so it leaves no copies.
    let mut line = Zeroizing::new(String::with_capacity(8192));
    let read = stdin.read_line(&mut line);
    let restored = tcsetattr(&stdin, OptionalActions::Flush, &saved);
    read.map_err(err)?;
    restored.map_err(|e| err(e.into()))?;
    Ok(Zeroizing::new(std::mem::take(&mut *line).into_bytes()))
}
