//! Admission webhooks, called as kube-apiserver calls them: the matching
//! webhooks of `MutatingWebhookConfiguration`s (in order of configuration
//! name, then of their list; re-invoked once under `reinvocationPolicy:
//! IfNeeded` when a later webhook changed the object), then those of
//! `ValidatingWebhookConfiguration`s, each sent an `AdmissionReview` v1 over
//! HTTPS. The server certificate is verified against the webhook's
//! `caBundle` for `<service>.<namespace>.svc` (or the `url`'s host). There is
//! no Service networking: [`Endpoints`] says where a Service's port is
//! reached (`--service-endpoint NS/NAME=HOST:PORT`).
//!
//! Webhooks run outside the store's lock, as the write path orders the
//! layers: prepare, authorize, built-in admission, [`mutate`], validate,
//! [`validate`], commit; the objects they see are in their served form.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt as _, Full};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};

use super::auth::{certs_from_pem, client_config_for, random_token};
use super::errors::{ApiError, ApiResult};
use super::patch::json_patch;
use super::resources::ResourceType;
use super::selectors::selector_matches;
use super::store::{Prepared, Store};
use super::strategy;

/// Where Services are reached: `namespace/name` → `host:port`.
#[derive(Debug, Default)]
pub struct Endpoints(Mutex<BTreeMap<String, String>>);

impl Endpoints {
    /// Parse and record `NS/NAME=HOST:PORT`.
    pub fn set(&self, spec: &str) -> Result<(), String> {
        let (service, addr) = spec
            .split_once('=')
            .ok_or_else(|| format!("service endpoint {spec:?}: expected NS/NAME=HOST:PORT"))?;
        let (ns, name) = service
            .split_once('/')
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
            .ok_or_else(|| format!("service endpoint {spec:?}: expected NS/NAME=HOST:PORT"))?;
        let (host, port) = addr
            .rsplit_once(':')
            .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            .ok_or_else(|| format!("service endpoint {spec:?}: expected NS/NAME=HOST:PORT"))?;
        self.0.lock().expect("lock").insert(format!("{ns}/{name}"), format!("{host}:{port}"));
        Ok(())
    }

    fn get(&self, ns: &str, name: &str) -> Option<String> {
        self.0.lock().expect("lock").get(&format!("{ns}/{name}")).cloned()
    }
}

/// One webhook of a configuration, as it is called.
#[derive(Debug, Clone)]
struct Hook {
    config: String,
    spec: Value,
    mutating: bool,
}

impl Hook {
    fn name(&self) -> &str {
        self.spec["name"].as_str().unwrap_or_default()
    }
    fn fails_closed(&self) -> bool {
        self.spec["failurePolicy"].as_str() != Some("Ignore")
    }
    fn reinvoke(&self) -> bool {
        self.spec["reinvocationPolicy"].as_str() == Some("IfNeeded")
    }
    fn timeout(&self) -> u64 {
        self.spec["timeoutSeconds"].as_u64().unwrap_or(10)
    }
}

/// The request attributes webhooks are matched on and told.
#[derive(Debug, Clone)]
struct Request {
    t: Arc<ResourceType>,
    subresource: String,
    namespace: String,
    namespace_labels: Value,
    name: String,
    operation: &'static str,
    dry_run: bool,
    user: Value,
}

fn any_or(list: &Value, want: &str) -> bool {
    list.as_array().is_some_and(|a| a.iter().any(|v| v == "*" || v == want))
}

fn rule_matches(rule: &Value, r: &Request) -> bool {
    let resource = if r.subresource.is_empty() {
        r.t.plural.clone()
    } else {
        format!("{}/{}", r.t.plural, r.subresource)
    };
    let resource_ok = rule["resources"].as_array().is_some_and(|a| {
        a.iter().filter_map(Value::as_str).any(|want| {
            want == "*/*"
                || want == resource
                || (want == "*" && r.subresource.is_empty())
                || want.strip_prefix("*/").is_some_and(|sub| sub == r.subresource)
                || want.strip_suffix("/*").is_some_and(|p| p == r.t.plural && !r.subresource.is_empty())
        })
    });
    let scope_ok = match rule["scope"].as_str().unwrap_or("*") {
        "Cluster" => !r.t.namespaced,
        "Namespaced" => r.t.namespaced,
        _ => true,
    };
    any_or(&rule["operations"], r.operation)
        && any_or(&rule["apiGroups"], &r.t.group)
        && any_or(&rule["apiVersions"], &r.t.version)
        && resource_ok
        && scope_ok
}

