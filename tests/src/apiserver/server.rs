//! The HTTPS layer, in kube-apiserver's order: authentication (bearer
//! tokens; none is `system:anonymous`), request info (verb, resource,
//! subresource, namespace, name, or a non-resource path), RBAC
//! authorization, then the request log and injected faults, and the
//! handlers: discovery, resources (see `handlers`), watches and the
//! `/__test` control endpoints (unauthenticated: they are the test's, not
//! the cluster's).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::admission::Endpoints;
use super::auth::{Tls, TlsListener, UserInfo, random_token};
use super::errors::{ApiError, ApiResult};
use super::faults::{Delay, Fault, Faults, RequestInfo, Usage, UsageCount};
use super::rbac::{self, Attributes, ResourceAttributes};
use super::resources;
use super::store::Store;
use super::watch::WatchSettings;
use super::{controllers, handlers};

/// The name of the admin identity of generated kubeconfigs.
pub const ADMIN_USER: &str = "kubernetes-admin";

/// Shared state of a running server.
#[derive(Debug)]
pub struct App {
    pub(super) store: Mutex<Store>,
    pub(super) faults: Mutex<Faults>,
    pub(super) close_watches: watch::Sender<u64>,
    pub(super) settings: Arc<Mutex<WatchSettings>>,
    pub(super) tls: Tls,
    pub(super) endpoints: Endpoints,
    admin_token: String,
}

impl App {
    fn new() -> App {
        let admin_token = random_token();
        let mut store = Store::default();
        store.auth.add_token(&admin_token, UserInfo::new(ADMIN_USER, &["system:masters"]));
        App {
            store: Mutex::new(store),
            faults: Mutex::default(),
            close_watches: watch::channel(0).0,
            settings: Arc::default(),
            tls: Tls::generate(),
            endpoints: Endpoints::default(),
            admin_token,
        }
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
        let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return Ok(UserInfo::anonymous());
        };
        let token = auth.strip_prefix("Bearer ").map(str::trim).unwrap_or_default();
        let store = self.store.lock().expect("lock");
        store
            .auth
            .authenticate(token, |ns, name| store.service_account_uid(ns, name))
            .ok_or_else(|| ApiError::new(401, "Unauthorized", "Unauthorized"))
    }
}

/// A running test API server on 127.0.0.1, serving HTTPS.
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

