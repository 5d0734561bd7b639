//! The custom resources (encstr.io/v1alpha1): `SecretKeyring`
//! (namespace-local) and `ClusterSecretKeyring` (cluster-scoped, fanned out
//! to target namespaces), and the names the operator uses: labels,
//! annotations, condition types, finalizer.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
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
/// Label on a SecretKeyring's master: the SecretKeyring's name.
pub const LABEL_KEYRING: &str = "encstr.io/keyring";
/// Label on a ClusterSecretKeyring's master and copies: its name.
pub const LABEL_CLUSTER_KEYRING: &str = "encstr.io/cluster-keyring";
/// `master`, `copy` or `recipient`.
pub const LABEL_ROLE: &str = "encstr.io/role";
/// The role of the ConfigMaps publishing a keyring's recipient.
pub const ROLE_RECIPIENT: &str = "recipient";
/// The data key of the recipient in those ConfigMaps.
pub const RECIPIENT_KEY: &str = "recipient";
/// The suffix of their name: `<secretName>-recipient`.
pub const RECIPIENT_SUFFIX: &str = "-recipient";
/// Labels every encstr-managed Secret may carry (an import never reads one).
pub const LABEL_PREFIX: &str = "encstr.io/";
/// Annotation on the master and copies: key ids, primary last.
pub const ANN_KEY_IDS: &str = "encstr.io/key-ids";
/// Annotation a user sets (to a new value) to request a rotation.
pub const ANN_ROTATE: &str = "encstr.io/rotate";
/// Annotation a user sets to rebuild a missing master from the copy in a
/// namespace.
pub const ANN_RESTORE_FROM: &str = "encstr.io/restore-from";
/// Annotation a user sets to acknowledge keys missing from the master.
pub const ANN_ACCEPT_MISSING: &str = "encstr.io/accept-missing-keys";
/// Annotation a user sets to let a new keyring be generated although its
/// backup destinations hold backups (of a keyring of that name that is
/// gone); removed once the keyring is generated.
pub const ANN_IGNORE_EXISTING_BACKUPS: &str = "encstr.io/ignore-existing-backups";
/// Master annotation: the last `encstr.io/rotate` value handled.
pub const ANN_ROTATE_HANDLED: &str = "encstr.io/rotate-handled";
/// Master annotation: the staged key, if any.
pub const ANN_STAGED: &str = "encstr.io/staged-key";
/// Master annotation: when every copy first held the staged key.
pub const ANN_STAGED_DISTRIBUTED: &str = "encstr.io/staged-distributed-at";
/// Master annotation: `id=time` of each key's creation.
pub const ANN_CREATED: &str = "encstr.io/key-created";
/// Master annotation: `id=time` of each key's promotion to primary.
pub const ANN_PROMOTED: &str = "encstr.io/key-promoted";
/// Master annotation: `id=time` of each key's retirement (decrypt-only).
pub const ANN_RETIRED: &str = "encstr.io/key-retired";
/// Master annotation: keys the operator pruned itself (most recent last).
pub const ANN_PRUNED: &str = "encstr.io/pruned-keys";
/// Master annotation: when the last rotation started.
pub const ANN_LAST_ROTATION: &str = "encstr.io/last-rotation";
/// Master annotation: when each key retention wants gone was last seen in
/// use (`id=time,...`); such a key is pruned only after a quiet period.
pub const ANN_LAST_USED: &str = "encstr.io/key-last-used";
/// Master annotation: keys read from `spec.importFrom` (`id,...`): their
/// tokens may live outside the cluster, so retention never removes them
/// without `spec.retention.pruneImported`.
pub const ANN_IMPORTED: &str = "encstr.io/imported-keys";
/// Data key of the keyring text in every Secret.
pub const DATA_KEY: &str = "keyring";
/// Names are label values: at most 63 characters.
pub const MAX_NAME: usize = 63;

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
    /// The newest backup holds exactly the master's keys (in order).
    pub const BACKUP_CURRENT: &str = "BackupCurrent";
}

/// A Go-style duration such as `2160h`, `2m` or `1h30m`.
const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";
/// A namespace name (DNS label).
const NAMESPACE_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// An object store URL.
const OBJECT_STORE_URL_PATTERN: &str = r"^(s3|s3a|gs|az|azure|abfs|abfss)://[^/\s]+(/\S*)?$";
/// A Secret name (DNS subdomain).
const SECRET_NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// The CEL rule keeping `spec.secretName` as it was created (set or not).
const SECRET_NAME_IMMUTABLE: &str = r#"[{"rule": "has(self.secretName) == has(oldSelf.secretName) && (!has(self.secretName) || self.secretName == oldSelf.secretName)", "message": "spec.secretName is immutable: the master and every copy keep the name they were created with", "fieldPath": ".secretName", "reason": "FieldValueForbidden"}]"#;

