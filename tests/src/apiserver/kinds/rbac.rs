//! RBAC kinds: Roles and ClusterRoles (rules; escalation: `escalate` or
//! holding every rule; an `aggregationRule` needs cluster-admin;
//! ClusterRole aggregation after every change), RoleBindings and
//! ClusterRoleBindings (defaults, fixed `roleRef`; escalation: `bind` or
//! holding the role's rules), the bootstrap policy, and the policy the
//! authorizer reads from the store.

use serde_json::{Value, json};

use crate::apiserver::errors::{ApiError, ApiResult, FieldError};
pub use crate::apiserver::rbac::GROUP;
use crate::apiserver::rbac::{self, Attributes, Policy, ResourceAttributes};
use crate::apiserver::resources::ResourceType;
use crate::apiserver::resources::{self, Column};
use crate::apiserver::store::{ObjKey, Opts, Prepared, Store};
use crate::apiserver::strategy::Strategy;
use crate::apiserver::validation;
use crate::apiserver::validation::NameRule;

/// `rbac.authorization.k8s.io/v1` Role and (`cluster`) ClusterRole.
#[derive(Debug)]
pub struct Role {
    /// A ClusterRole (aggregated).
    pub cluster: bool,
}

/// `rbac.authorization.k8s.io/v1` RoleBinding and ClusterRoleBinding.
#[derive(Debug)]
pub struct Binding;

impl Strategy for Role {
    fn validate(&self, _t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        validation::role(obj)
    }

    fn check_escalation(&self, store: &Store, p: &Prepared) -> ApiResult<()> {
        let w = Writer::of(store, p);
        if w.user_is_exempt() || w.can("escalate", &p.t.plural, &p.key.name) {
            return Ok(());
        }
        let rules = p.obj["rules"].as_array().cloned().unwrap_or_default();
        w.holds(&rules)?;
        let aggregation =
            p.obj["aggregationRule"]["clusterRoleSelectors"].as_array().is_some_and(|a| !a.is_empty());
        let full = [json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})];
        if aggregation && !rbac::not_held(store, &p.opts.user, &p.key.namespace, &full).is_empty() {
            return Err(w.forbidden("must have cluster-admin privileges to use the aggregationRule"));
        }
        Ok(())
    }

    fn after_commit(&self, store: &mut Store, _obj: &Value) {
        if self.cluster {
            aggregate_cluster_roles(store);
        }
    }

    fn after_remove(&self, store: &mut Store, obj: &Value) {
        self.after_commit(store, obj);
    }
}

impl Strategy for Binding {
    fn defaults(&self, _t: &ResourceType, obj: &mut Value) {
        if obj["roleRef"].is_object() && obj["roleRef"]["apiGroup"].as_str().is_none_or(str::is_empty) {
            obj["roleRef"]["apiGroup"] = json!(GROUP);
        }
        for s in obj["subjects"].as_array_mut().into_iter().flatten() {
            if s["apiGroup"].as_str().is_none_or(str::is_empty)
                && matches!(s["kind"].as_str(), Some("User" | "Group"))
            {
                s["apiGroup"] = json!(GROUP);
            }
        }
    }

    fn validate(&self, t: &ResourceType, obj: &Value) -> Vec<FieldError> {
        validation::binding(&t.kind, obj, None)
    }

    fn validate_update(&self, t: &ResourceType, new: &Value, old: &Value) -> Vec<FieldError> {
        validation::binding(&t.kind, new, Some(old))
    }

    fn check_escalation(&self, store: &Store, p: &Prepared) -> ApiResult<()> {
        let w = Writer::of(store, p);
        if w.user_is_exempt() {
            return Ok(());
        }
        let role_ref = &p.obj["roleRef"];
        let kind = role_ref["kind"].as_str().unwrap_or_default();
        let role = role_ref["name"].as_str().unwrap_or_default();
        let resource = if kind == "ClusterRole" { "clusterroles" } else { "roles" };
        if w.can("bind", resource, role) {
            return Ok(());
        }
        let rules = match kind {
            "ClusterRole" => store.cluster_role(role),
            _ => store.role(&p.key.namespace, role),
        }
        .ok_or_else(|| ApiError::not_found(GROUP, resource, role))?["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        w.holds(&rules)
    }
}

/// The writer of an RBAC object, for the escalation checks.
struct Writer<'a> {
    store: &'a Store,
    p: &'a Prepared,
}

impl<'a> Writer<'a> {
    fn of(store: &'a Store, p: &'a Prepared) -> Self {
        Writer { store, p }
    }

    fn user_is_exempt(&self) -> bool {
        self.p.opts.user.is_master()
    }

    fn can(&self, verb: &str, resource: &str, name: &str) -> bool {
        rbac::allowed(
            self.store,
            &Attributes {
                user: self.p.opts.user.clone(),
                verb: verb.into(),
                resource: Some(ResourceAttributes {
                    group: GROUP.into(),
                    resource: resource.into(),
                    subresource: String::new(),
                    namespace: self.p.key.namespace.clone(),
                    name: name.into(),
                }),
                path: String::new(),
            },
        )
    }

    fn details(&self) -> Option<Value> {
        Some(json!({"name": self.p.key.name, "group": GROUP, "kind": self.p.t.plural}))
    }

    fn forbidden(&self, msg: &str) -> ApiError {
        let (plural, name) = (&self.p.t.plural, &self.p.key.name);
        ApiError::forbidden(format!("{plural}.{GROUP} {name:?} is forbidden: {msg}"), self.details())
    }

