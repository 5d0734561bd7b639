//! Resource types the server knows: the built-ins (with the schemas that
//! drive pruning and list semantics, their printer columns and name rules),
//! those registered by CustomResourceDefinitions, and discovery documents.

use std::sync::Arc;

use serde_json::{Value, json};

use super::kinds;
use super::schema::Schema;
use super::strategy::Strategy;
use super::validation::NameRule;

/// A printer column (`additionalPrinterColumns` or a built-in's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Header.
    pub name: String,
    /// `string`, `integer`, `date`, ...
    pub type_: String,
    /// JSONPath into the object (or a built-in computation, `@...`).
    pub json_path: String,
    /// Priority (0: shown by default).
    pub priority: i64,
}

impl Column {
    fn new(name: &str, type_: &str, json_path: &str) -> Self {
        Column { name: name.into(), type_: type_.into(), json_path: json_path.into(), priority: 0 }
    }
}

/// One resource type (group, version, plural) and how it behaves.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group (`""` for the core group).
    pub group: String,
    /// Version (`v1`, `v1alpha1`, ...).
    pub version: String,
    /// Plural name used in paths.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Whether a `/status` subresource splits status from the rest.
    pub status: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Whether `metadata.generation` tracks spec changes.
    pub generation: bool,
    /// Where the objects are stored: `(group, plural)`. Several versions
    /// (and `events.k8s.io` events) share one store.
    pub storage: (String, String),
    /// How names are validated.
    pub names: NameRule,
    /// The schema (pruning, list semantics; validation for custom resources).
    pub schema: Arc<Schema>,
    /// Whether this is a custom resource (CRD-defined).
    pub custom: bool,
    /// Printer columns after NAME.
    pub columns: Vec<Column>,
    /// Verbs served (discovery and routing).
    pub verbs: &'static [&'static str],
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// The kind's behaviour (found once, when the type is made).
    pub strategy: &'static dyn Strategy,
}

const ALL_VERBS: &[&str] =
    &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const CREATE_ONLY: &[&str] = &["create"];

impl PartialEq for ResourceType {
    fn eq(&self, other: &Self) -> bool {
        (&self.group, &self.version, &self.plural) == (&other.group, &other.version, &other.plural)
    }
}

impl ResourceType {
    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        short: &[&str],
    ) -> Self {
        ResourceType {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            status: false,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            generation: false,
            storage: (group.into(), plural.into()),
            names: NameRule::Subdomain,
            schema: Arc::new(Schema::preserving()),
            custom: false,
            columns: vec![Column::new("Age", "date", ".metadata.creationTimestamp")],
            verbs: ALL_VERBS,
            categories: Vec::new(),
            strategy: kinds::lookup(group, plural),
        }
    }

    fn with_schema(mut self, schema: Value) -> Self {
        self.schema = Arc::new(Schema::parse(&schema));
        self
    }

    fn with_columns(mut self, cols: Vec<Column>) -> Self {
        self.columns = cols;
        self
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `plural` or `plural.group`, as in error messages.
    pub fn qualified(&self) -> String {
        super::errors::qualified(&self.plural, &self.group)
    }

    /// Whether objects of this type are created and never stored (reviews).
    pub fn is_review(&self) -> bool {
        self.verbs == CREATE_ONLY
    }
}

/// The schema of `metadata` (ObjectMeta).
fn object_meta() -> Value {
    let map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    json!({"type": "object", "properties": {
        "name": {"type": "string"}, "generateName": {"type": "string"}, "namespace": {"type": "string"},
        "selfLink": {"type": "string"}, "uid": {"type": "string"}, "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"}, "creationTimestamp": {"type": "string"},
        "deletionTimestamp": {"type": "string"}, "deletionGracePeriodSeconds": {"type": "integer"},
        "labels": map, "annotations": map,
        "ownerReferences": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"],
            "items": {"type": "object", "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"},
                "uid": {"type": "string"}, "controller": {"type": "boolean"}, "blockOwnerDeletion": {"type": "boolean"}}}},
        "finalizers": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
    }})
}

