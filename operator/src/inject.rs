//! Sidecar injection, decided: from a pod's `encstr.io/*` annotations and
//! the operator's defaults, the JSON Patch that adds the encstr sidecar, or
//! why the pod is refused. The shape is the library chart's
//! (`charts/encstr-sidecar`, templates `encstr-sidecar.container`,
//! `.volumes`, `.appVolumeMount`, `.podSpec`); a test renders both and
//! compares them field by field. Pure: no I/O.

use serde_json::{Map, Value, json};

/// The label that opts a pod in (the webhook's `objectSelector`).
pub const INJECT_LABEL: &str = "encstr.io/inject";
/// Annotation prefix.
const P: &str = "encstr.io/";
/// The annotations read; any other `encstr.io/` annotation on a labelled pod
/// is a typo and refused (a misspelt `deny-plaintext` must not pass silently).
pub const ANNOTATIONS: [&str; 12] = [
    "keyring-secret",
    "config-map",
    "target-path",
    "containers",
    "mode",
    "name-prefix",
    "deny-plaintext",
    "notify-signal",
    "notify-process",
    "notify-url",
    "notify-debounce",
    "resources",
];
/// The sidecar container's name (the chart's).
pub const CONTAINER: &str = "encstr";
/// The volumes the sidecar adds (the chart's names).
pub const VOLUMES: [&str; 3] = ["encstr-config", "encstr-keyring", "encstr-secrets"];

/// What the operator contributes: the chart's `webhook.sidecar` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// The sidecar image.
    pub image: String,
    /// Its pull policy.
    pub image_pull_policy: String,
    /// Default `resources` (a `ResourceRequirements`), merged under a pod's.
    pub resources: Value,
    /// Port of the sidecar's /metrics, /healthz and /readyz (native mode).
    pub metrics_port: u16,
    /// `sizeLimit` of the in-memory volume.
    pub size_limit: String,
    /// `native` unless the API server is older than 1.29 (no native sidecars).
    pub native_supported: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            image: "ghcr.io/encstr/encstr:0.1.0".into(),
            image_pull_policy: "IfNotPresent".into(),
            resources: json!({"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}}),
            metrics_port: 9102,
            size_limit: "1Mi".into(),
            native_supported: true,
        }
    }
}

/// Whether an API server of this version (`/version`'s `major`, `minor`;
/// providers write minors like `29+`) runs native sidecars: 1.29 or later.
/// A version it cannot read is taken as new.
pub fn native_sidecars_supported(major: &str, minor: &str) -> bool {
    let minor: u32 = minor.trim_end_matches('+').parse().unwrap_or(u32::MAX);
    major != "1" || minor >= 29
}

/// Native sidecar (init container with `restartPolicy: Always`) or a
/// classic init container that renders once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `native`.
    Native,
    /// `classic`.
    Classic,
}

/// The settings of one pod's sidecar, as the library chart's values.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Image and pull policy.
    pub image: String,
    /// Pull policy.
    pub image_pull_policy: String,
    /// Mode.
    pub mode: Mode,
    /// The keyring Secret.
    pub keyring_secret: String,
    /// The ConfigMap of config files.
    pub config_map: String,
    /// Where decrypted files go (and where app containers mount them).
    pub target_path: String,
    /// In-memory volume size.
    pub size_limit: String,
    /// `--name-prefix`.
    pub name_prefix: String,
    /// `--deny-plaintext`.
    pub deny_plaintext: bool,
    /// Metrics port (native).
    pub metrics_port: u16,
    /// Notify: signal and process name.
    pub notify_signal: String,
    /// Notify: process name.
    pub notify_process: String,
    /// Notify: URL.
    pub notify_url: String,
    /// Notify: debounce.
    pub notify_debounce: String,
    /// Resources (defaults merged with the pod's).
    pub resources: Value,
    /// App containers that get the mount (`None`: all).
    pub containers: Option<Vec<String>>,
}

