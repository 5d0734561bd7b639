//! Table responses (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`),
//! as `kubectl get` asks for them: a Name column, then a CRD's
//! `additionalPrinterColumns` (evaluated with the simple JSONPath they
//! allow) or a built-in's usual columns, and per row the object's metadata
//! (`includeObject=Metadata`, the default), the whole object or nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::resources::{Column, ResourceType};

/// What a row carries besides its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
    /// Nothing.
    None,
}

impl Include {
    /// From the `includeObject` query parameter.
    pub fn parse(s: Option<&str>) -> Result<Include, String> {
        match s.unwrap_or_default() {
            "" | "Metadata" => Ok(Include::Metadata),
            "Object" => Ok(Include::Object),
            "None" => Ok(Include::None),
            other => Err(format!("includeObject: unsupported value {other:?}")),
        }
    }
}

/// Whether an `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    // The first acceptable media type wins; kubectl lists Table first.
    accept.split(',').next().is_some_and(|first| {
        let params: Vec<&str> = first.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
    })
}

/// Seconds since the epoch of an RFC 3339 timestamp (`Z`, optional
/// fraction).
pub fn parse_time(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok());
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// A duration as kubectl and the server print ages (`HumanDuration`).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(ts: &Value) -> Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    match ts.as_str().and_then(parse_time) {
        Some(t) => json!(human_duration(now as i64 - t as i64)),
        None => json!("<unknown>"),
    }
}

/// One step of a simple JSONPath.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(String, Value),
}

/// Parse the JSONPath of a printer column (`.a.b`, `['k']`, `[0]`, `[*]`,
/// `[?(@.k=="v")]`, with or without braces).
fn parse_path(p: &str) -> Result<Vec<Step>, String> {
    let p = p.trim();
    let p = p.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut steps = Vec::new();
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                    j += 1;
                }
                if j > start {
                    steps.push(Step::Field(p[start..j].to_owned()));
                }
                i = j;
            }
            b'[' => {
                let end =
                    p[i..].find(']').map(|e| i + e).ok_or_else(|| format!("unterminated [ in {p:?}"))?;
                // A filter may contain ']' in its value; find the closing ")]".
                let end = if p[i + 1..].starts_with("?(") {
                    p[i..]
                        .find(")]")
                        .map(|e| i + e + 1)
                        .ok_or_else(|| format!("unterminated filter in {p:?}"))?
                } else {
                    end
                };
                let inner = p[i + 1..end].trim();
                let step = if inner == "*" {
                    Step::All
                } else if let Some(f) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
                    let (lhs, rhs) = f.split_once("==").ok_or_else(|| format!("unsupported filter {f:?}"))?;
                    let field =
                        lhs.trim().strip_prefix("@.").ok_or_else(|| format!("unsupported filter {f:?}"))?;
                    let rhs = rhs.trim();
                    let value = if let Some(s) = rhs.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                        json!(s)
                    } else if let Some(s) = rhs.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
                        json!(s)
                    } else {
                        serde_json::from_str(rhs).map_err(|_| format!("unsupported filter value {rhs:?}"))?
                    };
                    Step::Filter(field.to_owned(), value)
                } else if let Some(s) = inner.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
                    Step::Field(s.to_owned())
                } else if let Some(s) = inner.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                    Step::Field(s.to_owned())
                } else {
                    Step::Index(inner.parse().map_err(|_| format!("unsupported index {inner:?}"))?)
                };
                steps.push(step);
                i = end + 1;
            }
            _ => return Err(format!("unrecognized JSONPath {p:?}")),
        }
    }
    Ok(steps)
}

