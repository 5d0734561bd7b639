//! Authorization with RBAC over the stored Roles, ClusterRoles and their
//! bindings (`system:masters` bypasses it), the default policy a new
//! cluster has, ClusterRole aggregation, the escalation and bind checks on
//! RBAC writes, and access reviews.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::auth::UserInfo;
use super::selectors::selector_matches;

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// What a request does, for authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// Who.
    pub user: UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, `escalate`, `bind`... (non-resource: `get`, `post`, ...).
    pub verb: String,
    /// On a resource, or (`None`) on a path.
    pub resource: Option<ResourceAttributes>,
    /// The path of a non-resource request.
    pub path: String,
}

/// The resource a request is about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceAttributes {
    /// API group.
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource (`status`, `token`).
    pub subresource: String,
    /// Namespace (`""` at the cluster scope).
    pub namespace: String,
    /// Object name (`""` for lists and creates).
    pub name: String,
}

/// Read access to the stored RBAC objects.
pub trait Policy {
    /// Every ClusterRoleBinding.
    fn cluster_role_bindings(&self) -> Vec<Value>;
    /// The RoleBindings of a namespace.
    fn role_bindings(&self, ns: &str) -> Vec<Value>;
    /// A ClusterRole by name.
    fn cluster_role(&self, name: &str) -> Option<Value>;
    /// A Role by namespace and name.
    fn role(&self, ns: &str, name: &str) -> Option<Value>;
}

