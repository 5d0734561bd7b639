//! The HTTP layer: path routing, verbs, watch streams, discovery and the
//! `/__test` endpoints.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::faults::{Delay, Fault, Faults, RequestInfo};
use super::resources::{self, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{ApiError, ApiResult, Change, ChangeKind, PatchType, Store, Sub};

/// Shared state of a running server.
#[derive(Debug)]
pub struct App {
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    close_watches: watch::Sender<u64>,
}

impl Default for App {
    fn default() -> Self {
        App { store: Mutex::default(), faults: Mutex::default(), close_watches: watch::channel(0).0 }
    }
}

/// A running test API server on 127.0.0.1.
#[derive(Debug)]
pub struct TestApiServer {
    addr: SocketAddr,
    app: Arc<App>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    runner: Option<Runner>,
}

/// Where the server runs.
#[derive(Debug)]
enum Runner {
    /// A task on the caller's runtime.
    Task(tokio::task::JoinHandle<()>),
    /// Its own thread and runtime (blocking test code cannot stall it).
    Thread(std::thread::JoinHandle<()>),
}

async fn serve_on(listener: tokio::net::TcpListener, app: Arc<App>, rx: tokio::sync::oneshot::Receiver<()>) {
    let router = Router::new().fallback(handle).with_state(app);
    let _ = axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await;
}

impl TestApiServer {
    /// Start on `127.0.0.1:port` (0 picks a free port) as a task of the
    /// current runtime.
    pub async fn start(port: u16) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let app = Arc::new(App::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_on(listener, app.clone(), rx));
        Ok(TestApiServer { addr, app, shutdown: Some(tx), runner: Some(Runner::Task(task)) })
    }

    /// Start on its own thread with its own runtime, so that tests may block
    /// (run processes, sleep) while it serves.
    pub fn start_background(port: u16) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let app = Arc::new(App::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = app.clone();
        let thread = std::thread::Builder::new().name("kube-test-apiserver".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                serve_on(listener, served, rx).await;
            });
        })?;
        Ok(TestApiServer { addr, app, shutdown: Some(tx), runner: Some(Runner::Thread(thread)) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig pointing at this server (no credentials).
    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.url())
    }

    /// Write the kubeconfig to a file.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Fail matching requests.
    pub fn fail(&self, fault: Fault) {
        self.app.faults.lock().expect("lock").add_fault(fault);
    }

    /// Delay matching requests.
    pub fn delay(&self, delay: Delay) {
        self.app.faults.lock().expect("lock").add_delay(delay);
    }

    /// Remove all faults and delays.
    pub fn clear_faults(&self) {
        self.app.faults.lock().expect("lock").clear();
    }

    /// End every open watch stream (clients must re-watch).
    pub fn close_watches(&self) {
        self.app.close_watches.send_modify(|n| *n += 1);
    }

    /// Forget the change history: watches from older resourceVersions get 410.
    pub fn compact(&self) {
        self.app.store.lock().expect("lock").compact();
    }

    /// Requests counted per (verb, resource).
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.app.faults.lock().expect("lock").counts()
    }

    /// Number of requests with one of `verbs` (any resource).
    pub fn count_verbs(&self, verbs: &[&str]) -> u64 {
        self.counts().iter().filter(|((v, _), _)| verbs.contains(&v.as_str())).map(|(_, n)| n).sum()
    }

    /// The most recent requests.
    pub fn recent_requests(&self) -> Vec<RequestInfo> {
        self.app.faults.lock().expect("lock").recent()
    }

    /// Reset the counters and the request log.
    pub fn reset_counts(&self) {
        self.app.faults.lock().expect("lock").reset_counts();
    }

    /// Every stored object.
    pub fn dump(&self) -> Vec<Value> {
        self.app.store.lock().expect("lock").dump()
    }

    /// Stop serving.
    pub async fn stop(mut self) {
        self.close_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.runner.take() {
            Some(Runner::Task(task)) => {
                let _ = task.await;
            }
            Some(Runner::Thread(thread)) => {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            None => {}
        }
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.close_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(Runner::Thread(thread)) = self.runner.take() {
            let _ = thread.join();
        }
    }
}

