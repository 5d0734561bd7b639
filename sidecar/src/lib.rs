//! The `encstr` binary as a library: the password protection tool's
//! commands. `main.rs` only parses the command line and maps errors to exit
//! codes.

#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod error;
pub mod fsio;
pub mod keyring_source;

use cli::{Cli, Command};
use commands::{files, keys, values};
pub use error::{CliError, Result};

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keys(cmd) => keys::run(cmd),
        Command::Encrypt {
            name,
            keep_newline,
            keyring,
        } => values::encrypt(&name, keep_newline, &keyring),
        Command::Decrypt {
            name,
            token,
            keyring,
        } => values::decrypt(&name, token.as_deref(), &keyring),
        Command::Seal {
            files,
            patterns,
            dry_run,
            files_opts,
            keyring,
        } => files::seal(&files, &patterns, dry_run, &files_opts, &keyring),
        Command::Reencrypt {
            files,
            files_opts,
            keyring,
        } => files::reencrypt(&files, &files_opts, &keyring),
        Command::Check {
            files,
            json,
            files_opts,
            keyring,
        } => files::check(&files, json, &files_opts, &keyring),
    }
}