/// Whether a binding's subject is this user.
fn subject_matches(s: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let name = s["name"].as_str().unwrap_or_default();
    match s["kind"].as_str() {
        Some("User") => user.name == name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            let ns = s["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

/// Whether a policy rule allows the request.
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = strings(&rule["verbs"]);
    if !has(&verbs, &a.verb) {
        return false;
    }
    match &a.resource {
        None => strings(&rule["nonResourceURLs"]).iter().any(|u| {
            u == "*" || u == &a.path || u.strip_suffix('*').is_some_and(|prefix| a.path.starts_with(prefix))
        }),
        Some(r) => {
            if !has(&strings(&rule["apiGroups"]), &r.group) {
                return false;
            }
            let resources = strings(&rule["resources"]);
            let combined = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            // As RBAC's ResourceMatches: "*", the exact (sub)resource, or
            // "*/subresource".
            let resource_ok = resources.iter().any(|x| {
                x == "*"
                    || *x == combined
                    || (!r.subresource.is_empty() && *x == format!("*/{}", r.subresource))
            });
            if !resource_ok {
                return false;
            }
            let names = strings(&rule["resourceNames"]);
            names.is_empty() || (!r.name.is_empty() && names.contains(&r.name))
        }
    }
}

/// The rules a user holds in a namespace (`""`: cluster-wide only).
pub fn rules_for(policy: &dyn Policy, user: &UserInfo, ns: &str) -> Vec<Value> {
    let mut rules = Vec::new();
    for b in policy.cluster_role_bindings() {
        if b["subjects"].as_array().into_iter().flatten().any(|s| subject_matches(s, user, ""))
            && let Some(r) = policy.cluster_role(b["roleRef"]["name"].as_str().unwrap_or_default())
        {
            rules.extend(r["rules"].as_array().cloned().unwrap_or_default());
        }
    }
    if !ns.is_empty() {
        for b in policy.role_bindings(ns) {
            if !b["subjects"].as_array().into_iter().flatten().any(|s| subject_matches(s, user, ns)) {
                continue;
            }
            let name = b["roleRef"]["name"].as_str().unwrap_or_default();
            let role = match b["roleRef"]["kind"].as_str() {
                Some("ClusterRole") => policy.cluster_role(name),
                _ => policy.role(ns, name),
            };
            if let Some(r) = role {
                rules.extend(r["rules"].as_array().cloned().unwrap_or_default());
            }
        }
    }
    rules
}

/// Whether the request is allowed.
pub fn allowed(policy: &dyn Policy, a: &Attributes) -> bool {
    if a.user.is_master() {
        return true;
    }
    let ns = a.resource.as_ref().map(|r| r.namespace.as_str()).unwrap_or_default();
    rules_for(policy, &a.user, ns).iter().any(|rule| rule_allows(rule, a))
}

/// The 403 message, as kube-apiserver words it.
pub fn forbidden_message(a: &Attributes) -> String {
    let who = &a.user.name;
    let Some(r) = &a.resource else {
        return format!("forbidden: User {who:?} cannot {} path {:?}", a.verb, a.path);
    };
    let resource = if r.subresource.is_empty() {
        r.resource.clone()
    } else {
        format!("{}/{}", r.resource, r.subresource)
    };
    let scope = if r.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace {:?}", r.namespace)
    };
    let what = super::errors::qualified(&r.resource, &r.group);
    let object = if r.name.is_empty() { what } else { format!("{what} {:?}", r.name) };
    format!(
        "{object} is forbidden: User {who:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        a.verb, r.group
    )
}

/// The rules of `rule` that `user` does not hold in `ns`, each broken into
/// single (group, resource, verb[, name]) pieces, as the escalation check
/// compares them ("*" in a granted rule needs "*" in a held one).
pub fn not_held(policy: &dyn Policy, user: &UserInfo, ns: &str, granted: &[Value]) -> Vec<Value> {
    if user.is_master() {
        return Vec::new();
    }
    let held = rules_for(policy, user, ns);
    let covers =
        |h: &Value, field: &str, want: &str| strings(&h[field]).iter().any(|x| x == "*" || x == want);
    let mut missing = Vec::new();
    for rule in granted {
        let verbs = strings(&rule["verbs"]);
        let urls = strings(&rule["nonResourceURLs"]);
        if !urls.is_empty() {
            for u in &urls {
                for v in &verbs {
                    let ok = held.iter().any(|h| {
                        covers(h, "verbs", v)
                            && strings(&h["nonResourceURLs"]).iter().any(|hu| {
                                hu == "*" || hu == u || hu.strip_suffix('*').is_some_and(|p| u.starts_with(p))
                            })
                    });
                    if !ok {
                        missing.push(json!({"nonResourceURLs": [u], "verbs": [v]}));
                    }
                }
            }
            continue;
        }
        let names = strings(&rule["resourceNames"]);
        for g in strings(&rule["apiGroups"]) {
            for r in strings(&rule["resources"]) {
                for v in &verbs {
                    let ok = held.iter().any(|h| {
                        covers(h, "apiGroups", &g) && covers(h, "resources", &r) && covers(h, "verbs", v) && {
                            let hn = strings(&h["resourceNames"]);
                            hn.is_empty() || (!names.is_empty() && names.iter().all(|n| hn.contains(n)))
                        }
                    });
                    if !ok {
                        let mut piece = json!({"apiGroups": [g], "resources": [r], "verbs": [v]});
                        if !names.is_empty() {
                            piece["resourceNames"] = json!(names);
                        }
                        missing.push(piece);
                    }
                }
            }
        }
    }
    missing
}

/// The escalation refusal, as the RBAC registry words it.
pub fn escalation_message(resource: &str, name: &str, user: &UserInfo, missing: &[Value]) -> String {
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    let rules: Vec<String> = missing
        .iter()
        .map(|r| {
            let list =
                |f: &str| strings(&r[f]).iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" ");
            if r.get("nonResourceURLs").is_some() {
                format!("{{NonResourceURLs:[{}], Verbs:[{}]}}", list("nonResourceURLs"), list("verbs"))
            } else if r.get("resourceNames").is_some() {
                format!(
                    "{{APIGroups:[{}], Resources:[{}], ResourceNames:[{}], Verbs:[{}]}}",
                    list("apiGroups"),
                    list("resources"),
                    list("resourceNames"),
                    list("verbs")
                )
            } else {
                format!(
                    "{{APIGroups:[{}], Resources:[{}], Verbs:[{}]}}",
                    list("apiGroups"),
                    list("resources"),
                    list("verbs")
                )
            }
        })
        .collect();
    format!(
        "{resource}.{GROUP} {name:?} is forbidden: user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        groups.join(" "),
        rules.join("\n")
    )
}