/// A top-level object schema: apiVersion, kind, metadata and `props`.
fn object(props: Value) -> Value {
    let mut p = props;
    p["apiVersion"] = json!({"type": "string"});
    p["kind"] = json!({"type": "string"});
    p["metadata"] = object_meta();
    json!({"type": "object", "properties": p})
}

fn preserve() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

fn conditions() -> Value {
    json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"type": {"type": "string"}}}})
}

fn map_list(keys: &[&str], item: Value) -> Value {
    json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": keys, "items": item})
}

/// A container: the fields the product uses, with their list semantics.
fn container() -> Value {
    json!({"type": "object", "properties": {
        "name": {"type": "string"}, "image": {"type": "string"}, "imagePullPolicy": {"type": "string"},
        "command": {"type": "array", "items": {"type": "string"}}, "args": {"type": "array", "items": {"type": "string"}},
        "workingDir": {"type": "string"}, "restartPolicy": {"type": "string"},
        "ports": map_list(&["containerPort", "protocol"], json!({"type": "object", "properties": {
            "name": {"type": "string"}, "containerPort": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"},
            "hostPort": {"type": "integer"}, "hostIP": {"type": "string"}}})),
        "env": map_list(&["name"], json!({"type": "object", "properties": {
            "name": {"type": "string"}, "value": {"type": "string"}, "valueFrom": preserve()}})),
        "envFrom": {"type": "array", "items": preserve()},
        "volumeMounts": map_list(&["mountPath"], json!({"type": "object", "properties": {
            "name": {"type": "string"}, "mountPath": {"type": "string"}, "readOnly": {"type": "boolean"},
            "subPath": {"type": "string"}, "subPathExpr": {"type": "string"}, "mountPropagation": {"type": "string"},
            "recursiveReadOnly": {"type": "string"}}})),
        "resources": preserve(), "securityContext": preserve(),
        "livenessProbe": preserve(), "readinessProbe": preserve(), "startupProbe": preserve(),
        "lifecycle": preserve(), "terminationMessagePath": {"type": "string"},
        "terminationMessagePolicy": {"type": "string"}, "stdin": {"type": "boolean"}, "tty": {"type": "boolean"},
        "volumeDevices": {"type": "array", "items": preserve()}, "resizePolicy": {"type": "array", "items": preserve()}
    }})
}

/// A pod spec: the fields the product uses, with their list semantics.
fn pod_spec() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
        "containers": map_list(&["name"], container()),
        "initContainers": map_list(&["name"], container()),
        "ephemeralContainers": map_list(&["name"], container()),
        "volumes": map_list(&["name"], json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"name": {"type": "string"}}})),
        "imagePullSecrets": map_list(&["name"], json!({"type": "object", "properties": {"name": {"type": "string"}}})),
        "tolerations": {"type": "array", "items": preserve()},
        "shareProcessNamespace": {"type": "boolean"}, "automountServiceAccountToken": {"type": "boolean"},
        "serviceAccountName": {"type": "string"}, "securityContext": preserve()
    }})
}

fn policy_rules() -> Value {
    json!({"type": "array", "items": {"type": "object", "properties": {
        "verbs": {"type": "array", "items": {"type": "string"}}, "apiGroups": {"type": "array", "items": {"type": "string"}},
        "resources": {"type": "array", "items": {"type": "string"}}, "resourceNames": {"type": "array", "items": {"type": "string"}},
        "nonResourceURLs": {"type": "array", "items": {"type": "string"}}}}})
}

