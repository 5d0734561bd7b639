//! Command line of `encstr-operator`.

use std::net::SocketAddr;

use clap::{Parser, Subcommand, ValueEnum};

/// The encstr operator: reconciles SecretKeyring resources.
#[derive(Debug, Parser)]
#[command(name = "encstr-operator", version, about)]
pub struct Cli {
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (the default).
    Run(RunArgs),
    /// Print the SecretKeyring CRD as YAML.
    Crd,
}

/// Options of `run`.
#[derive(Debug, clap::Args, Clone)]
pub struct RunArgs {
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "ENCSTR_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Namespace of the leader-election Lease [default: $POD_NAMESPACE, else `default`].
    #[arg(long, env = "ENCSTR_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, env = "ENCSTR_LEASE_NAME", default_value = "encstr-operator")]
    pub lease_name: String,
    /// Seconds a leader holds the lease without renewing it.
    #[arg(long, default_value_t = 15)]
    pub lease_duration: u64,
    /// This replica's identity [default: $POD_NAME, else the host name].
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Confine the operator to these namespaces (comma-separated; for Roles
    /// instead of a ClusterRole): SecretKeyrings are read in the lease
    /// namespace only and copies go only to these namespaces.
    #[arg(long, env = "ENCSTR_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs::parse_from(["run"])
    }
}

impl RunArgs {
    fn parse_from(args: [&str; 1]) -> Self {
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            run: RunArgs,
        }
        Wrap::parse_from(args).run
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// JSON lines.
    Json,
}
