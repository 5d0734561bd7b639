//! Resource requests: the verbs on stored types through the store's one
//! write path (prepare, RBAC escalation checks, commit with retries on
//! concurrent change), the subresources (`status`, `serviceaccounts/token`,
//! `namespaces/finalize`), access and token reviews, and the encodings of
//! responses (JSON, Table, PartialObjectMetadata).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::admission;
use super::auth::UserInfo;
use super::errors::{ApiError, ApiResult, FieldError};
use super::rbac::{self, Attributes, ResourceAttributes};
use super::resources::ResourceType;
use super::server::{App, ResourceRequest, dry_run, error_response, json_response, stream_response};
use super::store::{
    CommitError, DeleteOpts, FieldValidation, Opts, Outcome, PatchType, Prepared, Store, Sub, now,
};
use super::table::{self, Include};
use super::watch::{self, ListOptions};

/// How responses are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Render {
    Json,
    Table(Include),
    Partial,
}

fn render_of(headers: &HeaderMap, q: &HashMap<String, String>) -> ApiResult<Render> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if table::wants_table(accept) {
        return Ok(Render::Table(
            Include::parse(q.get("includeObject").map(String::as_str)).map_err(ApiError::bad_request)?,
        ));
    }
    let first = accept.split(',').next().unwrap_or_default();
    if first.contains("as=PartialObjectMetadata") {
        return Ok(Render::Partial);
    }
    Ok(Render::Json)
}

fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

fn render_one(t: &ResourceType, obj: Value, r: Render) -> Value {
    match r {
        Render::Json => obj,
        Render::Partial => partial(&obj),
        Render::Table(include) => {
            let rv = obj["metadata"]["resourceVersion"].clone();
            table::table(t, &[obj], json!({"resourceVersion": rv}), include, true)
        }
    }
}

fn render_list(t: &ResourceType, items: Vec<Value>, meta: Value, r: Render) -> Value {
    match r {
        Render::Json => {
            json!({"kind": format!("{}List", t.kind), "apiVersion": t.api_version(), "metadata": meta, "items": items})
        }
        Render::Partial => {
            let items: Vec<Value> = items.iter().map(partial).collect();
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items})
        }
        Render::Table(include) => table::table(t, &items, meta, include, true),
    }
}

/// Decode a request body: JSON, YAML, or Kubernetes protobuf.
fn parse_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return super::proto::decode(body).map_err(|e| ApiError::new(415, "UnsupportedMediaType", e));
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    if ct.contains("yaml") {
        let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
        return serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")));
    }
    Err(ApiError::bad_request(format!(
        "couldn't get version/kind; json parse error: {}",
        serde_json::from_slice::<Value>(body).err().map(|e| e.to_string()).unwrap_or_default()
    )))
}

fn field_validation(q: &HashMap<String, String>) -> ApiResult<FieldValidation> {
    match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
        Some("Ignore") => Ok(FieldValidation::Ignore),
        Some("Strict") => Ok(FieldValidation::Strict),
        Some(other) => Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            &[FieldError::not_supported("fieldValidation", &json!(other), &["", "Ignore", "Strict", "Warn"])],
        )),
    }
}

/// The field manager of a request: `fieldManager`, or the user agent's
/// program name (as kube-apiserver defaults it).
fn manager(q: &HashMap<String, String>, headers: &HeaderMap) -> String {
    q.get("fieldManager").filter(|m| !m.is_empty()).cloned().unwrap_or_else(|| {
        let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("unknown");
        ua.split('/').next().unwrap_or("unknown").to_owned()
    })
}

fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