fn webhooks(mutating: bool) -> Value {
    let mut item = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "clientConfig": {"type": "object", "properties": {
            "url": {"type": "string"}, "caBundle": {"type": "string", "format": "byte"},
            "service": {"type": "object", "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "path": {"type": "string"}, "port": {"type": "integer"}}}}},
        "rules": {"type": "array", "items": {"type": "object", "properties": {
            "operations": {"type": "array", "items": {"type": "string"}}, "apiGroups": {"type": "array", "items": {"type": "string"}},
            "apiVersions": {"type": "array", "items": {"type": "string"}}, "resources": {"type": "array", "items": {"type": "string"}},
            "scope": {"type": "string"}}}},
        "failurePolicy": {"type": "string"}, "matchPolicy": {"type": "string"},
        "namespaceSelector": preserve(), "objectSelector": preserve(), "sideEffects": {"type": "string"},
        "timeoutSeconds": {"type": "integer"}, "admissionReviewVersions": {"type": "array", "items": {"type": "string"}},
        "matchConditions": {"type": "array", "items": preserve()}
    }});
    if mutating {
        item["properties"]["reinvocationPolicy"] = json!({"type": "string"});
    }
    map_list(&["name"], item)
}

/// The core v1 Event schema (events.k8s.io/v1 events are stored in it).
fn event_schema() -> Value {
    let obj_ref = json!({"type": "object", "properties": {
        "kind": {"type": "string"}, "namespace": {"type": "string"}, "name": {"type": "string"}, "uid": {"type": "string"},
        "apiVersion": {"type": "string"}, "resourceVersion": {"type": "string"}, "fieldPath": {"type": "string"}}});
    object(json!({
        "involvedObject": obj_ref, "related": obj_ref, "reason": {"type": "string"}, "message": {"type": "string"},
        "source": {"type": "object", "properties": {"component": {"type": "string"}, "host": {"type": "string"}}},
        "firstTimestamp": {"type": "string"}, "lastTimestamp": {"type": "string"}, "count": {"type": "integer"},
        "type": {"type": "string"}, "eventTime": {"type": "string"},
        "series": {"type": "object", "properties": {"count": {"type": "integer"}, "lastObservedTime": {"type": "string"}}},
        "action": {"type": "string"}, "reportingComponent": {"type": "string"}, "reportingInstance": {"type": "string"}
    }))
}

/// The `events.k8s.io/v1` Event schema (the served form of core events).
fn events_v1_schema() -> Value {
    let obj_ref = json!({"type": "object", "properties": {
        "kind": {"type": "string"}, "namespace": {"type": "string"}, "name": {"type": "string"}, "uid": {"type": "string"},
        "apiVersion": {"type": "string"}, "resourceVersion": {"type": "string"}, "fieldPath": {"type": "string"}}});
    object(json!({
        "regarding": obj_ref, "related": obj_ref, "reason": {"type": "string"}, "note": {"type": "string"},
        "deprecatedSource": {"type": "object", "properties": {"component": {"type": "string"}, "host": {"type": "string"}}},
        "deprecatedFirstTimestamp": {"type": "string"}, "deprecatedLastTimestamp": {"type": "string"},
        "deprecatedCount": {"type": "integer"}, "type": {"type": "string"}, "eventTime": {"type": "string"},
        "series": {"type": "object", "properties": {"count": {"type": "integer"}, "lastObservedTime": {"type": "string"}}},
        "action": {"type": "string"}, "reportingController": {"type": "string"}, "reportingInstance": {"type": "string"}
    }))
}