/// A kubeconfig for a server URL, without credentials.
pub fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\ncurrent-context: test\nusers:\n- name: test\n  user: {{}}\n"
    )
}

fn json_response(code: u16, body: &Value) -> Response {
    let mut r = (StatusCode::from_u16(code).unwrap_or(StatusCode::OK), body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("valid"));
    r
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.status())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 3 <= b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        match (b[i], hex) {
            (_, Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// Where a resource request points.
#[derive(Debug)]
struct Target {
    t: ResourceType,
    ns: Option<String>,
    name: Option<String>,
    sub: Sub,
}

fn route(store: &Store, segments: &[&str]) -> ApiResult<Target> {
    let (group, version, rest) = match segments {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::new(404, "NotFound", "the server could not find the requested resource")),
    };
    let find = |res: &str| {
        store.type_of(group, version, res).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                format!("the server could not find the requested resource ({res}.{group}/{version})"),
            )
        })
    };
    let sub = |s: Option<&&str>| match s {
        None => Ok(Sub::Main),
        Some(&"status") => Ok(Sub::Status),
        Some(other) => Err(ApiError::new(404, "NotFound", format!("subresource {other} is not supported"))),
    };
    match rest {
        ["namespaces", ns, res, tail @ ..] if !matches!(*res, "status" | "finalize") => {
            let t = find(res)?;
            if !t.namespaced {
                return Err(ApiError::new(404, "NotFound", format!("{} is not namespaced", t.plural)));
            }
            Ok(Target {
                t,
                ns: Some((*ns).to_owned()),
                name: tail.first().map(|s| (*s).to_owned()),
                sub: sub(tail.get(1))?,
            })
        }
        [res, tail @ ..] => {
            let t = find(res)?;
            let sub = match tail.get(1) {
                Some(&"finalize") => Sub::Main,
                other => sub(other)?,
            };
            Ok(Target { t, ns: None, name: tail.first().map(|s| (*s).to_owned()), sub })
        }
        [] => Err(ApiError::new(404, "NotFound", "no resource")),
    }
}

fn verb(method: &Method, has_name: bool, q: &HashMap<String, String>) -> &'static str {
    let watch = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    match (method.as_str(), has_name) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

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
            .map_err(|e| ApiError::bad_request(format!("invalid YAML: {e}")));
    }
    Err(ApiError::bad_request("the body is not valid JSON"))
}

fn manager(q: &HashMap<String, String>, headers: &HeaderMap) -> String {
    q.get("fieldManager").cloned().unwrap_or_else(|| {
        let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("unknown");
        ua.split('/').next().unwrap_or("unknown").to_owned()
    })
}

