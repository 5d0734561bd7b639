//! Just enough of the Kubernetes protobuf encoding to accept the request
//! bodies kubectl sends for built-in types (typed clients default to
//! `application/vnd.kubernetes.protobuf`): Namespace, Secret, ConfigMap and
//! DeleteOptions. Responses are always JSON, which clients accept.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\x00";

/// One protobuf field: number and value (varint or length-delimited bytes).
#[derive(Debug)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn fields(b: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(varint(b, &mut i)?),
            2 => {
                let len = usize::try_from(varint(b, &mut i)?).ok()?;
                let s = b.get(i..i.checked_add(len)?)?;
                i += len;
                Field::Bytes(s)
            }
            1 => {
                i += 8;
                continue;
            }
            5 => {
                i += 4;
                continue;
            }
            _ => return None,
        };
        out.push((num, f));
    }
    Some(out)
}

fn string(f: &Field<'_>) -> Option<String> {
    match f {
        Field::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        Field::Varint(_) => None,
    }
}

fn map_entry(f: &Field<'_>, bytes_values: bool) -> Option<(String, Value)> {
    let Field::Bytes(b) = f else { return None };
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, f) in fields(b)? {
        match (n, &f) {
            (1, _) => key = string(&f)?,
            (2, Field::Bytes(v)) if bytes_values => value = Value::String(STANDARD.encode(v)),
            (2, _) => value = Value::String(string(&f)?),
            _ => {}
        }
    }
    Some((key, value))
}

fn object_meta(b: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    let (mut labels, mut annotations, mut finalizers) = (Map::new(), Map::new(), Vec::new());
    for (n, f) in fields(b)? {
        // gogo-protobuf writes empty strings too; they mean "unset".
        if matches!(&f, Field::Bytes(b) if b.is_empty()) {
            continue;
        }
        match n {
            1 => {
                m.insert("name".into(), json!(string(&f)?));
            }
            2 => {
                m.insert("generateName".into(), json!(string(&f)?));
            }
            3 => {
                m.insert("namespace".into(), json!(string(&f)?));
            }
            6 => {
                m.insert("resourceVersion".into(), json!(string(&f)?));
            }
            11 => {
                let (k, v) = map_entry(&f, false)?;
                labels.insert(k, v);
            }
            12 => {
                let (k, v) = map_entry(&f, false)?;
                annotations.insert(k, v);
            }
            14 => finalizers.push(json!(string(&f)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(m))
}

/// Decode a protobuf body into the equivalent JSON object.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body.strip_prefix(MAGIC).ok_or("not a Kubernetes protobuf body")?;
    let envelope = fields(rest).ok_or("malformed protobuf")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in &envelope {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (tn, tf) in fields(tm).ok_or("malformed type meta")? {
                    match tn {
                        1 => api_version = string(&tf).unwrap_or_default(),
                        2 => kind = string(&tf).unwrap_or_default(),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    let fs = fields(raw).ok_or("malformed protobuf object")?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    let mut data = Map::new();
    let mut string_data = Map::new();
    for (n, f) in &fs {
        match (kind.as_str(), n, f) {
            ("Namespace" | "Secret" | "ConfigMap", 1, Field::Bytes(b)) => {
                obj.insert("metadata".into(), object_meta(b).ok_or("malformed metadata")?);
            }
            ("Secret", 2, f) => {
                let (k, v) = map_entry(f, true).ok_or("malformed data")?;
                data.insert(k, v);
            }
            ("Secret", 3, f) => {
                obj.insert("type".into(), json!(string(f).unwrap_or_default()));
            }
            ("Secret", 4, f) => {
                let (k, v) = map_entry(f, false).ok_or("malformed stringData")?;
                string_data.insert(k, v);
            }
            ("ConfigMap", 2, f) => {
                let (k, v) = map_entry(f, false).ok_or("malformed data")?;
                data.insert(k, v);
            }
            ("DeleteOptions", 1, Field::Varint(v)) => {
                obj.insert("gracePeriodSeconds".into(), json!(v));
            }
            ("DeleteOptions", 3, Field::Varint(v)) => {
                obj.insert("orphanDependents".into(), json!(*v != 0));
            }
            ("DeleteOptions", 4, f) => {
                obj.insert("propagationPolicy".into(), json!(string(f).unwrap_or_default()));
            }
            ("Namespace" | "Secret" | "ConfigMap" | "DeleteOptions", _, _) => {}
            _ => {
                return Err(format!(
                    "protobuf bodies of kind {kind:?} are not supported by the test server; send JSON"
                ));
            }
        }
    }
    if !data.is_empty() {
        obj.insert("data".into(), Value::Object(data));
    }
    if !string_data.is_empty() {
        obj.insert("stringData".into(), Value::Object(string_data));
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(n << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_namespace_as_kubectl_sends_it() {
        let meta = [field(1, b"demo"), field(11, &[field(1, b"team"), field(2, b"a")].concat())].concat();
        let ns = field(1, &meta);
        let type_meta = [field(1, b"v1"), field(2, b"Namespace")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &ns)].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "labels": {"team": "a"}}})
        );
    }
}
