//! One [`Strategy`] per kind, and the registry that finds a type's strategy
//! once, when the type is made. A new kind (the aggregation layer's
//! `APIService`, say) is one more file here and one more row in
//! [`REGISTRY`].

use super::errors::ApiResult;
use super::resources::ResourceType;
use super::store::{ObjKey, Store};
use super::strategy::Strategy;

pub mod configmap;
pub mod crd;
pub mod custom;
pub mod event;
pub mod lease;
pub mod namespace;
pub mod pod;
pub mod rbac;
pub mod reviews;
pub mod secret;
pub mod serviceaccount;
pub mod webhooks;

/// The kinds without behaviour of their own (Deployments, Services, PDBs,
/// NetworkPolicies): every hook's default.
#[derive(Debug)]
pub struct Plain;

impl Strategy for Plain {}

/// The built-in kinds' strategies by (group, plural); a data table.
pub static REGISTRY: &[(&str, &str, &dyn Strategy)] = &[
    ("", "namespaces", &namespace::Namespace),
    ("", "secrets", &secret::Secret),
    ("", "configmaps", &configmap::ConfigMap),
    ("", "serviceaccounts", &serviceaccount::ServiceAccount),
    ("", "pods", &pod::Pod),
    ("", "events", &event::CoreEvent),
    ("events.k8s.io", "events", &event::EventsV1),
    ("coordination.k8s.io", "leases", &lease::Lease),
    (rbac::GROUP, "roles", &rbac::Role { cluster: false }),
    (rbac::GROUP, "clusterroles", &rbac::Role { cluster: true }),
    (rbac::GROUP, "rolebindings", &rbac::Binding),
    (rbac::GROUP, "clusterrolebindings", &rbac::Binding),
    (webhooks::GROUP, "mutatingwebhookconfigurations", &webhooks::WebhookConfiguration { mutating: true }),
    (webhooks::GROUP, "validatingwebhookconfigurations", &webhooks::WebhookConfiguration { mutating: false }),
    (crd::GROUP, crd::PLURAL, &crd::CustomResourceDefinition),
    ("authorization.k8s.io", "selfsubjectaccessreviews", &reviews::SelfSubjectAccessReview),
    ("authorization.k8s.io", "subjectaccessreviews", &reviews::SubjectAccessReview { local: false }),
    ("authorization.k8s.io", "localsubjectaccessreviews", &reviews::SubjectAccessReview { local: true }),
    ("authorization.k8s.io", "selfsubjectrulesreviews", &reviews::SelfSubjectRulesReview),
    ("authentication.k8s.io", "selfsubjectreviews", &reviews::SelfSubjectReview),
    ("authentication.k8s.io", "tokenreviews", &reviews::TokenReview),
];

/// The strategy of a built-in type.
pub fn lookup(group: &str, plural: &str) -> &'static dyn Strategy {
    REGISTRY.iter().find(|(g, p, _)| *g == group && *p == plural).map_or(&Plain, |(_, _, s)| *s)
}

/// The strategy of every custom resource.
pub fn custom() -> &'static dyn Strategy {
    &custom::CustomResource
}

/// What a new server holds: the system namespaces and the bootstrap RBAC
/// policy.
pub fn bootstrap(store: &mut Store) {
    namespace::bootstrap(store);
    rbac::bootstrap(store);
}

/// The built-in admission of a create (before the webhooks): namespace
/// lifecycle, then the kind's own check.
pub fn admit_create(store: &Store, t: &ResourceType, key: &ObjKey) -> ApiResult<()> {
    namespace::lifecycle(store, t, &key.namespace, &key.name)?;
    t.strategy.admit_create(store, t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources;

    #[test]
    fn every_registry_row_is_a_served_type_with_its_strategy() {
        // A typo in REGISTRY would leave a kind with the Plain strategy.
        let types = resources::builtins();
        for (group, plural, strategy) in REGISTRY {
            let t = types
                .iter()
                .find(|t| t.group == *group && t.plural == *plural)
                .unwrap_or_else(|| panic!("{plural}.{group} is in REGISTRY but not served"));
            // (Strategies are unit structs or plain data: their Debug names them.)
            assert_eq!(format!("{:?}", t.strategy), format!("{strategy:?}"), "{plural}.{group}");
        }
        let plain: Vec<&str> = types
            .iter()
            .filter(|t| !REGISTRY.iter().any(|(g, p, _)| *g == t.group && *p == t.plural))
            .map(|t| t.plural.as_str())
            .collect();
        assert_eq!(plain, ["deployments", "services", "poddisruptionbudgets", "networkpolicies"]);
    }

    #[test]
    fn writes_replace_the_system_fields() {
        use serde_json::json;

        use crate::apiserver::store::Opts;
        let mut s = Store::default();
        let cm = s.type_of("", "v1", "configmaps").unwrap();
        let p = s
            .prepare_create(
                &cm,
                "default",
                json!({"metadata": {"name": "a", "uid": "x", "selfLink": "/x", "generation": 7,
                    "creationTimestamp": "2000-01-01T00:00:00Z"}}),
                Opts::system("test"),
            )
            .unwrap();
        let created = s.commit(p).map_err(|_| ()).unwrap().obj;
        let meta = &created["metadata"];
        assert_ne!(meta["uid"], "x");
        assert!(meta.get("selfLink").is_none() && meta.get("generation").is_none(), "{meta}");
        assert_ne!(meta["creationTimestamp"], "2000-01-01T00:00:00Z");
        let mut body = created.clone();
        body["metadata"]["uid"] = json!("y");
        body["metadata"]["selfLink"] = json!("/y");
        body["data"] = json!({"k": "v"});
        let p = s.prepare_update(&cm, "default", "a", body, Opts::system("test")).unwrap();
        let updated = s.commit(p).map_err(|_| ()).unwrap().obj;
        assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
        assert!(updated["metadata"].get("selfLink").is_none());
        assert_eq!(updated["data"]["k"], "v");
    }
}