/// What to do with a pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Leave it as it is (not opted in, or already injected).
    Skip(&'static str),
    /// Add the sidecar with these JSON Patch operations.
    Inject(Vec<Value>),
    /// Refuse the pod: it asks for injection but cannot get it.
    Deny(String),
}

fn annotation<'a>(pod: &'a Value, name: &str) -> Option<&'a str> {
    pod["metadata"]["annotations"][format!("{P}{name}")].as_str()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect()
}

/// Maps merged recursively, `over` winning (Sprig's `mergeOverwrite`, as the
/// chart merges its values).
fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out: Map<String, Value> = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(existing) => merge(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        _ => over.clone(),
    }
}

/// Check a `ResourceRequirements` (requests and limits of quantities).
pub fn check_resources(v: &Value) -> Result<(), String> {
    let obj = v.as_object().ok_or("must be a JSON object like {\"limits\":{\"memory\":\"32Mi\"}}")?;
    for (k, part) in obj {
        if !matches!(k.as_str(), "requests" | "limits") {
            return Err(format!("unknown field {k:?} (requests, limits)"));
        }
        let part = part.as_object().ok_or_else(|| format!("{k} must be an object of quantities"))?;
        for (res, q) in part {
            let text = match q {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(format!("{k}.{res}: {q} is not a quantity")),
            };
            if !is_quantity(&text) {
                return Err(format!("{k}.{res}: {text:?} is not a quantity (like 16Mi or 5m)"));
            }
        }
    }
    Ok(())
}

/// A Kubernetes quantity: a decimal number and an optional suffix (binary
/// `Ki`..`Ei`, decimal `n u m k M G T P E`, or an exponent `e3`).
fn is_quantity(s: &str) -> bool {
    let digits_end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (num, suffix) = s.split_at(digits_end);
    let num = num.trim_start_matches(['+', '-']);
    let number_ok = !num.is_empty() && num.chars().filter(|c| *c == '.').count() <= 1 && num != ".";
    let suffix_ok = matches!(
        suffix,
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E"
    ) || suffix.strip_prefix(['e', 'E']).is_some_and(|e| {
        !e.is_empty() && e.trim_start_matches(['+', '-']).chars().all(|c| c.is_ascii_digit())
    });
    number_ok && suffix_ok
}

fn is_signal(s: &str) -> bool {
    let name = s.strip_prefix("SIG").unwrap_or(s);
    !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Why a pod's annotations cannot be injected. Each names the annotation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// An `encstr.io/` annotation that is not known (a typo must not pass).
    #[error("unknown annotation {P}{0} (known: {known})", known = ANNOTATIONS.join(", "))]
    Unknown(String),
    /// A required annotation is absent.
    #[error("annotation {P}{name} is required ({what})")]
    Required {
        /// The annotation (without the prefix).
        name: &'static str,
        /// What it says.
        what: &'static str,
    },
    /// An annotation's value is not usable.
    #[error("annotation {P}{name}: {why}")]
    Invalid {
        /// The annotation (without the prefix).
        name: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// Annotations that do not go together.
    #[error("{0}")]
    Conflict(String),
}

fn invalid(name: &'static str, why: impl Into<String>) -> AnnotationError {
    AnnotationError::Invalid { name, why: why.into() }
}

/// A pod's `encstr.io/` annotations, trimmed, empty ones absent.
struct Annotations<'a>(&'a Value);

impl<'a> Annotations<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        annotation(self.0, name).map(str::trim).filter(|v| !v.is_empty())
    }

    fn owned(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }

    fn required(&self, name: &'static str, what: &'static str) -> Result<String, AnnotationError> {
        self.get(name).map(str::to_owned).ok_or(AnnotationError::Required { name, what })
    }

    /// The first `encstr.io/` annotation that is not known.
    fn unknown(&self) -> Option<String> {
        self.0["metadata"]["annotations"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .filter_map(|k| k.strip_prefix(P))
            .find(|k| !ANNOTATIONS.contains(k))
            .map(str::to_owned)
    }
}

