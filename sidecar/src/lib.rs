//! The `encstr` binary as a library: the password protection tool's
//! commands. `main.rs` only parses the command line and maps errors to exit
//! codes.

#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod error;
pub mod fsio;
pub mod harden;
pub mod http;
pub mod keyring_source;
pub mod metrics;
pub mod recipient_source;
pub mod render;
pub mod telemetry;

use cli::{Cli, Command};
use commands::{files, keys, values};
pub use error::{CliError, Result};

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    // Every command may hold a key or a plaintext: nobody else reads them.
    harden::process()?;
    match cli.command {
        Command::Keys(cmd) => keys::run(cmd),
        Command::Encrypt { name, keep_newline, recipient, keyring } => {
            values::encrypt(&name, keep_newline, &recipient, &keyring)
        }
        Command::Decrypt { name, token, keyring } => values::decrypt(&name, token.as_deref(), &keyring),
        Command::Seal { files, patterns, dry_run, files_opts, recipient, keyring } => {
            files::seal(&files, &patterns, dry_run, &files_opts, &recipient, &keyring)
        }
        Command::Reencrypt { files, files_opts, keyring } => files::reencrypt(&files, &files_opts, &keyring),
        Command::Check { files, json, files_opts, keyring } => {
            files::check(&files, json, &files_opts, &keyring)
        }
        Command::Render(args) => render_command(*args),
    }
}

fn render_command(args: cli::RenderArgs) -> Result<()> {
    use encstr_core::glob::Pattern;
    use render::watch::{Renderer, WatchSettings, run_once, termination_log, watch};

    telemetry::init(args.log_format);
    let notify = render::notify::NotifySettings {
        signal: args.notify_signal.zip(args.notify_process.clone()),
        url: args.notify_url.clone(),
        debounce: args.notify_debounce.unwrap_or(std::time::Duration::from_secs(2)),
    };
    if !args.watch && (notify.any() || args.notify_debounce.is_some()) {
        return Err(CliError::Usage(
            "--notify-signal, --notify-process, --notify-url and --notify-debounce need --watch: an init container renders once, before the app starts, so there is nothing to notify".into(),
        ));
    }
    if !args.keyring.is_given() {
        // Report the usage problem the same way as every other command.
        args.keyring.load()?;
    }
    let plaintext_patterns = if args.patterns.is_empty() {
        Pattern::defaults()
    } else {
        args.patterns.iter().map(|p| Pattern::new(p)).collect::<std::result::Result<_, _>>()?
    };
    let opts = render::RenderOptions {
        formats: files::FormatRules::parse(&args.files_opts.formats)?,
        name_prefix: args.files_opts.name_prefix.clone(),
        plaintext_patterns,
        deny_plaintext: args.deny_plaintext,
        max_file_size: args.files_opts.max_file_size,
    };
    let renderer = Renderer::new(
        args.source.clone(),
        render::output::Target::new(&args.target, args.mode),
        opts,
        args.keyring,
        termination_log(args.termination_log),
        std::sync::Arc::new(http::Health::default()),
    );
    if args.watch {
        watch(
            renderer,
            WatchSettings { listen: args.listen, debounce: args.debounce, resync: args.resync, notify },
        )
    } else {
        run_once(renderer)
    }
}
