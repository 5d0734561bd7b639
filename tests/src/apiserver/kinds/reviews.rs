//! The reviews, created and never stored: access (self, subject, local),
//! rules, self and token reviews. Each answers with its status.

use serde_json::{Value, json};

use super::serviceaccount::DEFAULT_AUDIENCE;
use crate::apiserver::auth::UserInfo;
use crate::apiserver::errors::{ApiError, ApiResult, FieldError};
use crate::apiserver::rbac;
use crate::apiserver::resources::{self, ResourceType};
use crate::apiserver::store::Store;
use crate::apiserver::strategy::{ReviewRequest, Strategy};

/// `authorization.k8s.io/v1` SelfSubjectAccessReview.
#[derive(Debug)]
pub struct SelfSubjectAccessReview;

impl Strategy for SelfSubjectAccessReview {
    fn review(&self, store: &Store, r: &ReviewRequest<'_>) -> ApiResult<Value> {
        Ok(rbac::review_status(store, &rbac::review_attributes(r.spec, r.user.clone())))
    }
}

/// `authorization.k8s.io/v1` SubjectAccessReview and (`local`)
/// LocalSubjectAccessReview.
#[derive(Debug)]
pub struct SubjectAccessReview {
    /// A LocalSubjectAccessReview: the attributes' namespace is the review's.
    pub local: bool,
}

impl Strategy for SubjectAccessReview {
    fn review(&self, store: &Store, r: &ReviewRequest<'_>) -> ApiResult<Value> {
        let subject = UserInfo {
            name: r.spec["user"].as_str().unwrap_or_default().to_owned(),
            uid: r.spec["uid"].as_str().unwrap_or_default().to_owned(),
            groups: r.spec["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect(),
        };
        let invalid = |e: FieldError| ApiError::invalid(&r.t.group, &r.t.kind, "", &[e]);
        if subject.name.is_empty() && subject.groups.is_empty() {
            return Err(invalid(FieldError::invalid(
                "spec.user",
                &json!(""),
                "at least one of user or group must be specified",
            )));
        }
        let attrs = rbac::review_attributes(r.spec, subject);
        let ns = r.namespace;
        if self.local && attrs.resource.as_ref().is_some_and(|a| a.namespace != ns) {
            return Err(invalid(FieldError::invalid(
                "spec.resourceAttributes.namespace",
                &json!(attrs.resource.as_ref().map(|a| a.namespace.clone())),
                format!("must match metadata.namespace {ns:?}"),
            )));
        }
        Ok(rbac::review_status(store, &attrs))
    }
}

/// `authorization.k8s.io/v1` SelfSubjectRulesReview.
#[derive(Debug)]
pub struct SelfSubjectRulesReview;

impl Strategy for SelfSubjectRulesReview {
    fn review(&self, store: &Store, r: &ReviewRequest<'_>) -> ApiResult<Value> {
        let review_ns = r.spec["namespace"].as_str().unwrap_or_default();
        let rules = rbac::rules_for(store, &r.user, review_ns);
        let (resource, non_resource): (Vec<Value>, Vec<Value>) =
            rules.into_iter().partition(|rule| rule.get("nonResourceURLs").is_none_or(Value::is_null));
        let resource: Vec<Value> = resource
            .into_iter()
            .map(|r| json!({"verbs": r["verbs"], "apiGroups": r["apiGroups"], "resources": r["resources"], "resourceNames": r["resourceNames"]}))
            .collect();
        let non_resource: Vec<Value> = non_resource
            .into_iter()
            .map(|r| json!({"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}))
            .collect();
        Ok(json!({"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": false}))
    }
}

/// `authentication.k8s.io/v1` SelfSubjectReview.
#[derive(Debug)]
pub struct SelfSubjectReview;

impl Strategy for SelfSubjectReview {
    fn review(&self, _store: &Store, r: &ReviewRequest<'_>) -> ApiResult<Value> {
        Ok(json!({"userInfo": r.user.to_json()}))
    }
}

/// `authentication.k8s.io/v1` TokenReview.
#[derive(Debug)]
pub struct TokenReview;

impl Strategy for TokenReview {
    fn review(&self, store: &Store, r: &ReviewRequest<'_>) -> ApiResult<Value> {
        let token = r.spec["token"].as_str().unwrap_or_default();
        Ok(match store.auth.authenticate(token, |n, s| store.service_account_uid(n, s)) {
            Some(u) => json!({"authenticated": true, "user": u.to_json(), "audiences": [DEFAULT_AUDIENCE]}),
            None => json!({"authenticated": false, "error": "invalid bearer token"}),
        })
    }
}

fn review_type(group: &str, plural: &str, kind: &str, namespaced: bool) -> ResourceType {
    let mut t = ResourceType::builtin(group, "v1", plural, kind, namespaced, &[]);
    t.verbs = resources::CREATE_ONLY;
    t
}

/// The SelfSubjectAccessReview type.
pub fn self_subject_access_reviews() -> ResourceType {
    review_type("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview", false)
}

/// The SelfSubjectRulesReview type.
pub fn self_subject_rules_reviews() -> ResourceType {
    review_type("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview", false)
}

/// The SubjectAccessReview type.
pub fn subject_access_reviews() -> ResourceType {
    review_type("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview", false)
}

/// The LocalSubjectAccessReview type.
pub fn local_subject_access_reviews() -> ResourceType {
    review_type("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview", true)
}

/// The SelfSubjectReview type.
pub fn self_subject_reviews() -> ResourceType {
    review_type("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", false)
}

/// The TokenReview type.
pub fn token_reviews() -> ResourceType {
    review_type("authentication.k8s.io", "tokenreviews", "TokenReview", false)
}