fn read_mode(a: &Annotations<'_>, native_supported: bool) -> Result<Mode, AnnotationError> {
    match a.get("mode") {
        None if native_supported => Ok(Mode::Native),
        None => Ok(Mode::Classic),
        Some("native") if !native_supported => {
            Err(invalid("mode", "native sidecars need Kubernetes 1.29 or later; use classic"))
        }
        Some("native") => Ok(Mode::Native),
        Some("classic") => Ok(Mode::Classic),
        Some(other) => Err(invalid("mode", format!("{other:?} is not native or classic"))),
    }
}

fn read_target_path(a: &Annotations<'_>) -> Result<String, AnnotationError> {
    let path = a.get("target-path").unwrap_or("/run/secrets/encstr").to_owned();
    if !path.starts_with('/') || path.split('/').any(|s| s == "..") || path.contains(':') {
        return Err(invalid("target-path", format!("{path:?} must be an absolute path without '..' or ':'")));
    }
    Ok(path)
}

fn read_bool(a: &Annotations<'_>, name: &'static str) -> Result<bool, AnnotationError> {
    match a.get(name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(invalid(name, format!("{other:?} is not true or false"))),
    }
}

/// `notify-signal`, `notify-process`, `notify-url`, `notify-debounce`.
struct Notify {
    signal: String,
    process: String,
    url: String,
    debounce: String,
}

fn read_notify(a: &Annotations<'_>, mode: Mode) -> Result<Notify, AnnotationError> {
    let n = Notify {
        signal: a.owned("notify-signal"),
        process: a.owned("notify-process"),
        url: a.owned("notify-url"),
        debounce: a.owned("notify-debounce"),
    };
    let notifies = !n.signal.is_empty() || !n.url.is_empty() || !n.debounce.is_empty();
    if notifies && mode == Mode::Classic {
        return Err(AnnotationError::Conflict(format!(
            "annotations {P}notify-*: notify needs mode native (a classic init container renders once, before the app starts)"
        )));
    }
    if !n.signal.is_empty() && !is_signal(&n.signal) {
        return Err(invalid(
            "notify-signal",
            format!("{:?} is not a signal name like HUP or USR1", n.signal),
        ));
    }
    match (n.signal.is_empty(), n.process.is_empty()) {
        (false, true) => {
            return Err(AnnotationError::Conflict(format!(
                "annotation {P}notify-signal needs {P}notify-process (the app's process name)"
            )));
        }
        (true, false) => {
            return Err(AnnotationError::Conflict(format!(
                "annotation {P}notify-process needs {P}notify-signal"
            )));
        }
        _ => {}
    }
    let web = n.url.starts_with("http://") || n.url.starts_with("https://");
    if !n.url.is_empty() && !web {
        return Err(invalid("notify-url", format!("{:?} is not an http:// or https:// URL", n.url)));
    }
    Ok(n)
}

fn read_resources(a: &Annotations<'_>, defaults: &Value) -> Result<Value, AnnotationError> {
    let Some(text) = a.get("resources") else { return Ok(defaults.clone()) };
    let v: Value = serde_json::from_str(text).map_err(|e| invalid("resources", format!("not JSON ({e})")))?;
    check_resources(&v).map_err(|e| invalid("resources", e))?;
    Ok(merge(defaults, &v))
}

fn read_containers(a: &Annotations<'_>, pod: &Value) -> Result<Option<Vec<String>>, AnnotationError> {
    let Some(list) = a.get("containers") else { return Ok(None) };
    let list: Vec<String> =
        list.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect();
    let present = names(&pod["spec"]["containers"]);
    if list.is_empty() {
        return Err(invalid("containers", "names no container"));
    }
    if let Some(missing) = list.iter().find(|c| !present.contains(&c.as_str())) {
        return Err(invalid(
            "containers",
            format!("the pod has no container {missing:?} (it has: {})", present.join(", ")),
        ));
    }
    Ok(Some(list))
}