fn secret_name_immutable(schema: &mut schemars::Schema) {
    let rules: serde_json::Value = serde_json::from_str(SECRET_NAME_IMMUTABLE).expect("valid JSON");
    schema.insert("x-kubernetes-validations".into(), rules);
}

/// A keyring kept in one namespace, where the namespace's pods mount it.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "encstr.io",
    version = "v1alpha1",
    kind = "SecretKeyring",
    plural = "secretkeyrings",
    shortname = "skr",
    category = "encstr",
    namespaced,
    status = "KeyringStatus",
    printcolumn = r#"{"name":"Primary","type":"string","jsonPath":".status.primaryKeyId"}"#,
    printcolumn = r#"{"name":"Keys","type":"integer","jsonPath":".status.keyCount"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = secret_name_immutable)]
pub struct SecretKeyringSpec {
    /// The Secret holding the keyring (data key `keyring`); default: the
    /// resource's name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), pattern(SECRET_NAME_PATTERN))]
    pub secret_name: Option<String>,
    /// Automatic rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// How many keys to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Adopt an existing keyring (a Secret in this namespace) instead of
    /// generating one; read only when the master is first created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_from: Option<ImportFrom>,
    /// Back every keyring up, encrypted to offline age recipients, before
    /// it is written anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
    /// What happens to the master when the resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// A keyring kept in the cluster resource namespace and copied,
/// byte-identical, into target namespaces. For cluster administrators.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "encstr.io",
    version = "v1alpha1",
    kind = "ClusterSecretKeyring",
    plural = "clustersecretkeyrings",
    shortname = "cskr",
    category = "encstr",
    status = "KeyringStatus",
    printcolumn = r#"{"name":"Primary","type":"string","jsonPath":".status.primaryKeyId"}"#,
    printcolumn = r#"{"name":"Keys","type":"integer","jsonPath":".status.keyCount"}"#,
    printcolumn = r#"{"name":"Targets","type":"string","jsonPath":".status.syncedTargets"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = secret_name_immutable)]
pub struct ClusterSecretKeyringSpec {
    /// The name of the master and of every copy (data key `keyring`);
    /// default: the resource's name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), pattern(SECRET_NAME_PATTERN))]
    pub secret_name: Option<String>,
    /// Where identical copies go.
    #[serde(default)]
    pub targets: Targets,
    /// Automatic rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// How many keys to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Adopt an existing keyring (a Secret in the cluster resource
    /// namespace) instead of generating one; read only when the master is
    /// first created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_from: Option<ImportFrom>,
    /// Back every keyring up, encrypted to offline age recipients, before
    /// it is written anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
    /// What happens to the copies and the master when the resource is deleted.
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
    /// A former primary is kept at least this long (default `24h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub min_decrypt_only_age: Option<String>,
    /// Let retention remove imported keys too (default false: keys read
    /// from `importFrom` may protect tokens outside the cluster, which the
    /// usage count cannot see).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_imported: Option<bool>,
}

/// Import source.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportFrom {
    /// A key of a Secret in the master's namespace (never one carrying an
    /// `encstr.io/*` label).
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

/// The CEL rule: a backup goes somewhere.
const BACKUP_DESTINATION: &str = r#"[{"rule": "has(self.configMap) || has(self.objectStore)", "message": "spec.backup needs a destination: configMap, objectStore or both", "reason": "FieldValueRequired"}]"#;

fn backup_destination(schema: &mut schemars::Schema) {
    let rules: serde_json::Value = serde_json::from_str(BACKUP_DESTINATION).expect("valid JSON");
    schema.insert("x-kubernetes-validations".into(), rules);
}

/// Backups: the keyring encrypted to age recipients, written to a
/// ConfigMap, an object store or both.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = backup_destination)]
pub struct Backup {
    /// age recipients (`age1…`) or SSH public keys (`ssh-ed25519 …`,
    /// `ssh-rsa …`); their private identities stay offline.
    #[schemars(length(min = 1, max = 32), inner(length(min = 1, max = 16384)))]
    pub recipients: Vec<String>,
    /// A ConfigMap in the master's namespace, one entry per backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapRef>,
    /// Backups kept in the ConfigMap (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub keep: Option<u32>,
    /// An object store (S3-compatible, `gs://`, `az://`): new objects
    /// only, never overwritten or deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store: Option<ObjectStore>,
}

/// A ConfigMap by name.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapRef {
    /// ConfigMap name.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_NAME_PATTERN))]
    pub name: String,
}

