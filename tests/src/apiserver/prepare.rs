//! The write path's first layer: decoding a body (unknown fields pruned:
//! strict, warn or ignore) and preparing a create, an update, or a patch
//! by its type (merge, strategic merge, JSON patch, server-side apply),
//! with the kind's strategy, the status split and the system metadata.

use std::sync::Arc;

use serde_json::{Value, json};

use super::errors::FieldError;
use super::fields::{self, ManagerId};
use super::meta::{OnUpdate, SYSTEM_FIELDS};
use super::resources::ResourceType;
use super::store::{ApiError, ApiResult, FieldValidation, ObjKey, Opts, PatchType, Prepared, Store, Sub};
use super::{patch, schema, smp, strategy};

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut b = [0u8; 5];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect()
}

fn strip_type(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
}

/// The name a create gives an object: its own, or one generated.
fn name_of(meta: &Value) -> String {
    match (meta["name"].as_str(), meta["generateName"].as_str()) {
        (Some(n), _) if !n.is_empty() => n.to_owned(),
        (_, Some(g)) if !g.is_empty() => format!("{g}{}", random_suffix()),
        _ => String::new(),
    }
}

fn name_mismatch(body: &Value, name: &str) -> ApiResult<()> {
    if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request("the name of the object does not match the name on the URL"));
    }
    Ok(())
}

fn manager_id(opts: &Opts, operation: &'static str) -> ManagerId {
    let subresource = if opts.sub == Sub::Status { "status".into() } else { String::new() };
    ManagerId { manager: opts.manager.clone(), operation, subresource }
}

