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
