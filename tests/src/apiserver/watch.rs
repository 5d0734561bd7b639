//! Lists and watches with kube-apiserver's ListOptions semantics:
//! `resourceVersion` and `resourceVersionMatch` (NotOlderThan, Exact,
//! legacy), `limit` and `continue` tokens served from a consistent snapshot
//! (410 Gone once the history no longer holds it, with a token to continue
//! inconsistently), watches resuming from a resourceVersion or streaming
//! the initial state (`sendInitialEvents`), bookmarks at a configurable
//! interval, and a per-resource delivery delay so that clients' caches lag
//! their own writes as they can on a loaded cluster.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::errors::{ApiError, ApiResult, FieldError};
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{Change, ChangeKind, ObjKey, Store};
use super::strategy;

/// How long a list with a resourceVersion newer than the store waits.
const TOO_LARGE_WAIT: Duration = Duration::from_secs(3);

/// Parsed ListOptions.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `resourceVersion` (`None`: unset).
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub rv_match: String,
    /// `limit` (0: none).
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `watch`.
    pub watch: bool,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial: Option<bool>,
    /// `timeoutSeconds`.
    pub timeout: Option<u64>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

fn flag(q: &HashMap<String, String>, k: &str) -> Result<Option<bool>, ApiError> {
    match q.get(k).map(String::as_str) {
        None => Ok(None),
        Some("true" | "1" | "True") => Ok(Some(true)),
        Some("false" | "0" | "False" | "") => Ok(Some(false)),
        Some(other) => {
            Err(ApiError::bad_request(format!("strconv.ParseBool: parsing {other:?}: invalid syntax")))
        }
    }
}

fn list_options_invalid(errs: Vec<FieldError>) -> ApiError {
    ApiError::invalid("meta.k8s.io", "ListOptions", "", &errs)
}

