//! Validation of object metadata and of the built-in kinds the product and
//! its tests use, worded as apimachinery and kube-apiserver word it.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::errors::FieldError;
use super::meta;

/// Label values and the name part of label keys: at most this many bytes.
const LABEL_MAX: usize = 63;
/// DNS-1123 subdomains: at most this many bytes.
const SUBDOMAIN_MAX: usize = 253;
/// Annotations (keys and values together): at most 256 KiB.
pub const ANNOTATIONS_MAX: usize = 256 << 10;
/// Secrets and ConfigMaps: at most 1 MiB of data.
pub const DATA_MAX: usize = 1 << 20;

fn max_len(n: usize) -> String {
    format!("must be no more than {n} bytes")
}

fn regex_error(msg: &str, re: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{re}')");
    }
    let list: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!("{msg} (e.g. {}regex used for validation is '{re}')", list.join(" or "))
}

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";

fn is_label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

fn is_dns_label_syntax(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_subdomain_syntax(v: &str) -> bool {
    !v.is_empty() && v.split('.').all(is_dns_label_syntax)
}

/// `IsDNS1123Label`.
pub fn dns1123_label(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > LABEL_MAX {
        errs.push(max_len(LABEL_MAX));
    }
    if !is_dns_label_syntax(v) {
        if is_subdomain_syntax(v) {
            errs.push("must not contain dots".into());
        } else {
            errs.push(regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// `IsDNS1123Subdomain`.
pub fn dns1123_subdomain(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > SUBDOMAIN_MAX {
        errs.push(max_len(SUBDOMAIN_MAX));
    }
    if !is_subdomain_syntax(v) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

fn is_label_key_syntax(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && is_label_char(b[0])
        && is_label_char(b[b.len() - 1])
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

const LABEL_KEY_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// `IsQualifiedName` / `IsLabelKey`: an optional DNS subdomain prefix and
/// `/`, then a name of at most 63 bytes.
pub fn qualified_name(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = v.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".into());
            } else {
                errs.extend(dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            return vec![format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(LABEL_KEY_MSG, LABEL_KEY_FMT, &["MyName", "my.name", "123-abc"])
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > LABEL_MAX {
        errs.push(format!("name part {}", max_len(LABEL_MAX)));
    }
    if !is_label_key_syntax(name) {
        errs.push(format!(
            "name part {}",
            regex_error(LABEL_KEY_MSG, LABEL_KEY_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

/// `IsValidLabelValue`.
pub fn label_value(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > LABEL_MAX {
        errs.push(max_len(LABEL_MAX));
    }
    if !v.is_empty() && !is_label_key_syntax(v) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `IsPathSegmentName` (RBAC object names may hold `:`).
pub fn path_segment_name(v: &str) -> Vec<String> {
    if v == "." || v == ".." {
        return vec![format!("may not be '{v}'")];
    }
    ["/", "%"].iter().filter(|c| v.contains(*c)).map(|c| format!("may not contain '{c}'")).collect()
}

/// `IsConfigMapKey` (Secret and ConfigMap data keys).
pub fn config_map_key(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > SUBDOMAIN_MAX {
        errs.push(max_len(SUBDOMAIN_MAX));
    }
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')) {
        errs.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            CONFIG_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if v == "." {
        errs.push("must not be '.'".into());
    } else if v == ".." {
        errs.push("must not be '..'".into());
    } else if v.starts_with("..") {
        errs.push("must not start with '..'".into());
    }
    errs
}

/// How a kind's names are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (namespaces).
    Label,
    /// A path segment (RBAC kinds).
    PathSegment,
    /// Not validated (legacy v1 Events).
    Any,
}

impl NameRule {
    fn check(self, name: &str, prefix: bool) -> Vec<String> {
        // A generateName prefix may end in '-': it is checked as if it did not.
        let name = if prefix { name.strip_suffix('-').unwrap_or(name) } else { name };
        match self {
            NameRule::Subdomain => dns1123_subdomain(name),
            NameRule::Label => dns1123_label(name),
            NameRule::PathSegment if prefix => ["/", "%"]
                .iter()
                .filter(|c| name.contains(*c))
                .map(|c| format!("may not contain '{c}'"))
                .collect(),
            NameRule::PathSegment => path_segment_name(name),
            NameRule::Any => Vec::new(),
        }
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// `ValidateObjectMetaAccessor`: name, generateName, namespace, labels,
/// annotations, ownerReferences and finalizers of a new object.
pub fn object_meta(meta: &Value, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let generate = str_of(meta, "generateName");
    if !generate.is_empty() {
        for m in rule.check(generate, true) {
            errs.push(FieldError::invalid("metadata.generateName", &json!(generate), m));
        }
    }
    let name = str_of(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required("metadata.name", "name or generateName is required"));
    } else {
        for m in rule.check(name, false) {
            errs.push(FieldError::invalid("metadata.name", &json!(name), m));
        }
    }
    let ns = str_of(meta, "namespace");
    if namespaced {
        if ns.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            for m in dns1123_label(ns) {
                errs.push(FieldError::invalid("metadata.namespace", &json!(ns), m));
            }
        }
    } else if !ns.is_empty() {
        errs.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"));
    }
    errs.extend(common_meta(meta));
    errs
}

/// Labels, annotations, ownerReferences and finalizers (create and update).
fn common_meta(meta: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            for m in qualified_name(k) {
                errs.push(FieldError::invalid("metadata.labels", &json!(k), m));
            }
            let value = v.as_str().unwrap_or_default();
            for m in label_value(value) {
                errs.push(FieldError::invalid("metadata.labels", &json!(value), m));
            }
        }
    }
    if let Some(annotations) = meta["annotations"].as_object() {
        let mut size = 0;
        for (k, v) in annotations {
            for m in qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid("metadata.annotations", &json!(k), m));
            }
            size += k.len() + v.as_str().map_or(0, str::len);
        }
        if size > ANNOTATIONS_MAX {
            errs.push(FieldError::too_long("metadata.annotations", ANNOTATIONS_MAX));
        }
    }
    if let Some(refs) = meta["ownerReferences"].as_array() {
        let mut controller: Option<String> = None;
        for (i, r) in refs.iter().enumerate() {
            let at = |f: &str| format!("metadata.ownerReferences[{i}].{f}");
            for f in ["apiVersion", "kind", "name", "uid"] {
                if str_of(r, f).is_empty() {
                    errs.push(FieldError::required(at(f), "must not be empty"));
                }
            }
            if str_of(r, "apiVersion") == "v1" && str_of(r, "kind") == "Event" {
                errs.push(FieldError::invalid(
                    format!("metadata.ownerReferences[{i}]"),
                    r,
                    "/v1, Kind=Event is disallowed from being an owner",
                ));
            }
            if r["controller"].as_bool() == Some(true) {
                let this = format!("{}/{}", str_of(r, "kind"), str_of(r, "name"));
                match &controller {
                    Some(first) => errs.push(FieldError::invalid(
                        "metadata.ownerReferences",
                        &meta["ownerReferences"],
                        format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"),
                    )),
                    None => controller = Some(this),
                }
            }
        }
    }
    let finalizers = strings(&meta["finalizers"]);
    for f in &finalizers {
        for m in qualified_name(f) {
            errs.push(FieldError::invalid("metadata.finalizers", &json!(f), m));
        }
    }
    if finalizers.iter().any(|f| f == "orphan") && finalizers.iter().any(|f| f == "foregroundDeletion") {
        errs.push(FieldError::invalid(
            "metadata.finalizers",
            &meta["finalizers"],
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// `ValidateObjectMetaAccessorUpdate`.
pub fn object_meta_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old["deletionTimestamp"].is_string() {
        let before: BTreeSet<String> = strings(&old["finalizers"]).into_iter().collect();
        let extra: BTreeSet<String> =
            strings(&new["finalizers"]).into_iter().filter(|f| !before.contains(f)).collect();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|f| format!("{f:?}")).collect();
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
    if str_of(new, "resourceVersion").is_empty() {
        errs.push(FieldError::invalid(
            "metadata.resourceVersion",
            &json!(""),
            "must be specified for an update",
        ));
    }
    for f in ["name", "namespace"].into_iter().chain(meta::kept()) {
        if new.get(f) != old.get(f) {
            errs.push(FieldError::immutable(format!("metadata.{f}"), new.get(f).unwrap_or(&Value::Null)));
        }
    }
    errs.extend(common_meta(new));
    errs
}

fn data_keys(obj: &Value, field: &str, errs: &mut Vec<FieldError>) -> usize {
    let mut size = 0;
    if let Some(data) = obj[field].as_object() {
        for (k, v) in data {
            for m in config_map_key(k) {
                errs.push(FieldError::invalid(format!("{field}[{k}]"), &json!(k), m));
            }
            size += v.as_str().map_or(0, str::len);
        }
    }
    size
}

/// Validation of the kind (see `kinds/`).
pub fn secret(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    // `data` values are base64: their decoded size counts.
    let mut size = 0;
    if let Some(data) = obj["data"].as_object() {
        for (k, v) in data {
            for m in config_map_key(k) {
                errs.push(FieldError::invalid(format!("data[{k}]"), &json!(k), m));
            }
            size += v.as_str().map_or(0, |s| s.len() / 4 * 3);
        }
    }
    if size > DATA_MAX {
        errs.push(FieldError::too_long("data", DATA_MAX));
    }
    if let Some(old) = old {
        if obj["type"] != old["type"] {
            errs.push(FieldError::immutable("type", &obj["type"]));
        }
        immutable_data(obj, old, &["data"], &mut errs);
    }
    errs
}

fn immutable_data(obj: &Value, old: &Value, fields: &[&str], errs: &mut Vec<FieldError>) {
    if old["immutable"].as_bool() != Some(true) {
        return;
    }
    if obj["immutable"].as_bool() != Some(true) {
        errs.push(FieldError::forbidden("immutable", "field is immutable when `immutable` is set"));
    }
    for f in fields {
        let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
        if obj[*f] != old[*f] && !(empty(&obj[*f]) && empty(&old[*f])) {
            errs.push(FieldError::forbidden(*f, "field is immutable when `immutable` is set"));
        }
    }
}

/// Validation of the kind (see `kinds/`).
pub fn config_map(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut size = data_keys(obj, "data", &mut errs);
    if let Some(binary) = obj["binaryData"].as_object() {
        for (k, v) in binary {
            for m in config_map_key(k) {
                errs.push(FieldError::invalid(format!("binaryData[{k}]"), &json!(k), m));
            }
            if obj["data"].get(k).is_some() {
                errs.push(FieldError::invalid(
                    format!("binaryData[{k}]"),
                    &json!(k),
                    "duplicate of key present in data",
                ));
            }
            size += v.as_str().map_or(0, |s| s.len() / 4 * 3);
        }
    }
    if size > DATA_MAX {
        errs.push(FieldError::too_long("", DATA_MAX));
    }
    if let Some(old) = old {
        immutable_data(obj, old, &["data", "binaryData"], &mut errs);
    }
    errs
}

/// Validation of the kind (see `kinds/`).
pub fn namespace(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, f) in strings(&obj["spec"]["finalizers"]).iter().enumerate() {
        let standard = f == "kubernetes";
        if !standard && !f.contains('/') {
            errs.push(FieldError::invalid(
                format!("spec.finalizers[{i}]"),
                &json!(f),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
        for m in qualified_name(f) {
            errs.push(FieldError::invalid(format!("spec.finalizers[{i}]"), &json!(f), m));
        }
    }
    errs
}

/// Validation of the kind (see `kinds/`).
pub fn service_account(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(a) = obj.get("automountServiceAccountToken")
        && !a.is_boolean()
        && !a.is_null()
    {
        errs.push(FieldError::type_invalid("automountServiceAccountToken", a, "must be a boolean"));
    }
    errs
}

/// Validation of the kind (see `kinds/`).
pub fn lease(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    if let Some(d) = spec["leaseDurationSeconds"].as_i64()
        && d <= 0
    {
        errs.push(FieldError::invalid("spec.leaseDurationSeconds", &json!(d), "must be greater than 0"));
    }
    if let Some(t) = spec["leaseTransitions"].as_i64()
        && t < 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseTransitions",
            &json!(t),
            "must be greater than or equal to 0",
        ));
    }
    for f in ["acquireTime", "renewTime"] {
        if let Some(v) = spec.get(f).filter(|v| !v.is_null())
            && !v.as_str().is_some_and(is_micro_time)
        {
            errs.push(FieldError::invalid(format!("spec.{f}"), v, "must be an RFC 3339 time"));
        }
    }
    errs
}

/// `2026-11-23T09:00:00.123456Z`-shaped times (MicroTime and Time).
pub fn is_micro_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (s.ends_with('Z') || s[19..].contains(['+', '-']))
}

/// Events: the legacy rules for every event, the strict ones for events
/// created through `events.k8s.io/v1` (marked by `eventTime`).
/// Validation of the kind (see `kinds/`).
pub fn event(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ns = str_of(&obj["metadata"], "namespace");
    let involved_ns = str_of(&obj["involvedObject"], "namespace");
    let strict = obj["eventTime"].is_string();
    if !strict {
        if involved_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                errs.push(FieldError::invalid(
                    "involvedObject.namespace",
                    &json!(involved_ns),
                    "does not match event.namespace",
                ));
            }
        } else if ns != involved_ns {
            errs.push(FieldError::invalid(
                "involvedObject.namespace",
                &json!(involved_ns),
                "does not match event.namespace",
            ));
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(FieldError::invalid(
                "involvedObject.namespace",
                &json!(involved_ns),
                "does not match event.namespace",
            ));
        }
        let limits = [
            ("reportingComponent", "reportingController", 0),
            ("reportingInstance", "reportingInstance", 128),
            ("action", "action", 128),
            ("reason", "reason", 128),
        ];
        for (stored, shown, max) in limits {
            let v = str_of(obj, stored);
            if v.is_empty() {
                errs.push(FieldError::required(shown, ""));
            } else if max > 0 && v.len() > max {
                errs.push(FieldError::invalid(
                    shown,
                    &json!(""),
                    format!("can have at most {max} characters"),
                ));
            }
        }
        for m in qualified_name(str_of(obj, "reportingComponent")) {
            if !str_of(obj, "reportingComponent").is_empty() {
                errs.push(FieldError::invalid(
                    "reportingController",
                    &json!(str_of(obj, "reportingComponent")),
                    m,
                ));
            }
        }
        if str_of(obj, "message").len() > 1024 {
            errs.push(FieldError::invalid("message", &json!(""), "can have at most 1024 characters"));
        }
        let type_ = str_of(obj, "type");
        if type_ != "Normal" && type_ != "Warning" {
            errs.push(FieldError::invalid("type", &json!(""), format!("has invalid value: {type_}")));
        }
        if old.is_some_and(|o| o["involvedObject"] != obj["involvedObject"]) {
            errs.push(FieldError::immutable("involvedObject", &obj["involvedObject"]));
        }
    }
    for m in dns1123_subdomain(ns) {
        errs.push(FieldError::invalid("namespace", &json!(ns), m));
    }
    errs
}

fn port_ok(v: &Value) -> bool {
    v.as_i64().is_some_and(|p| (1..=65535).contains(&p))
}

/// Enough of Pod validation to catch a malformed container, volume or
/// mount: names, images, ports, mounts that name a volume, unique names,
/// and `restartPolicy: Always` only on init containers.
/// Validation of the kind (see `kinds/`).
pub fn pod(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    let mut volumes = BTreeSet::new();
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let at = format!("spec.volumes[{i}]");
        unique_label_name(&at, str_of(v, "name"), &mut volumes, &mut errs);
        pod_volume(v, &at, &mut errs);
    }
    let mut names = BTreeSet::new();
    let mut any = false;
    for (list, init) in [("initContainers", true), ("containers", false)] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            any |= !init;
            let at = format!("spec.{list}[{i}]");
            unique_label_name(&at, str_of(c, "name"), &mut names, &mut errs);
            container(c, &at, init, &volumes, &mut errs);
        }
    }
    if !any {
        errs.push(FieldError::required("spec.containers", ""));
    }
    if let Some(old) = old {
        pod_update(obj, old, &mut errs);
    }
    errs
}

/// A name at `{at}.name`: required, a DNS label, unique among `seen`.
fn unique_label_name(at: &str, name: &str, seen: &mut BTreeSet<String>, errs: &mut Vec<FieldError>) {
    if name.is_empty() {
        errs.push(FieldError::required(format!("{at}.name"), ""));
        return;
    }
    for m in dns1123_label(name) {
        errs.push(FieldError::invalid(format!("{at}.name"), &json!(name), m));
    }
    if !seen.insert(name.to_owned()) {
        errs.push(FieldError::duplicate(format!("{at}.name"), &json!(name)));
    }
}

/// One volume's source.
fn pod_volume(v: &Value, at: &str, errs: &mut Vec<FieldError>) {
    let sources = [
        "emptyDir",
        "secret",
        "configMap",
        "projected",
        "hostPath",
        "persistentVolumeClaim",
        "downwardAPI",
        "csi",
        "ephemeral",
        "image",
    ];
    let given: Vec<&str> =
        sources.iter().copied().filter(|s| v.get(*s).is_some_and(|x| !x.is_null())).collect();
    match given.len() {
        0 => errs.push(FieldError::required(at, "must specify a volume type")),
        1 => {}
        _ => errs.push(FieldError::forbidden(
            format!("{at}.{}", given[1]),
            "may not specify more than 1 volume type",
        )),
    }
    if let Some(mode) = v["secret"]["defaultMode"].as_i64().or(v["configMap"]["defaultMode"].as_i64())
        && !(0..=0o777).contains(&mode)
    {
        errs.push(FieldError::invalid(
            format!("{at}.defaultMode"),
            &json!(mode),
            "must be a number between 0 and 0777 (octal), both inclusive",
        ));
    }
}

/// One container (init or not) of a pod.
fn container(c: &Value, at: &str, init: bool, volumes: &BTreeSet<String>, errs: &mut Vec<FieldError>) {
    if str_of(c, "image").trim().is_empty() {
        errs.push(FieldError::required(format!("{at}.image"), ""));
    }
    if let Some(p) = c.get("restartPolicy").and_then(Value::as_str) {
        if !init {
            errs.push(FieldError::forbidden(
                format!("{at}.restartPolicy"),
                "may not be set for non-init containers",
            ));
        } else if p != "Always" {
            errs.push(FieldError::not_supported(format!("{at}.restartPolicy"), &json!(p), &["Always"]));
        }
    }
    for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
        if !port_ok(&p["containerPort"]) {
            errs.push(FieldError::invalid(
                format!("{at}.ports[{j}].containerPort"),
                &p["containerPort"],
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
    let mut mount_paths = BTreeSet::new();
    for (j, m) in c["volumeMounts"].as_array().into_iter().flatten().enumerate() {
        let mat = format!("{at}.volumeMounts[{j}]");
        let vol = str_of(m, "name");
        if vol.is_empty() {
            errs.push(FieldError::required(format!("{mat}.name"), ""));
        } else if !volumes.contains(vol) {
            errs.push(FieldError::not_found(format!("{mat}.name"), &json!(vol)));
        }
        let path = str_of(m, "mountPath");
        if path.is_empty() {
            errs.push(FieldError::required(format!("{mat}.mountPath"), ""));
        } else if !mount_paths.insert(path.to_owned()) {
            errs.push(FieldError::invalid(format!("{mat}.mountPath"), &json!(path), "must be unique"));
        }
    }
    for (j, e) in c["env"].as_array().into_iter().flatten().enumerate() {
        if str_of(e, "name").is_empty() {
            errs.push(FieldError::required(format!("{at}.env[{j}].name"), ""));
        }
    }
}

/// Only a few fields of a pod's spec may change.
fn pod_update(obj: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    // (image, activeDeadlineSeconds, tolerations...)
    let strip = |v: &Value| {
        let mut s = v["spec"].clone();
        for list in ["containers", "initContainers"] {
            for c in s[list].as_array_mut().into_iter().flatten() {
                c.as_object_mut().map(|m| m.remove("image"));
            }
        }
        if let Some(m) = s.as_object_mut() {
            m.remove("activeDeadlineSeconds");
            m.remove("tolerations");
        }
        s
    };
    if strip(obj) != strip(old) {
        errs.push(FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}

/// Validation of the kind (see `kinds/`).
pub fn role(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, r) in obj["rules"].as_array().into_iter().flatten().enumerate() {
        let at = format!("rules[{i}]");
        if strings(&r["verbs"]).is_empty() {
            errs.push(FieldError::required(format!("{at}.verbs"), "verbs must contain at least one value"));
        }
        let urls = strings(&r["nonResourceURLs"]);
        let resources = strings(&r["resources"]);
        if !urls.is_empty() {
            if obj["metadata"]["namespace"].is_string() {
                errs.push(FieldError::invalid(
                    format!("{at}.nonResourceURLs"),
                    &r["nonResourceURLs"],
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !resources.is_empty()
                || !strings(&r["apiGroups"]).is_empty()
                || !strings(&r["resourceNames"]).is_empty()
            {
                errs.push(FieldError::invalid(
                    format!("{at}.nonResourceURLs"),
                    &r["nonResourceURLs"],
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
        } else {
            if r.get("apiGroups").is_none_or(Value::is_null) {
                errs.push(FieldError::required(
                    format!("{at}.apiGroups"),
                    "resource rules must supply at least one api group",
                ));
            }
            if resources.is_empty() {
                errs.push(FieldError::required(
                    format!("{at}.resources"),
                    "resource rules must supply at least one resource",
                ));
            }
        }
    }
    errs
}

/// Validation of the kind (see `kinds/`).
pub fn binding(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let role_ref = &obj["roleRef"];
    if str_of(role_ref, "apiGroup") != "rbac.authorization.k8s.io" {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &role_ref["apiGroup"],
            &["rbac.authorization.k8s.io"],
        ));
    }
    let allowed: &[&str] = if kind == "RoleBinding" { &["ClusterRole", "Role"] } else { &["ClusterRole"] };
    if !allowed.contains(&str_of(role_ref, "kind")) {
        errs.push(FieldError::not_supported("roleRef.kind", &role_ref["kind"], allowed));
    }
    if str_of(role_ref, "name").is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    }
    if let Some(old) = old
        && obj["roleRef"] != old["roleRef"]
    {
        errs.push(FieldError::invalid("roleRef", role_ref, "cannot change roleRef"));
    }
    for (i, s) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
        let at = format!("subjects[{i}]");
        if str_of(s, "name").is_empty() {
            errs.push(FieldError::required(format!("{at}.name"), ""));
        }
        match str_of(s, "kind") {
            "ServiceAccount" => {
                if kind == "ClusterRoleBinding" && str_of(s, "namespace").is_empty() {
                    errs.push(FieldError::required(format!("{at}.namespace"), ""));
                }
                if !str_of(s, "apiGroup").is_empty() {
                    errs.push(FieldError::not_supported(format!("{at}.apiGroup"), &s["apiGroup"], &[""]));
                }
            }
            "User" | "Group" => {
                if str_of(s, "apiGroup") != "rbac.authorization.k8s.io" {
                    errs.push(FieldError::not_supported(
                        format!("{at}.apiGroup"),
                        &s["apiGroup"],
                        &["rbac.authorization.k8s.io"],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{at}.kind"),
                &json!(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    errs
}

/// Validation of the kind (see `kinds/`).
pub fn webhook_configuration(kind: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, w) in obj["webhooks"].as_array().into_iter().flatten().enumerate() {
        let at = format!("webhooks[{i}]");
        webhook_name(w, &at, &mut names, &mut errs);
        client_config(&w["clientConfig"], &at, &mut errs);
        webhook_policies(kind, w, &at, &mut errs);
        webhook_rules(w, &at, &mut errs);
    }
    errs
}

/// A webhook's name: a domain of three segments, unique.
fn webhook_name(w: &Value, at: &str, names: &mut BTreeSet<String>, errs: &mut Vec<FieldError>) {
    let name = str_of(w, "name");
    if name.is_empty() {
        errs.push(FieldError::required(format!("{at}.name"), ""));
    } else {
        let dots = name.split('.').count();
        let mut name_errs = dns1123_subdomain(name);
        if name_errs.is_empty() && dots < 3 {
            name_errs.push("should be a domain with at least three segments separated by dots".into());
        }
        for m in name_errs {
            errs.push(FieldError::invalid(format!("{at}.name"), &json!(name), m));
        }
        if !names.insert(name.to_owned()) {
            errs.push(FieldError::duplicate(format!("{at}.name"), &json!(name)));
        }
    }
}

/// A webhook's client config: a URL or a Service.
fn client_config(cc: &Value, at: &str, errs: &mut Vec<FieldError>) {
    match (cc.get("url").is_some_and(|u| !u.is_null()), cc.get("service").is_some_and(|s| !s.is_null())) {
        (true, true) => errs.push(FieldError::required(
            format!("{at}.clientConfig"),
            "exactly one of url or service is required",
        )),
        (false, false) => errs.push(FieldError::required(
            format!("{at}.clientConfig"),
            "exactly one of url or service is required",
        )),
        (true, false) => {
            let url = str_of(cc, "url");
            if !url.starts_with("https://") {
                errs.push(FieldError::invalid(
                    format!("{at}.clientConfig.url"),
                    &json!(url),
                    "'https' is the only allowed URL scheme",
                ));
            }
        }
        (false, true) => {
            let svc = &cc["service"];
            if str_of(svc, "name").is_empty() {
                errs.push(FieldError::required(
                    format!("{at}.clientConfig.service.name"),
                    "service name is required",
                ));
            }
            if str_of(svc, "namespace").is_empty() {
                errs.push(FieldError::required(
                    format!("{at}.clientConfig.service.namespace"),
                    "service namespace is required",
                ));
            }
            if let Some(p) = svc.get("port").filter(|p| !p.is_null())
                && !port_ok(p)
            {
                errs.push(FieldError::invalid(
                    format!("{at}.clientConfig.service.port"),
                    p,
                    "port is not valid: must be between 1 and 65535, inclusive",
                ));
            }
        }
    }
}

/// A webhook's side effects, review versions, policies and timeout.
fn webhook_policies(kind: &str, w: &Value, at: &str, errs: &mut Vec<FieldError>) {
    let side = &w["sideEffects"];
    if side.is_null() {
        errs.push(FieldError::required(
            format!("{at}.sideEffects"),
            "must specify one of None, NoneOnDryRun",
        ));
    } else if !matches!(side.as_str(), Some("None" | "NoneOnDryRun")) {
        errs.push(FieldError::not_supported(format!("{at}.sideEffects"), side, &["None", "NoneOnDryRun"]));
    }
    let versions = strings(&w["admissionReviewVersions"]);
    if versions.is_empty() {
        errs.push(FieldError::required(
            format!("{at}.admissionReviewVersions"),
            "must specify one of v1, v1beta1",
        ));
    } else if !versions.iter().any(|v| v == "v1" || v == "v1beta1") {
        errs.push(FieldError::invalid(
            format!("{at}.admissionReviewVersions"),
            &w["admissionReviewVersions"],
            "must include at least one of v1, v1beta1",
        ));
    }
    if let Some(f) = w.get("failurePolicy").filter(|f| !f.is_null())
        && !matches!(f.as_str(), Some("Ignore" | "Fail"))
    {
        errs.push(FieldError::not_supported(format!("{at}.failurePolicy"), f, &["Fail", "Ignore"]));
    }
    if let Some(m) = w.get("matchPolicy").filter(|m| !m.is_null())
        && !matches!(m.as_str(), Some("Exact" | "Equivalent"))
    {
        errs.push(FieldError::not_supported(format!("{at}.matchPolicy"), m, &["Equivalent", "Exact"]));
    }
    if kind == "MutatingWebhookConfiguration"
        && let Some(r) = w.get("reinvocationPolicy").filter(|r| !r.is_null())
        && !matches!(r.as_str(), Some("Never" | "IfNeeded"))
    {
        errs.push(FieldError::not_supported(format!("{at}.reinvocationPolicy"), r, &["IfNeeded", "Never"]));
    }
    if let Some(t) = w.get("timeoutSeconds").filter(|t| !t.is_null())
        && !t.as_i64().is_some_and(|t| (1..=30).contains(&t))
    {
        errs.push(FieldError::invalid(
            format!("{at}.timeoutSeconds"),
            t,
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
}

/// A webhook's rules.
fn webhook_rules(w: &Value, at: &str, errs: &mut Vec<FieldError>) {
    for (j, rule) in w["rules"].as_array().into_iter().flatten().enumerate() {
        let rat = format!("{at}.rules[{j}]");
        for op in strings(&rule["operations"]) {
            if !matches!(op.as_str(), "*" | "CREATE" | "UPDATE" | "DELETE" | "CONNECT") {
                errs.push(FieldError::not_supported(
                    format!("{rat}.operations"),
                    &json!(op),
                    &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"],
                ));
            }
        }
        if let Some(scope) = rule.get("scope").and_then(Value::as_str)
            && !matches!(scope, "*" | "Cluster" | "Namespaced")
        {
            errs.push(FieldError::not_supported(
                format!("{rat}.scope"),
                &json!(scope),
                &["*", "Cluster", "Namespaced"],
            ));
        }
    }
}

impl FieldError {
    /// `field: Not found: VALUE`.
    pub fn not_found(field: impl Into<String>, value: &Value) -> Self {
        FieldError {
            kind: "FieldValueNotFound",
            field: field.into(),
            body: format!("Not found: {}", super::errors::show(value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_as_apimachinery_checks_them() {
        assert!(dns1123_label("a-b").is_empty());
        assert_eq!(dns1123_label("a.b"), ["must not contain dots"]);
        assert_eq!(dns1123_label(&"a".repeat(64)), ["must be no more than 63 bytes"]);
        assert!(dns1123_subdomain("Bad_Name")[0].starts_with("a lowercase RFC 1123 subdomain"));
        assert!(qualified_name("encstr.io/keyring").is_empty());
        assert!(qualified_name("a/b/c")[0].starts_with("a valid label key must consist"));
        assert_eq!(qualified_name("/x"), ["prefix part must be non-empty"]);
        assert_eq!(label_value(&"a".repeat(64)), ["must be no more than 63 bytes"]);
        assert!(label_value("").is_empty() && label_value("a.b_c-d").is_empty());
        assert!(label_value("-a")[0].starts_with("a valid label must be an empty string"));
        assert!(path_segment_name("system:discovery").is_empty());
        assert!(config_map_key("..x").contains(&"must not start with '..'".to_owned()));
    }

    #[test]
    fn metadata_errors() {
        let long = "x".repeat(64);
        let errs = object_meta(
            &json!({"name": "a", "namespace": "n", "labels": {"k": long}}),
            true,
            NameRule::Subdomain,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message(),
            format!("metadata.labels: Invalid value: \"{long}\": must be no more than 63 bytes")
        );
        let errs = object_meta(&json!({"generateName": "web-"}), false, NameRule::Subdomain);
        assert_eq!(errs[0].message(), "metadata.name: Required value: name or generateName is required");
        let errs = object_meta_update(
            &json!({"name": "a", "resourceVersion": "2", "finalizers": ["x/y"], "deletionTimestamp": "t"}),
            &json!({"name": "a", "resourceVersion": "2", "deletionTimestamp": "t"}),
        );
        assert_eq!(
            errs[0].message(),
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"x/y\"}"
        );
    }
}