/// The write path: prepare.
impl Store {
    /// Unknown fields of a body: pruned, and refused or warned about.
    fn decode(t: &ResourceType, body: &mut Value, v: FieldValidation) -> ApiResult<Vec<String>> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "Object '{}' is missing in '{}'",
                "Kind",
                body.to_string().chars().take(60).collect::<String>()
            )));
        }
        let mut unknown = schema::unknown_metadata_fields(body);
        unknown.extend(schema::prune(body, &t.schema, true));
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        let messages: Vec<String> = unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
        match v {
            FieldValidation::Strict => {
                Err(ApiError::bad_request(format!("strict decoding error: {}", messages.join(", "))))
            }
            FieldValidation::Warn => Ok(messages),
            FieldValidation::Ignore => Ok(Vec::new()),
        }
    }

    /// A body decoded into its stored form (type fields dropped), with the
    /// warnings about unknown fields.
    fn decode_stored(
        t: &ResourceType,
        mut body: Value,
        v: FieldValidation,
    ) -> ApiResult<(Value, Vec<String>)> {
        let warnings = Self::decode(t, &mut body, v)?;
        let mut obj = strategy::to_storage(t, body);
        strip_type(&mut obj);
        Ok((obj, warnings))
    }

    /// Prepare a create (POST, or an apply of an absent object).
    pub fn prepare_create(
        &self,
        t: &Arc<ResourceType>,
        ns: &str,
        body: Value,
        opts: Opts,
    ) -> ApiResult<Prepared> {
        let (mut obj, warnings) = Self::decode_stored(t, body, opts.validation)?;
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        if let Some(body_ns) = obj["metadata"]["namespace"].as_str()
            && t.namespaced
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let name = name_of(&obj["metadata"]);
        if t.is_review() {
            return Err(ApiError::new(405, "MethodNotAllowed", "reviews are not stored"));
        }
        strategy::prepare_create(t, &mut obj)?;
        let m = obj["metadata"].as_object_mut().expect("object");
        if !name.is_empty() {
            m.insert("name".into(), json!(name));
        }
        if t.namespaced {
            m.insert("namespace".into(), json!(ns));
        }
        for (k, _) in SYSTEM_FIELDS {
            m.remove(*k);
        }
        if t.generation {
            m.insert("generation".into(), json!(1));
        }
        let id = ManagerId { manager: opts.manager.clone(), operation: "Update", subresource: String::new() };
        let key = Self::key(t, ns, &name);
        Ok(Prepared {
            t: t.clone(),
            key,
            obj,
            old: None,
            operation: "CREATE",
            opts,
            warnings,
            managed: None,
            id,
        })
    }

    /// Prepare an update (PUT) of an existing object.
    pub fn prepare_update(
        &self,
        t: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        body: Value,
        opts: Opts,
    ) -> ApiResult<Prepared> {
        name_mismatch(&body, name)?;
        let key = Self::key(t, ns, name);
        let old = self.raw(&key).cloned().ok_or_else(|| ApiError::not_found(&t.group, &t.plural, name))?;
        let (mut new, warnings) = Self::decode_stored(t, body, opts.validation)?;
        let given_rv = new["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_owned();
        if given_rv.is_empty() {
            // Kinds that refuse unconditional updates say so as the
            // registry words it (the resource as the kind, RV 0); the
            // others take the stored resourceVersion.
            if !t.strategy.allow_unconditional_update() {
                return Err(ApiError::invalid(
                    &t.group,
                    &t.plural,
                    name,
                    &[FieldError::invalid(
                        "metadata.resourceVersion",
                        &json!(0),
                        "must be specified for an update",
                    )],
                ));
            }
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        } else if given_rv != old["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
            return Err(ApiError::conflict(&t.group, &t.plural, name));
        }
        self.finish_update(t, key, old, new, opts, warnings, None)
    }

    /// Prepare a patch: merge, strategic or JSON patch of the served
    /// object, or an apply (which creates an absent object).
    pub fn prepare_patch(
        &self,
        t: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        kind: PatchType,
        body: &Value,
        opts: Opts,
    ) -> ApiResult<Prepared> {
        let key = Self::key(t, ns, name);
        if kind == PatchType::Strategic && !t.strategy.allow_strategic_merge() {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let current = self.raw(&key).cloned();
        match (kind, current) {
            (PatchType::Apply { .. }, None) if opts.sub == Sub::Main => {
                self.apply_create(t, ns, name, body, opts)
            }
            (_, None) => Err(ApiError::not_found(&t.group, &t.plural, name)),
            (PatchType::Apply { force }, Some(current)) => self.apply(t, key, current, body, force, opts),
            (kind, Some(current)) => {
                let new = patched(t, &current, kind, body)?;
                let (new, warnings) = Self::decode_stored(t, new, opts.validation)?;
                self.finish_update(t, key, current, new, opts, warnings, None)
            }
        }
    }

    /// An apply of an absent object: a create whose fields the applier
    /// owns.
    fn apply_create(
        &self,
        t: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        body: &Value,
        opts: Opts,
    ) -> ApiResult<Prepared> {
        name_mismatch(body, name)?;
        let mut obj = body.clone();
        obj["metadata"]["name"] = json!(name);
        let mut p = self.prepare_create(t, ns, obj.clone(), opts.clone())?;
        let id = ManagerId { manager: opts.manager.clone(), operation: "Apply", subresource: String::new() };
        let mut managed = Vec::new();
        let mut config = obj;
        strip_type(&mut config);
        schema::prune(&mut config, &t.schema, true);
        let config = strategy::to_storage(t, config);
        let _ = fields::apply(&json!({}), &config, Some(&t.schema), &id, &mut managed, true);
        p.managed = Some(managed);
        p.id = id;
        Ok(p)
    }

    /// A server-side apply to an existing object.
    fn apply(
        &self,
        t: &Arc<ResourceType>,
        key: ObjKey,
        current: Value,
        body: &Value,
        force: bool,
        opts: Opts,
    ) -> ApiResult<Prepared> {
        name_mismatch(body, &key.name)?;
        let (mut config, warnings) = Self::decode_stored(t, body.clone(), opts.validation)?;
        if let Some(rv) = config["metadata"]["resourceVersion"].as_str()
            && !rv.is_empty()
            && Some(rv) != current["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(&t.group, &t.plural, &key.name));
        }
        if let Some(m) = config["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        if t.status {
            applied_part(&mut config, opts.sub);
        }
        let id = manager_id(&opts, "Apply");
        let mut managed = fields::read_managed(&current);
        let mut live = current.clone();
        if let Some(m) = live["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        let merged = fields::apply(&live, &config, Some(&t.schema), &id, &mut managed, force)
            .map_err(|conflicts| apply_conflict(t, &key.name, &conflicts))?;
        let mut new = merged;
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        self.finish_update(t, key, current, new, opts, warnings, Some((managed, id)))
    }

    /// The common end of update, patch and apply: status split, the kind's
    /// update preparation, defaults, system metadata, generation.
    #[allow(clippy::too_many_arguments)]
    fn finish_update(
        &self,
        t: &Arc<ResourceType>,
        key: ObjKey,
        old: Value,
        mut new: Value,
        opts: Opts,
        warnings: Vec<String>,
        applied: Option<(Vec<fields::Managed>, ManagerId)>,
    ) -> ApiResult<Prepared> {
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        split_status(t, &key, &old, &mut new, opts.sub)?;
        strategy::prepare_update(t, &mut new, &old)?;
        update_metadata(t, &old, &mut new)?;
        if t.generation && strategy::spec_part(&new) != strategy::spec_part(&old) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            new["metadata"]["generation"] = json!(g);
        }
        let (managed, id) = match applied {
            Some((m, id)) => (Some(m), id),
            None => (None, manager_id(&opts, "Update")),
        };
        Ok(Prepared {
            t: t.clone(),
            key,
            obj: new,
            old: Some(old),
            operation: "UPDATE",
            opts,
            warnings,
            managed,
            id,
        })
    }
}

/// The served object with a merge, strategic merge or JSON patch applied,
/// with the resourceVersion precondition it carries (if any) checked.
fn patched(t: &ResourceType, current: &Value, kind: PatchType, body: &Value) -> ApiResult<Value> {
    let mut new = strategy::from_storage(t, current.clone());
    match kind {
        PatchType::Merge => patch::merge_patch(&mut new, body),
        PatchType::Strategic => smp::apply(&mut new, body, Some(&t.schema)).map_err(ApiError::bad_request)?,
        PatchType::Json => patch::json_patch(&mut new, body).map_err(|e| ApiError::new(422, "Invalid", e))?,
        PatchType::Apply { .. } => unreachable!("applies are prepared by Store::apply"),
    }
    // A patch without a resourceVersion applies to what is there.
    if new["metadata"]["resourceVersion"].as_str().is_none_or(str::is_empty) {
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    } else if new["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
        let name = current["metadata"]["name"].as_str().unwrap_or_default();
        return Err(ApiError::conflict(&t.group, &t.plural, name));
    }
    Ok(new)
}

/// What an apply may set of a type with a status subresource: the main
/// resource all but status, `/status` only status (and the name).
fn applied_part(config: &mut Value, sub: Sub) {
    let Some(m) = config.as_object_mut() else { return };
    match sub {
        Sub::Main => {
            m.remove("status");
        }
        Sub::Status => {
            m.retain(|k, _| matches!(k.as_str(), "status" | "metadata"));
            if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.retain(|k, _| matches!(k.as_str(), "name" | "namespace"));
            }
        }
    }
}