/// The control-plane controllers: after changes (debounced) and on a tick.
async fn run_controllers(app: Arc<App>) {
    let mut rx = app.store.lock().expect("lock").subscribe();
    let ca = app.tls.ca_pem.clone();
    loop {
        tokio::select! {
            r = rx.recv() => {
                if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        while rx.try_recv().is_ok() {}
        let mut store = app.store.lock().expect("lock");
        controllers::run_once(&mut store, &ca);
    }
}

async fn serve_on(listener: tokio::net::TcpListener, app: Arc<App>, rx: tokio::sync::oneshot::Receiver<()>) {
    let controllers = tokio::spawn(run_controllers(app.clone()));
    let tls = match TlsListener::new(listener, app.tls.server_config()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kube-test-apiserver: cannot listen: {e}");
            return;
        }
    };
    let router = Router::new().fallback(handle).with_state(app);
    let _ = axum::serve(tls, router)
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await;
    controllers.abort();
}

impl TestApiServer {
    /// Start on `127.0.0.1:port` (0 picks a free port) as a task of the
    /// current runtime.
    pub async fn start(port: u16) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let app = Arc::new(App::new());
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
        let app = Arc::new(App::new());
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

    /// Say where a Service's port is reached (`NS/NAME=HOST:PORT`), for
    /// admission webhooks given by `clientConfig.service`.
    pub fn set_service_endpoint(&self, spec: &str) -> Result<(), String> {
        self.app.endpoints.set(spec)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The server's CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.app.tls.ca_pem
    }

    /// A rustls client configuration trusting the server's CA.
    pub fn client_tls(&self) -> Arc<rustls::ClientConfig> {
        self.app.tls.client_config()
    }

    /// The admin's bearer token (`system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.app.admin_token
    }

    /// A kubeconfig for the admin (`system:masters`).
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig_for(ADMIN_USER, Some(&self.app.admin_token))
    }

    /// A kubeconfig for the identity of `token` (`None`: anonymous).
    pub fn kubeconfig_for(&self, user: &str, token: Option<&str>) -> String {
        kubeconfig(&self.url(), &self.app.tls.ca_pem, user, token)
    }

    /// Write the admin kubeconfig to a file.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Accept `token` as the user `name` in `groups` (plus
    /// `system:authenticated`).
    pub fn add_user(&self, token: &str, name: &str, groups: &[&str]) {
        self.app.store.lock().expect("lock").auth.add_token(token, UserInfo::new(name, groups));
    }

    /// Add the users of a token file in kube-apiserver's CSV format
    /// (`token,user,uid,"group1,group2"`); returns how many.
    pub fn load_token_file(&self, text: &str) -> Result<usize, String> {
        self.app.store.lock().expect("lock").auth.load_token_file(text)
    }

    /// A token for an existing ServiceAccount, as TokenRequest mints them.
    pub fn service_account_token(&self, ns: &str, name: &str) -> Option<String> {
        let mut store = self.app.store.lock().expect("lock");
        let uid = store.service_account_uid(ns, name)?;
        Some(store.auth.mint(ns, name, &uid, 3600).0)
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

    /// Deliver watch events of `resource` (plural) `delay` after they
    /// happen (zero: at once).
    pub fn set_watch_delay(&self, resource: &str, delay: Duration) {
        let mut s = self.app.settings.lock().expect("lock");
        if delay.is_zero() {
            s.delays.remove(resource);
        } else {
            s.delays.insert(resource.to_owned(), delay);
        }
    }

    /// Send bookmarks this often (watches opened from now on).
    pub fn set_bookmark_interval(&self, every: Duration) {
        self.app.settings.lock().expect("lock").bookmark_interval = every.max(Duration::from_millis(10));
    }

    /// Keep this many changes for watches and consistent lists.
    pub fn set_history(&self, changes: usize) {
        self.app.store.lock().expect("lock").set_history(changes);
    }

    /// End every open watch stream (clients must re-watch).
    pub fn close_watches(&self) {
        self.app.close_watches.send_modify(|n| *n += 1);
    }

    /// Forget the change history: watches and lists from older
    /// resourceVersions (and continue tokens) get 410.
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

    /// Every (user, verb, group, resource, namespace) requested since the
    /// last reset, with request and 403 counts.
    pub fn usage(&self) -> BTreeMap<Usage, UsageCount> {
        self.app.faults.lock().expect("lock").usage()
    }

    /// Reset the counters, usage and the request log.
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

/// A kubeconfig for a server URL and CA, as `user` with a bearer token
/// (`None`: no credentials).
pub fn kubeconfig(url: &str, ca_pem: &str, user: &str, token: Option<&str>) -> String {
    let ca = STANDARD.encode(ca_pem);
    let credentials = match token {
        Some(t) => format!("\n    token: {t}"),
        None => " {}".to_owned(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: {user}\n    namespace: default\ncurrent-context: test\nusers:\n- name: {user}\n  user:{credentials}\n"
    )
}

pub(super) fn json_response(code: u16, body: &Value) -> Response {
    let mut r = (StatusCode::from_u16(code).unwrap_or(StatusCode::OK), body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(super) fn error_response(e: &ApiError) -> Response {
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

/// A resource request, as kube-apiserver's RequestInfoFactory parses it.
#[derive(Debug, Clone)]
pub(super) struct ResourceRequest {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    /// The namespace of the path (`namespaces/{ns}/...`), or for a
    /// namespace itself its name.
    pub namespace: String,
    /// Whether the path was namespaced (`namespaces/{ns}/resource`).
    pub namespaced_path: bool,
    pub name: String,
    pub verb: &'static str,
}

fn resource_request(
    method: &Method,
    segments: &[String],
    q: &HashMap<String, String>,
) -> Option<ResourceRequest> {
    let (group, version, rest) = match segments {
        [a, v, rest @ ..] if a == "api" && !rest.is_empty() => (String::new(), v.clone(), rest),
        [a, g, v, rest @ ..] if a == "apis" && !rest.is_empty() => (g.clone(), v.clone(), rest),
        _ => return None,
    };
    let mut parts: &[String] = rest;
    let mut namespace = String::new();
    let mut namespaced_path = false;
    if parts[0] == "namespaces" && parts.len() > 1 {
        namespace = parts[1].clone();
        if parts.len() > 2 && !matches!(parts[2].as_str(), "status" | "finalize") {
            parts = &parts[2..];
            namespaced_path = true;
        }
    }
    let verb = match method.as_str() {
        "GET" | "HEAD" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "unknown",
    };
    let name = parts.get(1).cloned().unwrap_or_default();
    let verb = match (verb, name.is_empty()) {
        ("get", true) if matches!(q.get("watch").map(String::as_str), Some("true" | "1")) => "watch",
        ("get", true) => "list",
        ("delete", true) => "deletecollection",
        (v, _) => v,
    };
    Some(ResourceRequest {
        group,
        version,
        resource: parts[0].clone(),
        subresource: parts.get(2).cloned().unwrap_or_default(),
        namespace,
        namespaced_path,
        name,
        verb,
    })
}

/// kubectl and client-go send `?dryRun=All`; kube-apiserver refuses other
/// values.
pub(super) fn dry_run(q: &HashMap<String, String>) -> Result<bool, ApiError> {
    match q.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "dryRun: Unsupported value: [\"{other}\"]: supported values: \"All\""
        ))),
    }
}

/// What RBAC is asked about a request.
fn attributes(
    request: Option<&ResourceRequest>,
    user: &UserInfo,
    method: &Method,
    path: &str,
    q: &HashMap<String, String>,
) -> Attributes {
    match request {
        Some(r) => Attributes {
            user: user.clone(),
            verb: r.verb.into(),
            resource: Some(ResourceAttributes {
                group: r.group.clone(),
                resource: r.resource.clone(),
                subresource: r.subresource.clone(),
                namespace: r.namespace.clone(),
                name: authorized_name(r, q),
            }),
            path: String::new(),
        },
        None => Attributes {
            user: user.clone(),
            verb: method.as_str().to_lowercase(),
            resource: None,
            path: path.to_owned(),
        },
    }
}

/// The request log's record of a request (its code set when answered).
fn request_info(
    request: Option<&ResourceRequest>,
    attrs: &Attributes,
    user: &UserInfo,
    method: &Method,
    uri: &Uri,
) -> RequestInfo {
    RequestInfo {
        verb: attrs.verb.clone(),
        resource: request.map(|r| r.resource.clone()).unwrap_or_default(),
        namespace: request.map(|r| r.namespace.clone()).unwrap_or_default(),
        name: request.map(|r| r.name.clone()).unwrap_or_default(),
        group: request.map(|r| r.group.clone()).unwrap_or_default(),
        subresource: request.map(|r| r.subresource.clone()).unwrap_or_default(),
        user: user.name.clone(),
        line: format!("{method} {uri}"),
        code: 0,
    }
}

/// The answer of an injected fault.
fn injected(code: u16, retry_after: Option<u64>, info: &RequestInfo) -> Response {
    let reason = match code {
        409 => "Conflict",
        410 => "Expired",
        429 => "TooManyRequests",
        404 => "NotFound",
        403 => "Forbidden",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    let mut e =
        ApiError::new(code, reason, format!("injected fault: {code} for {} {}", info.verb, info.resource));
    let Some(secs) = retry_after else { return error_response(&e) };
    e.details = Some(json!({"retryAfterSeconds": secs}));
    let mut response = error_response(&e);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let segments: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let q = query(&uri);
    if segments.first().is_some_and(|s| s == "__test") {
        let rest: Vec<&str> = segments[1..].iter().map(String::as_str).collect();
        return test_endpoint(&app, &method, &rest, &body);
    }
    let user = match app.authenticate(&headers).and_then(|u| impersonate(&app, u, &headers)) {
        Ok(u) => u,
        Err(e) => return error_response(&e),
    };
    let request = resource_request(&method, &segments, &q);
    let attrs = attributes(request.as_ref(), &user, &method, &path, &q);
    let mut info = request_info(request.as_ref(), &attrs, &user, &method, &uri);
    let allowed = {
        let store = app.store.lock().expect("lock");
        rbac::allowed(&*store, &attrs)
    };
    if !allowed {
        let e = ApiError::forbidden(
            rbac::forbidden_message(&attrs),
            attrs.resource.as_ref().map(|r| json!({"name": r.name, "group": r.group, "kind": r.resource})),
        );
        info.code = 403;
        app.faults.lock().expect("lock").log(info);
        return error_response(&e);
    }
    let decision = app.faults.lock().expect("lock").decide(&info);
    if decision.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.delay_ms)).await;
    }
    let response = match (decision.fail, &request) {
        (Some(code), _) => injected(code, decision.retry_after, &info),
        (None, Some(r)) => handlers::resource(&app, r, user, &q, &headers, body).await,
        (None, None) => non_resource(&app, &segments, &method),
    };
    info.code = response.status().as_u16();
    app.faults.lock().expect("lock").log(info);
    response
}