/// RBAC writes need the permissions they grant (or `escalate`/`bind`).
fn rbac_guard(s: &Store, p: &Prepared) -> ApiResult<()> {
    let t = &p.t;
    let user = &p.opts.user;
    if t.group != rbac::GROUP || user.is_master() {
        return Ok(());
    }
    let ns = p.key.namespace.clone();
    let name = p.key.name.clone();
    let can = |verb: &str, resource: &str, rname: &str| {
        rbac::allowed(
            s,
            &Attributes {
                user: user.clone(),
                verb: verb.into(),
                resource: Some(ResourceAttributes {
                    group: rbac::GROUP.into(),
                    resource: resource.into(),
                    subresource: String::new(),
                    namespace: ns.clone(),
                    name: rname.into(),
                }),
                path: String::new(),
            },
        )
    };
    let forbidden = |msg: String| {
        ApiError::forbidden(
            format!("{}.{} {name:?} is forbidden: {msg}", t.plural, rbac::GROUP),
            Some(json!({"name": name, "group": rbac::GROUP, "kind": t.plural})),
        )
    };
    let escalation = |missing: &[Value]| {
        ApiError::forbidden(
            rbac::escalation_message(&t.plural, &name, user, missing),
            Some(json!({"name": name, "group": rbac::GROUP, "kind": t.plural})),
        )
    };
    match t.plural.as_str() {
        "roles" | "clusterroles" => {
            if can("escalate", &t.plural, &name) {
                return Ok(());
            }
            let rules = p.obj["rules"].as_array().cloned().unwrap_or_default();
            let missing = rbac::not_held(s, user, &ns, &rules);
            if !missing.is_empty() {
                return Err(escalation(&missing));
            }
            let aggregation =
                p.obj["aggregationRule"]["clusterRoleSelectors"].as_array().is_some_and(|a| !a.is_empty());
            if aggregation {
                let full = [json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})];
                if !rbac::not_held(s, user, &ns, &full).is_empty() {
                    return Err(forbidden(
                        "must have cluster-admin privileges to use the aggregationRule".into(),
                    ));
                }
            }
            Ok(())
        }
        "rolebindings" | "clusterrolebindings" => {
            let role_ref = &p.obj["roleRef"];
            let (kind, role) = (
                role_ref["kind"].as_str().unwrap_or_default(),
                role_ref["name"].as_str().unwrap_or_default(),
            );
            let resource = if kind == "ClusterRole" { "clusterroles" } else { "roles" };
            if can("bind", resource, role) {
                return Ok(());
            }
            let rules = match kind {
                "ClusterRole" => rbac::Policy::cluster_role(s, role),
                _ => rbac::Policy::role(s, &ns, role),
            }
            .ok_or_else(|| ApiError::not_found(rbac::GROUP, resource, role))?["rules"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let missing = rbac::not_held(s, user, &ns, &rules);
            if missing.is_empty() { Ok(()) } else { Err(escalation(&missing)) }
        }
        _ => Ok(()),
    }
}

/// The write loop: prepare under the lock, check, call the admission
/// webhooks outside it, then commit under the lock again; prepare (and
/// admit) anew when the object changed in between.
async fn write(
    app: &App,
    subresource: &str,
    prepare: impl Fn(&Store) -> ApiResult<Prepared>,
) -> ApiResult<Outcome> {
    for _ in 0..32 {
        let mut p = {
            let s = app.store.lock().expect("lock");
            let p = prepare(&s)?;
            rbac_guard(&s, &p)?;
            p
        };
        let warnings = admission::admit(&app.store, &app.endpoints, &mut p, subresource).await?;
        p.warnings.extend(warnings);
        let mut s = app.store.lock().expect("lock");
        match s.commit(p) {
            Ok(o) => return Ok(o),
            Err(CommitError::Retry) => continue,
            Err(CommitError::Api(e)) => return Err(e),
        }
    }
    Err(ApiError::new(409, "Conflict", "the object kept changing while it was being written; try again"))
}

