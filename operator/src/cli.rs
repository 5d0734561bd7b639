//! Command line of `encstr-operator`.

use std::net::SocketAddr;

use clap::{Parser, Subcommand, ValueEnum};

/// The encstr operator: reconciles SecretKeyring and ClusterSecretKeyring resources.
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
    Run(Box<RunArgs>),
    /// Print the CRDs (SecretKeyring, ClusterSecretKeyring) as YAML.
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
    /// Where ClusterSecretKeyrings keep their masters [default: the lease namespace].
    #[arg(long, env = "ENCSTR_CLUSTER_RESOURCE_NAMESPACE")]
    pub cluster_resource_namespace: Option<String>,
    /// Confine the operator to these namespaces (comma-separated; for Roles
    /// instead of a ClusterRole): only SecretKeyrings there are reconciled;
    /// ClusterSecretKeyrings need a cluster-wide install.
    #[arg(long, env = "ENCSTR_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Reconcile every SecretKeyring this often even without changes
    /// (restores copies changed while a watch was down).
    #[arg(long, default_value = "5m", value_parser = parse_resync)]
    pub resync: std::time::Duration,
    /// Scan a keyring's token usage (for pruning) at most this often.
    #[arg(long, default_value = "1m", value_parser = parse_resync)]
    pub usage_scan_interval: std::time::Duration,
    /// No rotation (requested or scheduled) starts sooner than this after
    /// the last one started: an `encstr.io/rotate` annotation bumped in a
    /// loop, or a short `rotation.every`, cannot generate keys without
    /// bound. A deferred rotation starts when the interval has passed.
    #[arg(long, env = "ENCSTR_MIN_ROTATION_INTERVAL", default_value = "5m", value_parser = parse_interval)]
    pub min_rotation_interval: std::time::Duration,
    /// The longest a backup write to one destination may take before it
    /// counts as failed (and is retried with backoff).
    #[arg(long, default_value = "25s", value_parser = parse_resync)]
    pub backup_timeout: std::time::Duration,
    /// An object-store endpoint SecretKeyrings may name in
    /// `spec.backup.objectStore.endpoint` (repeat, or comma-separated);
    /// ClusterSecretKeyrings may name any. None by default.
    #[arg(long, env = "ENCSTR_BACKUP_ALLOWED_ENDPOINTS", value_delimiter = ',', value_parser = parse_endpoint)]
    pub backup_allowed_endpoint: Vec<crate::backup::store::Endpoint>,
    /// Let SecretKeyrings without a credentials Secret back up with the
    /// operator's own object-store credentials (its environment or its
    /// cloud identity). Off by default: a namespace's editor could then
    /// write to any bucket the operator can.
    #[arg(long, env = "ENCSTR_BACKUP_NAMESPACED_USES_OPERATOR_CREDENTIALS")]
    pub backup_namespaced_uses_operator_credentials: bool,
    /// With `--backup-namespaced-uses-operator-credentials`: the object-store
    /// URLs under which such a SecretKeyring writes, each followed by its own
    /// namespace (`s3://backups/tenants` lets `team-a` write to
    /// `s3://backups/tenants/team-a[/…]`). Repeat, or comma-separated.
    #[arg(long, env = "ENCSTR_BACKUP_NAMESPACED_PREFIXES", value_delimiter = ',')]
    pub backup_namespaced_prefix: Vec<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Serve the sidecar injection webhook (HTTPS) on this address; off
    /// unless given. Every replica serves it.
    #[arg(long, env = "ENCSTR_WEBHOOK_LISTEN")]
    pub webhook_listen: Option<SocketAddr>,
    /// The webhook's Service (its certificate names `<service>.<namespace>.svc`).
    #[arg(long, default_value = "encstr-operator-webhook")]
    pub webhook_service: String,
    /// The Secret holding the webhook's certificate (read through the API).
    #[arg(long, default_value = "encstr-operator-webhook-tls")]
    pub webhook_secret: String,
    /// The MutatingWebhookConfiguration whose caBundle the operator keeps.
    #[arg(long, default_value = "encstr-operator")]
    pub webhook_configuration: String,
    /// cert-manager issues the certificate and injects the caBundle: only
    /// read the Secret.
    #[arg(long)]
    pub webhook_cert_manager: bool,
    /// After a new webhook CA joins the caBundle, wait this long before
    /// serving a certificate of it (API servers reload the bundle each in
    /// its own time).
    #[arg(long, default_value = "60s", value_parser = parse_resync)]
    pub webhook_ca_grace: std::time::Duration,
    /// The injected sidecar's image.
    #[arg(long, env = "ENCSTR_SIDECAR_IMAGE", default_value = "ghcr.io/encstr/encstr:0.1.0")]
    pub sidecar_image: String,
    /// The injected sidecar's imagePullPolicy.
    #[arg(long, default_value = "IfNotPresent")]
    pub sidecar_image_pull_policy: String,
    /// The injected sidecar's default resources (a ResourceRequirements as
    /// JSON); a pod's `encstr.io/resources` is merged over them.
    #[arg(long, value_parser = parse_resources,
          default_value = r#"{"requests":{"cpu":"5m","memory":"16Mi"},"limits":{"memory":"32Mi"}}"#)]
    pub sidecar_resources: serde_json::Value,
}

fn parse_resources(s: &str) -> Result<serde_json::Value, String> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))?;
    crate::inject::check_resources(&v)?;
    Ok(v)
}

fn parse_endpoint(s: &str) -> Result<crate::backup::store::Endpoint, String> {
    crate::backup::store::Endpoint::parse(s.trim())
}

fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    crate::desired::parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration (like 5m, or 0s)"))
}

fn parse_resync(s: &str) -> Result<std::time::Duration, String> {
    crate::desired::parse_duration(s)
        .filter(|d| *d >= std::time::Duration::from_secs(1))
        .ok_or_else(|| format!("{s:?} is not a duration of at least 1s (like 5m)"))
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