/// `Impersonate-User`/`-Group`/`-Uid`: the requester needs `impersonate`
/// on each (users, groups, uids, or the ServiceAccount), as kube-apiserver's
/// impersonation filter checks.
fn impersonate(app: &App, requester: UserInfo, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    };
    let user = values("impersonate-user").into_iter().next();
    let groups = values("impersonate-group");
    let uid = values("impersonate-uid").into_iter().next();
    let Some(name) = user else {
        if !groups.is_empty() || uid.is_some() {
            return Err(ApiError::bad_request("requested [impersonate-group] without impersonating a user"));
        }
        return Ok(requester);
    };
    let check = |resource: &str, namespace: &str, object: &str| -> Result<(), ApiError> {
        let attrs = Attributes {
            user: requester.clone(),
            verb: "impersonate".into(),
            resource: Some(ResourceAttributes {
                group: if resource == "uids" { "authentication.k8s.io".into() } else { String::new() },
                resource: resource.into(),
                subresource: String::new(),
                namespace: namespace.into(),
                name: object.into(),
            }),
            path: String::new(),
        };
        let store = app.store.lock().expect("lock");
        if rbac::allowed(&*store, &attrs) {
            Ok(())
        } else {
            Err(ApiError::forbidden(rbac::forbidden_message(&attrs), None))
        }
    };
    let mut impersonated = match name.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
        Some((ns, sa)) => {
            check("serviceaccounts", ns, sa)?;
            let mut u =
                UserInfo::new(&name, &["system:serviceaccounts", &format!("system:serviceaccounts:{ns}")]);
            u.groups.retain(|g| g != "system:authenticated");
            u
        }
        None => {
            check("users", "", &name)?;
            UserInfo { name: name.clone(), uid: String::new(), groups: Vec::new() }
        }
    };
    for g in &groups {
        check("groups", "", g)?;
        if !impersonated.groups.contains(g) {
            impersonated.groups.push(g.clone());
        }
    }
    if let Some(uid) = uid {
        check("uids", "", &uid)?;
        impersonated.uid = uid;
    }
    let anonymous = name == "system:anonymous";
    let implied = if anonymous { "system:unauthenticated" } else { "system:authenticated" };
    if !impersonated.groups.iter().any(|g| g == implied) {
        impersonated.groups.push(implied.into());
    }
    Ok(impersonated)
}