async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let q = query(&uri);
    match segments.as_slice() {
        ["version"] => {
            return json_response(
                200,
                &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-encstr-test", "platform": "linux/amd64", "goVersion": "go1.24", "compiler": "gc", "buildDate": "2026-11-23T00:00:00Z", "gitCommit": "0000000", "gitTreeState": "clean"}),
            );
        }
        ["healthz"] | ["readyz"] | ["livez"] => return (StatusCode::OK, "ok").into_response(),
        ["__test", rest @ ..] => return test_endpoint(&app, &method, rest, &body),
        ["openapi", "v3"] => {
            let types = app.store.lock().expect("lock").types().to_vec();
            return json_response(200, &resources::openapi_root(&types));
        }
        ["openapi", "v3", "api", v] | ["openapi", "v3", "apis", _, v] => {
            let group = if segments[2] == "api" { "" } else { segments[3] };
            let types = app.store.lock().expect("lock").types().to_vec();
            return match resources::openapi_gv(&types, group, v) {
                Some(doc) => json_response(200, &doc),
                None => error_response(&ApiError::new(404, "NotFound", "no such group/version")),
            };
        }
        ["api"] => {
            return json_response(
                200,
                &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
            );
        }
        ["apis"] => {
            let types = app.store.lock().expect("lock").types().to_vec();
            return json_response(200, &resources::group_list(&types));
        }
        ["api", v] | ["apis", _, v] => {
            let group = if segments[0] == "api" { "" } else { segments[1] };
            let types = app.store.lock().expect("lock").types().to_vec();
            return match resources::resource_list(&types, group, v) {
                Some(list) => json_response(200, &list),
                None => error_response(&ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )),
            };
        }
        _ => {}
    }
    let target = match route(&app.store.lock().expect("lock"), &segments) {
        Ok(t) => t,
        Err(e) => {
            let info = RequestInfo {
                verb: verb(&method, false, &q).into(),
                resource: String::new(),
                namespace: String::new(),
                name: String::new(),
                status: false,
                line: format!("{method} {uri}"),
                code: e.code,
            };
            let mut f = app.faults.lock().expect("lock");
            f.decide(&info);
            f.log(info);
            return error_response(&e);
        }
    };
    let mut info = RequestInfo {
        verb: verb(&method, target.name.is_some(), &q).into(),
        resource: target.t.plural.clone(),
        namespace: target.ns.clone().unwrap_or_default(),
        name: target.name.clone().unwrap_or_default(),
        status: target.sub == Sub::Status,
        line: format!("{method} {uri}"),
        code: 0,
    };
    let decision = app.faults.lock().expect("lock").decide(&info);
    if decision.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.delay_ms)).await;
    }
    let response = if let Some(code) = decision.fail {
        let reason = match code {
            409 => "Conflict",
            410 => "Expired",
            429 => "TooManyRequests",
            404 => "NotFound",
            _ => "InternalError",
        };
        error_response(&ApiError::new(
            code,
            reason,
            format!("injected fault: {code} for {} {}", info.verb, info.resource),
        ))
    } else if info.verb == "watch" {
        watch_response(&app, &target, &q)
    } else {
        match serve(&app, &target, &info.verb, &q, &headers, &body) {
            Ok((code, v)) => json_response(code, &v),
            Err(e) => error_response(&e),
        }
    };
    info.code = response.status().as_u16();
    app.faults.lock().expect("lock").log(info);
    response
}