/// The 409 of an apply's conflicts.
fn apply_conflict(t: &ResourceType, name: &str, conflicts: &[fields::Conflict]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", c.manager.manager, c.api_version), "field": fields::show_path(&c.path)}))
        .collect();
    ApiError {
        code: 409,
        reason: "Conflict",
        message: fields::conflict_message(conflicts),
        details: Some(json!({"name": name, "group": t.group, "kind": t.plural, "causes": causes})),
        list_continue: None,
    }
}

/// The status subresource split: the main resource keeps the stored
/// status, `/status` changes nothing else.
fn split_status(t: &ResourceType, key: &ObjKey, old: &Value, new: &mut Value, sub: Sub) -> ApiResult<()> {
    if !t.status {
        if sub == Sub::Status {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!(
                    "the server could not find the requested resource ({} {}/status)",
                    t.qualified(),
                    key.name
                ),
            ));
        }
        return Ok(());
    }
    let status = match sub {
        Sub::Main => old.get("status").cloned(),
        Sub::Status => {
            let status = new.get("status").cloned();
            let rv = new["metadata"]["resourceVersion"].clone();
            *new = old.clone();
            new["metadata"]["resourceVersion"] = rv;
            status
        }
    };
    match status {
        Some(s) => new["status"] = s,
        None => {
            new.as_object_mut().map(|m| m.remove("status"));
        }
    }
    Ok(())
}

/// An update's system metadata: kept, counted and precondition fields
/// from the stored object or the request, the rest dropped; name and
/// namespace from the URL (a body that differs was refused).
fn update_metadata(t: &ResourceType, old: &Value, new: &mut Value) -> ApiResult<()> {
    let m =
        new["metadata"].as_object_mut().ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    for (k, on_update) in SYSTEM_FIELDS {
        match on_update {
            OnUpdate::Kept | OnUpdate::Counted => match old["metadata"].get(*k) {
                Some(v) => m.insert((*k).into(), v.clone()),
                None => m.remove(*k),
            },
            OnUpdate::Precondition => None,
            OnUpdate::Recomputed | OnUpdate::Cleared => m.remove(*k),
        };
    }
    m.insert("name".into(), old["metadata"]["name"].clone());
    if t.namespaced {
        m.insert("namespace".into(), old["metadata"]["namespace"].clone());
    }
    Ok(())
}