/// An object store destination.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStore {
    /// `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`.
    #[schemars(length(min = 6, max = 1024), pattern(OBJECT_STORE_URL_PATTERN))]
    pub url: String,
    /// The endpoint of an S3-compatible store (`https://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), pattern(r"^https?://"))]
    pub endpoint: Option<String>,
    /// The region (S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub region: Option<String>,
    /// A Secret in the master's namespace with the credentials
    /// (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, or the provider's usual
    /// names); without it, the operator's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
}

/// A Secret by name.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_NAME_PATTERN))]
    pub name: String,
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

/// Observed state (both kinds).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyringStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The name the master was created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Id of the key that encrypts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key_id: Option<String>,
    /// The primary key's public recipient (`ENCSTR-RECIPIENT:…`, ENCSTR-v2
    /// §2): anyone may seal values to it, only holders of the keyring open
    /// them. Shown only once every copy holds that key. Never key material.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// Number of keys (for the printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_count: Option<u32>,
    /// Every key the master holds (ids and lifecycle, never key material),
    /// oldest first: the operator's record of every key it handed out.
    #[serde(default)]
    pub keys: Vec<KeyStatus>,
    /// Target namespaces (ClusterSecretKeyring): every one holding somebody
    /// else's Secret, the first 20 unsynced with their message, the others
    /// without one, unsynced first, up to 1,000 entries (the status stays
    /// far below etcd's object limit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetStatus>,
    /// `synced/total` targets, every target counted (ClusterSecretKeyring,
    /// for the printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_targets: Option<String>,
    /// The newest backup written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<LastBackup>,
    /// When the last rotation started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<String>,
    /// Standard conditions.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// The newest backup.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastBackup {
    /// When it was written (RFC 3339).
    pub time: String,
    /// The key ids it holds, oldest first, the primary last.
    pub key_ids: Vec<String>,
    /// Where: `configmap:<namespace>/<name>#<entry>` and/or the object URL.
    pub location: String,
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
    /// When it stopped being primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
    /// ENCSTR tokens carrying this id (when last counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use: Option<u32>,
    /// Read from `spec.importFrom` (not generated by the operator).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
    /// Why retention keeps this key although `maxKeys` wants it gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<Kept>,
}

/// Why retention keeps a key it would otherwise remove.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Kept {
    /// Tokens in the cluster carry its id (see the PruneBlocked condition).
    InUse,
    /// It was imported, and `spec.retention.pruneImported` is not set.
    Imported,
}

/// One target in status.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// Namespace.
    pub namespace: String,
    /// Whether it holds a copy identical to the master.
    pub synced: bool,
    /// Why not (CamelCase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Details.
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

/// The CEL rule on both kinds' root: names are label values.
const NAME_RULE: &str = r#"{"rule": "self.metadata.name.size() <= 63", "message": "the name is used as a label value and must be at most 63 characters", "reason": "FieldValueInvalid"}"#;

/// A CRD with the root rules kube's derive cannot express.
fn with_root_rules(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let rule: serde_json::Value = serde_json::from_str(NAME_RULE).expect("valid JSON");
    for v in &mut crd.spec.versions {
        if let Some(schema) = v.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            let rule = serde_json::from_value(rule.clone()).expect("a ValidationRule");
            schema.x_kubernetes_validations.get_or_insert_with(Vec::new).push(rule);
        }
    }
    crd
}

/// Both CRDs.
pub fn crds() -> [CustomResourceDefinition; 2] {
    use kube::CustomResourceExt as _;
    [with_root_rules(SecretKeyring::crd()), with_root_rules(ClusterSecretKeyring::crd())]
}

/// The CRDs as YAML (what `encstr-operator crd` prints).
pub fn crd_yaml() -> String {
    let mut out =
        String::from("# Generated by `encstr-operator crd` from operator/src/crd.rs. Do not edit.\n");
    for crd in crds() {
        let value = serde_json::to_value(&crd).expect("the CRD serializes");
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&value).expect("YAML"));
    }
    out
}

/// Format a time as Kubernetes does (RFC 3339, seconds, UTC), as the status
/// and annotations record times.
pub fn fmt_time(t: k8s_openapi::jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
