//! The `SecretKeyring` custom resource (encstr.io/v1alpha1) and the names the
//! operator uses: labels, annotations, condition types, finalizer.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group.
pub const GROUP: &str = "encstr.io";
/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "encstr-operator";
/// Finalizer that makes `deletionPolicy` run once.
pub const FINALIZER: &str = "encstr.io/cleanup";
/// Label on the master and every copy: `<namespace>.<name>` of the SecretKeyring.
pub const LABEL_KEYRING: &str = "encstr.io/keyring";
/// Label value distinguishing the master Secret from copies.
pub const LABEL_ROLE: &str = "encstr.io/role";
/// Annotation on the master and copies: key ids, primary last.
pub const ANN_KEY_IDS: &str = "encstr.io/key-ids";
/// Annotation a user sets (to a new value) to request a rotation.
pub const ANN_ROTATE: &str = "encstr.io/rotate";
/// Master annotation: the last `encstr.io/rotate` value handled.
pub const ANN_ROTATE_HANDLED: &str = "encstr.io/rotate-handled";
/// Master annotation: the staged key, if any.
pub const ANN_STAGED: &str = "encstr.io/staged-key";
/// Master annotation: when every copy first held the staged key.
pub const ANN_STAGED_DISTRIBUTED: &str = "encstr.io/staged-distributed-at";
/// Master annotation: `id=time` of each key's creation.
pub const ANN_CREATED: &str = "encstr.io/key-created";
/// Master annotation: when the primary was promoted.
pub const ANN_PROMOTED: &str = "encstr.io/primary-promoted-at";
/// Master annotation: when the last rotation started.
pub const ANN_LAST_ROTATION: &str = "encstr.io/last-rotation";
/// Data key of the keyring text in every Secret.
pub const DATA_KEY: &str = "keyring";

/// Condition types.
pub mod condition {
    /// All below healthy.
    pub const READY: &str = "Ready";
    /// Every target holds a copy identical to the master.
    pub const DISTRIBUTED: &str = "KeyringDistributed";
    /// A staged key waits for distribution / promotionDelay.
    pub const ROTATING: &str = "RotationInProgress";
    /// Retention wants to remove a key that is still referenced.
    pub const PRUNE_BLOCKED: &str = "PruneBlocked";
}

/// A Go-style duration such as `2160h`, `2m` or `1h30m`.
const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";
/// A namespace name (DNS label).
const NAMESPACE_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A Secret name (DNS subdomain).
const SECRET_NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A keyring distributed to namespaces, rotated in stages and pruned safely.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "encstr.io",
    version = "v1alpha1",
    kind = "SecretKeyring",
    plural = "secretkeyrings",
    shortname = "skr",
    namespaced,
    status = "SecretKeyringStatus",
    printcolumn = r#"{"name":"Primary","type":"string","jsonPath":".status.primaryKeyId"}"#,
    printcolumn = r#"{"name":"Keys","type":"integer","jsonPath":".status.keyCount"}"#,
    printcolumn = r#"{"name":"Targets","type":"string","jsonPath":".status.syncedTargets"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyringSpec {
    /// The Secret holding the keyring (data key `keyring`) in every target;
    /// default: the SecretKeyring's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), pattern(SECRET_NAME_PATTERN))]
    pub secret_name: Option<String>,
    /// Where identical copies go; the own namespace always holds the master.
    #[serde(default)]
    pub targets: Targets,
    /// Automatic rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// How many keys to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Adopt an existing keyring instead of generating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_from: Option<ImportFrom>,
    /// What happens to the copies (and the master) when the SecretKeyring is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Target namespaces: the list and the selector's matches, together.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Targets {
    /// Namespaces by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(max = 63), pattern(NAMESPACE_PATTERN)))]
    pub namespaces: Vec<String>,
    /// Namespaces by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

/// Rotation settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Rotate when the primary key is older than this (e.g. `2160h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub every: Option<String>,
    /// Wait this long after every copy holds the staged key before promoting
    /// it (default `2m`; kubelet needs time to refresh mounted Secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub promotion_delay: Option<String>,
}

/// Retention settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Keep at most this many keys; the oldest unused decrypt-only keys go first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_keys: Option<u32>,
}

/// Import source.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportFrom {
    /// A key of a Secret in the SecretKeyring's own namespace.
    pub secret_ref: SecretKeyRef,
}

/// A key of a Secret.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_NAME_PATTERN))]
    pub name: String,
    /// Data key (default `keyring`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// What deletion does to the Secrets.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave the master and the copies, no longer managed.
    #[default]
    Retain,
    /// Delete the copies and the master.
    Delete,
}

/// Observed state.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyringStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Id of the key that encrypts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key_id: Option<String>,
    /// Number of keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_count: Option<u32>,
    /// The keys (ids and lifecycle only, never key material), oldest first.
    #[serde(default)]
    pub keys: Vec<KeyStatus>,
    /// One entry per target namespace.
    #[serde(default)]
    pub targets: Vec<TargetStatus>,
    /// `synced/total` targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_targets: Option<String>,
    /// When the last rotation started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<String>,
    /// Standard conditions.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// Lifecycle state of a key.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum KeyState {
    /// Distributed, not yet encrypting.
    Staged,
    /// Encrypts.
    Primary,
    /// Only decrypts.
    DecryptOnly,
}

impl KeyState {
    /// The state as shown in status and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Staged => "Staged",
            KeyState::Primary => "Primary",
            KeyState::DecryptOnly => "DecryptOnly",
        }
    }
}

/// One key in status.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    /// Key id (8 hex digits).
    pub id: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// When it was generated (or imported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When it became primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<String>,
    /// Tokens carrying this id in ConfigMaps of the targets (when counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use: Option<u32>,
}

/// One target in status.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// Namespace.
    pub namespace: String,
    /// Whether it holds a copy identical to the master.
    pub synced: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A `metav1.Condition`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable details.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed.
    pub last_transition_time: String,
    /// Generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl SecretKeyring {
    /// The Secret name (default: the resource's name).
    pub fn secret_name(&self) -> String {
        self.spec.secret_name.clone().unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }

    /// The value of the `encstr.io/keyring` label: `<namespace>.<name>`.
    pub fn label_value(&self) -> String {
        format!(
            "{}.{}",
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }
}

/// The CRD as YAML (what `encstr-operator crd` prints).
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt as _;
    let crd = SecretKeyring::crd();
    let value = serde_json::to_value(&crd).expect("the CRD serializes");
    let body = serde_saphyr::to_string(&value).expect("YAML");
    format!("# Generated by `encstr-operator crd` from operator/src/crd.rs. Do not edit.\n---\n{body}")
}
