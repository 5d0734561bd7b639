//! Command-line interface of `encstr` (clap derive types).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// encstr: keep configuration secrets encrypted as ENCSTR tokens.
///
/// Values in config files are stored as `ENCSTR:<base64>` tokens bound to the
/// secret's name: made with a keyring (v1: AES-256-CBC and HMAC-SHA256; the
/// newest key encrypts, every key decrypts), or sealed to a keyring key's
/// public recipient by anyone, without the keyring (v2: HPKE, X25519 and
/// AES-256-GCM). A keyring opens both.
#[derive(Debug, Parser)]
#[command(name = "encstr", version, about, long_about, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, rotate, list, prune and derive keys.
    #[command(subcommand)]
    Keys(KeysCommand),

    /// Encrypt a value read from standard input; prints the token.
    #[command(after_help = "Examples:
  printf %s 's3cr3t' | encstr encrypt --name db.password --recipient 'ENCSTR-RECIPIENT:Ai01…'
  printf %s 's3cr3t' | encstr encrypt --name db.password --keyring keyring.txt")]
    Encrypt {
        /// The secret name the value is bound to (for example `db.password`).
        #[arg(long)]
        name: String,
        /// Keep a trailing newline of the input (by default one is removed).
        #[arg(long)]
        keep_newline: bool,
        #[command(flatten)]
        recipient: RecipientArgs,
        #[command(flatten)]
        keyring: KeyringArgs,
    },

    /// Decrypt a token; writes the exact plaintext bytes to standard output.
    #[command(
        after_help = "Example:\n  encstr decrypt --name db.password --keyring keyring.txt 'ENCSTR:AS01…'"
    )]
    Decrypt {
        /// The secret name the token was made for.
        #[arg(long)]
        name: String,
        /// The token (read from standard input when absent).
        token: Option<String>,
        #[command(flatten)]
        keyring: KeyringArgs,
    },

    /// Encrypt in place the plaintext values whose names match the patterns:
    /// sealed to a recipient (no keyring needed), or with a keyring.
    #[command(after_help = "Examples:
  encstr seal --recipient-file recipient.txt app.properties config/*.yaml
  encstr seal --keyring keyring.txt app.properties config/*.yaml")]
    Seal {
        /// Files to seal.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Case-insensitive glob on secret names; repeatable. Default:
        /// `*password*`, `*secret*`, `*token*`.
        #[arg(long = "match", value_name = "GLOB")]
        patterns: Vec<String>,
        /// Report what would be sealed without changing any file.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        files_opts: FileArgs,
        #[command(flatten)]
        recipient: RecipientArgs,
        #[command(flatten)]
        keyring: KeyringArgs,
    },

    /// Re-encrypt, in place, every token not made by the primary key,
    /// keeping its version: a keyring token stays one, a sealed token is
    /// sealed to the primary's recipient.
    Reencrypt {
        /// Files to re-encrypt.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        files_opts: FileArgs,
        #[command(flatten)]
        keyring: KeyringArgs,
    },

    /// Decrypt a directory of config files into another (init container or,
    /// with --watch, native sidecar).
    ///
    /// All or nothing: if any value fails, exit 1 (or with --watch keep the
    /// last good output), report every failing value as `file:line name:
    /// reason`, and leave the target as it was.
    Render(Box<RenderArgs>),

    /// List every token of the files (name, key id, version) and, with a
    /// keyring, whether it decrypts.
    ///
    /// Exits 1 if any token fails or any file cannot be parsed: meant for CI
    /// pipelines and pre-flight checks.
    Check {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        files_opts: FileArgs,
        #[command(flatten)]
        keyring: KeyringArgs,
    },
}

/// `encstr render ...`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  encstr render --source /config --target /run/app --keyring /etc/encstr/keyring
  encstr render --watch --source /config --target /run/app --keyring /etc/encstr/keyring")]
pub struct RenderArgs {
    /// Directory of config files holding ENCSTR tokens (a mounted ConfigMap).
    #[arg(long, env = "ENCSTR_SOURCE", value_name = "DIR")]
    pub source: PathBuf,
    /// Directory to write the decrypted files to (an in-memory emptyDir).
    #[arg(long, env = "ENCSTR_TARGET", value_name = "DIR")]
    pub target: PathBuf,
    /// Names that should be encrypted: plaintext values matching them are
    /// counted and warned about. Default: `*password*`, `*secret*`, `*token*`.
    #[arg(long = "match", value_name = "GLOB")]
    pub patterns: Vec<String>,
    /// Fail on plaintext values whose names match the patterns.
    #[arg(long)]
    pub deny_plaintext: bool,
    /// Mode of the rendered files (octal); directories get matching search bits.
    #[arg(long, value_name = "OCTAL", default_value = "0440", value_parser = parse_mode)]
    pub mode: u32,
    /// Where to write the failure report for `kubectl describe pod`
    /// [default: /dev/termination-log when writable].
    #[arg(long, value_name = "FILE")]
    pub termination_log: Option<PathBuf>,
    /// Keep running: re-render on every change of the source or the keyring.
    #[arg(long)]
    pub watch: bool,
    /// Address for /metrics, /healthz and /readyz (with --watch).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9102")]
    pub listen: SocketAddr,
    /// Quiet time after a change before re-rendering (with --watch).
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = parse_duration)]
    pub debounce: Duration,
    /// Re-render this often even without change events (with --watch).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_period)]
    pub resync: Duration,
    /// After a render that changed files, send this signal (HUP, USR1,
    /// USR2, TERM, ...) to every process named by --notify-process (with
    /// --watch; the pod needs `shareProcessNamespace: true`).
    #[arg(long, value_name = "SIGNAL", value_parser = crate::render::notify::parse_signal, requires = "notify_process")]
    pub notify_signal: Option<crate::render::notify::NamedSignal>,
    /// The app's process name for --notify-signal: its `/proc/PID/comm`
    /// (cut to 15 characters) or the base name of its argv[0].
    #[arg(long, value_name = "NAME", requires = "notify_signal")]
    pub notify_process: Option<String>,
    /// After a render that changed files, POST to this http:// URL (the
    /// app's reload endpoint, e.g. http://127.0.0.1:9090/-/reload; with
    /// --watch). Retried with backoff; a non-2xx answer is a failure.
    #[arg(long, value_name = "URL", value_parser = crate::render::notify::parse_url)]
    pub notify_url: Option<hyper::Uri>,
    /// Notify once no render has changed files for this long (with
    /// --watch) [default: 2s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub notify_debounce: Option<Duration>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = crate::telemetry::LogFormat::Text)]
    pub log_format: crate::telemetry::LogFormat,
    #[command(flatten)]
    pub files_opts: FileArgs,
    #[command(flatten)]
    pub keyring: KeyringArgs,
}

/// Parse an octal file mode such as `0440`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777 && m & 0o400 != 0)
        .ok_or_else(|| format!("{s:?} is not an octal file mode readable by its owner (like 0440)"))
}

/// The longest duration an option takes (a year: timers far beyond it
/// would overflow the clock).
const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// Parse `250ms`, `2s`, `5m` or `1h` (at most a year).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not a duration like 250ms, 2s or 5m"))?;
    let secs = |per: u64| n.checked_mul(per).map(Duration::from_secs);
    let d = match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" | "" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        _ => return Err(format!("{s:?} is not a duration like 250ms, 2s or 5m")),
    };
    d.filter(|d| *d <= MAX_DURATION).ok_or_else(|| format!("{s:?} is longer than a year"))
}

/// A period (a timer's interval): a duration greater than zero.
pub fn parse_period(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be greater than zero"));
    }
    Ok(d)
}

/// `encstr keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new keyring file with one random key (mode 0600).
    Init {
        #[command(flatten)]
        file: KeyringFile,
    },
    /// Add a new random key as the primary; prints its key id.
    Rotate {
        #[command(flatten)]
        file: KeyringFile,
    },
    /// List the keys: position, key id and role (never key material).
    List {
        #[command(flatten)]
        file: KeyringFile,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the primary key's recipient: the public text anyone may use to
    /// seal values (`encstr seal --recipient`) that only this keyring opens.
    /// Never prints key material.
    #[command(after_help = "Examples:
  encstr keys recipient --keyring keyring.txt > recipient.txt
  encstr keys recipient --keyring keyring.txt --all")]
    Recipient {
        #[command(flatten)]
        file: KeyringFile,
        /// Every key's recipient, one per line with its key id and role.
        #[arg(long)]
        all: bool,
    },
    /// Remove old keys. The primary key is never removed.
    #[command(group = clap::ArgGroup::new("what").required(true).args(["keep", "remove"]))]
    Prune {
        #[command(flatten)]
        file: KeyringFile,
        /// Keep the N newest keys (the primary counts).
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
        /// Remove these keys by id.
        #[arg(long, value_name = "KEYID", num_args = 1..)]
        remove: Vec<String>,
    },
    /// Write an ASCII-armored age backup of a keyring file, encrypted to
    /// age or SSH recipients (the format the operator writes).
    #[command(group = clap::ArgGroup::new("to").required(true).multiple(true).args(["recipient", "recipients_file"]))]
    Backup {
        #[command(flatten)]
        file: KeyringFile,
        /// A recipient: `age1…`, `ssh-ed25519 AAAA…` or `ssh-rsa AAAA…` (repeatable).
        #[arg(long, short = 'r', value_name = "RECIPIENT")]
        recipient: Vec<String>,
        /// A file of recipients, one per line (`#` comments), as `age -R` reads.
        #[arg(long, short = 'R', value_name = "FILE")]
        recipients_file: Vec<PathBuf>,
        /// Write the backup here (a new file) instead of standard output.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Decrypt a backup into a keyring file: an age file (armored or binary)
    /// or a backup ConfigMap exported with `kubectl get -o yaml|json`.
    Restore {
        /// An age identity file (`age-keygen`) or an unencrypted OpenSSH
        /// ed25519/RSA private key (repeatable).
        #[arg(long, short = 'i', value_name = "FILE", required = true)]
        identity: Vec<PathBuf>,
        /// Write the keyring here (a new file, mode 0600); standard output
        /// when it is not a terminal otherwise.
        #[arg(long, short = 'o', value_name = "KEYRING")]
        output: Option<PathBuf>,
        /// The ConfigMap entry to restore (default: the newest).
        #[arg(long, value_name = "NAME")]
        entry: Option<String>,
        /// The backup file.
        #[arg(value_name = "BACKUP")]
        backup: PathBuf,
    },
    /// List the key ids a backup holds, never key material: from the ids
    /// recorded in an exported backup ConfigMap (no identity needed), or by
    /// decrypting a bare age file in memory with `--identity`.
    Inspect {
        /// An identity that opens the backup (needed for a bare age file).
        #[arg(long, short = 'i', value_name = "FILE")]
        identity: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The backup file.
        #[arg(value_name = "BACKUP")]
        backup: PathBuf,
    },
    /// Print the keyring line derived from a passphrase (PBKDF2-HMAC-SHA256).
    Derive {
        /// Environment variable holding the passphrase.
        #[arg(long, value_name = "VAR")]
        passphrase_env: String,
        #[command(flatten)]
        passphrase: PassphraseOpts,
    },
}

/// How a passphrase becomes a key (ENCSTR v1 §1).
#[derive(Debug, Args, Default, Clone)]
pub struct PassphraseOpts {
    /// PBKDF2 salt of the passphrase-derived key. Choose one per deployment
    /// (for example `prod-cluster/print-agents`): with the default
    /// (`ENCSTR v1 passphrase`) one precomputed dictionary attacks every
    /// deployment, because every token carries its key id.
    #[arg(long, env = "ENCSTR_PASSPHRASE_SALT", value_name = "SALT")]
    pub passphrase_salt: Option<String>,
    /// Accept a passphrase shorter than 16 characters or estimated to fall
    /// to fewer than about 2^50 guesses.
    #[arg(long)]
    pub allow_weak_passphrase: bool,
}

/// A keyring file that a `keys` command works on.
#[derive(Debug, Args)]
pub struct KeyringFile {
    /// The keyring file.
    #[arg(long, env = "ENCSTR_KEYRING", value_name = "FILE")]
    pub keyring: PathBuf,
}

/// Where the keyring comes from. `--keyring-env` and `--passphrase-env`
/// take precedence over `--keyring` / `ENCSTR_KEYRING`.
#[derive(Debug, Args, Default)]
pub struct KeyringArgs {
    /// Keyring file (one base64 key per line, newest last).
    #[arg(long, env = "ENCSTR_KEYRING", value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// Environment variable holding the keyring text.
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_env")]
    pub keyring_env: Option<String>,
    /// Environment variable holding a passphrase; its derived key is the
    /// only key.
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    #[command(flatten)]
    pub passphrase: PassphraseOpts,
}

/// Sealing to a recipient instead of encrypting with a keyring.
#[derive(Debug, Args, Default)]
pub struct RecipientArgs {
    /// Seal to this recipient (`ENCSTR-RECIPIENT:…`, as `encstr keys
    /// recipient` prints it): writes ENCSTR v2 tokens that only holders of
    /// the keyring can open; no keyring needed (and none is read, even if
    /// ENCSTR_KEYRING is set).
    #[arg(long, value_name = "RECIPIENT", conflicts_with_all = ["recipient_file", "keyring_env", "passphrase_env"])]
    pub recipient: Option<String>,
    /// Read the recipient from a file (one recipient; blank lines and `#`
    /// comments ignored), for example the `recipient` key of the keyring's
    /// published ConfigMap.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["keyring_env", "passphrase_env"])]
    pub recipient_file: Option<PathBuf>,
}

/// Options for commands that process config files.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// Prefix for every secret name (for example `app/`).
    #[arg(long, value_name = "P", default_value = "")]
    pub name_prefix: String,
    /// Override the format of files matching GLOB (properties, dotenv, yaml,
    /// json, toml, raw); repeatable.
    #[arg(long = "format", value_name = "GLOB=FORMAT")]
    pub formats: Vec<String>,
    /// Refuse files larger than this (bytes, or with KiB, MiB, GiB).
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub max_file_size: u64,
}

/// The default of `--max-file-size`.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 16 << 20;

impl Default for FileArgs {
    fn default() -> Self {
        FileArgs { name_prefix: String::new(), formats: Vec::new(), max_file_size: DEFAULT_MAX_FILE_SIZE }
    }
}

/// Parse `4096`, `512KiB`, `16MiB` or `1GiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let shift = match unit {
        "" | "B" => 0,
        "KiB" | "K" | "k" => 10,
        "MiB" | "M" => 20,
        "GiB" | "G" => 30,
        _ => return Err(format!("{s:?} is not a size like 4096, 512KiB or 16MiB")),
    };
    n.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s:?} is not a size like 4096, 512KiB or 16MiB"))
}