/// The built-in types.
pub fn builtins() -> Vec<ResourceType> {
    let rb = "rbac.authorization.k8s.io";
    let mut crd = ResourceType::builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
    )
    .with_schema(object(json!({"spec": preserve(), "status": preserve()})))
    .with_columns(vec![Column::new("Created At", "date", ".metadata.creationTimestamp")]);
    crd.status = true;
    crd.generation = true;
    let mut ns = ResourceType::builtin("", "v1", "namespaces", "Namespace", false, &["ns"])
        .with_schema(object(json!({
            "spec": {"type": "object", "properties": {"finalizers": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}},
            "status": {"type": "object", "properties": {"phase": {"type": "string"}, "conditions": conditions()}}
        })))
        .with_columns(vec![Column::new("Status", "string", ".status.phase"), Column::new("Age", "date", ".metadata.creationTimestamp")]);
    ns.status = true;
    ns.names = NameRule::Label;
    let mut deployments = ResourceType::builtin("apps", "v1", "deployments", "Deployment", true, &["deploy"])
        .with_schema(object(json!({
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
                "template": {"type": "object", "properties": {"metadata": object_meta(), "spec": pod_spec()}}}},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"conditions": conditions()}}
        })))
        .with_columns(vec![
            Column::new("Ready", "string", "@ready"),
            Column::new("Up-to-date", "integer", ".status.updatedReplicas"),
            Column::new("Available", "integer", ".status.availableReplicas"),
            Column::new("Age", "date", ".metadata.creationTimestamp"),
        ]);
    deployments.status = true;
    deployments.generation = true;
    deployments.categories = vec!["all".into()];
    let mut services = ResourceType::builtin("", "v1", "services", "Service", true, &["svc"])
        .with_schema(object(
            json!({"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
            "ports": map_list(&["port", "protocol"], preserve())}}, "status": preserve()}),
        ))
        .with_columns(vec![
            Column::new("Type", "string", ".spec.type"),
            Column::new("Cluster-IP", "string", ".spec.clusterIP"),
            Column::new("Age", "date", ".metadata.creationTimestamp"),
        ]);
    services.status = true;
    services.categories = vec!["all".into()];
    let mut pods = ResourceType::builtin("", "v1", "pods", "Pod", true, &["po"])
        .with_schema(object(json!({"spec": pod_spec(), "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"conditions": conditions()}}})))
        .with_columns(vec![
            Column::new("Ready", "string", "@ready"),
            Column::new("Status", "string", ".status.phase"),
            Column::new("Restarts", "integer", "@restarts"),
            Column::new("Age", "date", ".metadata.creationTimestamp"),
        ]);
    pods.status = true;
    pods.categories = vec!["all".into()];
    let created_at = || vec![Column::new("Created At", "date", ".metadata.creationTimestamp")];
    let role_ref = json!({"type": "object", "properties": {"apiGroup": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"}}});
    let subjects = json!({"type": "array", "items": {"type": "object", "properties": {
        "kind": {"type": "string"}, "apiGroup": {"type": "string"}, "name": {"type": "string"}, "namespace": {"type": "string"}}}});
    let mut cluster_roles = ResourceType::builtin(rb, "v1", "clusterroles", "ClusterRole", false, &[])
        .with_schema(object(
            json!({"rules": policy_rules(), "aggregationRule": {"type": "object", "properties": {
            "clusterRoleSelectors": {"type": "array", "items": preserve()}}}}),
        ))
        .with_columns(created_at());
    cluster_roles.names = NameRule::PathSegment;
    let mut roles = ResourceType::builtin(rb, "v1", "roles", "Role", true, &[])
        .with_schema(object(json!({"rules": policy_rules()})))
        .with_columns(created_at());
    roles.names = NameRule::PathSegment;
    let mut crbs = ResourceType::builtin(rb, "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[])
        .with_schema(object(json!({"subjects": subjects, "roleRef": role_ref})))
        .with_columns(vec![
            Column::new("Role", "string", "@roleRef"),
            Column::new("Age", "date", ".metadata.creationTimestamp"),
        ]);
    crbs.names = NameRule::PathSegment;
    let mut rbs = ResourceType::builtin(rb, "v1", "rolebindings", "RoleBinding", true, &[])
        .with_schema(object(json!({"subjects": subjects, "roleRef": role_ref})))
        .with_columns(vec![
            Column::new("Role", "string", "@roleRef"),
            Column::new("Age", "date", ".metadata.creationTimestamp"),
        ]);
    rbs.names = NameRule::PathSegment;
    let mut core_events = ResourceType::builtin("", "v1", "events", "Event", true, &["ev"])
        .with_schema(event_schema())
        .with_columns(vec![
            Column::new("Last Seen", "string", "@lastSeen"),
            Column::new("Type", "string", ".type"),
            Column::new("Reason", "string", ".reason"),
            Column::new("Object", "string", "@involvedObject"),
            Column { priority: 1, ..Column::new("Subobject", "string", ".involvedObject.fieldPath") },
            Column { priority: 1, ..Column::new("Source", "string", "@source") },
            Column::new("Message", "string", ".message"),
            Column { priority: 1, ..Column::new("First Seen", "string", "@firstSeen") },
            Column { priority: 1, ..Column::new("Count", "integer", "@count") },
            Column { priority: 1, ..Column::new("Name", "string", ".metadata.name") },
        ]);
    core_events.names = NameRule::Any;
    let mut events = ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"])
        .with_schema(events_v1_schema())
        .with_columns(core_events.columns.clone());
    events.storage = (String::new(), "events".into());
    events.names = NameRule::Any;
    let sa_token =
        ResourceType::builtin("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", false, &[]);
    let mut ssar = ResourceType::builtin(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
        &[],
    );
    ssar.verbs = CREATE_ONLY;
    let mut sar = ResourceType::builtin(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        false,
        &[],
    );
    sar.verbs = CREATE_ONLY;
    let mut lsar = ResourceType::builtin(
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        true,
        &[],
    );
    lsar.verbs = CREATE_ONLY;
    let mut ssrr = ResourceType::builtin(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        false,
        &[],
    );
    ssrr.verbs = CREATE_ONLY;
    let mut ssr = ResourceType::builtin(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        false,
        &[],
    );
    ssr.verbs = CREATE_ONLY;
    let mut token_review = sa_token;
    token_review.verbs = CREATE_ONLY;
    let mut sa = ResourceType::builtin("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"])
        .with_schema(object(json!({
            "secrets": map_list(&["name"], preserve()),
            "imagePullSecrets": map_list(&["name"], json!({"type": "object", "properties": {"name": {"type": "string"}}})),
            "automountServiceAccountToken": {"type": "boolean"}
        })));
    sa.columns = vec![Column::new("Age", "date", ".metadata.creationTimestamp")];
    vec![
        ns,
        pods,
        deployments,
        services,
        cluster_roles,
        crbs,
        roles,
        rbs,
        ResourceType::builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"])
            .with_schema(object(json!({"spec": preserve(), "status": preserve()}))),
        ResourceType::builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, &["netpol"])
            .with_schema(object(json!({"spec": preserve()}))),
        ResourceType::builtin("", "v1", "secrets", "Secret", true, &[])
            .with_schema(object(json!({"data": string_map(), "stringData": string_map(), "type": {"type": "string"}, "immutable": {"type": "boolean"}})))
            .with_columns(vec![
                Column::new("Type", "string", ".type"),
                Column::new("Data", "integer", "@data"),
                Column::new("Age", "date", ".metadata.creationTimestamp"),
            ]),
        ResourceType::builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"])
            .with_schema(object(json!({"data": string_map(), "binaryData": string_map(), "immutable": {"type": "boolean"}})))
            .with_columns(vec![Column::new("Data", "integer", "@data"), Column::new("Age", "date", ".metadata.creationTimestamp")]),
        core_events,
        sa,
        events,
        ResourceType::builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[])
            .with_schema(object(json!({"spec": {"type": "object", "properties": {
                "holderIdentity": {"type": "string"}, "leaseDurationSeconds": {"type": "integer"},
                "acquireTime": {"type": "string"}, "renewTime": {"type": "string"}, "leaseTransitions": {"type": "integer"},
                "strategy": {"type": "string"}, "preferredHolder": {"type": "string"}}}})))
            .with_columns(vec![Column::new("Holder", "string", ".spec.holderIdentity"), Column::new("Age", "date", ".metadata.creationTimestamp")]),
        ResourceType::builtin("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", false, &[])
            .with_schema(object(json!({"webhooks": webhooks(true)})))
            .with_columns(vec![Column::new("Webhooks", "integer", "@webhooks"), Column::new("Age", "date", ".metadata.creationTimestamp")]),
        ResourceType::builtin("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", false, &[])
            .with_schema(object(json!({"webhooks": webhooks(false)})))
            .with_columns(vec![Column::new("Webhooks", "integer", "@webhooks"), Column::new("Age", "date", ".metadata.creationTimestamp")]),
        ssar,
        ssrr,
        sar,
        lsar,
        ssr,
        token_review,
        crd,
    ]
}

/// The types a CRD object defines (one per served version).
pub fn from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let kind = s(&names["kind"]);
    let group = s(&spec["group"]);
    let plural = s(&names["plural"]);
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .map(|v| {
            let mut schema_json = v["schema"]["openAPIV3Schema"].clone();
            if schema_json.is_null() {
                schema_json = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
            }
            // The root keeps apiVersion/kind; metadata is ObjectMeta (rules
            // there may only see name and generateName).
            schema_json["properties"]["metadata"] = object_meta();
            let columns = v["additionalPrinterColumns"]
                .as_array()
                .map(|cols| {
                    cols.iter()
                        .map(|c| Column {
                            name: s(&c["name"]),
                            type_: s(&c["type"]),
                            json_path: s(&c["jsonPath"]),
                            priority: c["priority"].as_i64().unwrap_or(0),
                        })
                        .collect()
                })
                .unwrap_or_else(|| vec![Column::new("Age", "date", ".metadata.creationTimestamp")]);
            ResourceType {
                group: group.clone(),
                version: s(&v["name"]),
                plural: plural.clone(),
                singular: names["singular"].as_str().map_or_else(|| kind.to_lowercase(), str::to_owned),
                kind: kind.clone(),
                namespaced: spec["scope"].as_str() != Some("Cluster"),
                status: v["subresources"]["status"].is_object(),
                short_names: names["shortNames"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default(),
                generation: true,
                storage: (group.clone(), plural.clone()),
                names: NameRule::Subdomain,
                schema: Arc::new(Schema::parse(&schema_json)),
                custom: true,
                columns,
                verbs: ALL_VERBS,
                categories: names["categories"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default(),
                strategy: kinds::custom(),
            }
        })
        .collect()
}

/// `APIResourceList` for one group/version.
pub fn resource_list(types: &[Arc<ResourceType>], group: &str, version: &str) -> Option<Value> {
    let matching: Vec<&Arc<ResourceType>> =
        types.iter().filter(|t| t.group == group && t.version == version).collect();
    if matching.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in &matching {
        let mut r = json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
            "verbs": t.verbs, "shortNames": t.short_names,
        });
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        if t.status {
            resources.push(json!({
                "name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced,
                "kind": t.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        resources.extend(t.strategy.discovery());
    }
    let gv = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

/// `APIGroupList` of every non-core group.
pub fn group_list(types: &[Arc<ResourceType>]) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, vs)) if !vs.contains(&t.version) => vs.push(t.version.clone()),
            Some(_) => {}
            None => groups.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> =
                vs.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions[0].clone()})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The OpenAPI v3 discovery root: one entry per group/version.
pub fn openapi_root(types: &[Arc<ResourceType>]) -> Value {
    let mut paths = serde_json::Map::new();
    for t in types {
        let gv = if t.group.is_empty() {
            format!("api/{}", t.version)
        } else {
            format!("apis/{}/{}", t.group, t.version)
        };
        paths.insert(gv.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{gv}")}));
    }
    json!({"paths": paths})
}

/// A minimal OpenAPI v3 document for one group/version: enough for kubectl
/// to see that PATCH accepts `fieldValidation` (so it validates on the
/// server instead of downloading schemas). Schemas are not served.
pub fn openapi_gv(types: &[Arc<ResourceType>], group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for t in types.iter().filter(|t| t.group == group && t.version == version) {
        let prefix =
            if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
        let path = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{prefix}/{}/{{name}}", t.plural)
        };
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let params = json!([
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
        ]);
        let op = json!({"x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {"200": {"description": "OK"}}});
        paths.insert(path, json!({"get": op.clone(), "put": op.clone(), "patch": op.clone(), "delete": op}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes (encstr test server)", "version": "v1.35.0"}, "paths": paths}),
    )
}
