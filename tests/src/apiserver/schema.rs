//! Structural schemas: a CRD's `openAPIV3Schema` (and the schemas this
//! server declares for its built-in kinds) and what the apiextensions
//! pipeline does with them: the structural check when a CRD is written,
//! pruning of unknown fields, defaulting, validation worded as kube-openapi
//! words it, and the list and map semantics server-side apply follows.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Map, Value, json};

use super::errors::{FieldError, json_type};

/// One `x-kubernetes-validations` rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The CEL expression.
    pub rule: String,
    /// `message`.
    pub message: Option<String>,
    /// `messageExpression`.
    pub message_expression: Option<String>,
    /// `fieldPath` (relative to the node, e.g. `.name`).
    pub field_path: Option<String>,
    /// `reason`: `FieldValueInvalid` (default), `FieldValueForbidden`, ...
    pub reason: Option<String>,
    /// `optionalOldSelf`.
    pub optional_old_self: bool,
}

impl Rule {
    /// Whether the rule looks at the old object (a transition rule).
    pub fn is_transition(&self) -> bool {
        self.rule.contains("oldSelf")
    }
}

/// How a list is merged and owned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ListType {
    /// Replaced as a whole (the default).
    #[default]
    Atomic,
    /// A set of scalars.
    Set,
    /// A map keyed by these fields of its items.
    Map(Vec<String>),
}

/// A structural schema node.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// `type`.
    pub type_: Option<String>,
    /// `format`.
    pub format: Option<String>,
    /// `properties`.
    pub properties: BTreeMap<String, Schema>,
    /// `additionalProperties` as a schema (`true` is an empty schema that
    /// preserves everything).
    pub additional: Option<Box<Schema>>,
    /// `items`.
    pub items: Option<Box<Schema>>,
    /// `required`.
    pub required: Vec<String>,
    /// `enum`.
    pub enum_: Option<Vec<Value>>,
    /// `pattern`, compiled.
    pub pattern: Option<(String, Regex)>,
    /// `minimum` / `exclusiveMinimum`.
    pub minimum: Option<(f64, bool)>,
    /// `maximum` / `exclusiveMaximum`.
    pub maximum: Option<(f64, bool)>,
    /// `minLength`, `maxLength`.
    pub min_length: Option<u64>,
    /// `maxLength`.
    pub max_length: Option<u64>,
    /// `minItems`.
    pub min_items: Option<u64>,
    /// `maxItems`.
    pub max_items: Option<u64>,
    /// `minProperties`.
    pub min_properties: Option<u64>,
    /// `maxProperties`.
    pub max_properties: Option<u64>,
    /// `multipleOf`.
    pub multiple_of: Option<f64>,
    /// `nullable`.
    pub nullable: bool,
    /// `x-kubernetes-int-or-string`.
    pub int_or_string: bool,
    /// `x-kubernetes-preserve-unknown-fields`.
    pub preserve_unknown: bool,
    /// `x-kubernetes-embedded-resource`.
    pub embedded: bool,
    /// `default`.
    pub default: Option<Value>,
    /// `x-kubernetes-list-type` / `x-kubernetes-list-map-keys`.
    pub list_type: ListType,
    /// `x-kubernetes-map-type: atomic`.
    pub atomic_map: bool,
    /// `x-kubernetes-validations`.
    pub rules: Vec<Rule>,
    /// `allOf`, `anyOf`, `oneOf` (value validation only).
    pub all_of: Vec<Schema>,
    /// `anyOf`.
    pub any_of: Vec<Schema>,
    /// `oneOf`.
    pub one_of: Vec<Schema>,
    /// `not`.
    pub not: Option<Box<Schema>>,
}

impl Schema {
    /// A schema that keeps whatever it is given.
    pub fn preserving() -> Self {
        Schema { preserve_unknown: true, ..Schema::default() }
    }

