//! The errors of the `encstr` binary, their one-line messages and exit codes.

use std::path::PathBuf;

/// Everything that makes an `encstr` command fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The command line is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },

    /// Reading standard input or writing standard output failed.
    #[error("{what}: {source}")]
    Stdio {
        /// Which stream and what was being done.
        what: &'static str,
        /// What the OS said.
        source: std::io::Error,
    },

    /// The keyring could not be loaded.
    #[error("keyring {origin}: {source}")]
    Keyring {
        /// Where it came from (a file path or `$VAR`).
        origin: String,
        /// What is wrong with it.
        source: encstr_core::Error,
    },

    /// A backup, recipient or identity is unusable.
    #[error("{origin}: {source}")]
    Backup {
        /// The file or argument concerned.
        origin: String,
        /// What is wrong (never key material).
        source: encstr_core::Error,
    },

    /// A recipient (ENCSTR v2) is unusable.
    #[error("{origin}: {source}")]
    Recipient {
        /// The option or file it came from.
        origin: String,
        /// What is wrong with it (never echoing it).
        source: encstr_core::Error,
    },

    /// A keyring file already exists where a new one was to be created.
    #[error("{}: already exists; refusing to overwrite a keyring (use `encstr keys rotate` to add a key)", .0.display())]
    KeyringExists(PathBuf),

    /// A passphrase is too short or too guessable to protect a key.
    #[error(
        "the passphrase in ${var} is too weak to protect a key: {why}; use a longer random one (for example six random words), or accept it with --allow-weak-passphrase"
    )]
    WeakPassphrase {
        /// The environment variable holding it.
        var: String,
        /// Why (never the passphrase).
        why: String,
    },

    /// A file is larger than `--max-file-size`.
    #[error("{}: {size} bytes, larger than the {max} bytes allowed (--max-file-size)", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least).
        size: u64,
        /// The limit.
        max: u64,
    },

    /// An environment variable that should hold a keyring or passphrase is
    /// not set or empty.
    #[error("environment variable {0} is not set or empty")]
    MissingEnv(String),

    /// A file could not be parsed.
    #[error("{file}:{source}")]
    Parse {
        /// The file.
        file: String,
        /// Where and what.
        source: encstr_core::Error,
    },

    /// A file is not text in its format's encoding.
    #[error("{file}: not valid UTF-8 text (use --format {file}=raw to treat it as a raw value)")]
    NotUtf8 {
        /// The file.
        file: String,
    },

    /// One or more values failed; each was already reported on its own line.
    #[error("{failed} value(s) failed in {files} file(s); nothing was changed in those files")]
    ValuesFailed {
        /// Number of failing values.
        failed: usize,
        /// Number of files they are in.
        files: usize,
    },

    /// `check` found values that fail; each was already reported.
    #[error("{failed} value(s) failed in {files} file(s)")]
    CheckFailed {
        /// Number of failing values (and unparsable files).
        failed: usize,
        /// Number of files they are in.
        files: usize,
    },

    /// Some files failed; each was already reported on its own line.
    #[error("{0} file(s) failed; nothing was changed in them")]
    FilesFailed(usize),

    /// A render failed; the report was already written.
    #[error("render failed; the previous output was kept")]
    RenderFailed,

    /// A single value did not decrypt.
    #[error("{}", crate::commands::files::hint(.0))]
    Decrypt(encstr_core::Error),

    /// Another error from the core library.
    #[error("{0}")]
    Core(#[from] encstr_core::Error),
}

impl CliError {
    /// The process exit code: 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }

    /// Wrap an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CliError {
        let path = path.into();
        move |source| CliError::Io { path, source }
    }
}

/// Result alias of the binary.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