fn not_found() -> Response {
    error_response(&ApiError::new(404, "NotFound", "the server could not find the requested resource"))
}

/// Discovery, version, health and OpenAPI.
fn non_resource(app: &App, segments: &[String], method: &Method) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return error_response(&ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ));
    }
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let types = || app.store.lock().expect("lock").types().to_vec();
    match segs.as_slice() {
        ["version"] => json_response(
            200,
            &json!({"major": "1", "minor": "35", "emulationMajor": "1", "emulationMinor": "35", "minCompatibilityMajor": "1", "minCompatibilityMinor": "34", "gitVersion": "v1.35.0", "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean", "buildDate": "2026-11-23T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        ["healthz"] | ["readyz"] | ["livez"] => (StatusCode::OK, "ok").into_response(),
        ["openapi", "v3"] => json_response(200, &resources::openapi_root(&types())),
        ["openapi", "v3", "api", v] => {
            resources::openapi_gv(&types(), "", v).map_or_else(not_found, |d| json_response(200, &d))
        }
        ["openapi", "v3", "apis", g, v] => {
            resources::openapi_gv(&types(), g, v).map_or_else(not_found, |d| json_response(200, &d))
        }
        ["api"] => json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        ["apis"] => json_response(200, &resources::group_list(&types())),
        ["apis", g] => {
            let list = resources::group_list(&types());
            match list["groups"].as_array().into_iter().flatten().find(|x| x["name"] == *g) {
                Some(group) => {
                    let mut g = group.clone();
                    g["kind"] = json!("APIGroup");
                    g["apiVersion"] = json!("v1");
                    json_response(200, &g)
                }
                None => not_found(),
            }
        }
        ["api", v] => {
            resources::resource_list(&types(), "", v).map_or_else(not_found, |l| json_response(200, &l))
        }
        ["apis", g, v] => {
            resources::resource_list(&types(), g, v).map_or_else(not_found, |l| json_response(200, &l))
        }
        _ => not_found(),
    }
}

/// A streamed response of JSON lines.
pub(super) fn stream_response(mut rx: tokio::sync::mpsc::Receiver<Value>) -> Response {
    let stream = async_stream(move |tx| async move {
        while let Some(v) = rx.recv().await {
            let mut s = v.to_string();
            s.push('\n');
            if tx.send(Bytes::from(s)).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    r
}

/// A byte stream fed by a task.
fn async_stream<F, Fut>(f: F) -> impl futures::Stream<Item = Result<Bytes, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(f(tx));
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx)) })
}