    /// Parse an OpenAPI v3 schema object (invalid parts are ignored here;
    /// the structural check reports them).
    pub fn parse(v: &Value) -> Schema {
        let s = |k: &str| v[k].as_str().map(str::to_owned);
        let u = |k: &str| v[k].as_u64();
        let subs =
            |k: &str| v[k].as_array().map(|a| a.iter().map(Schema::parse).collect()).unwrap_or_default();
        let list_type = match v["x-kubernetes-list-type"].as_str() {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                v["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        };
        let additional = match &v["additionalProperties"] {
            Value::Object(_) => Some(Box::new(Schema::parse(&v["additionalProperties"]))),
            Value::Bool(true) => Some(Box::new(Schema::preserving())),
            _ => None,
        };
        Schema {
            type_: s("type"),
            format: s("format"),
            properties: v["properties"]
                .as_object()
                .map(|m| m.iter().map(|(k, p)| (k.clone(), Schema::parse(p))).collect())
                .unwrap_or_default(),
            additional,
            items: v.get("items").filter(|i| i.is_object()).map(|i| Box::new(Schema::parse(i))),
            required: v["required"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            enum_: v["enum"].as_array().cloned(),
            pattern: s("pattern").and_then(|p| Regex::new(&p).ok().map(|r| (p, r))),
            minimum: v["minimum"].as_f64().map(|m| (m, v["exclusiveMinimum"].as_bool() == Some(true))),
            maximum: v["maximum"].as_f64().map(|m| (m, v["exclusiveMaximum"].as_bool() == Some(true))),
            min_length: u("minLength"),
            max_length: u("maxLength"),
            min_items: u("minItems"),
            max_items: u("maxItems"),
            min_properties: u("minProperties"),
            max_properties: u("maxProperties"),
            multiple_of: v["multipleOf"].as_f64(),
            nullable: v["nullable"].as_bool() == Some(true),
            int_or_string: v["x-kubernetes-int-or-string"].as_bool() == Some(true),
            preserve_unknown: v["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true),
            embedded: v["x-kubernetes-embedded-resource"].as_bool() == Some(true),
            default: v.get("default").cloned(),
            list_type,
            atomic_map: v["x-kubernetes-map-type"].as_str() == Some("atomic"),
            rules: v["x-kubernetes-validations"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| Rule {
                            rule: r["rule"].as_str().unwrap_or_default().to_owned(),
                            message: r["message"].as_str().map(str::to_owned),
                            message_expression: r["messageExpression"].as_str().map(str::to_owned),
                            field_path: r["fieldPath"].as_str().map(str::to_owned),
                            reason: r["reason"].as_str().map(str::to_owned),
                            optional_old_self: r["optionalOldSelf"].as_bool() == Some(true),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            all_of: subs("allOf"),
            any_of: subs("anyOf"),
            one_of: subs("oneOf"),
            not: v.get("not").filter(|n| n.is_object()).map(|n| Box::new(Schema::parse(n))),
        }
    }

    /// The schema of a child field (`None`: unknown there).
    pub fn field(&self, name: &str) -> Option<&Schema> {
        self.properties.get(name).or(self.additional.as_deref())
    }

    /// Whether unknown fields are kept here.
    fn keeps_unknown(&self) -> bool {
        self.preserve_unknown
    }
}

/// `properties[name]` as field paths show a key.
fn key_path(base: &str, child: &str, key: &str) -> String {
    format!("{base}.{child}[{key}]")
}

/// The structural-schema check of a CRD version's `openAPIV3Schema`, at
/// `path` (`spec.versions[0].schema.openAPIV3Schema`).
pub fn structural_errors(v: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_node(v, path, Context::Root, &mut errs);
    errs
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Root,
    Field,
    Items,
    RootMetadata,
}

fn check_node(v: &Value, path: &str, ctx: Context, errs: &mut Vec<FieldError>) {
    let Some(m) = v.as_object() else {
        errs.push(FieldError::invalid(path, v, "must be an object"));
        return;
    };
    check_unsupported(m, path, errs);
    check_type(m, path, ctx, errs);
    check_shape(m, path, ctx, errs);
    check_list_type(m, path, errs);
    check_children(m, path, ctx, errs);
}

type Node = Map<String, Value>;

/// Keywords structural schemas do not support.
fn check_unsupported(m: &Node, path: &str, errs: &mut Vec<FieldError>) {
    for (key, what) in [
        ("$ref", "$ref"),
        ("definitions", "definitions"),
        ("dependencies", "dependencies"),
        ("patternProperties", "patternProperties"),
        ("additionalItems", "additionalItems"),
        ("id", "id"),
    ] {
        if m.contains_key(key) {
            errs.push(FieldError::forbidden(format!("{path}.{key}"), format!("{what} is not supported")));
        }
    }
}

/// `type` against the int-or-string, preserve-unknown-fields and
/// embedded-resource extensions.
fn check_type(m: &Node, path: &str, ctx: Context, errs: &mut Vec<FieldError>) {
    let type_ = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let int_or_string = m.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    let preserve = m.get("x-kubernetes-preserve-unknown-fields");
    let embedded = m.get("x-kubernetes-embedded-resource").and_then(Value::as_bool) == Some(true);
    if let Some(p) = preserve
        && p.as_bool() != Some(true)
    {
        errs.push(FieldError::invalid(
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            p,
            "must be true or undefined",
        ));
    }
    let preserves = preserve.and_then(Value::as_bool) == Some(true);
    if int_or_string {
        if preserves {
            errs.push(FieldError::invalid(
                format!("{path}.x-kubernetes-preserve-unknown-fields"),
                &json!(true),
                "must be false if x-kubernetes-int-or-string is true",
            ));
        }
        if embedded {
            errs.push(FieldError::invalid(
                format!("{path}.x-kubernetes-embedded-resource"),
                &json!(true),
                "must be false if x-kubernetes-int-or-string is true",
            ));
        }
    }
    if embedded && type_ != "object" {
        if type_.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.type"),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else {
            errs.push(FieldError::invalid(
                format!("{path}.type"),
                &json!(type_),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if type_.is_empty() && !int_or_string && !preserves {
        let detail = match ctx {
            Context::Root => "must not be empty at the root",
            Context::Items => "must not be empty for specified array items",
            _ => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(format!("{path}.type"), detail));
    }
}

/// The root's rules, the supported types, items, properties, patterns and
/// the root's metadata.
fn check_shape(m: &Node, path: &str, ctx: Context, errs: &mut Vec<FieldError>) {
    let type_ = m.get("type").and_then(Value::as_str).unwrap_or_default();
    if ctx == Context::Root {
        if !type_.is_empty() && type_ != "object" {
            errs.push(FieldError::invalid(
                format!("{path}.type"),
                &json!(type_),
                "must be object at the root",
            ));
        }
        if m.contains_key("additionalProperties") {
            errs.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "must not be used at the root",
            ));
        }
        if m.get("nullable").and_then(Value::as_bool) == Some(true) {
            errs.push(FieldError::forbidden(
                format!("{path}.nullable"),
                "nullable cannot be true at the root",
            ));
        }
    }
    if !type_.is_empty() && !matches!(type_, "object" | "array" | "string" | "integer" | "number" | "boolean")
    {
        errs.push(FieldError::not_supported(
            format!("{path}.type"),
            &json!(type_),
            &["array", "boolean", "integer", "number", "object", "string"],
        ));
    }
    if type_ == "array" && !m.get("items").is_some_and(Value::is_object) {
        errs.push(FieldError::required(format!("{path}.items"), "must be specified"));
    }
    if m.get("properties").is_some_and(|p| p.as_object().is_some_and(|p| !p.is_empty()))
        && m.get("additionalProperties").is_some_and(|a| !matches!(a, Value::Bool(false)))
    {
        errs.push(FieldError::forbidden(
            format!("{path}.additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if let Some(p) = m.get("pattern").and_then(Value::as_str)
        && let Err(e) = Regex::new(p)
    {
        errs.push(FieldError::invalid(
            format!("{path}.pattern"),
            &json!(p),
            format!("must be a valid regular expression, but isn't: {e}"),
        ));
    }
    if ctx == Context::RootMetadata {
        let props: Vec<&String> =
            m.get("properties").and_then(Value::as_object).map(|p| p.keys().collect()).unwrap_or_default();
        if props.iter().any(|k| *k != "name" && *k != "generateName")
            || m.keys().any(|k| !matches!(k.as_str(), "type" | "properties" | "description"))
        {
            errs.push(FieldError::forbidden(path, "must not specify anything other than name and generateName, but metadata is implicitly specified"));
        }
    }
}

/// `x-kubernetes-list-type` and `-list-map-keys`.
fn check_list_type(m: &Node, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(keys) = m.get("x-kubernetes-list-map-keys")
        && m.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map")
    {
        errs.push(FieldError::forbidden(
            format!("{path}.x-kubernetes-list-map-keys"),
            "must be empty if x-kubernetes-list-type is not map",
        ));
        let _ = keys;
    }
    if let Some(lt) = m.get("x-kubernetes-list-type") {
        match lt.as_str() {
            Some("atomic" | "set") => {}
            Some("map") => {
                if m.get("x-kubernetes-list-map-keys").and_then(Value::as_array).is_none_or(Vec::is_empty) {
                    errs.push(FieldError::required(
                        format!("{path}.x-kubernetes-list-map-keys"),
                        "must not be empty if x-kubernetes-list-type is map",
                    ));
                }
            }
            _ => errs.push(FieldError::not_supported(
                format!("{path}.x-kubernetes-list-type"),
                lt,
                &["atomic", "map", "set"],
            )),
        }
    }
}

/// The nested schemas.
fn check_children(m: &Node, path: &str, ctx: Context, errs: &mut Vec<FieldError>) {
    let embedded = m.get("x-kubernetes-embedded-resource").and_then(Value::as_bool) == Some(true);
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            let child =
                if ctx == Context::Root && k == "metadata" { Context::RootMetadata } else { Context::Field };
            if ctx != Context::Root && k == "metadata" && embedded {
                // embedded resources may describe their metadata
            }
            check_node(p, &key_path(path, "properties", k), child, errs);
        }
    }
    if let Some(items) = m.get("items").filter(|i| i.is_object()) {
        check_node(items, &format!("{path}.items"), Context::Items, errs);
    }
    if let Some(a) = m.get("additionalProperties").filter(|a| a.is_object()) {
        check_node(a, &format!("{path}.additionalProperties"), Context::Field, errs);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, sub) in m.get(key).and_then(Value::as_array).into_iter().flatten().enumerate() {
            check_value_validation(sub, &format!("{path}.{key}[{i}]"), errs);
        }
    }
    if let Some(not) = m.get("not") {
        check_value_validation(not, &format!("{path}.not"), errs);
    }
}

/// Under allOf/anyOf/oneOf/not only value validations are allowed.
fn check_value_validation(v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = v.as_object() else { return };
    let forbidden = [
        ("type", "must be empty to be structural"),
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        ("title", "must be empty to be structural"),
        ("description", "must be empty to be structural"),
        ("nullable", "must be false to be structural"),
        ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
        ("x-kubernetes-embedded-resource", "must be false to be structural"),
        ("x-kubernetes-int-or-string", "must be false to be structural"),
        ("x-kubernetes-list-map-keys", "must be empty to be structural"),
        ("x-kubernetes-list-type", "must be undefined to be structural"),
        ("x-kubernetes-map-type", "must be undefined to be structural"),
        ("x-kubernetes-validations", "must be empty to be structural"),
    ];
    for (k, why) in forbidden {
        if m.contains_key(k) {
            errs.push(FieldError::forbidden(format!("{path}.{k}"), why));
        }
    }
}

/// Remove the fields the schema does not know, as kube-apiserver prunes
/// them. Returns the removed fields' paths (`spec.bogus`). At the root
/// (`root`), `apiVersion`, `kind` and `metadata` are kept; so are they in
/// embedded resources.
pub fn prune(obj: &mut Value, schema: &Schema, root: bool) -> Vec<String> {
    let mut pruned = Vec::new();
    prune_at(obj, schema, "", root, &mut pruned);
    pruned
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn prune_at(v: &mut Value, s: &Schema, path: &str, root: bool, pruned: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let keep_meta = root || s.embedded;
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if keep_meta && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    if k == "metadata"
                        && !root
                        && let Some(meta) = m.get_mut("metadata")
                    {
                        prune_embedded_metadata(meta, &join(path, "metadata"), pruned);
                    }
                    continue;
                }
                match s.properties.get(&k).or(s.additional.as_deref()) {
                    Some(child) => {
                        let child_path = join(path, &k);
                        prune_at(m.get_mut(&k).expect("present"), child, &child_path, false, pruned);
                    }
                    None if s.keeps_unknown() => {}
                    None => {
                        m.remove(&k);
                        pruned.push(join(path, &k));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &s.items {
                for (i, x) in items.iter_mut().enumerate() {
                    prune_at(x, item, &format!("{path}[{i}]"), false, pruned);
                }
            }
        }
        _ => {}
    }
}

/// The ObjectMeta fields an embedded resource may carry.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn prune_embedded_metadata(meta: &mut Value, path: &str, pruned: &mut Vec<String>) {
    if let Some(m) = meta.as_object_mut() {
        let unknown: Vec<String> =
            m.keys().filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str())).cloned().collect();
        for k in unknown {
            m.remove(&k);
            pruned.push(join(path, &k));
        }
    }
}

/// Unknown fields of the root `metadata` (the decoder drops them).
pub fn unknown_metadata_fields(obj: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    if let Some(meta) = obj.get_mut("metadata") {
        prune_embedded_metadata(meta, "metadata", &mut pruned);
    }
    pruned
}

/// Apply `default:` values for absent fields (and for `null` where the
/// field is not nullable), top-down, as structural defaulting does.
pub fn apply_defaults(v: &mut Value, s: &Schema) {
    match v {
        Value::Object(m) => {
            for (k, child) in &s.properties {
                if let Some(d) = &child.default {
                    let absent = match m.get(k) {
                        None => true,
                        Some(Value::Null) => !child.nullable,
                        Some(_) => false,
                    };
                    if absent {
                        m.insert(k.clone(), d.clone());
                    }
                }
            }
            for (k, x) in m.iter_mut() {
                if let Some(child) = s.properties.get(k).or(s.additional.as_deref()) {
                    apply_defaults(x, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &s.items {
                for x in items.iter_mut() {
                    apply_defaults(x, item);
                }
            }
        }
        _ => {}
    }
}

/// An embedded resource needs `apiVersion` and `kind`
/// (`validateEmbeddedResource`).
fn embedded_resource(m: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    for f in ["apiVersion", "kind"] {
        let at = join(path, f);
        match m.get(f) {
            None => errs.push(FieldError::required(at, "must not be empty")),
            Some(Value::String(x)) if x.is_empty() => {
                errs.push(FieldError::invalid(at, &json!(x), "must not be empty"))
            }
            Some(Value::String(_)) => {}
            Some(other) => errs.push(FieldError::invalid(at, other, "must be a string")),
        }
    }
}

/// Format a number the way Go's `%v` does for schema bounds.
fn num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { n.to_string() }
}

/// Validate a value against the schema (types, formats, patterns, enums,
/// bounds, required fields...). `path` is the value's field path.
pub fn validate(v: &Value, s: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    let shown = if path.is_empty() { "body".to_owned() } else { path.to_owned() };
    if !type_ok(v, s, path, &shown, errs) {
        return;
    }
    if let Some(values) = &s.enum_
        && !values.contains(v)
    {
        let list: Vec<String> =
            values.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned)).collect();
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        errs.push(FieldError::not_supported(path, v, &refs));
    }
    let at = At { path, shown: &shown };
    match v {
        Value::String(text) => validate_string(v, text, s, &at, errs),
        Value::Number(n) => validate_number(v, n, s, &at, errs),
        Value::Array(items) => validate_array(v, items, s, &at, errs),
        Value::Object(m) => validate_object(v, m, s, &at, errs),
        _ => {}
    }
    validate_combinators(v, s, path, &shown, errs);
}

/// Where a value is: its field path and how messages show it.
struct At<'a> {
    path: &'a str,
    shown: &'a str,
}

/// The type check: `false` when nothing more is to be checked (null, or
/// the wrong type, reported).
fn type_ok(v: &Value, s: &Schema, path: &str, shown: &str, errs: &mut Vec<FieldError>) -> bool {
    if v.is_null() {
        if s.nullable || s.type_.is_none() && !s.int_or_string {
            return false;
        }
        if let Some(t) = &s.type_ {
            errs.push(FieldError::type_invalid(
                path,
                &json!("null"),
                format!("{shown} in body must be of type {t}: \"null\""),
            ));
        }
        return false;
    }
    if s.int_or_string {
        if !(v.is_string() || v.as_i64().is_some()) {
            errs.push(FieldError::type_invalid(
                path,
                &json!(json_type(v)),
                format!("{shown} in body must be of type integer,string: \"{}\"", json_type(v)),
            ));
            return false;
        }
    } else if let Some(t) = &s.type_ {
        let ok = match t.as_str() {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => {
                v.as_i64().is_some() || v.as_u64().is_some() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => true,
        };
        if !ok {
            errs.push(FieldError::type_invalid(
                path,
                &json!(json_type(v)),
                format!("{shown} in body must be of type {t}: \"{}\"", json_type(v)),
            ));
            return false;
        }
    }
    true
}

fn validate_string(v: &Value, text: &str, s: &Schema, at: &At<'_>, errs: &mut Vec<FieldError>) {
    let (path, shown) = (at.path, at.shown);
    let chars = text.chars().count() as u64;
    if let Some(max) = s.max_length
        && chars > max
    {
        errs.push(FieldError::too_long(path, max as usize));
    }
    if let Some(min) = s.min_length
        && chars < min
    {
        errs.push(FieldError::invalid(
            path,
            v,
            format!("{shown} in body should be at least {min} chars long"),
        ));
    }
    if let Some((p, re)) = &s.pattern
        && !re.is_match(text)
    {
        errs.push(FieldError::invalid(path, v, format!("{shown} in body should match '{p}'")));
    }
    if let Some(f) = &s.format
        && !format_ok(f, text)
    {
        errs.push(FieldError::invalid(path, v, format!("{shown} in body must be of type {f}: {text:?}")));
    }
}

fn validate_number(v: &Value, n: &serde_json::Number, s: &Schema, at: &At<'_>, errs: &mut Vec<FieldError>) {
    let (path, shown) = (at.path, at.shown);
    let x = n.as_f64().unwrap_or_default();
    if let Some((min, exclusive)) = s.minimum {
        if exclusive && x <= min {
            errs.push(FieldError::invalid(
                path,
                v,
                format!("{shown} in body should be greater than {}", num(min)),
            ));
        } else if !exclusive && x < min {
            errs.push(FieldError::invalid(
                path,
                v,
                format!("{shown} in body should be greater than or equal to {}", num(min)),
            ));
        }
    }
    if let Some((max, exclusive)) = s.maximum {
        if exclusive && x >= max {
            errs.push(FieldError::invalid(
                path,
                v,
                format!("{shown} in body should be less than {}", num(max)),
            ));
        } else if !exclusive && x > max {
            errs.push(FieldError::invalid(
                path,
                v,
                format!("{shown} in body should be less than or equal to {}", num(max)),
            ));
        }
    }
    if let Some(m) = s.multiple_of
        && m != 0.0
        && (x / m).fract() != 0.0
    {
        errs.push(FieldError::invalid(
            path,
            v,
            format!("{shown} in body should be a multiple of {}", num(m)),
        ));
    }
    if let Some(f) = &s.format {
        let fits = match f.as_str() {
            "int32" => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
            "int64" => n.as_i64().is_some(),
            _ => true,
        };
        if !fits {
            errs.push(FieldError::invalid(path, v, format!("{shown} in body must be of type {f}: \"{n}\"")));
        }
    }
}

fn validate_array(v: &Value, items: &[Value], s: &Schema, at: &At<'_>, errs: &mut Vec<FieldError>) {
    let (path, shown) = (at.path, at.shown);
    if let Some(max) = s.max_items
        && items.len() as u64 > max
    {
        errs.push(FieldError::too_many(path, items.len(), max as usize));
    }
    if let Some(min) = s.min_items
        && (items.len() as u64) < min
    {
        errs.push(FieldError::invalid(path, v, format!("{shown} in body should have at least {min} items")));
    }
    match &s.list_type {
        ListType::Set => {
            for (i, x) in items.iter().enumerate() {
                if items[..i].contains(x) {
                    errs.push(FieldError::duplicate(format!("{path}[{i}]"), x));
                }
            }
        }
        ListType::Map(keys) => {
            let mut seen: Vec<Vec<Value>> = Vec::new();
            for (i, x) in items.iter().enumerate() {
                let key: Vec<Value> = keys.iter().map(|k| x[k].clone()).collect();
                if seen.contains(&key) {
                    let shown_key: Map<String, Value> =
                        keys.iter().cloned().zip(key.iter().cloned()).collect();
                    errs.push(FieldError::duplicate(format!("{path}[{i}]"), &Value::Object(shown_key)));
                }
                seen.push(key);
            }
        }
        ListType::Atomic => {}
    }
    if let Some(item) = &s.items {
        for (i, x) in items.iter().enumerate() {
            validate(x, item, &format!("{path}[{i}]"), errs);
        }
    }
}

fn validate_object(v: &Value, m: &Map<String, Value>, s: &Schema, at: &At<'_>, errs: &mut Vec<FieldError>) {
    let (path, shown) = (at.path, at.shown);
    if s.embedded {
        embedded_resource(m, path, errs);
    }
    for r in &s.required {
        if m.get(r).is_none_or(|x| x.is_null() && !s.properties.get(r).is_some_and(|p| p.nullable)) {
            errs.push(FieldError::required(join(path, r), ""));
        }
    }
    if let Some(max) = s.max_properties
        && m.len() as u64 > max
    {
        errs.push(FieldError::too_many(path, m.len(), max as usize));
    }
    if let Some(min) = s.min_properties
        && (m.len() as u64) < min
    {
        errs.push(FieldError::invalid(
            path,
            v,
            format!("{shown} in body should have at least {min} properties"),
        ));
    }
    for (k, x) in m {
        if let Some(child) = s.properties.get(k).or(s.additional.as_deref()) {
            validate(x, child, &join(path, k), errs);
        }
    }
}

/// `allOf`, `anyOf`, `oneOf` and `not`.
fn validate_combinators(v: &Value, s: &Schema, path: &str, shown: &str, errs: &mut Vec<FieldError>) {
    for sub in &s.all_of {
        validate(v, sub, path, errs);
    }
    if !s.any_of.is_empty() && !s.any_of.iter().any(|sub| valid(v, sub, path)) {
        errs.push(FieldError::invalid(
            path,
            v,
            format!("{shown} in body must match at least one schema in anyOf"),
        ));
    }
    if !s.one_of.is_empty() && s.one_of.iter().filter(|sub| valid(v, sub, path)).count() != 1 {
        errs.push(FieldError::invalid(
            path,
            v,
            format!("{shown} in body must match exactly one schema in oneOf"),
        ));
    }
    if let Some(not) = &s.not
        && valid(v, not, path)
    {
        errs.push(FieldError::invalid(
            path,
            v,
            format!("{shown} in body must not validate the schema (not)"),
        ));
    }
}

fn valid(v: &Value, s: &Schema, path: &str) -> bool {
    let mut e = Vec::new();
    validate(v, s, path, &mut e);
    e.is_empty()
}

/// The `format`s Kubernetes checks.
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" => super::validation::is_micro_time(s) || is_date_time(s),
        "date" => {
            s.len() == 10
                && s.as_bytes()[4] == b'-'
                && s.as_bytes()[7] == b'-'
                && s.bytes().filter(u8::is_ascii_digit).count() == 8
        }
        "byte" => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        "int32" | "int64" => s.parse::<i64>().is_ok(),
        "uuid" => {
            s.len() == 36
                && s.chars()
                    .enumerate()
                    .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
        }
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "hostname" => super::validation::dns1123_subdomain(s).is_empty(),
        "duration" => !s.is_empty(),
        _ => true,
    }
}

fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::parse(&json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "required": ["secretName"], "properties": {
                    "secretName": {"type": "string", "maxLength": 10, "pattern": "^[a-z]+$"},
                    "every": {"type": "string", "default": "24h"},
                    "maxKeys": {"type": "integer", "format": "int32", "minimum": 1},
                    "mode": {"type": "string", "enum": ["A", "B"]},
                    "port": {"x-kubernetes-int-or-string": true},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}, "x-kubernetes-list-type": "set"}
                }}
            }
        }))
    }

    #[test]
    fn prunes_unknown_fields_but_keeps_preserved_and_meta() {
        let mut obj = json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "x"}, "spec": {"secretName": "a", "bogus": 1, "free": {"anything": [1]}}, "extra": true});
        let pruned = prune(&mut obj, &schema(), true);
        assert_eq!(pruned, ["extra", "spec.bogus"]);
        assert_eq!(obj["spec"]["free"]["anything"], json!([1]));
        assert_eq!(obj["metadata"]["name"], "x");
    }

    #[test]
    fn defaults_and_validates_with_kube_openapi_words() {
        let s = schema();
        let mut obj = json!({"spec": {"secretName": "ABCDEFGHIJKLMNOP", "maxKeys": 0, "mode": "C", "port": true, "tags": ["a", "a", "b"]}});
        apply_defaults(&mut obj, &s);
        assert_eq!(obj["spec"]["every"], "24h");
        let mut errs = Vec::new();
        validate(&obj, &s, "", &mut errs);
        let got: Vec<String> = errs.iter().map(FieldError::message).collect();
        assert!(
            got.contains(&"spec.secretName: Too long: may not be more than 10 bytes".to_owned()),
            "{got:?}"
        );
        assert!(got.contains(&"spec.secretName: Invalid value: \"ABCDEFGHIJKLMNOP\": spec.secretName in body should match '^[a-z]+$'".to_owned()), "{got:?}");
        assert!(
            got.contains(
                &"spec.maxKeys: Invalid value: 0: spec.maxKeys in body should be greater than or equal to 1"
                    .to_owned()
            ),
            "{got:?}"
        );
        assert!(
            got.contains(&"spec.mode: Unsupported value: \"C\": supported values: \"A\", \"B\"".to_owned()),
            "{got:?}"
        );
        assert!(got.contains(&"spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"".to_owned()), "{got:?}");
        assert!(got.contains(&"spec.tags: Too many: 3: must have at most 2 items".to_owned()), "{got:?}");
        assert!(got.contains(&"spec.tags[1]: Duplicate value: \"a\"".to_owned()), "{got:?}");
        let mut errs = Vec::new();
        validate(&json!({"spec": {}}), &s, "", &mut errs);
        assert_eq!(errs[0].message(), "spec.secretName: Required value");
    }

    #[test]
    fn structural_check() {
        let bad = json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}, "list": {"type": "array"}}});
        let errs: Vec<String> = structural_errors(&bad, "spec.versions[0].schema.openAPIV3Schema")
            .iter()
            .map(FieldError::message)
            .collect();
        assert!(errs.contains(&"spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields".to_owned()), "{errs:?}");
        assert!(errs.contains(&"spec.versions[0].schema.openAPIV3Schema.properties[list].items: Required value: must be specified".to_owned()), "{errs:?}");
        assert!(
            structural_errors(&json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}), "p")
                .is_empty()
        );
    }
}