fn serve(
    app: &App,
    target: &Target,
    verb: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<(u16, Value)> {
    let t = &target.t;
    let ns = if t.namespaced { target.ns.clone().unwrap_or_default() } else { String::new() };
    if t.namespaced && target.name.is_some() && target.ns.is_none() {
        return Err(ApiError::new(404, "NotFound", "namespaced resources need a namespace"));
    }
    let name = target.name.clone().unwrap_or_default();
    let mut store = app.store.lock().expect("lock");
    let mgr = manager(q, headers);
    match verb {
        "get" => store.get(t, &ns, &name).map(|v| (200, v)),
        "list" => {
            let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
                .map_err(ApiError::bad_request)?;
            let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
                .map_err(ApiError::bad_request)?;
            let scope = if t.namespaced { target.ns.as_deref() } else { None };
            let (mut items, rv) = store.list(t, scope, &labels, &fields);
            // Pagination: `continue` is the index of the next item.
            let start: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
            let limit: usize =
                q.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
            let total = items.len();
            items = items.into_iter().skip(start).take(limit).collect();
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if start.saturating_add(limit) < total {
                meta["continue"] = json!((start + limit).to_string());
                meta["remainingItemCount"] = json!(total - start - limit);
            }
            Ok((
                200,
                json!({"kind": format!("{}List", t.kind), "apiVersion": t.api_version(), "metadata": meta, "items": items}),
            ))
        }
        "create" => {
            let obj = parse_body(headers, body)?;
            store.create(t, &ns, obj, &mgr).map(|v| (201, v))
        }
        "update" => {
            let obj = parse_body(headers, body)?;
            store.update(t, &ns, &name, obj, target.sub, &mgr).map(|v| (200, v))
        }
        "patch" => {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let kind = if ct.starts_with("application/apply-patch") {
                if !q.contains_key("fieldManager") {
                    return Err(ApiError::bad_request("PATCH with apply requires a fieldManager"));
                }
                PatchType::Apply { force: q.get("force").is_some_and(|f| f == "true") }
            } else if ct.starts_with("application/json-patch") {
                PatchType::Json
            } else if ct.starts_with("application/merge-patch")
                || ct.starts_with("application/strategic-merge-patch")
            {
                PatchType::Merge
            } else {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format: {ct}"),
                ));
            };
            let patch = parse_body(headers, body)?;
            let existed = store.get(t, &ns, &name).is_ok();
            store
                .patch(t, &ns, &name, kind, &patch, target.sub, &mgr)
                .map(|v| (if existed { 200 } else { 201 }, v))
        }
        "delete" => {
            let opts = parse_body(headers, body).unwrap_or(Value::Null);
            let policy = q
                .get("propagationPolicy")
                .cloned()
                .or_else(|| opts["propagationPolicy"].as_str().map(str::to_owned));
            let orphan =
                policy.as_deref() == Some("Orphan") || opts["orphanDependents"].as_bool() == Some(true);
            store.delete(t, &ns, &name, orphan).map(|v| (200, v))
        }
        "deletecollection" => {
            let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
                .map_err(ApiError::bad_request)?;
            let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
                .map_err(ApiError::bad_request)?;
            let scope = if t.namespaced { target.ns.as_deref() } else { None };
            let (items, _) = store.list(t, scope, &labels, &fields);
            for item in &items {
                let (n, s) = (
                    item["metadata"]["name"].as_str().unwrap_or_default(),
                    item["metadata"]["namespace"].as_str().unwrap_or_default(),
                );
                let _ = store.delete(t, s, n, false);
            }
            Ok((
                200,
                json!({"kind": format!("{}List", t.kind), "apiVersion": t.api_version(), "metadata": {}, "items": items}),
            ))
        }
        _ => Err(ApiError::new(405, "MethodNotAllowed", "method not allowed")),
    }
}

/// The watch event for `change` as seen by a watch with these selectors,
/// or `None` if it does not concern it.
fn event_for(
    t: &ResourceType,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    c: &Change,
) -> Option<Value> {
    if c.key.group != t.group || c.key.plural != t.plural || ns.is_some_and(|n| n != c.key.namespace) {
        return None;
    }
    let matches = |o: &Value| labels.matches(o) && fields.matches(o);
    let kind = match c.kind {
        ChangeKind::Added if matches(&c.object) => "ADDED",
        ChangeKind::Deleted if matches(&c.object) => "DELETED",
        ChangeKind::Modified => match (c.old.as_ref().is_some_and(matches), matches(&c.object)) {
            (true, true) => "MODIFIED",
            (false, true) => "ADDED",
            (true, false) => "DELETED",
            (false, false) => return None,
        },
        _ => return None,
    };
    let mut object = c.object.clone();
    object["apiVersion"] = json!(t.api_version());
    object["kind"] = json!(t.kind);
    Some(json!({"type": kind, "object": object}))
}