/// The name RBAC sees: the path's, or for a list or watch the exact
/// `metadata.name` of its field selector (so `resourceNames` rules allow
/// watching one object, as in kube-apiserver's RequestInfo).
fn authorized_name(r: &ResourceRequest, q: &HashMap<String, String>) -> String {
    if !matches!(r.verb, "list" | "watch") {
        return r.name.clone();
    }
    q.get("fieldSelector")
        .into_iter()
        .flat_map(|s| s.split(','))
        .find_map(|term| {
            let term = term.trim();
            term.strip_prefix("metadata.name==").or_else(|| term.strip_prefix("metadata.name="))
        })
        .filter(|n| !n.is_empty() && !n.contains('/') && !n.contains('%') && *n != "." && *n != "..")
        .map(str::to_owned)
        .unwrap_or_default()
}

/// The `/__test` endpoints that take a JSON body (POST).
const WITH_BODY: &[&str] = &["service-endpoints", "faults", "delays", "watch-delays", "settings", "users"];

fn test_endpoint(app: &App, method: &Method, rest: &[&str], body: &Bytes) -> Response {
    let answer = match (method.as_str(), rest) {
        ("POST", [what]) if WITH_BODY.contains(what) => serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(e.to_string()))
            .and_then(|v| test_post(app, what, v)),
        _ => test_action(app, method.as_str(), rest),
    };
    match answer {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e),
    }
}

/// The `/__test` endpoints without a body.
fn test_action(app: &App, method: &str, rest: &[&str]) -> ApiResult<Value> {
    match (method, rest) {
        ("GET", ["requests"]) => {
            let f = app.faults.lock().expect("lock");
            let counts: Vec<Value> = f
                .counts()
                .into_iter()
                .map(|((verb, resource), n)| json!({"verb": verb, "resource": resource, "count": n}))
                .collect();
            let usage: Vec<Value> =
                f.usage().into_iter().map(|(u, c)| json!({"usage": u, "count": c})).collect();
            return Ok(json!({"counts": counts, "recent": f.recent(), "usage": usage}));
        }
        ("GET", ["state"]) => return Ok(Value::Array(app.store.lock().expect("lock").dump())),
        ("DELETE", ["requests"]) => app.faults.lock().expect("lock").reset_counts(),
        ("DELETE", ["faults"]) => app.faults.lock().expect("lock").clear(),
        ("POST", ["close-watches"]) => app.close_watches.send_modify(|n| *n += 1),
        ("POST", ["compact"]) => app.store.lock().expect("lock").compact(),
        _ => return Err(ApiError::new(404, "NotFound", "unknown test endpoint")),
    }
    Ok(json!({"ok": true}))
}

