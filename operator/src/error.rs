//! The operator's error type.

/// Everything that fails a reconcile (bad specs and guards are not errors:
/// they are reported in status and wait for a change).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Keyring handling failed (never carries key material).
    #[error("keyring: {0}")]
    Keyring(#[from] encstr_core::Error),
    /// The object lacks a namespace or name.
    #[error("object without namespace or name")]
    MissingObjectKey,
    /// The caches did not sync in time.
    #[error("the caches are not synced yet")]
    NotSynced,
}

impl Error {
    /// Whether the fence refused a write (this replica is not the leader).
    pub fn is_not_leader(&self) -> bool {
        let Error::Kube(kube::Error::Service(e)) = self else { return false };
        e.downcast_ref::<crate::lease::NotLeader>().is_some()
            || std::error::Error::source(e.as_ref())
                .is_some_and(|s| s.downcast_ref::<crate::lease::NotLeader>().is_some())
    }

    /// A bounded CamelCase reason for events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            _ if self.is_not_leader() => "NotLeader",
            Error::Kube(kube::Error::Api(s)) => match s.code {
                409 => "WriteConflict",
                403 => "Forbidden",
                404 => "NotFound",
                410 => "Expired",
                422 => "Invalid",
                429 => "Throttled",
                500.. => "ApiServerError",
                _ => "ApiError",
            },
            Error::Kube(_) => "ApiUnavailable",
            Error::Keyring(_) => "KeyringError",
            Error::MissingObjectKey => "InvalidObject",
            Error::NotSynced => "CachesNotSynced",
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_the_real_ones() {
        let api = |code| {
            Error::Kube(kube::Error::Api(Box::new(kube::core::Status {
                code,
                message: "m".into(),
                reason: "r".into(),
                ..Default::default()
            })))
        };
        assert_eq!(api(409).reason(), "WriteConflict");
        assert_eq!(api(403).reason(), "Forbidden");
        assert_eq!(api(503).reason(), "ApiServerError");
        let fenced = Error::Kube(kube::Error::Service(Box::new(crate::lease::NotLeader)));
        assert!(fenced.is_not_leader());
        assert_eq!(fenced.reason(), "NotLeader");
    }
}