/// Read a pod's settings from its annotations. Errors name the annotation.
pub fn settings(pod: &Value, d: &Defaults) -> Result<Settings, AnnotationError> {
    let a = Annotations(pod);
    if let Some(unknown) = a.unknown() {
        return Err(AnnotationError::Unknown(unknown));
    }
    let keyring_secret = a.required("keyring-secret", "the Secret holding the keyring")?;
    let config_map = a.required("config-map", "the ConfigMap of config files holding ENCSTR tokens")?;
    let mode = read_mode(&a, d.native_supported)?;
    let target_path = read_target_path(&a)?;
    let deny_plaintext = read_bool(&a, "deny-plaintext")?;
    let notify = read_notify(&a, mode)?;
    let resources = read_resources(&a, &d.resources)?;
    let containers = read_containers(&a, pod)?;
    Ok(Settings {
        image: d.image.clone(),
        image_pull_policy: d.image_pull_policy.clone(),
        mode,
        keyring_secret,
        config_map,
        target_path,
        size_limit: d.size_limit.clone(),
        name_prefix: a.owned("name-prefix"),
        deny_plaintext,
        metrics_port: d.metrics_port,
        notify_signal: notify.signal,
        notify_process: notify.process,
        notify_url: notify.url,
        notify_debounce: notify.debounce,
        resources,
        containers,
    })
}

/// The sidecar container (the chart's `encstr-sidecar.container`).
pub fn container(s: &Settings) -> Value {
    let native = s.mode == Mode::Native;
    let mut args = vec!["render".to_owned()];
    if native {
        args.extend([
            "--watch".into(),
            format!("--listen=0.0.0.0:{}", s.metrics_port),
            "--log-format=json".into(),
        ]);
    }
    args.extend([
        "--source=/etc/encstr/config".to_owned(),
        format!("--target={}", s.target_path),
        "--keyring=/etc/encstr/keyring/keyring".to_owned(),
    ]);
    if !s.name_prefix.is_empty() {
        args.push(format!("--name-prefix={}", s.name_prefix));
    }
    if s.deny_plaintext {
        args.push("--deny-plaintext".into());
    }
    if !s.notify_signal.is_empty() {
        args.push(format!("--notify-signal={}", s.notify_signal));
        args.push(format!("--notify-process={}", s.notify_process));
    }
    if !s.notify_url.is_empty() {
        args.push(format!("--notify-url={}", s.notify_url));
    }
    if !s.notify_debounce.is_empty() {
        args.push(format!("--notify-debounce={}", s.notify_debounce));
    }
    let mut c = json!({
        "name": CONTAINER,
        "image": s.image,
        "imagePullPolicy": s.image_pull_policy,
        "args": args,
        "terminationMessagePolicy": "File",
        "resources": s.resources,
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "encstr-config", "mountPath": "/etc/encstr/config", "readOnly": true},
            {"name": "encstr-keyring", "mountPath": "/etc/encstr/keyring", "readOnly": true},
            {"name": "encstr-secrets", "mountPath": s.target_path},
        ],
    });
    if native {
        c["restartPolicy"] = json!("Always");
        c["ports"] = json!([{"name": "encstr-metrics", "containerPort": s.metrics_port, "protocol": "TCP"}]);
        c["startupProbe"] = json!({"httpGet": {"path": "/readyz", "port": "encstr-metrics"}, "periodSeconds": 1, "failureThreshold": 60});
        c["livenessProbe"] =
            json!({"httpGet": {"path": "/healthz", "port": "encstr-metrics"}, "periodSeconds": 20});
    }
    c
}

/// The pod volumes (the chart's `encstr-sidecar.volumes`).
pub fn volumes(s: &Settings) -> Vec<Value> {
    vec![
        json!({"name": "encstr-config", "configMap": {"name": s.config_map}}),
        json!({"name": "encstr-keyring", "secret": {"secretName": s.keyring_secret, "defaultMode": 0o400}}),
        json!({"name": "encstr-secrets", "emptyDir": {"medium": "Memory", "sizeLimit": s.size_limit}}),
    ]
}