/// Every value a JSONPath finds.
fn find<'a>(v: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let Some((first, rest)) = steps.split_first() else { return vec![v] };
    match first {
        Step::Field(f) => v.get(f).map(|x| find(x, rest)).unwrap_or_default(),
        Step::Index(i) => v.get(*i).map(|x| find(x, rest)).unwrap_or_default(),
        Step::All => match v {
            Value::Array(a) => a.iter().flat_map(|x| find(x, rest)).collect(),
            Value::Object(m) => m.values().flat_map(|x| find(x, rest)).collect(),
            _ => Vec::new(),
        },
        Step::Filter(field, want) => v
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| {
                let path: Vec<Step> = field.split('.').map(|s| Step::Field(s.to_owned())).collect();
                find(x, &path).first().is_some_and(|got| *got == want)
            })
            .flat_map(|x| find(x, rest))
            .collect(),
    }
}

/// A value printed as a string column (as kubectl's JSONPath printer does).
fn print(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The cell of a CRD column (`cellForJSONValue`).
fn crd_cell(col: &Column, obj: &Value) -> Value {
    let Ok(steps) = parse_path(&col.json_path) else { return Value::Null };
    let Some(v) = find(obj, &steps).into_iter().next() else { return Value::Null };
    match col.type_.as_str() {
        "string" => json!(print(v)),
        "integer" => v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)).map_or(Value::Null, |i| json!(i)),
        "number" => v.as_f64().map_or(Value::Null, |f| json!(f)),
        "boolean" => v.as_bool().map_or(Value::Null, |b| json!(b)),
        "date" => match v.as_str() {
            Some(s) if parse_time(s).is_some() => age(v),
            Some(_) => json!("<invalid>"),
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

fn count(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    }
}

/// The cell of a built-in's column.
fn builtin_cell(col: &Column, obj: &Value) -> Value {
    if let Some(v) = event_cell(&col.json_path, obj) {
        return v;
    }
    match col.json_path.as_str() {
        "@data" => json!(count(&obj["data"]) + count(&obj["binaryData"])),
        "@webhooks" => json!(count(&obj["webhooks"])),
        "@roleRef" => json!(format!(
            "{}/{}",
            obj["roleRef"]["kind"].as_str().unwrap_or_default(),
            obj["roleRef"]["name"].as_str().unwrap_or_default()
        )),
        "@ready" if obj["kind"] == "Pod" => {
            let statuses = obj["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
            let ready = statuses.iter().filter(|s| s["ready"] == true).count();
            json!(format!("{ready}/{}", count(&obj["spec"]["containers"])))
        }
        "@ready" => json!(format!(
            "{}/{}",
            obj["status"]["readyReplicas"].as_i64().unwrap_or(0),
            obj["spec"]["replicas"].as_i64().unwrap_or(1)
        )),
        "@restarts" => json!(
            obj["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| s["restartCount"].as_i64().unwrap_or(0))
                .sum::<i64>()
        ),
        path => {
            let v = parse_path(path)
                .ok()
                .and_then(|s| find(obj, &s).into_iter().next().cloned())
                .unwrap_or(Value::Null);
            match (col.name.as_str(), col.type_.as_str()) {
                // The default convertor prints the timestamp itself.
                ("Created At", _) => v,
                (_, "date") => age(&v),
                (_, "integer") => json!(v.as_i64().unwrap_or(0)),
                _ if v.is_null() => json!("<none>"),
                _ => json!(print(&v)),
            }
        }
    }
}

/// The computed cells of events' columns.
fn event_cell(path: &str, obj: &Value) -> Option<Value> {
    Some(match path {
        "@involvedObject" => {
            let o = &obj["involvedObject"];
            json!(format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or_default().to_lowercase(),
                o["name"].as_str().unwrap_or_default()
            ))
        }
        "@lastSeen" => {
            let t = [
                &obj["series"]["lastObservedTime"],
                &obj["lastTimestamp"],
                &obj["eventTime"],
                &obj["metadata"]["creationTimestamp"],
            ]
            .into_iter()
            .find(|t| t.as_str().is_some_and(|s| parse_time(s).is_some()))
            .cloned()
            .unwrap_or(Value::Null);
            age(&t)
        }
        "@source" => {
            let component = obj["source"]["component"]
                .as_str()
                .or(obj["reportingComponent"].as_str())
                .unwrap_or_default();
            match obj["source"]["host"].as_str().filter(|h| !h.is_empty()) {
                Some(host) => json!(format!("{component}, {host}")),
                None => json!(component),
            }
        }
        "@firstSeen" => {
            let t = [&obj["firstTimestamp"], &obj["eventTime"]]
                .into_iter()
                .find(|t| t.is_string())
                .cloned()
                .unwrap_or(Value::Null);
            age(&t)
        }
        "@count" => json!(obj["series"]["count"].as_i64().or(obj["count"].as_i64()).unwrap_or(1)),
        _ => return None,
    })
}

/// Whether a type lists its Name column itself (events put it last).
fn own_name(t: &ResourceType) -> bool {
    t.columns.iter().any(|c| c.name == "Name")
}

/// The column definitions of a type.
pub fn columns(t: &ResourceType) -> Value {
    let mut cols = Vec::new();
    if !own_name(t) {
        cols.push(json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}));
    }
    for c in &t.columns {
        let ty = if !t.custom && c.type_ == "date" && c.name != "Created At" {
            "string"
        } else {
            c.type_.as_str()
        };
        let description = if t.custom {
            format!("Custom resource definition column (in JSONPath format): {}", c.json_path)
        } else {
            String::new()
        };
        cols.push(json!({"name": c.name, "type": ty, "format": "", "description": description, "priority": c.priority}));
    }
    Value::Array(cols)
}