    /// Refused unless the writer holds every rule.
    fn holds(&self, rules: &[Value]) -> ApiResult<()> {
        let missing = rbac::not_held(self.store, &self.p.opts.user, &self.p.key.namespace, rules);
        if missing.is_empty() {
            return Ok(());
        }
        let msg = rbac::escalation_message(&self.p.t.plural, &self.p.key.name, &self.p.opts.user, &missing);
        Err(ApiError::forbidden(msg, self.details()))
    }
}

fn key(plural: &str, ns: &str, name: &str) -> ObjKey {
    ObjKey { group: GROUP.into(), plural: plural.into(), namespace: ns.into(), name: name.into() }
}

/// The bootstrap policy, aggregated.
pub fn bootstrap(store: &mut Store) {
    let (roles, bindings) = rbac::bootstrap();
    let cr = store.type_of(GROUP, "v1", "clusterroles").expect("builtin");
    for r in roles {
        store.system_create(&cr, "", r, Opts::system("kube-apiserver"));
    }
    let crb = store.type_of(GROUP, "v1", "clusterrolebindings").expect("builtin");
    for b in bindings {
        store.system_create(&crb, "", b, Opts::system("kube-apiserver"));
    }
    aggregate_cluster_roles(store);
    aggregate_cluster_roles(store);
}

/// ClusterRole aggregation (what the clusterrole-aggregation controller
/// does): each aggregated role's rules become the union of the roles its
/// selectors match.
pub fn aggregate_cluster_roles(store: &mut Store) {
    for _ in 0..3 {
        let all: Vec<Value> = store.stored(GROUP, "clusterroles", None).into_iter().map(|(_, v)| v).collect();
        let mut changed = false;
        for role in &all {
            let Some(rules) = rbac::aggregate(role, &all) else { continue };
            if role["rules"].as_array().is_some_and(|r| *r == rules)
                || (rules.is_empty() && role["rules"].is_null())
            {
                continue;
            }
            let mut new = role.clone();
            new["rules"] = json!(rules);
            store.system_write(
                &key("clusterroles", "", role["metadata"]["name"].as_str().unwrap_or_default()),
                new,
            );
            changed = true;
        }
        if !changed {
            break;
        }
    }
}

impl Policy for Store {
    fn cluster_role_bindings(&self) -> Vec<Value> {
        self.stored(GROUP, "clusterrolebindings", None).into_iter().map(|(_, v)| v).collect()
    }

    fn role_bindings(&self, ns: &str) -> Vec<Value> {
        self.stored(GROUP, "rolebindings", Some(ns)).into_iter().map(|(_, v)| v).collect()
    }

    fn cluster_role(&self, name: &str) -> Option<Value> {
        self.raw(&key("clusterroles", "", name)).cloned()
    }

    fn role(&self, ns: &str, name: &str) -> Option<Value> {
        self.raw(&key("roles", ns, name)).cloned()
    }
}

fn policy_rules() -> Value {
    json!({"type": "array", "items": {"type": "object", "properties": {
        "verbs": {"type": "array", "items": {"type": "string"}}, "apiGroups": {"type": "array", "items": {"type": "string"}},
        "resources": {"type": "array", "items": {"type": "string"}}, "resourceNames": {"type": "array", "items": {"type": "string"}},
        "nonResourceURLs": {"type": "array", "items": {"type": "string"}}}}})
}

fn created_at() -> Vec<Column> {
    vec![Column::new("Created At", "date", ".metadata.creationTimestamp")]
}

fn binding_schema() -> Value {
    let role_ref = json!({"type": "object", "properties": {"apiGroup": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"}}});
    let subjects = json!({"type": "array", "items": {"type": "object", "properties": {
        "kind": {"type": "string"}, "apiGroup": {"type": "string"}, "name": {"type": "string"}, "namespace": {"type": "string"}}}});
    resources::object(json!({"subjects": subjects, "roleRef": role_ref}))
}

fn path_segment_names(mut t: ResourceType) -> ResourceType {
    t.names = NameRule::PathSegment;
    t
}

/// The ClusterRole type.
pub fn cluster_roles() -> ResourceType {
    path_segment_names(
        ResourceType::builtin(GROUP, "v1", "clusterroles", "ClusterRole", false, &[])
            .with_schema(resources::object(
                json!({"rules": policy_rules(), "aggregationRule": {"type": "object", "properties": {
                "clusterRoleSelectors": {"type": "array", "items": resources::preserve()}}}}),
            ))
            .with_columns(created_at()),
    )
}

/// The Role type.
pub fn roles() -> ResourceType {
    path_segment_names(
        ResourceType::builtin(GROUP, "v1", "roles", "Role", true, &[])
            .with_schema(resources::object(json!({"rules": policy_rules()})))
            .with_columns(created_at()),
    )
}

fn binding_type(plural: &str, kind: &str, namespaced: bool) -> ResourceType {
    path_segment_names(
        ResourceType::builtin(GROUP, "v1", plural, kind, namespaced, &[])
            .with_schema(binding_schema())
            .with_columns(vec![
                Column::new("Role", "string", "@roleRef"),
                Column::new("Age", "date", ".metadata.creationTimestamp"),
            ]),
    )
}

/// The ClusterRoleBinding type.
pub fn cluster_role_bindings() -> ResourceType {
    binding_type("clusterrolebindings", "ClusterRoleBinding", false)
}

/// The RoleBinding type.
pub fn role_bindings() -> ResourceType {
    binding_type("rolebindings", "RoleBinding", true)
}
