//! Resource requests: the verbs on stored types through the store's one
//! write path (prepare, authorize, admit, validate, commit with retries on
//! concurrent change), `status` and the subresources and reviews the kinds
//! serve (their strategies), and the encodings of responses (JSON, Table,
//! PartialObjectMetadata). No kind is named here.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::admission;
use super::auth::UserInfo;
use super::errors::{ApiError, ApiResult, FieldError};
use super::resources::ResourceType;
use super::server::{App, ResourceRequest, dry_run, error_response, json_response, stream_response};
use super::store::{
    CommitError, DeleteOpts, FieldValidation, Opts, Outcome, PatchType, Prepared, Store, Sub,
};
use super::strategy::{ReviewRequest, SubresourceRequest};
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

/// The write loop, each layer once in kube-apiserver's order: prepare,
/// authorize (escalation) and built-in admission under the lock; mutating
/// webhooks outside it; validation; validating webhooks; then commit under
/// the lock again, preparing anew when the object changed in between.
async fn write(
    app: &App,
    subresource: &str,
    prepare: impl Fn(&Store) -> ApiResult<Prepared>,
) -> ApiResult<Outcome> {
    for _ in 0..32 {
        let mut p = {
            let s = app.store.lock().expect("lock");
            let p = prepare(&s)?;
            s.authorize(&p)?;
            s.admit(&p)?;
            p
        };
        let mut warnings = admission::mutate(&app.store, &app.endpoints, &mut p, subresource).await?;
        Store::validate(&p)?;
        warnings.extend(admission::validate(&app.store, &app.endpoints, &p, subresource).await?);
        p.warnings.extend(warnings);
        let mut s = app.store.lock().expect("lock");
        match s.persist(p) {
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

fn not_found() -> ApiError {
    ApiError::new(404, "NotFound", "the server could not find the requested resource")
}

fn method_not_allowed() -> ApiError {
    ApiError::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
}

fn lookup(app: &App, r: &ResourceRequest) -> ApiResult<Arc<ResourceType>> {
    let store = app.store.lock().expect("lock");
    let t = store
        .type_of(&r.group, &r.version, &r.resource)
        .filter(|t| t.plural == r.resource)
        .ok_or_else(not_found)?;
    // A namespaced path to a cluster-scoped type, or a cluster path to one
    // object of a namespaced type, does not exist.
    if (r.namespaced_path && !t.namespaced) || (t.namespaced && !r.namespaced_path && !r.name.is_empty()) {
        return Err(not_found());
    }
    let sub_ok = match r.subresource.as_str() {
        "" => true,
        "status" => t.status,
        sub => t.strategy.subresources().iter().any(|(s, _)| *s == sub),
    };
    if !sub_ok {
        return Err(not_found());
    }
    Ok(t)
}

/// One resource request, as the verbs' handlers see it.
struct Call<'a> {
    app: &'a Arc<App>,
    r: &'a ResourceRequest,
    t: Arc<ResourceType>,
    ns: String,
    user: UserInfo,
    q: &'a HashMap<String, String>,
    headers: &'a HeaderMap,
    body: Bytes,
    render: Render,
    dry: bool,
}

impl Call<'_> {
    fn opts(&self, validation: FieldValidation) -> Opts {
        Opts {
            user: self.user.clone(),
            manager: manager(self.q, self.headers),
            dry_run: self.dry,
            validation,
            sub: if self.r.subresource == "status" { Sub::Status } else { Sub::Main },
        }
    }

    fn body(&self) -> ApiResult<Value> {
        parse_body(self.headers, &self.body)
    }

    /// The namespace a list or watch is scoped to.
    fn scope(&self) -> Option<&str> {
        (self.t.namespaced && self.r.namespaced_path).then_some(self.ns.as_str())
    }
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
    if !t.verbs.contains(&r.verb) && r.subresource.is_empty() {
        return Err(method_not_allowed());
    }
    let render = render_of(headers, q)?;
    let dry = dry_run(q)?;
    let c = Call { app, r, t, ns, user, q, headers, body, render, dry };
    let sub = r.subresource.as_str();
    if c.t.strategy.subresources().contains(&(sub, r.verb)) {
        return subresource(&c);
    }
    match r.verb {
        "get" => {
            let obj = app.store.lock().expect("lock").get(&c.t, &c.ns, &r.name)?;
            Ok(json_response(200, &render_one(&c.t, obj, render)))
        }
        "list" => {
            let o = ListOptions::parse(&c.t, q)?;
            let page = watch::list(&app.store, &c.t, c.scope(), &o).await?;
            Ok(json_response(200, &render_list(&c.t, page.items, page.meta, render)))
        }
        "watch" => start_watch(&c),
        "create" if c.t.is_review() => review(&c),
        "create" | "update" | "patch" => write_verb(&c).await,
        "delete" => {
            let d = delete_options(headers, &c.body, q, dry)?;
            let mut store = app.store.lock().expect("lock");
            let obj = store.delete(&c.t, &c.ns, &r.name, &d)?;
            let gone = store.get(&c.t, &c.ns, &r.name).is_err();
            Ok(json_response(200, &delete_response(&c.t, obj, gone)))
        }
        "deletecollection" => delete_collection(&c).await,
        _ => Err(method_not_allowed()),
    }
}

fn start_watch(c: &Call<'_>) -> ApiResult<Response> {
    let o = ListOptions::parse(&c.t, c.q)?;
    let tt = c.t.clone();
    let render = c.render;
    let encode: watch::Encode = Arc::new(move |_kind, obj, first| match render {
        Render::Json => obj,
        Render::Partial => partial(&obj),
        Render::Table(include) => {
            let rv = obj["metadata"]["resourceVersion"].clone();
            table::table(&tt, &[obj], json!({"resourceVersion": rv}), include, first)
        }
    });
    let scope = c.scope().map(str::to_owned);
    let rx = watch::start(
        &c.app.store,
        c.app.settings.clone(),
        c.app.close_watches.subscribe(),
        c.t.clone(),
        scope,
        o,
        encode,
    )?;
    Ok(stream_response(rx))
}

/// A subresource the kind serves itself (its strategy's
/// `serve_subresource`).
fn subresource(c: &Call<'_>) -> ApiResult<Response> {
    let req = SubresourceRequest {
        subresource: &c.r.subresource,
        namespace: &c.ns,
        name: &c.r.name,
        body: c.body()?,
        dry_run: c.dry,
    };
    let mut store = c.app.store.lock().expect("lock");
    let (code, v) = c.t.strategy.serve_subresource(&mut store, &req)?;
    Ok(json_response(code, &v))
}

/// A review: created, answered with its status, never stored.
fn review(c: &Call<'_>) -> ApiResult<Response> {
    let spec = c.body()?["spec"].clone();
    let store = c.app.store.lock().expect("lock");
    let r = ReviewRequest { t: &c.t, namespace: &c.ns, spec: &spec, user: c.user.clone() };
    let status = c.t.strategy.review(&store, &r)?;
    let mut meta = json!({"creationTimestamp": null});
    if c.t.namespaced {
        meta["namespace"] = json!(c.ns);
    }
    let t = &c.t;
    Ok(json_response(
        201,
        &json!({"kind": t.kind, "apiVersion": t.api_version(), "metadata": meta, "spec": spec, "status": status}),
    ))
}

/// Create, update and patch, through [`write`].
async fn write_verb(c: &Call<'_>) -> ApiResult<Response> {
    let (t, ns, name) = (&c.t, c.ns.as_str(), c.r.name.as_str());
    let (code, o) = match c.r.verb {
        "create" => {
            let obj = c.body()?;
            let opts = c.opts(field_validation(c.q)?);
            let o = write(c.app, &c.r.subresource, |s| s.prepare_create(t, ns, obj.clone(), opts.clone()))
                .await?;
            (201, o)
        }
        "update" => {
            let obj = c.body()?;
            let opts = c.opts(field_validation(c.q)?);
            let o =
                write(c.app, &c.r.subresource, |s| s.prepare_update(t, ns, name, obj.clone(), opts.clone()))
                    .await?;
            (200, o)
        }
        _ => {
            let kind = patch_type(c.headers, c.q)?;
            let patch = c.body()?;
            if patch.is_null() {
                return Err(ApiError::bad_request("the body of the request was empty"));
            }
            let opts = c.opts(field_validation(c.q)?);
            let o =
                write(c.app, &c.r.subresource, |s| s.prepare_patch(t, ns, name, kind, &patch, opts.clone()))
                    .await?;
            (if o.created { 201 } else { 200 }, o)
        }
    };
    Ok(with_warnings(json_response(code, &o.obj), &o.warnings))
}

/// The patch type of a request's content type, with the options it allows.
fn patch_type(headers: &HeaderMap, q: &HashMap<String, String>) -> ApiResult<PatchType> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let force = q.get("force").map(String::as_str);
    let patch_options = |e: FieldError| ApiError::invalid("meta.k8s.io", "PatchOptions", "", &[e]);
    if ct.starts_with("application/apply-patch") {
        if q.get("fieldManager").is_none_or(String::is_empty) {
            return Err(patch_options(FieldError::required("fieldManager", "is required for apply patch")));
        }
        return Ok(PatchType::Apply { force: force == Some("true") });
    }
    if force.is_some() {
        return Err(patch_options(FieldError::forbidden(
            "force",
            "may not be specified for non-apply patch",
        )));
    }
    if ct.starts_with("application/json-patch") {
        Ok(PatchType::Json)
    } else if ct.starts_with("application/merge-patch") {
        Ok(PatchType::Merge)
    } else if ct.starts_with("application/strategic-merge-patch") {
        Ok(PatchType::Strategic)
    } else {
        Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"
            ),
        ))
    }
}

async fn delete_collection(c: &Call<'_>) -> ApiResult<Response> {
    let o = ListOptions::parse(&c.t, c.q)?;
    let d = delete_options(c.headers, &c.body, c.q, c.dry)?;
    let page = watch::list(&c.app.store, &c.t, c.scope(), &o).await?;
    let mut store = c.app.store.lock().expect("lock");
    let mut deleted = Vec::new();
    for item in &page.items {
        let (n, s) = (
            item["metadata"]["name"].as_str().unwrap_or_default(),
            item["metadata"]["namespace"].as_str().unwrap_or_default(),
        );
        if let Ok(v) = store.delete(&c.t, s, n, &d) {
            deleted.push(v);
        }
    }
    Ok(json_response(200, &render_list(&c.t, deleted, json!({}), Render::Json)))
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
    if !gone || t.strategy.delete_returns_object() {
        return obj;
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": obj["metadata"]["name"], "group": t.group, "kind": t.plural, "uid": obj["metadata"]["uid"]}})
}