/// The rules an aggregated ClusterRole gets: those of every other
/// ClusterRole its selectors match, without repeats, in name order.
pub fn aggregate(role: &Value, all: &[Value]) -> Option<Vec<Value>> {
    let selectors = role["aggregationRule"]["clusterRoleSelectors"].as_array()?;
    let me = role["metadata"]["name"].as_str().unwrap_or_default();
    let mut matching: Vec<&Value> = all
        .iter()
        .filter(|r| r["metadata"]["name"].as_str() != Some(me))
        .filter(|r| selectors.iter().any(|s| selector_matches(s, &r["metadata"]["labels"])))
        .collect();
    matching.sort_by_key(|r| r["metadata"]["name"].as_str().unwrap_or_default().to_owned());
    let mut rules: Vec<Value> = Vec::new();
    for r in matching {
        for rule in r["rules"].as_array().into_iter().flatten() {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    Some(rules)
}

/// A PolicyRule.
fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn url_rule(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] =
    &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// The ClusterRoles and ClusterRoleBindings a new cluster has (the parts of
/// kube-apiserver's bootstrap policy that concern users).
pub fn bootstrap() -> (Vec<Value>, Vec<Value>) {
    let defaults = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    let autoupdate = json!({"rbac.authorization.kubernetes.io/autoupdate": "true"});
    let role = |name: &str, labels: Value, rules: Vec<Value>, aggregate_to: Option<&str>| {
        let mut l = defaults.clone();
        if let Some(m) = labels.as_object() {
            for (k, v) in m {
                l[k] = v.clone();
            }
        }
        let mut r =
            json!({"metadata": {"name": name, "labels": l, "annotations": autoupdate}, "rules": rules});
        if let Some(label) = aggregate_to {
            r["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]});
        }
        r
    };
    let agg = |to: &str| format!("rbac.authorization.k8s.io/aggregate-to-{to}");
    let view_rules = vec![
        rule(
            READ,
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
        ),
        rule(
            READ,
            &[""],
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
        ),
        rule(READ, &[""], &["namespaces"]),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
        rule(
            READ,
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
        ),
        rule(READ, &["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
        rule(READ, &["batch"], &["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
        rule(READ, &["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        rule(READ, &["networking.k8s.io"], &["ingresses", "ingresses/status", "networkpolicies"]),
        rule(READ, &["events.k8s.io"], &["events"]),
    ];
    let edit_rules = vec![
        rule(
            &["create", "delete", "deletecollection", "patch", "update"],
            &[""],
            &["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"],
        ),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(
            WRITE,
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
        ),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(
            WRITE,
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
        ),
        rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
        rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
        rule(WRITE, &["networking.k8s.io"], &["ingresses", "networkpolicies"]),
        rule(&["impersonate"], &[""], &["serviceaccounts"]),
        rule(
            READ,
            &[""],
            &["secrets", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "services/proxy"],
        ),
    ];
    let admin_rules = vec![
        rule(&["create"], &["authorization.k8s.io"], &["localsubjectaccessreviews"]),
        rule(READ_WRITE, &[GROUP], &["rolebindings", "roles"]),
    ];
    let roles = vec![
        role("cluster-admin", json!({}), vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])], None),
        role(
            "system:discovery",
            json!({}),
            vec![url_rule(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
            None,
        ),
        role(
            "system:basic-user",
            json!({}),
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"]),
            ],
            None,
        ),
        role(
            "system:public-info-viewer",
            json!({}),
            vec![url_rule(&["get"], &["/healthz", "/livez", "/readyz", "/version", "/version/"])],
            None,
        ),
        role("admin", json!({}), Vec::new(), Some(&agg("admin"))),
        role("edit", json!({agg("admin"): "true"}), Vec::new(), Some(&agg("edit"))),
        role("view", json!({agg("edit"): "true"}), Vec::new(), Some(&agg("view"))),
        role("system:aggregate-to-admin", json!({agg("admin"): "true"}), admin_rules, None),
        role("system:aggregate-to-edit", json!({agg("edit"): "true"}), edit_rules, None),
        role("system:aggregate-to-view", json!({agg("view"): "true"}), view_rules, None),
    ];
    let binding = |name: &str, role: &str, groups: &[&str]| {
        let subjects: Vec<Value> =
            groups.iter().map(|g| json!({"kind": "Group", "apiGroup": GROUP, "name": g})).collect();
        json!({"metadata": {"name": name, "labels": defaults, "annotations": autoupdate},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role}, "subjects": subjects})
    };
    let bindings = vec![
        binding("cluster-admin", "cluster-admin", &["system:masters"]),
        binding("system:discovery", "system:discovery", &["system:authenticated"]),
        binding("system:basic-user", "system:basic-user", &["system:authenticated"]),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ];
    (roles, bindings)
}

/// The `status` of an access review for `a`.
pub fn review_status(policy: &dyn Policy, a: &Attributes) -> Value {
    let ok = allowed(policy, a);
    let mut s = json!({"allowed": ok});
    if ok && !a.user.is_master() {
        s["reason"] = json!("RBAC: allowed by a role binding");
    }
    s
}

/// The attributes an access review's spec asks about.
pub fn review_attributes(spec: &Value, user: UserInfo) -> Attributes {
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    match spec.get("resourceAttributes").filter(|r| r.is_object()) {
        Some(r) => Attributes {
            user,
            verb: s(r, "verb"),
            resource: Some(ResourceAttributes {
                group: s(r, "group"),
                resource: s(r, "resource"),
                subresource: s(r, "subresource"),
                namespace: s(r, "namespace"),
                name: s(r, "name"),
            }),
            path: String::new(),
        },
        None => Attributes {
            user,
            verb: s(&spec["nonResourceAttributes"], "verb"),
            resource: None,
            path: s(&spec["nonResourceAttributes"], "path"),
        },
    }
}

/// Users and groups named in a set of bindings (for tests and dumps).
pub fn subjects(bindings: &[Value]) -> BTreeSet<String> {
    bindings
        .iter()
        .flat_map(|b| b["subjects"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<Value>, Vec<Value>, Vec<Value>);

    impl Policy for Fixed {
        fn cluster_role_bindings(&self) -> Vec<Value> {
            self.1.clone()
        }
        fn role_bindings(&self, ns: &str) -> Vec<Value> {
            self.2.iter().filter(|b| b["metadata"]["namespace"] == ns).cloned().collect()
        }
        fn cluster_role(&self, name: &str) -> Option<Value> {
            self.0.iter().find(|r| r["metadata"]["name"] == name).cloned()
        }
        fn role(&self, _: &str, _: &str) -> Option<Value> {
            None
        }
    }

    fn policy() -> Fixed {
        let (mut roles, bindings) = bootstrap();
        let all = roles.clone();
        for r in &mut roles {
            if let Some(rules) = aggregate(r, &all) {
                r["rules"] = json!(rules);
            }
        }
        // Aggregation is transitive through edit → admin: run it twice.
        let all = roles.clone();
        for r in &mut roles {
            if let Some(rules) = aggregate(r, &all) {
                r["rules"] = json!(rules);
            }
        }
        let edit = json!({"metadata": {"name": "alice-edit", "namespace": "team"},
            "roleRef": {"kind": "ClusterRole", "name": "edit"}, "subjects": [{"kind": "User", "name": "alice"}]});
        Fixed(roles, bindings, vec![edit])
    }

    fn attrs(user: &str, verb: &str, res: &str, ns: &str) -> Attributes {
        Attributes {
            user: UserInfo::new(user, &[]),
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                resource: res.into(),
                namespace: ns.into(),
                ..Default::default()
            }),
            path: String::new(),
        }
    }

    #[test]
    fn edit_through_aggregation_in_its_namespace_only() {
        let p = policy();
        assert!(allowed(&p, &attrs("alice", "create", "secrets", "team")));
        assert!(allowed(&p, &attrs("alice", "list", "configmaps", "team")), "view is aggregated into edit");
        assert!(!allowed(&p, &attrs("alice", "create", "secrets", "other")));
        assert!(!allowed(&p, &attrs("alice", "create", "roles", "team")), "admin only");
        let a = attrs("system:serviceaccount:ns:sa", "list", "secrets", "ns");
        assert_eq!(
            forbidden_message(&a),
            "secrets is forbidden: User \"system:serviceaccount:ns:sa\" cannot list resource \"secrets\" in API group \"\" in the namespace \"ns\""
        );
        let discovery = Attributes {
            user: UserInfo::new("bob", &[]),
            verb: "get".into(),
            resource: None,
            path: "/apis/encstr.io/v1alpha1".into(),
        };
        assert!(allowed(&p, &discovery));
        let anon = Attributes { user: UserInfo::anonymous(), ..discovery.clone() };
        assert!(!allowed(&p, &anon), "discovery needs authentication");
        let version = Attributes {
            user: UserInfo::anonymous(),
            verb: "get".into(),
            resource: None,
            path: "/version".into(),
        };
        assert!(allowed(&p, &version), "public info");
    }

    #[test]
    fn escalation_needs_the_permissions_granted() {
        let p = policy();
        let alice = UserInfo::new("alice", &[]);
        let missing = not_held(&p, &alice, "team", &[rule(&["get"], &[""], &["secrets"])]);
        assert!(missing.is_empty());
        let missing = not_held(&p, &alice, "team", &[rule(&["*"], &[""], &["secrets"])]);
        assert_eq!(missing.len(), 1);
        let msg = escalation_message("roles", "r", &alice, &missing);
        assert!(msg.contains("is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"*\"]}"), "{msg}");
    }
}