/// Serve a resource request (already authorized).
pub(super) async fn resource(
    app: &Arc<App>,
    r: &ResourceRequest,
    user: UserInfo,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    match serve(app, r, user, q, headers, body).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

fn lookup(app: &App, r: &ResourceRequest) -> ApiResult<Arc<ResourceType>> {
    let store = app.store.lock().expect("lock");
    let t = store
        .type_of(&r.group, &r.version, &r.resource)
        .filter(|t| t.plural == r.resource)
        .ok_or_else(|| ApiError::new(404, "NotFound", "the server could not find the requested resource"))?;
    // A namespaced path to a cluster-scoped type, or a cluster path to one
    // object of a namespaced type, does not exist.
    let namespace_itself = t.is_namespace() && !r.namespaced_path;
    if (r.namespaced_path && !t.namespaced)
        || (t.namespaced && !r.namespaced_path && !r.name.is_empty() && !namespace_itself)
    {
        return Err(ApiError::new(404, "NotFound", "the server could not find the requested resource"));
    }
    let sub_ok = match r.subresource.as_str() {
        "" => true,
        "status" => t.status,
        "token" => t.group.is_empty() && t.plural == "serviceaccounts",
        "finalize" => t.is_namespace(),
        _ => false,
    };
    if !sub_ok {
        return Err(ApiError::new(404, "NotFound", "the server could not find the requested resource"));
    }
    Ok(t)
}

async fn serve(
    app: &Arc<App>,
    r: &ResourceRequest,
    user: UserInfo,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let t = lookup(app, r)?;
    let ns = if t.namespaced { r.namespace.clone() } else { String::new() };
    let name = r.name.clone();
    if !t.verbs.contains(&r.verb) && r.subresource.is_empty() {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ));
    }
    let render = render_of(headers, q)?;
    let dry = dry_run(q)?;
    let sub = if r.subresource == "status" { Sub::Status } else { Sub::Main };
    let opts = |validation: FieldValidation| Opts {
        user: user.clone(),
        manager: manager(q, headers),
        dry_run: dry,
        validation,
        sub,
    };
    match (r.verb, r.subresource.as_str()) {
        ("get", _) => {
            let obj = app.store.lock().expect("lock").get(&t, &ns, &name)?;
            Ok(json_response(200, &render_one(&t, obj, render)))
        }
        ("list", _) => {
            let o = ListOptions::parse(&t, q)?;
            let scope = (t.namespaced && r.namespaced_path).then_some(ns.as_str());
            let page = watch::list(&app.store, &t, scope, &o).await?;
            Ok(json_response(200, &render_list(&t, page.items, page.meta, render)))
        }
        ("watch", _) => {
            let o = ListOptions::parse(&t, q)?;
            let scope = (t.namespaced && r.namespaced_path).then(|| ns.clone());
            let tt = t.clone();
            let encode: watch::Encode = Arc::new(move |_kind, obj, first| match render {
                Render::Json => obj,
                Render::Partial => partial(&obj),
                Render::Table(include) => {
                    let rv = obj["metadata"]["resourceVersion"].clone();
                    table::table(&tt, &[obj], json!({"resourceVersion": rv}), include, first)
                }
            });
            let rx = watch::start(
                &app.store,
                app.settings.clone(),
                app.close_watches.subscribe(),
                t.clone(),
                scope,
                o,
                encode,
            )?;
            Ok(stream_response(rx))
        }
        ("create", "token") => token_request(app, &ns, &name, parse_body(headers, &body)?, dry),
        ("create", _) if t.is_review() => review(app, &t, &ns, parse_body(headers, &body)?, user),
        ("create", _) => {
            let obj = parse_body(headers, &body)?;
            let validation = field_validation(q)?;
            let o = write(app, &r.subresource, |s| s.prepare_create(&t, &ns, obj.clone(), opts(validation)))
                .await?;
            Ok(with_warnings(json_response(201, &o.obj), &o.warnings))
        }
        ("update", "finalize") => {
            let obj = parse_body(headers, &body)?;
            let v = app.store.lock().expect("lock").finalize_namespace(&name, &obj, dry)?;
            Ok(json_response(200, &v))
        }
        ("update", _) => {
            let obj = parse_body(headers, &body)?;
            let validation = field_validation(q)?;
            let o = write(app, &r.subresource, |s| {
                s.prepare_update(&t, &ns, &name, obj.clone(), opts(validation))
            })
            .await?;
            Ok(with_warnings(json_response(200, &o.obj), &o.warnings))
        }
        ("patch", _) => {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let force = q.get("force").map(String::as_str);
            let kind = if ct.starts_with("application/apply-patch") {
                if q.get("fieldManager").is_none_or(String::is_empty) {
                    return Err(ApiError::invalid(
                        "meta.k8s.io",
                        "PatchOptions",
                        "",
                        &[FieldError::required("fieldManager", "is required for apply patch")],
                    ));
                }
                PatchType::Apply { force: force == Some("true") }
            } else {
                if force.is_some() {
                    return Err(ApiError::invalid(
                        "meta.k8s.io",
                        "PatchOptions",
                        "",
                        &[FieldError::forbidden("force", "may not be specified for non-apply patch")],
                    ));
                }
                if ct.starts_with("application/json-patch") {
                    PatchType::Json
                } else if ct.starts_with("application/merge-patch") {
                    PatchType::Merge
                } else if ct.starts_with("application/strategic-merge-patch") {
                    PatchType::Strategic
                } else {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"
                        ),
                    ));
                }
            };
            let patch = parse_body(headers, &body)?;
            if patch.is_null() {
                return Err(ApiError::bad_request("the body of the request was empty"));
            }
            let validation = field_validation(q)?;
            let o = write(app, &r.subresource, |s| {
                s.prepare_patch(&t, &ns, &name, kind, &patch, opts(validation))
            })
            .await?;
            Ok(with_warnings(json_response(if o.created { 201 } else { 200 }, &o.obj), &o.warnings))
        }
        ("delete", _) => {
            let d = delete_options(headers, &body, q, dry)?;
            let mut store = app.store.lock().expect("lock");
            let obj = store.delete(&t, &ns, &name, &d)?;
            let gone = store.get(&t, &ns, &name).is_err();
            Ok(json_response(200, &delete_response(&t, obj, gone)))
        }
        ("deletecollection", _) => {
            let o = ListOptions::parse(&t, q)?;
            let d = delete_options(headers, &body, q, dry)?;
            let scope = (t.namespaced && r.namespaced_path).then_some(ns.as_str());
            let page = watch::list(&app.store, &t, scope, &o).await?;
            let mut store = app.store.lock().expect("lock");
            let mut deleted = Vec::new();
            for item in &page.items {
                let (n, s) = (
                    item["metadata"]["name"].as_str().unwrap_or_default(),
                    item["metadata"]["namespace"].as_str().unwrap_or_default(),
                );
                if let Ok(v) = store.delete(&t, s, n, &d) {
                    deleted.push(v);
                }
            }
            Ok(json_response(200, &render_list(&t, deleted, json!({}), Render::Json)))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn delete_options(
    headers: &HeaderMap,
    body: &Bytes,
    q: &HashMap<String, String>,
    dry: bool,
) -> ApiResult<DeleteOpts> {
    let b = parse_body(headers, body)?;
    let propagation =
        q.get("propagationPolicy").cloned().or_else(|| b["propagationPolicy"].as_str().map(str::to_owned));
    let propagation = match (propagation, b["orphanDependents"].as_bool()) {
        (Some(p), _) => {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "DeleteOptions",
                    "",
                    &[FieldError::not_supported(
                        "propagationPolicy",
                        &json!(p),
                        &["Background", "Foreground", "Orphan", "nil"],
                    )],
                ));
            }
            Some(p)
        }
        (None, Some(true)) => Some("Orphan".into()),
        (None, _) => None,
    };
    let body_dry = b["dryRun"].as_array().is_some_and(|a| a.iter().any(|x| x == "All"));
    Ok(DeleteOpts {
        propagation,
        uid: b["preconditions"]["uid"].as_str().map(str::to_owned),
        resource_version: b["preconditions"]["resourceVersion"].as_str().map(str::to_owned),
        dry_run: dry || body_dry,
    })
}

