//! The operator's error type.

/// Everything that fails a reconcile (bad specs are not errors: they are
/// reported in status and wait for a change).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Keyring handling failed (never carries key material).
    #[error("keyring: {0}")]
    Keyring(#[from] encstr_core::Error),
    /// The object lacks a namespace or name.
    #[error("object without namespace or name")]
    MissingObjectKey,
}

impl Error {
    /// A bounded label for metrics and event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "Conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 404 => "NotFound",
            Error::Kube(_) => "KubeError",
            Error::Finalizer(_) => "FinalizerError",
            Error::Keyring(_) => "KeyringError",
            Error::MissingObjectKey => "InvalidObject",
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