/// Whether a webhook is called for a request on `obj` (and `old`).
fn hook_matches(hook: &Hook, r: &Request, obj: &Value, old: Option<&Value>) -> bool {
    let spec = &hook.spec;
    if !spec["rules"].as_array().is_some_and(|rules| rules.iter().any(|rule| rule_matches(rule, r))) {
        return false;
    }
    let everything = json!({});
    let ns_selector = spec.get("namespaceSelector").filter(|s| !s.is_null()).unwrap_or(&everything);
    // The namespace selector applies to namespaced objects (by their
    // namespace's labels) and to Namespaces themselves (by their own).
    let ns_ok = if r.t.strategy.namespace_selector_on_self() {
        selector_matches(ns_selector, &obj["metadata"]["labels"])
    } else if r.t.namespaced {
        selector_matches(ns_selector, &r.namespace_labels)
    } else {
        true
    };
    let obj_selector = spec.get("objectSelector").filter(|s| !s.is_null()).unwrap_or(&everything);
    let obj_ok = selector_matches(obj_selector, &obj["metadata"]["labels"])
        || old.is_some_and(|o| selector_matches(obj_selector, &o["metadata"]["labels"]));
    ns_ok && obj_ok
}

/// The hooks of every configuration of a kind, in kube-apiserver's order.
fn hooks(store: &Store, plural: &str, mutating: bool) -> Vec<Hook> {
    let Some(t) = store.type_of("admissionregistration.k8s.io", "v1", plural) else {
        return Vec::new();
    };
    // Cluster-scoped: key order is name order, kube-apiserver's order.
    let configs = store.list_at(&t, None, None).unwrap_or_default();
    configs
        .into_iter()
        .flat_map(|(_, c)| {
            let config = c["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            c["webhooks"].as_array().cloned().unwrap_or_default().into_iter().map(move |spec| Hook {
                config: config.clone(),
                spec,
                mutating,
            })
        })
        .collect()
}

fn internal(message: String) -> ApiError {
    let mut e = ApiError::new(500, "InternalError", format!("Internal error occurred: {message}"));
    e.details = Some(json!({"causes": [{"message": message}]}));
    e
}

/// A webhook's denial, as `ToStatusErr` words it.
fn denial(hook: &str, status: &Value) -> ApiError {
    let by = format!("admission webhook {hook:?} denied the request");
    let message = status["message"].as_str().filter(|m| !m.is_empty());
    let reason_text = status["reason"].as_str().filter(|m| !m.is_empty());
    let message = match (message, reason_text) {
        (Some(m), _) => format!("{by}: {m}"),
        (None, Some(r)) => format!("{by}: {r}"),
        (None, None) => format!("{by} without explanation"),
    };
    let code = status["code"].as_u64().filter(|c| *c >= 400).unwrap_or(400) as u16;
    // The Status keeps the webhook's reason; those outside the usual set
    // are left empty.
    let reason = match reason_text.unwrap_or_default() {
        "Forbidden" => "Forbidden",
        "Invalid" => "Invalid",
        "BadRequest" => "BadRequest",
        "Conflict" => "Conflict",
        "NotFound" => "NotFound",
        "AlreadyExists" => "AlreadyExists",
        "Unauthorized" => "Unauthorized",
        "InternalError" => "InternalError",
        _ => "",
    };
    let mut e = ApiError::new(code, reason, message);
    e.details = status.get("details").filter(|d| d.is_object()).cloned();
    e
}

/// Where and how a webhook is reached.
struct Target {
    connect: String,
    server_name: String,
    url: String,
    path: String,
    ca: String,
}