/// The body of a delete response: the object for kinds whose storage
/// returns it (custom resources, namespaces, pods, CRDs) or while it waits
/// for finalizers, else a Success Status.
fn delete_response(t: &ResourceType, obj: Value, gone: bool) -> Value {
    let returns_object =
        t.custom || t.is_namespace() || t.is_crd() || (t.group.is_empty() && t.plural == "pods");
    if !gone || returns_object {
        return obj;
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": obj["metadata"]["name"], "group": t.group, "kind": t.plural, "uid": obj["metadata"]["uid"]}})
}

/// `POST serviceaccounts/{name}/token`.
fn token_request(app: &App, ns: &str, name: &str, body: Value, dry: bool) -> ApiResult<Response> {
    let mut store = app.store.lock().expect("lock");
    let uid = store
        .service_account_uid(ns, name)
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
    let seconds = body["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
    let mut errs = Vec::new();
    if seconds < 600 {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            &json!(seconds),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if seconds > 1 << 32 {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            &json!(seconds),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid("authentication.k8s.io", "TokenRequest", name, &errs));
    }
    let (token, expires) =
        if dry { (String::new(), 0) } else { store.auth.mint(ns, name, &uid, seconds as u64) };
    let audiences = match body["spec"]["audiences"].as_array() {
        Some(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => json!(["https://kubernetes.default.svc.cluster.local"]),
    };
    let resp = json!({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": now()},
        "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": body["spec"]["boundObjectRef"]},
        "status": {"token": token, "expirationTimestamp": super::store::rfc3339(expires)},
    });
    Ok(json_response(201, &resp))
}

/// The reviews: access (self, subject, local), rules, self and token.
fn review(app: &App, t: &ResourceType, ns: &str, body: Value, user: UserInfo) -> ApiResult<Response> {
    let store = app.store.lock().expect("lock");
    let spec = body["spec"].clone();
    let status = match t.plural.as_str() {
        "selfsubjectaccessreviews" => rbac::review_status(&*store, &rbac::review_attributes(&spec, user)),
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            let subject = UserInfo {
                name: spec["user"].as_str().unwrap_or_default().to_owned(),
                uid: spec["uid"].as_str().unwrap_or_default().to_owned(),
                groups: spec["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g.as_str().map(str::to_owned))
                    .collect(),
            };
            if subject.name.is_empty() && subject.groups.is_empty() {
                return Err(ApiError::invalid(
                    &t.group,
                    &t.kind,
                    "",
                    &[FieldError::invalid(
                        "spec.user",
                        &json!(""),
                        "at least one of user or group must be specified",
                    )],
                ));
            }
            let attrs = rbac::review_attributes(&spec, subject);
            if t.plural == "localsubjectaccessreviews"
                && attrs.resource.as_ref().is_some_and(|r| r.namespace != ns)
            {
                return Err(ApiError::invalid(
                    &t.group,
                    &t.kind,
                    "",
                    &[FieldError::invalid(
                        "spec.resourceAttributes.namespace",
                        &json!(attrs.resource.as_ref().map(|r| r.namespace.clone())),
                        format!("must match metadata.namespace {ns:?}"),
                    )],
                ));
            }
            rbac::review_status(&*store, &attrs)
        }
        "selfsubjectrulesreviews" => {
            let review_ns = spec["namespace"].as_str().unwrap_or_default();
            let rules = rbac::rules_for(&*store, &user, review_ns);
            let (resource, non_resource): (Vec<Value>, Vec<Value>) =
                rules.into_iter().partition(|r| r.get("nonResourceURLs").is_none_or(Value::is_null));
            let resource: Vec<Value> = resource
                .into_iter()
                .map(|r| json!({"verbs": r["verbs"], "apiGroups": r["apiGroups"], "resources": r["resources"], "resourceNames": r["resourceNames"]}))
                .collect();
            let non_resource: Vec<Value> = non_resource
                .into_iter()
                .map(|r| json!({"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}))
                .collect();
            json!({"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": false})
        }
        "selfsubjectreviews" => json!({"userInfo": user.to_json()}),
        "tokenreviews" => {
            let token = spec["token"].as_str().unwrap_or_default();
            match store.auth.authenticate(token, |n, s| store.service_account_uid(n, s)) {
                Some(u) => {
                    json!({"authenticated": true, "user": u.to_json(), "audiences": ["https://kubernetes.default.svc.cluster.local"]})
                }
                None => json!({"authenticated": false, "error": "invalid bearer token"}),
            }
        }
        _ => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    let mut meta = json!({"creationTimestamp": null});
    if t.namespaced {
        meta["namespace"] = json!(ns);
    }
    Ok(json_response(
        201,
        &json!({"kind": t.kind, "apiVersion": t.api_version(), "metadata": meta, "spec": spec, "status": status}),
    ))
}