fn bookmark(t: &ResourceType, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"type": "BOOKMARK", "object": {"kind": t.kind, "apiVersion": t.api_version(), "metadata": meta}})
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn watch_response(app: &Arc<App>, target: &Target, q: &HashMap<String, String>) -> Response {
    let t = target.t.clone();
    let ns = if t.namespaced { target.ns.clone() } else { None };
    let (labels, fields) = match (
        LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str)),
        FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str)),
    ) {
        (Ok(l), Ok(f)) => (l, f),
        (Err(e), _) | (_, Err(e)) => return error_response(&ApiError::bad_request(e)),
    };
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let timeout = q.get("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()).unwrap_or(1800);
    let rv: Option<u64> =
        q.get("resourceVersion").filter(|s| !s.is_empty()).and_then(|s| s.parse().ok()).filter(|rv| *rv > 0);

    let (initial, mut rx, start_rv): (Result<Vec<Value>, ApiError>, broadcast::Receiver<Arc<Change>>, u64) = {
        let store = app.store.lock().expect("lock");
        let rx = store.subscribe();
        let initial = match rv {
            Some(rv) if !send_initial => store.changes_since(rv).map(|changes| {
                changes.iter().filter_map(|c| event_for(&t, ns.as_deref(), &labels, &fields, c)).collect()
            }),
            _ => {
                let (items, _) = store.list(&t, ns.as_deref(), &labels, &fields);
                Ok(items.into_iter().map(|o| json!({"type": "ADDED", "object": o})).collect())
            }
        };
        (initial, rx, store.rv())
    };
    let (tx, out) = tokio::sync::mpsc::channel::<Bytes>(256);
    let mut closed = app.close_watches.subscribe();
    tokio::spawn(async move {
        let initial = match initial {
            Ok(events) => events,
            Err(e) => {
                let _ = tx.send(line(&json!({"type": "ERROR", "object": e.status()}))).await;
                return;
            }
        };
        for ev in &initial {
            if tx.send(line(ev)).await.is_err() {
                return;
            }
        }
        let mut last_rv = start_rv;
        if send_initial && tx.send(line(&bookmark(&t, last_rv, true))).await.is_err() {
            return;
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.reset();
        loop {
            tokio::select! {
                change = rx.recv() => match change {
                    Ok(c) => {
                        last_rv = c.rv;
                        if let Some(ev) = event_for(&t, ns.as_deref(), &labels, &fields, &c)
                            && tx.send(line(&ev)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    if tx.send(line(&bookmark(&t, last_rv, false))).await.is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = closed.changed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(out, |mut out| async move {
        out.recv().await.map(|b| (Ok::<_, Infallible>(b), out))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("valid"));
    r
}

fn test_endpoint(app: &App, method: &Method, rest: &[&str], body: &Bytes) -> Response {
    let parsed = || serde_json::from_slice::<Value>(body).map_err(|e| ApiError::bad_request(e.to_string()));
    let ok = || json_response(200, &json!({"ok": true}));
    match (method.as_str(), rest) {
        ("GET", ["requests"]) => {
            let f = app.faults.lock().expect("lock");
            let counts: Vec<Value> = f
                .counts()
                .into_iter()
                .map(|((verb, resource), n)| json!({"verb": verb, "resource": resource, "count": n}))
                .collect();
            json_response(200, &json!({"counts": counts, "recent": f.recent()}))
        }
        ("DELETE", ["requests"]) => {
            app.faults.lock().expect("lock").reset_counts();
            ok()
        }
        ("POST", ["faults"]) => match parsed().and_then(|v| {
            serde_json::from_value::<Fault>(v).map_err(|e| ApiError::bad_request(e.to_string()))
        }) {
            Ok(f) => {
                app.faults.lock().expect("lock").add_fault(f);
                ok()
            }
            Err(e) => error_response(&e),
        },
        ("POST", ["delays"]) => match parsed().and_then(|v| {
            serde_json::from_value::<Delay>(v).map_err(|e| ApiError::bad_request(e.to_string()))
        }) {
            Ok(d) => {
                app.faults.lock().expect("lock").add_delay(d);
                ok()
            }
            Err(e) => error_response(&e),
        },
        ("DELETE", ["faults"]) => {
            app.faults.lock().expect("lock").clear();
            ok()
        }
        ("POST", ["close-watches"]) => {
            app.close_watches.send_modify(|n| *n += 1);
            ok()
        }
        ("POST", ["compact"]) => {
            app.store.lock().expect("lock").compact();
            ok()
        }
        ("GET", ["state"]) => json_response(200, &Value::Array(app.store.lock().expect("lock").dump())),
        _ => error_response(&ApiError::new(404, "NotFound", "unknown test endpoint")),
    }
}