/// The `/__test` endpoints that take a JSON body.
fn test_post(app: &App, what: &str, v: Value) -> ApiResult<Value> {
    let bad = |e: serde_json::Error| ApiError::bad_request(e.to_string());
    match what {
        "service-endpoints" => {
            app.endpoints.set(v["endpoint"].as_str().unwrap_or_default()).map_err(ApiError::bad_request)?
        }
        "faults" => {
            app.faults.lock().expect("lock").add_fault(serde_json::from_value::<Fault>(v).map_err(bad)?)
        }
        "delays" => {
            app.faults.lock().expect("lock").add_delay(serde_json::from_value::<Delay>(v).map_err(bad)?)
        }
        "watch-delays" => {
            let (Some(resource), Some(ms)) = (v["resource"].as_str(), v["ms"].as_u64()) else {
                return Err(ApiError::bad_request("expected {\"resource\": PLURAL, \"ms\": N}"));
            };
            let mut s = app.settings.lock().expect("lock");
            if ms == 0 {
                s.delays.remove(resource);
            } else {
                s.delays.insert(resource.to_owned(), Duration::from_millis(ms));
            }
        }
        "settings" => {
            if let Some(ms) = v["bookmarkIntervalMs"].as_u64() {
                app.settings.lock().expect("lock").bookmark_interval = Duration::from_millis(ms.max(10));
            }
            if let Some(n) = v["history"].as_u64() {
                app.store.lock().expect("lock").set_history(n as usize);
            }
        }
        "users" => {
            let (Some(token), Some(name)) = (v["token"].as_str(), v["name"].as_str()) else {
                return Err(ApiError::bad_request("expected {\"token\", \"name\", \"groups\"}"));
            };
            let groups: Vec<&str> =
                v["groups"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            app.store.lock().expect("lock").auth.add_token(token, UserInfo::new(name, &groups));
        }
        _ => return Err(ApiError::new(404, "NotFound", "unknown test endpoint")),
    }
    Ok(json!({"ok": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> HashMap<String, String> {
        query(&format!("/x?{s}").parse::<Uri>().unwrap())
    }

    fn segs(p: &str) -> Vec<String> {
        p.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }

    #[test]
    fn request_info_as_kube_apiserver_parses_it() {
        let r = resource_request(&Method::GET, &segs("/api/v1/namespaces/a/secrets"), &q("")).unwrap();
        assert_eq!((r.resource.as_str(), r.namespace.as_str(), r.verb), ("secrets", "a", "list"));
        let r =
            resource_request(&Method::GET, &segs("/api/v1/namespaces/a/secrets"), &q("watch=true")).unwrap();
        assert_eq!(r.verb, "watch");
        let named = q("watch=true&fieldSelector=metadata.name%3Dtls");
        let r = resource_request(&Method::GET, &segs("/api/v1/namespaces/a/secrets"), &named).unwrap();
        assert_eq!((r.name.as_str(), authorized_name(&r, &named).as_str()), ("", "tls"));
        let other = q("fieldSelector=metadata.namespace%3Da");
        assert_eq!(authorized_name(&r, &other), "");
        let r = resource_request(&Method::PUT, &segs("/api/v1/namespaces/a/finalize"), &q("")).unwrap();
        assert_eq!(
            (r.resource.as_str(), r.name.as_str(), r.subresource.as_str(), r.namespace.as_str()),
            ("namespaces", "a", "finalize", "a")
        );
        let r =
            resource_request(&Method::POST, &segs("/api/v1/namespaces/a/serviceaccounts/op/token"), &q(""))
                .unwrap();
        assert_eq!(
            (r.resource.as_str(), r.name.as_str(), r.subresource.as_str(), r.verb),
            ("serviceaccounts", "op", "token", "create")
        );
        let r = resource_request(&Method::DELETE, &segs("/apis/encstr.io/v1alpha1/secretkeyrings"), &q(""))
            .unwrap();
        assert_eq!((r.group.as_str(), r.verb), ("encstr.io", "deletecollection"));
        assert!(resource_request(&Method::GET, &segs("/apis/encstr.io/v1alpha1"), &q("")).is_none());
        assert!(dry_run(&q("dryRun=All")).unwrap());
        assert_eq!(dry_run(&q("dryRun=Some")).unwrap_err().code, 400);
    }
}
