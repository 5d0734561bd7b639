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
    /// A column of priority 0.
    pub fn new(name: &str, type_: &str, json_path: &str) -> Self {
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
/// The verbs of kinds created and never stored (reviews).
pub const CREATE_ONLY: &[&str] = &["create"];

impl PartialEq for ResourceType {
    fn eq(&self, other: &Self) -> bool {
        (&self.group, &self.version, &self.plural) == (&other.group, &other.version, &other.plural)
    }
}

impl ResourceType {
    /// A built-in type (its strategy is set by `kinds::BUILTINS`).
    pub fn builtin(
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
            strategy: &kinds::Plain,
        }
    }

    /// With this schema.
    pub fn with_schema(mut self, schema: Value) -> Self {
        self.schema = Arc::new(Schema::parse(&schema));
        self
    }

    /// With these printer columns.
    pub fn with_columns(mut self, cols: Vec<Column>) -> Self {
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
pub fn object_meta() -> Value {
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
pub fn object(props: Value) -> Value {
    let mut p = props;
    p["apiVersion"] = json!({"type": "string"});
    p["kind"] = json!({"type": "string"});
    p["metadata"] = object_meta();
    json!({"type": "object", "properties": p})
}

pub fn preserve() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

pub fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

pub fn conditions() -> Value {
    json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"type": {"type": "string"}}}})
}

pub fn map_list(keys: &[&str], item: Value) -> Value {
    json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": keys, "items": item})
}

/// The built-in types, in discovery order (see `kinds::BUILTINS`).
pub fn builtins() -> Vec<ResourceType> {
    kinds::BUILTINS.iter().map(|(make, strategy)| ResourceType { strategy: *strategy, ..make() }).collect()
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