impl ListOptions {
    /// Parse and validate the query of a list or watch of `t`.
    pub fn parse(t: &ResourceType, q: &HashMap<String, String>) -> ApiResult<ListOptions> {
        let number = |k: &str| -> ApiResult<Option<u64>> {
            q.get(k)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))
                    })
                })
                .transpose()
        };
        let mut o = ListOptions {
            resource_version: q.get("resourceVersion").cloned(),
            rv_match: q.get("resourceVersionMatch").cloned().unwrap_or_default(),
            limit: number("limit")?.unwrap_or(0) as usize,
            continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
            watch: flag(q, "watch")?.unwrap_or(false),
            bookmarks: flag(q, "allowWatchBookmarks")?.unwrap_or(false),
            send_initial: flag(q, "sendInitialEvents")?,
            timeout: number("timeoutSeconds")?,
            labels: LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
                .map_err(ApiError::bad_request)?,
            fields: FieldSelector::parse_for(
                q.get("fieldSelector").map_or("", String::as_str),
                t.strategy.field_labels(),
            )
            .map_err(ApiError::bad_request)?,
        };
        let errs = if o.watch { o.watch_errors() } else { o.list_errors() };
        if !errs.is_empty() {
            return Err(list_options_invalid(errs));
        }
        Ok(o)
    }

    /// The rules of a watch's options (and the WatchList defaulting).
    fn watch_errors(&mut self) -> Vec<FieldError> {
        let o = self;
        let rv = o.resource_version.clone().unwrap_or_default();
        let m = o.rv_match.clone();
        let mut errs = Vec::new();
        if let Some(send) = o.send_initial {
            if m != "NotOlderThan" {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if send && !o.bookmarks {
                errs.push(FieldError::forbidden(
                    "allowWatchBookmarks",
                    "allowWatchBookmarks must be set to true when sendInitialEvents is provided",
                ));
            }
        }
        if !m.is_empty() {
            if o.send_initial.is_none() {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if m != "NotOlderThan" {
                errs.push(FieldError::not_supported("resourceVersionMatch", &json!(m), &["NotOlderThan"]));
            }
            if o.continue_token.is_some() {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
        // A legacy watch from "now" or "any" streams the initial state
        // (the WatchList defaulting of kube-apiserver 1.32+).
        if o.send_initial.is_none() && m.is_empty() && (rv.is_empty() || rv == "0") {
            o.send_initial = Some(true);
            o.rv_match = "NotOlderThan".into();
        }
        errs
    }

    /// The rules of a list's options.
    fn list_errors(&self) -> Vec<FieldError> {
        let o = self;
        let rv = o.resource_version.clone().unwrap_or_default();
        let m = o.rv_match.clone();
        let mut errs = Vec::new();
        if !m.is_empty() {
            if rv.is_empty() {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if o.continue_token.is_some() {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if m != "Exact" && m != "NotOlderThan" {
                errs.push(FieldError::not_supported(
                    "resourceVersionMatch",
                    &json!(m),
                    &["Exact", "NotOlderThan", ""],
                ));
            }
            if m == "Exact" && rv == "0" {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if o.send_initial.is_some() {
            errs.push(FieldError::forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"));
        }
        errs
    }

    /// The resourceVersion as a number (`None`: unset or "0").
    pub fn rv(&self) -> ApiResult<Option<u64>> {
        parse_rv(self.resource_version.as_deref().unwrap_or_default())
    }
}

/// Parse a resourceVersion: "" and "0" are none; anything not a number is
/// a 400, as kube-apiserver's storage layer answers.
pub fn parse_rv(s: &str) -> ApiResult<Option<u64>> {
    if s.is_empty() || s == "0" {
        return Ok(None);
    }
    s.parse::<u64>().map(Some).map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resource version: resourceVersion: Invalid value: {s:?}: strconv.ParseUint: parsing {s:?}: invalid syntax"
        ))
    })
}

/// A continue token: the snapshot's resourceVersion (-1: the latest) and
/// the key to start after.
fn encode_continue(rv: i64, start: &str) -> String {
    URL_SAFE_NO_PAD.encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(i64, String)> {
    let bad = |why: &str| ApiError::bad_request(format!("invalid continue token: {why}"));
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(token))
        .map_err(|_| bad("illegal base64 data"))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad("not JSON"))?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"));
    }
    let rv = v["rv"].as_i64().ok_or_else(|| bad("no resourceVersion"))?;
    if rv == 0 {
        return Err(bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"));
    }
    Ok((rv, v["start"].as_str().unwrap_or_default().to_owned()))
}

fn sort_key(k: &ObjKey) -> String {
    if k.namespace.is_empty() { k.name.clone() } else { format!("{}/{}", k.namespace, k.name) }
}

/// A page of a list.
#[derive(Debug)]
pub struct Page {
    /// The items, as served.
    pub items: Vec<Value>,
    /// The list's metadata (resourceVersion, continue, remainingItemCount).
    pub meta: Value,
}

/// Which resourceVersion a list is served at.
enum At {
    Current,
    Exact(u64),
}

/// Serve one page of a list (the store must be locked by the caller);
/// `Ok(Err(rv))` when the store has not reached `rv` yet.
pub fn list_page(
    s: &Store,
    t: &ResourceType,
    ns: Option<&str>,
    o: &ListOptions,
) -> ApiResult<Result<Page, u64>> {
    let (at, start) = match list_from(s, o)? {
        Ok(from) => from,
        Err(n) => return Ok(Err(n)),
    };
    let snapshot_rv = match at {
        At::Current => s.rv(),
        At::Exact(n) => n,
    };
    if let At::Exact(n) = at
        && n > s.rv()
    {
        return Ok(Err(n));
    }
    let all = snapshot(s, t, ns, snapshot_rv, start)?;
    Ok(Ok(paginate(t, all, o, snapshot_rv)))
}

/// Where a list starts: at which resourceVersion, after which key
/// (continued); `Err(rv)` when the store has not reached `rv` yet.
fn list_from(s: &Store, o: &ListOptions) -> ApiResult<Result<(At, Option<String>), u64>> {
    Ok(Ok(match &o.continue_token {
        Some(token) => {
            if o.rv()?.is_some() {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let (rv, start) = decode_continue(token)?;
            (if rv > 0 { At::Exact(rv as u64) } else { At::Current }, Some(start))
        }
        None => {
            let rv = o.rv()?;
            let at = match (o.rv_match.as_str(), rv) {
                (_, None) => At::Current,
                ("Exact", Some(n)) => At::Exact(n),
                ("", Some(n)) if o.limit > 0 => At::Exact(n),
                (_, Some(n)) => {
                    if n > s.rv() {
                        return Ok(Err(n));
                    }
                    At::Current
                }
            };
            (at, None)
        }
    }))
}

/// The stored objects of a list at `snapshot_rv`, after `start`.
fn snapshot(
    s: &Store,
    t: &ResourceType,
    ns: Option<&str>,
    snapshot_rv: u64,
    start: Option<String>,
) -> ApiResult<Vec<(ObjKey, Value)>> {
    let after_start = |k: &ObjKey| start.as_ref().is_none_or(|s| sort_key(k).as_str() > s.as_str());
    match s.list_at_from(t, ns, Some(snapshot_rv), after_start) {
        Ok(all) => Ok(all),
        Err(e) if e.code == 410 && start.is_some() => {
            let start = start.unwrap_or_default();
            let mut err = ApiError::new(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
            );
            err.details = None;
            err.list_continue = Some(encode_continue(-1, &start));
            Err(err)
        }
        Err(_) => Err(ApiError::new(
            410,
            "Expired",
            format!("too old resource version: {snapshot_rv} ({})", s.oldest()),
        )),
    }
}

/// One page of the matching objects, as served, with its metadata.
fn paginate(t: &ResourceType, all: Vec<(ObjKey, Value)>, o: &ListOptions, snapshot_rv: u64) -> Page {
    let matches = |o2: &Value| o.labels.matches(o2) && o.fields.matches(o2);
    let mut items = Vec::new();
    let mut next_start = None;
    let mut remaining = 0usize;
    let filtered = !o.labels.is_empty() || !o.fields.is_empty();
    // etcd's order: by key bytes, `namespace/name` (so `a-b/x` before `a/x`).
    let mut all: Vec<(String, Value)> = all.into_iter().map(|(k, v)| (sort_key(&k), v)).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, v) in all {
        let served = strategy::from_storage(t, v);
        if !matches(&served) {
            continue;
        }
        if o.limit > 0 && items.len() == o.limit {
            if next_start.is_none() {
                let last: &Value = items.last().expect("limit > 0");
                let ns = last["metadata"]["namespace"].as_str().unwrap_or_default();
                let name = last["metadata"]["name"].as_str().unwrap_or_default();
                next_start = Some(if ns.is_empty() || !t.namespaced {
                    name.to_owned()
                } else {
                    format!("{ns}/{name}")
                });
            }
            remaining += 1;
            continue;
        }
        items.push(served);
    }
    let mut meta = json!({"resourceVersion": snapshot_rv.to_string()});
    if let Some(start) = next_start {
        meta["continue"] = json!(encode_continue(snapshot_rv as i64, &start));
        if !filtered {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    Page { items, meta }
}

/// Serve a list, waiting (up to 3 s, as kube-apiserver does) for a
/// NotOlderThan resourceVersion the store has not reached.
pub async fn list(
    store: &std::sync::Mutex<Store>,
    t: &ResourceType,
    ns: Option<&str>,
    o: &ListOptions,
) -> ApiResult<Page> {
    let deadline = tokio::time::Instant::now() + TOO_LARGE_WAIT;
    loop {
        let (result, current) = {
            let s = store.lock().expect("lock");
            (list_page(&s, t, ns, o)?, s.rv())
        };
        match result {
            Ok(page) => return Ok(page),
            Err(wanted) if tokio::time::Instant::now() >= deadline => {
                let mut e = ApiError::new(
                    504,
                    "Timeout",
                    format!("Too large resource version: {wanted}, current: {current}"),
                );
                e.details = Some(
                    json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
                );
                return Err(e);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Watch settings that tests may change while watches are open.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// How often bookmarks are sent to watches that allow them.
    pub bookmark_interval: Duration,
    /// Delivery delay per resource (plural): events reach watchers this
    /// long after they happened.
    pub delays: HashMap<String, Duration>,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings { bookmark_interval: Duration::from_secs(60), delays: HashMap::new() }
    }
}

/// How a watch's events are encoded (plain objects, Tables, metadata).
pub type Encode = Arc<dyn Fn(&str, Value, bool) -> Value + Send + Sync>;

/// The watch event for `change` as seen by a watch of `t` with these
/// options, or `None` if it does not concern it.
fn event_for(
    t: &ResourceType,
    ns: Option<&str>,
    o: &ListOptions,
    c: &Change,
) -> Option<(&'static str, Value)> {
    if (c.key.group.as_str(), c.key.plural.as_str()) != (t.storage.0.as_str(), t.storage.1.as_str())
        || ns.is_some_and(|n| n != c.key.namespace)
    {
        return None;
    }
    let served = |v: &Value| strategy::from_storage(t, v.clone());
    let matches = |v: &Value| o.labels.matches(v) && o.fields.matches(v);
    let object = served(&c.object);
    let kind = match c.kind {
        ChangeKind::Added if matches(&object) => "ADDED",
        ChangeKind::Deleted if matches(&object) => "DELETED",
        ChangeKind::Modified => {
            match (c.old.as_ref().map(served).is_some_and(|v| matches(&v)), matches(&object)) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            }
        }
        _ => return None,
    };
    Some((kind, object))
}

fn bookmark(t: &ResourceType, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"type": "BOOKMARK", "object": {"kind": t.kind, "apiVersion": t.api_version(), "metadata": meta}})
}

/// The events a watch starts with (the current state, or the changes
/// since its resourceVersion), and whether a bookmark ends them.
type Initial = (ApiResult<Vec<(&'static str, Value)>>, bool);

fn initial_events(
    s: &Store,
    t: &ResourceType,
    ns: Option<&str>,
    o: &ListOptions,
    rv: Option<u64>,
) -> ApiResult<Initial> {
    if o.send_initial == Some(true) {
        let items = s.list_at(t, ns, None)?;
        let events: Vec<(&'static str, Value)> = items
            .into_iter()
            .map(|(_, v)| strategy::from_storage(t, v))
            .filter(|v| o.labels.matches(v) && o.fields.matches(v))
            .map(|v| ("ADDED", v))
            .collect();
        return Ok((Ok(events), o.bookmarks));
    }
    Ok(match rv {
        Some(rv) => {
            (s.changes_since(rv).map(|cs| cs.iter().filter_map(|c| event_for(t, ns, o, c)).collect()), false)
        }
        None => (Ok(Vec::new()), false),
    })
}

/// Start a watch: the initial events (or the changes since a
/// resourceVersion), then live changes. Events are sent as JSON lines on
/// the returned channel; it closes when the watch ends.
pub fn start(
    store: &std::sync::Mutex<Store>,
    settings: Arc<std::sync::Mutex<WatchSettings>>,
    mut closed: watch::Receiver<u64>,
    t: Arc<ResourceType>,
    ns: Option<String>,
    o: ListOptions,
    encode: Encode,
) -> ApiResult<mpsc::Receiver<Value>> {
    let rv = o.rv()?;
    let (initial, mut rx, start_rv, initial_end) = {
        let s = store.lock().expect("lock");
        let rx = s.subscribe();
        let (initial, initial_end) = initial_events(&s, &t, ns.as_deref(), &o, rv)?;
        (initial, rx, s.rv(), initial_end)
    };
    let (tx, out) = mpsc::channel::<Value>(1024);
    let timeout = Duration::from_secs(o.timeout.filter(|t| *t > 0).unwrap_or(1800));
    tokio::spawn(async move {
        let send = |v: Value| {
            let tx = tx.clone();
            async move { tx.send(v).await.is_ok() }
        };
        let events = match initial {
            Ok(e) => e,
            Err(e) => {
                let _ = send(json!({"type": "ERROR", "object": e.status()})).await;
                return;
            }
        };
        let mut first = true;
        for (kind, obj) in events {
            if !send(json!({"type": kind, "object": encode(kind, obj, first)})).await {
                return;
            }
            first = false;
        }
        let mut delivered = start_rv;
        if initial_end && !send(bookmark(&t, delivered, true)).await {
            return;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let interval = settings.lock().expect("lock").bookmark_interval;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let mut pending: VecDeque<Arc<Change>> = VecDeque::new();
        loop {
            let delay = settings.lock().expect("lock").delays.get(&t.plural).copied().unwrap_or_default();
            let due = pending.front().map(|c| tokio::time::Instant::from_std(c.at + delay));
            tokio::select! {
                change = rx.recv() => match change {
                    Ok(c) if c.rv > start_rv => pending.push_back(c),
                    Ok(_) => {}
                    // Too slow a watcher is closed, as kube-apiserver does.
                    Err(_) => return,
                },
                _ = async { tokio::time::sleep_until(due.expect("guarded")).await }, if due.is_some() => {
                    let c = pending.pop_front().expect("due");
                    delivered = c.rv;
                    if let Some((kind, obj)) = event_for(&t, ns.as_deref(), &o, &c) {
                        if !send(json!({"type": kind, "object": encode(kind, obj, first)})).await {
                            return;
                        }
                        first = false;
                    }
                }
                _ = tick.tick(), if o.bookmarks => {
                    // Never ahead of an event still to be delivered.
                    let at = pending.front().map_or(delivered, |c| c.rv - 1).max(delivered);
                    if !send(bookmark(&t, at, false)).await {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = closed.changed() => return,
            }
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn list_options_are_validated_like_kube_apiserver() {
        let s = Store::default();
        let t = s.type_of("", "v1", "configmaps").unwrap();
        let err =
            ListOptions::parse(&t, &q(&[("watch", "true"), ("sendInitialEvents", "true")])).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err.message.starts_with("ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan, allowWatchBookmarks: Forbidden"), "{}", err.message);
        let ok = ListOptions::parse(
            &t,
            &q(&[
                ("watch", "true"),
                ("sendInitialEvents", "true"),
                ("resourceVersionMatch", "NotOlderThan"),
                ("allowWatchBookmarks", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(ok.send_initial, Some(true));
        let err = ListOptions::parse(&t, &q(&[("resourceVersionMatch", "Exact")])).unwrap_err();
        assert!(
            err.message.contains("resourceVersionMatch is forbidden unless resourceVersion is provided"),
            "{}",
            err.message
        );
        let o = ListOptions::parse(&t, &q(&[("resourceVersion", "abc")])).unwrap();
        let err = o.rv().unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.contains("invalid resource version"));
        assert_eq!(decode_continue(&encode_continue(7, "ns/a")).unwrap(), (7, "ns/a".into()));
        assert_eq!(decode_continue("garbage!").unwrap_err().code, 400);
    }
}
