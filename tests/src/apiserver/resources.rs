//! Resource types the server knows: the built-ins, and those registered by
//! CustomResourceDefinitions. Also the discovery documents.

use serde_json::{Value, json};

/// One resource type (group, version, plural) and how it behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        }
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `plural` or `plural.group`, as in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// Identity of the stored objects: the same objects are served by every
    /// version of a group/plural.
    pub fn storage_key(&self) -> (String, String) {
        (self.group.clone(), self.plural.clone())
    }

    /// Whether this is the CustomResourceDefinition type.
    pub fn is_crd(&self) -> bool {
        self.group == "apiextensions.k8s.io" && self.plural == "customresourcedefinitions"
    }
}

/// The built-in types.
pub fn builtins() -> Vec<ResourceType> {
    let mut crd = ResourceType::builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
    );
    crd.status = true;
    crd.generation = true;
    let mut ns = ResourceType::builtin("", "v1", "namespaces", "Namespace", false, &["ns"]);
    ns.status = true;
    // Stored and served like any object (no controllers run them): enough
    // for Helm to install charts.
    let mut deployments = ResourceType::builtin("apps", "v1", "deployments", "Deployment", true, &["deploy"]);
    deployments.status = true;
    deployments.generation = true;
    let mut services = ResourceType::builtin("", "v1", "services", "Service", true, &["svc"]);
    services.status = true;
    vec![
        ns,
        deployments,
        services,
        ResourceType::builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[]),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
        ),
        ResourceType::builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[]),
        ResourceType::builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[]),
        ResourceType::builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"]),
        ResourceType::builtin(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            true,
            &["netpol"],
        ),
        ResourceType::builtin("", "v1", "secrets", "Secret", true, &[]),
        ResourceType::builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
        ResourceType::builtin("", "v1", "events", "Event", true, &["ev"]),
        ResourceType::builtin("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
        ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"]),
        ResourceType::builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
        crd,
    ]
}

/// The types a CRD object defines (one per served version).
pub fn from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let kind = s(&names["kind"]);
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .map(|v| ResourceType {
            group: s(&spec["group"]),
            version: s(&v["name"]),
            plural: s(&names["plural"]),
            singular: names["singular"].as_str().map_or_else(|| kind.to_lowercase(), str::to_owned),
            kind: kind.clone(),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            status: v["subresources"]["status"].is_object(),
            short_names: names["shortNames"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            generation: true,
        })
        .collect()
}

/// `APIResourceList` for one group/version.
pub fn resource_list(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let matching: Vec<&ResourceType> =
        types.iter().filter(|t| t.group == group && t.version == version).collect();
    if matching.is_empty() {
        return None;
    }
    let verbs = json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]);
    let mut resources = Vec::new();
    for t in &matching {
        resources.push(json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
            "verbs": verbs, "shortNames": t.short_names,
        }));
        if t.status {
            resources.push(json!({
                "name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced,
                "kind": t.kind, "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

/// `APIGroupList` of every non-core group.
pub fn group_list(types: &[ResourceType]) -> Value {
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
pub fn openapi_root(types: &[ResourceType]) -> Value {
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
pub fn openapi_gv(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
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
        ]);
        let op = json!({"x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {"200": {"description": "OK"}}});
        paths.insert(path, json!({"get": op.clone(), "put": op.clone(), "patch": op.clone(), "delete": op}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes (encstr test server)", "version": "v1.33.0"}, "paths": paths}),
    )
}