fn target(app: &Endpoints, hook: &Hook, timeout: u64) -> Result<Target, String> {
    let cc = &hook.spec["clientConfig"];
    let ca = cc["caBundle"]
        .as_str()
        .map(|b| STANDARD.decode(b).map_err(|e| format!("caBundle: {e}")))
        .transpose()?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if let Some(url) = cc["url"].as_str() {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("url: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err("url: only https is supported".into());
        }
        // An IPv6 host keeps its brackets here, as `host:port` needs them.
        let host = uri.host().ok_or("url: no host")?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        return Ok(Target {
            connect: format!("{host}:{}", uri.port_u16().unwrap_or(443)),
            server_name: host.trim_matches(['[', ']']).to_owned(),
            url: format!("{url}?timeout={timeout}s"),
            path: format!("{path}?timeout={timeout}s"),
            ca,
        });
    }
    let svc = &cc["service"];
    let (ns, name) =
        (svc["namespace"].as_str().unwrap_or_default(), svc["name"].as_str().unwrap_or_default());
    let port = svc["port"].as_u64().unwrap_or(443);
    let path = svc["path"].as_str().filter(|p| !p.is_empty()).unwrap_or("/");
    let host = format!("{name}.{ns}.svc");
    let url = format!("https://{host}:{port}{path}?timeout={timeout}s");
    let connect =
        app.get(ns, name).ok_or_else(|| format!("Post {url:?}: service \"{ns}/{name}\" has no endpoints"))?;
    Ok(Target { connect, server_name: host, url, path: format!("{path}?timeout={timeout}s"), ca })
}

