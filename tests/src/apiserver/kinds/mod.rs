//! One file per kind: its type (schema, columns, names) and its
//! [`Strategy`], and [`BUILTINS`], the table that pairs them once, when the
//! types are made. A new kind (the aggregation layer's `APIService`, say) is
//! one more file here and one more row in [`BUILTINS`].

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
pub mod plain;
pub mod pod;
pub mod rbac;
pub mod reviews;
pub mod secret;
pub mod serviceaccount;
pub mod webhooks;

pub use plain::Plain;

/// A built-in kind: the function that makes its type, and its strategy.
pub type Builtin = (fn() -> ResourceType, &'static dyn Strategy);

/// Every built-in kind, in discovery order: how its type is made and its
/// strategy; a data table.
pub static BUILTINS: &[Builtin] = &[
    (namespace::resource, &namespace::Namespace),
    (pod::resource, &pod::Pod),
    (plain::deployments, &Plain),
    (plain::services, &Plain),
    (rbac::cluster_roles, &rbac::Role { cluster: true }),
    (rbac::cluster_role_bindings, &rbac::Binding),
    (rbac::roles, &rbac::Role { cluster: false }),
    (rbac::role_bindings, &rbac::Binding),
    (plain::pod_disruption_budgets, &Plain),
    (plain::network_policies, &Plain),
    (secret::resource, &secret::Secret),
    (configmap::resource, &configmap::ConfigMap),
    (event::core_events, &event::CoreEvent),
    (serviceaccount::resource, &serviceaccount::ServiceAccount),
    (event::events_v1, &event::EventsV1),
    (lease::resource, &lease::Lease),
    (webhooks::mutating, &webhooks::WebhookConfiguration { mutating: true }),
    (webhooks::validating, &webhooks::WebhookConfiguration { mutating: false }),
    (reviews::self_subject_access_reviews, &reviews::SelfSubjectAccessReview),
    (reviews::self_subject_rules_reviews, &reviews::SelfSubjectRulesReview),
    (reviews::subject_access_reviews, &reviews::SubjectAccessReview { local: false }),
    (reviews::local_subject_access_reviews, &reviews::SubjectAccessReview { local: true }),
    (reviews::self_subject_reviews, &reviews::SelfSubjectReview),
    (reviews::token_reviews, &reviews::TokenReview),
    (crd::resource, &crd::CustomResourceDefinition),
];

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
    fn every_builtin_has_its_strategy_and_four_are_plain() {
        let types = resources::builtins();
        assert_eq!(types.len(), BUILTINS.len());
        for (t, (_, strategy)) in types.iter().zip(BUILTINS) {
            // (Strategies are unit structs or plain data: their Debug names them.)
            assert_eq!(format!("{:?}", t.strategy), format!("{strategy:?}"), "{}", t.plural);
        }
        let plain: Vec<&str> = types
            .iter()
            .filter(|t| format!("{:?}", t.strategy) == "Plain")
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