/// An app container's read-only mount (the chart's `encstr-sidecar.appVolumeMount`).
pub fn app_mount(s: &Settings) -> Value {
    json!({"name": "encstr-secrets", "mountPath": s.target_path, "readOnly": true})
}

fn add(path: String, value: Value) -> Value {
    json!({"op": "add", "path": path, "value": value})
}

/// Decide what happens to a pod being created.
/// The sidecar image's group (its user is 65532:65532): the pod's fsGroup
/// when it sets none.
pub const SIDECAR_GROUP: i64 = 65532;

pub fn decide(pod: &Value, d: &Defaults) -> Decision {
    if pod["metadata"]["labels"][INJECT_LABEL].as_str() != Some("true") {
        return Decision::Skip("not labelled encstr.io/inject=true");
    }
    let spec = &pod["spec"];
    if names(&spec["initContainers"]).contains(&CONTAINER) {
        return Decision::Skip("already injected");
    }
    let s = match settings(pod, d) {
        Ok(s) => s,
        Err(e) => return Decision::Deny(e.to_string()),
    };
    let mut ops = Vec::new();
    // The keyring volume is mode 0400, owned by root: a non-root sidecar
    // reads it only through the pod's fsGroup (kubelet then makes it 0440,
    // group fsGroup, a supplementary group of every container). A pod
    // without one gets the sidecar image's group; any fsGroup a later
    // webhook sets works as well.
    if spec["securityContext"]["fsGroup"].is_null() {
        if spec["securityContext"].is_object() {
            ops.push(add("/spec/securityContext/fsGroup".into(), json!(SIDECAR_GROUP)));
        } else {
            ops.push(add("/spec/securityContext".into(), json!({"fsGroup": SIDECAR_GROUP})));
        }
    }
    let taken: Vec<&str> = names(&spec["volumes"]).into_iter().filter(|v| VOLUMES.contains(v)).collect();
    if !taken.is_empty() {
        return Decision::Deny(format!(
            "the pod already has volume {:?} (the sidecar's own name) but no {CONTAINER:?} init container",
            taken[0]
        ));
    }
    if names(&spec["containers"]).contains(&CONTAINER) {
        return Decision::Deny(format!("the pod already has a container named {CONTAINER:?}"));
    }
    // First, so later init containers find the files rendered.
    if spec["initContainers"].as_array().is_some_and(|a| !a.is_empty()) {
        ops.push(add("/spec/initContainers/0".into(), container(&s)));
    } else {
        ops.push(add("/spec/initContainers".into(), json!([container(&s)])));
    }
    if spec["volumes"].as_array().is_some() {
        ops.extend(volumes(&s).into_iter().map(|v| add("/spec/volumes/-".into(), v)));
    } else {
        ops.push(add("/spec/volumes".into(), Value::Array(volumes(&s))));
    }
    for (i, c) in spec["containers"].as_array().into_iter().flatten().enumerate() {
        let name = c["name"].as_str().unwrap_or_default();
        if s.containers.as_ref().is_some_and(|list| !list.iter().any(|n| n == name)) {
            continue;
        }
        if names(&c["volumeMounts"]).contains(&"encstr-secrets") {
            continue;
        }
        if c["volumeMounts"].as_array().is_some() {
            ops.push(add(format!("/spec/containers/{i}/volumeMounts/-"), app_mount(&s)));
        } else {
            ops.push(add(format!("/spec/containers/{i}/volumeMounts"), json!([app_mount(&s)])));
        }
    }
    if !s.notify_signal.is_empty() {
        ops.push(add("/spec/shareProcessNamespace".into(), json!(true)));
    }
    Decision::Inject(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: Value) -> Value {
        json!({"metadata": {"name": "p", "labels": {"encstr.io/inject": "true"}, "annotations": annotations},
               "spec": {"securityContext": {"fsGroup": 65532}, "containers": [{"name": "app", "image": "app"}, {"name": "web", "image": "web", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}]}})
    }

    fn base() -> Value {
        json!({"encstr.io/keyring-secret": "payments", "encstr.io/config-map": "agent-config"})
    }

    fn patched(p: &Value, ops: &[Value]) -> Value {
        let mut doc = p.clone();
        json_patch::patch(&mut doc, &serde_json::from_value::<json_patch::Patch>(json!(ops)).unwrap())
            .unwrap();
        doc
    }

    /// Without an fsGroup the non-root sidecar could never read the 0400
    /// keyring volume: a pod without one gets the sidecar's group, one
    /// with its own keeps it.
    #[test]
    fn a_pod_without_an_fs_group_gets_the_sidecars_group() {
        for (context, want) in [
            (None, json!({"fsGroup": 65532})),
            (Some(json!({"runAsUser": 1000})), json!({"runAsUser": 1000, "fsGroup": 65532})),
            (Some(json!({"fsGroup": 2000})), json!({"fsGroup": 2000})),
        ] {
            let mut p = pod(base());
            match context {
                Some(c) => p["spec"]["securityContext"] = c,
                None => {
                    p["spec"].as_object_mut().unwrap().remove("securityContext");
                }
            }
            let Decision::Inject(ops) = decide(&p, &Defaults::default()) else { panic!("not injected") };
            assert_eq!(patched(&p, &ops)["spec"]["securityContext"], want);
        }
    }

    #[test]
    fn unlabelled_and_already_injected_pods_are_left_alone() {
        let mut p = pod(base());
        p["metadata"]["labels"] = json!({});
        assert!(matches!(decide(&p, &Defaults::default()), Decision::Skip(_)));
        let p = pod(base());
        let Decision::Inject(ops) = decide(&p, &Defaults::default()) else { panic!() };
        let once = patched(&p, &ops);
        assert_eq!(decide(&once, &Defaults::default()), Decision::Skip("already injected"));
    }

    #[test]
    fn native_injection_adds_the_sidecar_first_the_volumes_and_every_mount() {
        let mut p = pod(base());
        p["spec"]["initContainers"] = json!([{"name": "migrate", "image": "m"}]);
        let Decision::Inject(ops) = decide(&p, &Defaults::default()) else { panic!() };
        let out = patched(&p, &ops);
        let init = out["spec"]["initContainers"].as_array().unwrap();
        assert_eq!((init[0]["name"].as_str(), init[1]["name"].as_str()), (Some("encstr"), Some("migrate")));
        assert_eq!(init[0]["restartPolicy"], "Always");
        assert!(init[0]["args"].as_array().unwrap().contains(&json!("--watch")));
        assert_eq!(init[0]["startupProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(names(&out["spec"]["volumes"]), VOLUMES);
        assert_eq!(out["spec"]["volumes"][1]["secret"]["defaultMode"], 256);
        for c in out["spec"]["containers"].as_array().unwrap() {
            assert!(c["volumeMounts"].as_array().unwrap().contains(
                &json!({"name": "encstr-secrets", "mountPath": "/run/secrets/encstr", "readOnly": true})
            ));
        }
        assert!(out["spec"].get("shareProcessNamespace").is_none());
    }

    #[test]
    fn classic_mode_renders_once_without_probes() {
        let mut a = base();
        a["encstr.io/mode"] = json!("classic");
        let c = container(&settings(&pod(a), &Defaults::default()).unwrap());
        assert!(
            c.get("restartPolicy").is_none() && c.get("startupProbe").is_none() && c.get("ports").is_none()
        );
        assert!(!c["args"].as_array().unwrap().contains(&json!("--watch")));
        // Old API servers get classic by default, and native is refused.
        let old = Defaults { native_supported: false, ..Defaults::default() };
        assert_eq!(settings(&pod(base()), &old).unwrap().mode, Mode::Classic);
        let mut a = base();
        a["encstr.io/mode"] = json!("native");
        assert!(settings(&pod(a), &old).unwrap_err().to_string().contains("1.29"));
    }

    #[test]
    fn options_become_the_charts_arguments_and_fields() {
        let mut a = base();
        for (k, v) in [
            ("containers", " web "),
            ("target-path", "/etc/agent/secrets"),
            ("name-prefix", "agent."),
            ("deny-plaintext", "true"),
            ("notify-signal", "HUP"),
            ("notify-process", "agent"),
            ("notify-debounce", "5s"),
            ("resources", r#"{"limits":{"memory":"64Mi"}}"#),
        ] {
            a[format!("encstr.io/{k}")] = json!(v);
        }
        let p = pod(a);
        let Decision::Inject(ops) = decide(&p, &Defaults::default()) else { panic!() };
        let out = patched(&p, &ops);
        let c = &out["spec"]["initContainers"][0];
        let args: Vec<&str> = c["args"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        for want in [
            "--target=/etc/agent/secrets",
            "--name-prefix=agent.",
            "--deny-plaintext",
            "--notify-signal=HUP",
            "--notify-process=agent",
            "--notify-debounce=5s",
        ] {
            assert!(args.contains(&want), "{want} in {args:?}");
        }
        // Merged over the defaults, as the chart merges values.
        assert_eq!(
            c["resources"],
            json!({"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}})
        );
        assert_eq!(out["spec"]["shareProcessNamespace"], true);
        assert!(out["spec"]["containers"][0].get("volumeMounts").is_none(), "app is not listed");
        assert_eq!(out["spec"]["containers"][1]["volumeMounts"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn misconfigured_pods_are_denied_naming_the_annotation_or_container() {
        let cases: [(&[(&str, &str)], &str); 12] = [
            (
                &[("deny-plain-text", "true")],
                "unknown annotation encstr.io/deny-plain-text (known: keyring-secret,",
            ),
            (&[("keyring-secret", "")], "annotation encstr.io/keyring-secret is required"),
            (&[("config-map", " ")], "annotation encstr.io/config-map is required"),
            (&[("mode", "sidecar")], "annotation encstr.io/mode: \"sidecar\" is not native or classic"),
            (&[("containers", "app,worker")], "the pod has no container \"worker\" (it has: app, web)"),
            (&[("notify-signal", "HUP")], "encstr.io/notify-signal needs encstr.io/notify-process"),
            (&[("notify-process", "agent")], "encstr.io/notify-process needs encstr.io/notify-signal"),
            (&[("notify-signal", "hup"), ("notify-process", "a")], "is not a signal name"),
            (&[("mode", "classic"), ("notify-url", "http://localhost/reload")], "notify needs mode native"),
            (
                &[("resources", "{\"limits\":{\"memory\":\"lots\"}}")],
                "encstr.io/resources: limits.memory: \"lots\" is not a quantity",
            ),
            (&[("resources", "{nope")], "annotation encstr.io/resources: not JSON"),
            (&[("target-path", "run/x")], "annotation encstr.io/target-path"),
        ];
        for (set, want) in cases {
            let mut a = base();
            for (k, v) in set {
                a[format!("encstr.io/{k}")] = json!(v);
            }
            match decide(&pod(a), &Defaults::default()) {
                Decision::Deny(msg) => assert!(msg.contains(want), "{msg:?} should contain {want:?}"),
                other => panic!("{set:?}: {other:?}"),
            }
        }
        let mut p = pod(base());
        p["spec"]["volumes"] = json!([{"name": "encstr-config", "emptyDir": {}}]);
        assert!(matches!(decide(&p, &Defaults::default()), Decision::Deny(m) if m.contains("encstr-config")));
    }

    #[test]
    fn native_sidecars_from_1_29() {
        for (major, minor, native) in [
            ("1", "28", false),
            ("1", "28+", false),
            ("1", "29", true),
            ("1", "35", true),
            ("1", "30+", true),
            ("2", "0", true),
            ("1", "", true),
        ] {
            assert_eq!(native_sidecars_supported(major, minor), native, "{major}.{minor}");
        }
    }

    #[test]
    fn quantities() {
        for ok in ["16Mi", "5m", "1", "0.5", "1e3", "2Gi", "+1"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "lots", "1.2.3", "Mi", "16MB", "1e"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