/// POST the review; the response body, or why the call failed (worded
/// after Go's client errors).
async fn post(t: &Target, body: Vec<u8>) -> Result<Value, String> {
    let url = &t.url;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&t.connect)
        .await
        .map_err(|e| format!("Post {url:?}: dial tcp: lookup {}: {e}", t.connect))?
        .collect();
    let addr = *addrs
        .first()
        .ok_or_else(|| format!("Post {url:?}: dial tcp: lookup {}: no such host", t.connect))?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("Post {url:?}: dial tcp {addr}: connect: {e}"))?;
    let cas = certs_from_pem(&t.ca);
    if cas.is_empty() {
        return Err(format!(
            "Post {url:?}: tls: failed to verify certificate: x509: certificate signed by unknown authority"
        ));
    }
    let name = ServerName::try_from(t.server_name.clone())
        .map_err(|e| format!("Post {url:?}: invalid server name: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(client_config_for(&cas))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("Post {url:?}: tls: failed to verify certificate: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| format!("Post {url:?}: {e}"))?;
    tokio::spawn(conn);
    let req = hyper::Request::post(&t.path)
        .header("host", &t.server_name)
        .header("content-type", "application/json")
        .header("accept", "application/json, */*")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("Post {url:?}: {e}"))?;
    let resp = sender.send_request(req).await.map_err(|e| format!("Post {url:?}: {e}"))?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.map_err(|e| format!("Post {url:?}: {e}"))?.to_bytes();
    if !status.is_success() {
        return Err(format!(
            "the server responded with the status code {} but did not return more information",
            status.as_u16()
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("received invalid webhook response: {e}"))
}

/// What one call decided.
enum Verdict {
    Allowed { patch: Option<Vec<Value>>, warnings: Vec<String> },
    Denied(ApiError),
}

async fn call(
    endpoints: &Endpoints,
    hook: &Hook,
    r: &Request,
    obj: &Value,
    old: Option<&Value>,
) -> Result<Verdict, String> {
    let timeout = hook.timeout();
    let target = target(endpoints, hook, timeout).map_err(|e| format!("failed to call webhook: {e}"))?;
    let uid = random_token();
    let t = &r.t;
    let kind = json!({"group": t.group, "version": t.version, "kind": t.kind});
    let resource = json!({"group": t.group, "version": t.version, "resource": t.plural});
    let mut request = json!({
        "uid": uid, "kind": kind, "resource": resource, "requestKind": kind, "requestResource": resource,
        "name": r.name, "operation": r.operation, "userInfo": r.user,
        "object": obj, "oldObject": old.cloned().unwrap_or(Value::Null), "dryRun": r.dry_run,
        "options": if r.operation == "CREATE" {
            json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"})
        } else {
            json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"})
        },
    });
    if !r.subresource.is_empty() {
        request["subResource"] = json!(r.subresource);
        request["requestSubResource"] = json!(r.subresource);
    }
    if t.namespaced {
        request["namespace"] = json!(r.namespace);
    }
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
    let body = serde_json::to_vec(&review).expect("json");
    let answer = tokio::time::timeout(Duration::from_secs(timeout), post(&target, body))
        .await
        .map_err(|_| {
            format!(
                "failed to call webhook: Post {:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                target.url
            )
        })?
        .map_err(|e| if e.starts_with("received") { e } else { format!("failed to call webhook: {e}") })?;
    let response = &answer["response"];
    if answer["kind"] != "AdmissionReview" || !response.is_object() {
        return Err("received invalid webhook response: expected an AdmissionReview with a response".into());
    }
    if response["uid"].as_str() != Some(uid.as_str()) {
        return Err(format!(
            "received invalid webhook response: expected response.uid={uid:?}, got {:?}",
            response["uid"].as_str().unwrap_or_default()
        ));
    }
    let warnings: Vec<String> = response["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if response["allowed"] != true {
        return Ok(Verdict::Denied(denial(hook.name(), &response["status"])));
    }
    let patch = match (response["patchType"].as_str(), response["patch"].as_str()) {
        (_, None) => None,
        (Some("JSONPatch"), Some(p)) => {
            if !hook.mutating {
                return Err("received invalid webhook response: a validating webhook may not patch".into());
            }
            let bytes = STANDARD
                .decode(p)
                .map_err(|e| format!("received undecodable patch in webhook response: {e}"))?;
            let ops: Vec<Value> = serde_json::from_slice(&bytes)
                .map_err(|e| format!("received undecodable patch in webhook response: {e}"))?;
            Some(ops)
        }
        (other, Some(_)) => return Err(format!("unsupported patch type {:?}", other.unwrap_or_default())),
    };
    Ok(Verdict::Allowed { patch, warnings })
}

/// What one phase of webhooks works on: its hooks, the request they are
/// matched on, the object and the old object in their served form.
type Phase = (Vec<Hook>, Request, Value, Option<Value>);

/// The webhooks of one phase that may apply to a write (`None`: nothing
/// to call).
fn phase(store: &Mutex<Store>, p: &Prepared, subresource: &str, mutating: bool) -> Option<Phase> {
    if p.t.strategy.skips_webhooks() {
        return None;
    }
    let (hooks, namespace_labels) = {
        let s = store.lock().expect("lock");
        let plural =
            if mutating { "mutatingwebhookconfigurations" } else { "validatingwebhookconfigurations" };
        let hooks = hooks(&s, plural, mutating);
        // Namespace labels only when some webhook may need them.
        let labels = (!hooks.is_empty())
            .then(|| s.type_of("", "v1", "namespaces"))
            .flatten()
            .filter(|_| p.t.namespaced)
            .and_then(|nt| s.get(&nt, "", &p.key.namespace).ok())
            .map(|n| n["metadata"]["labels"].clone())
            .unwrap_or(Value::Null);
        (hooks, labels)
    };
    if hooks.is_empty() {
        return None;
    }
    let r = Request {
        t: p.t.clone(),
        subresource: subresource.to_owned(),
        namespace: p.key.namespace.clone(),
        namespace_labels,
        name: p.obj["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        operation: p.operation,
        dry_run: p.opts.dry_run,
        user: json!({"username": p.opts.user.name, "uid": p.opts.user.uid, "groups": p.opts.user.groups}),
    };
    let old = p.old.clone().map(|o| strategy::from_storage(&p.t, o));
    let obj = strategy::from_storage(&p.t, p.obj.clone());
    Some((hooks, r, obj, old))
}

/// Mutating admission: the matching webhooks change `p.obj` (then those
/// `IfNeeded` ones once more that a later webhook's change came after);
/// any denial or (fail-closed) failure refuses the write. Returns the
/// webhooks' warnings.
pub(super) async fn mutate(
    store: &Mutex<Store>,
    endpoints: &Endpoints,
    p: &mut Prepared,
    subresource: &str,
) -> ApiResult<Vec<String>> {
    let Some((mutating, r, mut obj, old)) = phase(store, p, subresource, true) else { return Ok(Vec::new()) };
    let mut warnings = Vec::new();
    let mut invoked_before_change: Vec<usize> = Vec::new();
    let mut reinvoke: Vec<usize> = Vec::new();
    let mut changed_any = false;
    for round in 0..2 {
        for (i, hook) in mutating.iter().enumerate() {
            if (round == 1 && !reinvoke.contains(&i)) || !hook_matches(hook, &r, &obj, old.as_ref()) {
                continue;
            }
            let changed = run_hook(endpoints, hook, &r, &mut obj, old.as_ref(), &mut warnings).await?;
            if changed == Some(true) {
                changed_any = true;
                if round == 0 {
                    reinvoke.append(&mut invoked_before_change);
                }
            }
            if round == 0 && hook.reinvoke() {
                invoked_before_change.push(i);
            }
        }
        if reinvoke.is_empty() {
            break;
        }
    }
    if changed_any {
        p.obj = strategy::to_storage(&p.t, obj);
        // Webhooks may not rename or move the object.
        let meta = &p.obj["metadata"];
        if meta["name"].as_str().unwrap_or_default() != r.name
            || (p.t.namespaced && meta["namespace"].as_str().unwrap_or_default() != r.namespace)
        {
            return Err(internal("admission webhooks may not change the object's name or namespace".into()));
        }
    }
    Ok(warnings)
}

/// Validating admission, on the object as it will be stored (validated
/// before): any denial or (fail-closed) failure refuses the write. Returns
/// the webhooks' warnings.
pub(super) async fn validate(
    store: &Mutex<Store>,
    endpoints: &Endpoints,
    p: &Prepared,
    subresource: &str,
) -> ApiResult<Vec<String>> {
    let Some((validating, r, mut obj, old)) = phase(store, p, subresource, false) else {
        return Ok(Vec::new());
    };
    let mut warnings = Vec::new();
    for hook in &validating {
        if hook_matches(hook, &r, &obj, old.as_ref()) {
            run_hook(endpoints, hook, &r, &mut obj, old.as_ref(), &mut warnings).await?;
        }
    }
    Ok(warnings)
}

/// Call one webhook and apply its answer. `Some(changed)` when it was
/// called and allowed the request, `None` when a failure was ignored.
async fn run_hook(
    endpoints: &Endpoints,
    hook: &Hook,
    r: &Request,
    obj: &mut Value,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> ApiResult<Option<bool>> {
    let name = hook.name().to_owned();
    let failed = |reason: String| -> ApiResult<Option<bool>> {
        if hook.fails_closed() {
            Err(internal(format!("failed calling webhook {name:?}: {reason}")))
        } else {
            eprintln!(
                "kube-test-apiserver: failed calling webhook {name:?} of {}, failing open: {reason}",
                hook.config
            );
            Ok(None)
        }
    };
    match call(endpoints, hook, r, obj, old).await {
        Err(reason) => failed(reason),
        Ok(Verdict::Denied(e)) => Err(e),
        Ok(Verdict::Allowed { patch, warnings: w }) => {
            warnings.extend(w);
            let Some(ops) = patch else { return Ok(Some(false)) };
            let mut patched = obj.clone();
            if let Err(e) = json_patch(&mut patched, &Value::Array(ops)) {
                return failed(format!("received undecodable patch in webhook response: {e}"));
            }
            let changed = patched != *obj;
            *obj = patched;
            Ok(Some(changed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_ns_name_host_port() {
        let e = Endpoints::default();
        e.set("encstr-system/encstr-operator-webhook=127.0.0.1:9443").unwrap();
        assert_eq!(e.get("encstr-system", "encstr-operator-webhook").as_deref(), Some("127.0.0.1:9443"));
        for bad in ["x", "ns=1.2.3.4:1", "ns/=h:1", "ns/n=h", "ns/n=h:port", "/n=h:1"] {
            assert!(e.set(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn denials_are_worded_like_to_status_err() {
        let e = denial("inject.encstr.io", &json!({"code": 403, "reason": "Forbidden", "message": "no"}));
        assert_eq!(e.message, "admission webhook \"inject.encstr.io\" denied the request: no");
        assert_eq!((e.code, e.reason), (403, "Forbidden"));
        let e = denial("w.x.y", &json!({"code": 200}));
        assert_eq!(e.message, "admission webhook \"w.x.y\" denied the request without explanation");
        assert_eq!(e.code, 400);
        let e = denial("w.x.y", &json!({"reason": "Custom"}));
        assert_eq!(e.message, "admission webhook \"w.x.y\" denied the request: Custom");
    }
}
