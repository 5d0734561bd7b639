//! What the operator needs of either kind: `SecretKeyring` (master in its
//! own namespace, no copies) and `ClusterSecretKeyring` (master in the
//! cluster resource namespace, copies in its targets).

use std::collections::BTreeMap;
use std::fmt::Debug;

use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crd::*;

/// The two kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `SecretKeyring`.
    Namespaced,
    /// `ClusterSecretKeyring`.
    Cluster,
}

impl Kind {
    /// The kind's name, as in metric labels and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespaced => "SecretKeyring",
            Kind::Cluster => "ClusterSecretKeyring",
        }
    }

    /// The label its Secrets carry (value: the resource's name).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Namespaced => LABEL_KEYRING,
            Kind::Cluster => LABEL_CLUSTER_KEYRING,
        }
    }
}

/// Which keyring: kind, namespace (namespaced kind) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    /// The kind.
    pub kind: Kind,
    /// The resource's namespace (`""` for the cluster kind).
    pub namespace: String,
    /// The resource's name.
    pub name: String,
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Namespaced => write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name),
            Kind::Cluster => write!(f, "{} {}", self.kind.as_str(), self.name),
        }
    }
}

/// The spec fields both kinds share.
#[derive(Debug, Clone, Copy)]
pub struct Common<'a> {
    /// `spec.secretName`.
    pub secret_name: Option<&'a str>,
    /// `spec.rotation`.
    pub rotation: Option<&'a Rotation>,
    /// `spec.retention`.
    pub retention: Option<&'a Retention>,
    /// `spec.importFrom`.
    pub import_from: Option<&'a ImportFrom>,
    /// `spec.backup`.
    pub backup: Option<&'a Backup>,
    /// `spec.deletionPolicy`.
    pub deletion_policy: DeletionPolicy,
}

/// A keyring resource of either kind.
pub trait KeyringResource:
    Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Which kind.
    const KIND: Kind;
    /// The shared spec fields.
    fn common(&self) -> Common<'_>;
    /// Targets (cluster kind only).
    fn targets(&self) -> Option<&Targets>;
    /// The status.
    fn keyring_status(&self) -> Option<&KeyringStatus>;
    /// The API of this kind for an object in `namespace` (ignored for the
    /// cluster kind).
    fn api(client: kube::Client, namespace: &str) -> kube::Api<Self>;

    /// Which keyring this is.
    fn id(&self) -> Id {
        Id { kind: Self::KIND, namespace: self.namespace().unwrap_or_default(), name: self.name_any() }
    }

    /// The master's namespace: its own, or the cluster resource namespace.
    fn master_namespace(&self, cluster_resource_namespace: &str) -> String {
        match Self::KIND {
            Kind::Namespaced => self.namespace().unwrap_or_default(),
            Kind::Cluster => cluster_resource_namespace.to_owned(),
        }
    }

    /// The Secret name (default: the resource's name).
    fn secret_name(&self) -> String {
        self.common().secret_name.map_or_else(|| self.name_any(), str::to_owned)
    }

    /// This keyring as it is after a write of the operator's own returned
    /// resourceVersion `rv` (later writes use it as their precondition).
    fn at_version(&self, rv: Option<String>) -> Self {
        let mut k = self.clone();
        k.meta_mut().resource_version = rv;
        k
    }

    /// The labels of the master (`role`: `master`) or a copy.
    fn managed_labels(&self, role: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (Self::KIND.label().to_owned(), self.name_any()),
            (LABEL_ROLE.to_owned(), role.to_owned()),
        ])
    }
}

impl KeyringResource for SecretKeyring {
    const KIND: Kind = Kind::Namespaced;

    fn common(&self) -> Common<'_> {
        let s = &self.spec;
        Common {
            secret_name: s.secret_name.as_deref(),
            rotation: s.rotation.as_ref(),
            retention: s.retention.as_ref(),
            import_from: s.import_from.as_ref(),
            backup: s.backup.as_ref(),
            deletion_policy: s.deletion_policy,
        }
    }

    fn targets(&self) -> Option<&Targets> {
        None
    }

    fn keyring_status(&self) -> Option<&KeyringStatus> {
        self.status.as_ref()
    }

    fn api(client: kube::Client, namespace: &str) -> kube::Api<Self> {
        kube::Api::namespaced(client, namespace)
    }
}

impl KeyringResource for ClusterSecretKeyring {
    const KIND: Kind = Kind::Cluster;

    fn common(&self) -> Common<'_> {
        let s = &self.spec;
        Common {
            secret_name: s.secret_name.as_deref(),
            rotation: s.rotation.as_ref(),
            retention: s.retention.as_ref(),
            import_from: s.import_from.as_ref(),
            backup: s.backup.as_ref(),
            deletion_policy: s.deletion_policy,
        }
    }

    fn targets(&self) -> Option<&Targets> {
        Some(&self.spec.targets)
    }

    fn keyring_status(&self) -> Option<&KeyringStatus> {
        self.status.as_ref()
    }

    fn api(client: kube::Client, _namespace: &str) -> kube::Api<Self> {
        kube::Api::all(client)
    }
}

/// The keyring a managed Secret belongs to, from its labels (the Secret's
/// namespace is the keyring's for the namespaced kind).
pub fn owner_of(namespace: &str, labels: &BTreeMap<String, String>) -> Option<Id> {
    if let Some(name) = labels.get(LABEL_CLUSTER_KEYRING) {
        return Some(Id { kind: Kind::Cluster, namespace: String::new(), name: name.clone() });
    }
    labels.get(LABEL_KEYRING).map(|name| Id {
        kind: Kind::Namespaced,
        namespace: namespace.to_owned(),
        name: name.clone(),
    })
}

/// Whether a Secret carries any `encstr.io/*` label (managed by encstr).
pub fn is_managed(labels: &BTreeMap<String, String>) -> bool {
    labels.keys().any(|k| k.starts_with(LABEL_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_map_back_to_their_keyring() {
        let ns = BTreeMap::from([(LABEL_KEYRING.to_owned(), "agents".to_owned())]);
        assert_eq!(
            owner_of("print", &ns),
            Some(Id { kind: Kind::Namespaced, namespace: "print".into(), name: "agents".into() })
        );
        let cl = BTreeMap::from([(LABEL_CLUSTER_KEYRING.to_owned(), "payments".to_owned())]);
        assert_eq!(owner_of("team-a", &cl).unwrap().to_string(), "ClusterSecretKeyring payments");
        assert!(owner_of("x", &BTreeMap::new()).is_none());
        assert!(is_managed(&BTreeMap::from([("encstr.io/role".to_owned(), "copy".to_owned())])));
        assert!(!is_managed(&BTreeMap::from([("app".to_owned(), "x".to_owned())])));
    }

    #[test]
    fn masters_live_where_the_kind_says() {
        let mut skr = SecretKeyring::new("agents", SecretKeyringSpec::default());
        skr.metadata.namespace = Some("print".into());
        assert_eq!(skr.master_namespace("encstr"), "print");
        assert_eq!(skr.secret_name(), "agents");
        let cskr = ClusterSecretKeyring::new(
            "payments",
            ClusterSecretKeyringSpec { secret_name: Some("p-keys".into()), ..Default::default() },
        );
        assert_eq!(cskr.master_namespace("encstr"), "encstr");
        assert_eq!(cskr.secret_name(), "p-keys");
        assert_eq!(cskr.managed_labels("copy")[LABEL_CLUSTER_KEYRING], "payments");
    }
}