/// One row.
fn row(t: &ResourceType, obj: &Value, include: Include) -> Value {
    let mut cells = if own_name(t) { Vec::new() } else { vec![obj["metadata"]["name"].clone()] };
    for c in &t.columns {
        cells.push(if t.custom { crd_cell(c, obj) } else { builtin_cell(c, obj) });
    }
    let object = match include {
        Include::Metadata => {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
        }
        Include::Object => obj.clone(),
        Include::None => Value::Null,
    };
    json!({"cells": cells, "object": object})
}

/// A Table of objects (a list, a get, or one watch event's object).
/// `list_meta` is the list's metadata (resourceVersion, continue).
pub fn table(
    t: &ResourceType,
    objects: &[Value],
    list_meta: Value,
    include: Include,
    headers: bool,
) -> Value {
    let rows: Vec<Value> = objects.iter().map(|o| row(t, o, include)).collect();
    let mut v = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "rows": rows});
    if headers {
        v["columnDefinitions"] = columns(t);
    } else {
        v["columnDefinitions"] = json!([]);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_as_kubectl_prints_them() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (9 * 3600, "9h"),
            (3 * 86_400 + 3600, "3d1h"),
            (30 * 86_400, "30d"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
        assert_eq!(parse_time("2026-11-23T09:05:59Z"), Some(1_795_424_759));
        assert_eq!(parse_time("2026-11-23T09:05:59.123456Z"), Some(1_795_424_759));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn printer_column_paths() {
        let obj = json!({"status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}], "keys": [1, 2]}, "spec": {"a.b": "x"}});
        let col = |p: &str, ty: &str| Column {
            name: "C".into(),
            type_: ty.into(),
            json_path: p.into(),
            priority: 0,
        };
        assert_eq!(
            crd_cell(&col(".status.conditions[?(@.type==\"Ready\")].status", "string"), &obj),
            json!("True")
        );
        assert_eq!(crd_cell(&col(".status.keys[1]", "integer"), &obj), json!(2));
        assert_eq!(crd_cell(&col(".spec['a.b']", "string"), &obj), json!("x"));
        assert_eq!(crd_cell(&col(".status.missing", "string"), &obj), Value::Null);
        assert_eq!(crd_cell(&col(".status.keys", "string"), &obj), json!("[1,2]"));
        assert!(wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"));
        assert!(!wants_table("application/json"));
    }
}
