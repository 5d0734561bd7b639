//! Which keys are still in use: ENCSTR tokens carry the id of the key that
//! made them in their first bytes, readable without decrypting, so tokens
//! anywhere in ConfigMap and Secret values (config files, wrapped, escaped
//! or cut) are counted.
//!
//! A scan reads one namespace's ConfigMaps and Secrets a small page at a
//! time and keeps only key ids ([`count_page`]): memory does not grow with
//! object size. Its result is shared by every keyring that reaches the
//! namespace and reused while fresh ([`reuse_window`]).

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash};
use std::time::{Duration, Instant};

use base64::Engine;
use encstr_core::{KeyId, token};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Places that use a key are reported up to this many.
pub const MAX_PLACES: usize = 5;
/// Distinct key ids a count keeps (a keyring has a handful; more is a
/// tenant forging ids): the rest count as unreadable.
pub const MAX_IDS: usize = 1024;

/// Token counts and (some) places per key id, and the `ENCSTR:` occurrences
/// whose key id cannot be read (they could be any key's: while there is
/// one, nothing is pruned).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens per key id.
    pub counts: BTreeMap<KeyId, u32>,
    /// Up to [`MAX_PLACES`] places (`namespace/kind/name:key`) per key id.
    pub places: BTreeMap<KeyId, Vec<String>>,
    /// `ENCSTR:` occurrences whose key id cannot be read.
    pub unreadable: u32,
    /// Up to [`MAX_PLACES`] places of those.
    pub unreadable_places: Vec<String>,
}

/// The first characters of a token after `ENCSTR:`, undoing the escapes
/// that config formats put on `/` and `+` (JSON `\/`, `\u002F`, `\u002B`;
/// URL `%2F`, `%2B`): about one token in seven has one of them in its
/// first eight characters.
fn head(after: &[u8]) -> String {
    const ESCAPES: [(&[u8], char); 9] = [
        (b"\\/", '/'),
        (b"\\u002F", '/'),
        (b"\\u002f", '/'),
        (b"\\u002B", '+'),
        (b"\\u002b", '+'),
        (b"%2F", '/'),
        (b"%2f", '/'),
        (b"%2B", '+'),
        (b"%2b", '+'),
    ];
    let mut out = String::new();
    let mut rest = after;
    while out.len() < 8 {
        if let Some((esc, c)) = ESCAPES.iter().find(|(e, _)| rest.starts_with(e)) {
            out.push(*c);
            rest = &rest[esc.len()..];
        } else if let Some(&b) =
            rest.first().filter(|b| b.is_ascii_alphanumeric() || **b == b'+' || **b == b'/')
        {
            out.push(b as char);
            rest = &rest[1..];
        } else {
            break;
        }
    }
    out
}

/// The key id of every `ENCSTR:` occurrence in a value (bytes: binary data
/// counts too); `None` where it cannot be read.
pub fn token_key_ids(value: &[u8]) -> Vec<Option<KeyId>> {
    let prefix = token::PREFIX.as_bytes();
    memchr::memmem::find_iter(value, prefix)
        .map(|i| token::peek_key_id(&format!("{}{}", token::PREFIX, head(&value[i + prefix.len()..]))))
        .collect()
}

impl Usage {
    /// Count the tokens of one value of an object.
    pub fn add(&mut self, namespace: &str, kind: &str, name: &str, key: &str, value: &[u8]) {
        self.add_ids(namespace, kind, name, key, token_key_ids(value));
    }

    /// Count tokens whose key ids were read from one value of an object.
    /// Beyond [`MAX_IDS`] distinct ids, a new id counts as unreadable (so
    /// nothing is pruned): a tenant forging many ids cannot grow the count
    /// without bound.
    pub fn add_ids(&mut self, namespace: &str, kind: &str, name: &str, key: &str, ids: Vec<Option<KeyId>>) {
        if ids.is_empty() {
            return;
        }
        let place = format!("{namespace}/{kind}/{name}:{key}");
        for id in ids {
            let id = id.filter(|id| self.counts.contains_key(id) || self.counts.len() < MAX_IDS);
            let (places, count) = match id {
                Some(id) => (self.places.entry(id).or_default(), self.counts.entry(id).or_default()),
                None => (&mut self.unreadable_places, &mut self.unreadable),
            };
            *count += 1;
            if places.len() < MAX_PLACES && !places.contains(&place) {
                places.push(place.clone());
            }
        }
    }

    /// Tokens counted for a key.
    pub fn count(&self, id: KeyId) -> u32 {
        self.counts.get(&id).copied().unwrap_or(0)
    }

    /// Add another count (of other namespaces): counts add up, places are
    /// kept up to [`MAX_PLACES`].
    pub fn merge(&mut self, other: &Usage) {
        for (id, n) in &other.counts {
            if self.counts.contains_key(id) || self.counts.len() < MAX_IDS {
                *self.counts.entry(*id).or_default() += n;
            } else {
                self.unreadable += n;
            }
        }
        for (id, places) in other.places.iter().filter(|(id, _)| self.counts.contains_key(id)) {
            let mine = self.places.entry(*id).or_default();
            for p in places {
                if mine.len() < MAX_PLACES && !mine.contains(p) {
                    mine.push(p.clone());
                }
            }
        }
        self.unreadable += other.unreadable;
        for p in &other.unreadable_places {
            if self.unreadable_places.len() < MAX_PLACES && !self.unreadable_places.contains(p) {
                self.unreadable_places.push(p.clone());
            }
        }
    }
}

/// Objects per page of a usage scan. A page is read as it arrives and one
/// value is held at a time (ConfigMaps and Secrets may hold up to 1 MiB
/// each), so memory does not depend on it; small pages keep each
/// response short for the API server too (see BENCHMARKS.md).
pub const SCAN_PAGE: u32 = 20;

/// A namespace's scan result is reused for at most this many scan
/// intervals while it does not change.
pub const MAX_BACKOFF_FACTOR: u32 = 16;

/// How old a namespace's scan result may be and still be used instead of
/// scanning again: the scan interval while results change or a keyring is
/// about to prune (a key quiet long enough to go if nothing uses it);
/// doubled for each rescan that found nothing changed, up to
/// [`MAX_BACKOFF_FACTOR`] intervals. A prune is always counted again right
/// before it is written, whatever this says.
pub fn reuse_window(interval: Duration, unchanged: u32, about_to_prune: bool) -> Duration {
    if about_to_prune {
        return interval;
    }
    let factor = 1u32 << unchanged.min(MAX_BACKOFF_FACTOR.trailing_zeros());
    interval.saturating_mul(factor.min(MAX_BACKOFF_FACTOR))
}

/// What the last complete scan of one namespace found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceScan {
    /// Tokens counted in the namespace.
    pub usage: Usage,
    /// A hash of every object's kind, name and resourceVersion: equal
    /// fingerprints, equal contents.
    pub fingerprint: u64,
    /// Consecutive rescans that found the same fingerprint.
    pub unchanged: u32,
    /// When the scan started.
    pub at: Instant,
    /// When the first scan that found this fingerprint started.
    pub since: Instant,
}

impl NamespaceScan {
    /// A scan's result, following the previous one (`unchanged` counts on
    /// while the fingerprint stays the same).
    pub fn after(previous: Option<&NamespaceScan>, usage: Usage, fingerprint: u64, at: Instant) -> Self {
        let (unchanged, since) = match previous {
            Some(p) if p.fingerprint == fingerprint => (p.unchanged.saturating_add(1), p.since),
            _ => (0, at),
        };
        NamespaceScan { usage, fingerprint, unchanged, at, since }
    }

    /// Whether two scans at least `interval` apart found the same objects:
    /// only then may a count of the namespace let a key be pruned. A
    /// namespace just made (or made again) and still being filled with its
    /// config is not taken for one without tokens.
    pub fn confirmed(&self, interval: Duration) -> bool {
        self.at.saturating_duration_since(self.since) >= interval
    }

    /// Whether it may be used at `now` instead of scanning again.
    pub fn usable(&self, now: Instant, interval: Duration, about_to_prune: bool) -> bool {
        now.saturating_duration_since(self.at) < reuse_window(interval, self.unchanged, about_to_prune)
    }
}

/// The kind of object a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `data` (text) and `binaryData` (base64).
    ConfigMap,
    /// `data` (base64).
    Secret,
}

impl ListKind {
    fn as_str(self) -> &'static str {
        match self {
            ListKind::ConfigMap => "ConfigMap",
            ListKind::Secret => "Secret",
        }
    }
}

/// Count the tokens in one page of a ConfigMap or Secret list (the JSON
/// body as the API server sends it, read as it comes), feeding each
/// object's kind, name and resourceVersion to `fingerprint`; the page's
/// `continue` token. Each value is read and dropped in turn: only key ids
/// are kept, so memory holds one value at a time, whatever the page.
pub fn count_page(
    namespace: &str,
    kind: ListKind,
    body: impl std::io::Read,
    usage: &mut Usage,
    fingerprint: &mut DefaultHasher,
) -> Result<Option<String>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_reader(body);
    let cont = PageSeed { namespace, kind, usage, fingerprint }.deserialize(&mut de)?;
    de.end()?;
    Ok(cont)
}

/// A fresh fingerprint hasher (the same keys in every process).
pub fn fingerprint_hasher() -> DefaultHasher {
    DefaultHasher::new()
}

struct PageSeed<'a> {
    namespace: &'a str,
    kind: ListKind,
    usage: &'a mut Usage,
    fingerprint: &'a mut DefaultHasher,
}

#[derive(serde::Deserialize)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    continue_: Option<String>,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut cont = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "metadata" => cont = map.next_value::<ListMeta>()?.continue_.filter(|c| !c.is_empty()),
                "items" => map.next_value_seed(ItemsSeed {
                    namespace: self.namespace,
                    kind: self.kind,
                    usage: &mut *self.usage,
                    fingerprint: &mut *self.fingerprint,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(cont)
    }
}

struct ItemsSeed<'a> {
    namespace: &'a str,
    kind: ListKind,
    usage: &'a mut Usage,
    fingerprint: &'a mut DefaultHasher,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of objects")
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(object) = seq.next_element_seed(ObjectSeed { kind: self.kind })? {
            self.kind.as_str().hash(self.fingerprint);
            object.name.hash(self.fingerprint);
            object.resource_version.hash(self.fingerprint);
            for (key, ids) in object.values {
                self.usage.add_ids(self.namespace, self.kind.as_str(), &object.name, &key, ids);
            }
        }
        Ok(())
    }
}

/// What is kept of one object: its name, resourceVersion and the key ids
/// of the tokens in each value that has any.
#[derive(Default)]
struct Object {
    name: String,
    resource_version: Option<String>,
    values: Vec<(String, Vec<Option<KeyId>>)>,
}

#[derive(serde::Deserialize)]
struct ObjectMeta {
    #[serde(default)]
    name: String,
    #[serde(rename = "resourceVersion", default)]
    resource_version: Option<String>,
}

struct ObjectSeed {
    kind: ListKind,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Object;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Object, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed {
    type Value = Object;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
        let mut object = Object::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let encoding = match (&*key, self.kind) {
                ("metadata", _) => {
                    let meta = map.next_value::<ObjectMeta>()?;
                    (object.name, object.resource_version) = (meta.name, meta.resource_version);
                    continue;
                }
                ("data", ListKind::ConfigMap) => Encoding::Text,
                ("data", ListKind::Secret) | ("binaryData", ListKind::ConfigMap) => Encoding::Base64,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            map.next_value_seed(ValuesSeed { encoding, out: &mut object.values })?;
        }
        Ok(object)
    }
}

#[derive(Clone, Copy)]
enum Encoding {
    Text,
    Base64,
}

struct ValuesSeed<'a> {
    encoding: Encoding,
    out: &'a mut Vec<(String, Vec<Option<KeyId>>)>,
}

impl<'de> DeserializeSeed<'de> for ValuesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ValuesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of values")
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let ids = map.next_value_seed(IdsSeed(self.encoding))?;
            if !ids.is_empty() {
                self.out.push((key, ids));
            }
        }
        Ok(())
    }
}

/// The key ids in one value, read from the parser's buffer (no copy of
/// the value is kept).
struct IdsSeed(Encoding);

impl<'de> DeserializeSeed<'de> for IdsSeed {
    type Value = Vec<Option<KeyId>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IdsSeed {
    type Value = Vec<Option<KeyId>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        match self.0 {
            Encoding::Text => Ok(token_key_ids(value.as_bytes())),
            Encoding::Base64 => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(value.as_bytes())
                    .map_err(|_| E::custom("a value is not base64"))?;
                Ok(token_key_ids(&bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::Hasher;

    use encstr_core::{Key, Keyring, Seed};

    use super::*;

    #[test]
    fn forged_key_ids_are_bounded_and_block_pruning() {
        let mut u = Usage::default();
        let ids: Vec<Option<KeyId>> = (0..1100u32).map(|i| Some(KeyId(i.to_be_bytes()))).collect();
        u.add_ids("team-a", "ConfigMap", "flood", "x", ids.clone());
        assert_eq!(u.counts.len(), MAX_IDS);
        assert_eq!(u.unreadable, 1100 - MAX_IDS as u32, "the rest block pruning");
        assert_eq!(u.count(KeyId(5u32.to_be_bytes())), 1, "kept ids still count");
        let mut all = Usage::default();
        all.merge(&u);
        all.merge(&u);
        assert_eq!(all.counts.len(), MAX_IDS);
        assert!(all.unreadable >= u.unreadable * 2);
    }

    #[test]
    fn counts_tokens_anywhere_in_values() {
        let a = Keyring::new(vec![Key::from_seed(Seed::from_bytes([1; 32]))]).unwrap();
        let b = Keyring::new(vec![Key::from_seed(Seed::from_bytes([2; 32]))]).unwrap();
        let ta = token::encrypt(&a, "x", b"1").unwrap();
        let tb = token::encrypt(&b, "y", b"2").unwrap();
        let file = format!("db.password = {ta}\nother: \"{tb}\"\nnot: ENCSTR:garbage!\nagain={ta}");
        let mut u = Usage::default();
        u.add("ns", "ConfigMap", "app", "app.properties", file.as_bytes());
        // Wrapped across lines and cut: the first bytes still name the key.
        let wrapped = format!("{}\\\n    {}", &ta[..20], &ta[20..30]);
        u.add("ns2", "Secret", "cfg", "raw", wrapped.as_bytes());
        // Binary data around it.
        let mut bin = vec![0u8, 255, 7];
        bin.extend_from_slice(tb.as_bytes());
        u.add("ns3", "ConfigMap", "bin", "blob", &bin);
        let (ia, ib) = (a.primary().id(), b.primary().id());
        assert_eq!(u.counts, BTreeMap::from([(ia, 3), (ib, 2)]));
        assert_eq!(u.places[&ia], vec!["ns/ConfigMap/app:app.properties", "ns2/Secret/cfg:raw"]);
        assert_eq!(u.count(ib), 2);
        assert_eq!(
            (u.unreadable, u.unreadable_places.clone()),
            (1, vec!["ns/ConfigMap/app:app.properties".into()])
        );
    }

    #[test]
    fn escaped_first_characters_still_name_the_key() {
        // Keys whose tokens have a '/' or a '+' in their first eight characters.
        let tokens: Vec<(KeyId, String)> = (0..=255u8)
            .map(|b| Keyring::new(vec![Key::from_seed(Seed::from_bytes([b; 32]))]).unwrap())
            .map(|r| (r.primary().id(), token::encrypt(&r, "x", b"1").unwrap()))
            .filter(|(_, t)| t[7..15].contains(['/', '+']))
            .take(4)
            .collect();
        assert!(!tokens.is_empty());
        for (id, t) in tokens {
            let json = t.replace('/', "\\/");
            let unicode = t.replace('/', "\\u002F").replace('+', "\\u002B");
            let url = t.replace('/', "%2F").replace('+', "%2B");
            for escaped in [json, unicode, url] {
                assert_eq!(token_key_ids(escaped.as_bytes()), vec![Some(id)], "{escaped}");
            }
        }
    }

    #[test]
    fn unchanged_namespaces_are_scanned_less_often_unless_a_prune_is_near() {
        let m = Duration::from_secs(60);
        let windows: Vec<u64> = (0..7).map(|n| reuse_window(m, n, false).as_secs()).collect();
        assert_eq!(windows, vec![60, 120, 240, 480, 960, 960, 960]);
        assert_eq!(reuse_window(m, u32::MAX, false), m * MAX_BACKOFF_FACTOR);
        assert_eq!(reuse_window(m, 5, true), m, "a key about to be pruned needs a recent count");
    }

    #[test]
    fn a_scan_counts_its_unchanged_predecessors() {
        let t0 = Instant::now();
        let m = Duration::from_secs(60);
        let first = NamespaceScan::after(None, Usage::default(), 7, t0);
        assert_eq!(first.unchanged, 0);
        let second = NamespaceScan::after(Some(&first), Usage::default(), 7, t0 + m);
        let third = NamespaceScan::after(Some(&second), Usage::default(), 7, t0 + 2 * m);
        assert_eq!(third.unchanged, 2);
        assert!(third.usable(t0 + 2 * m + Duration::from_secs(200), m, false), "backed off: 4 intervals");
        assert!(!third.usable(t0 + 2 * m + Duration::from_secs(200), m, true), "unless a prune is near");
        assert!(!third.usable(t0 + 2 * m + Duration::from_secs(240), m, false));
        let changed = NamespaceScan::after(Some(&third), Usage::default(), 8, t0 + 3 * m);
        assert_eq!(changed.unchanged, 0, "a change starts again at one interval");
        assert!(!changed.usable(t0 + 4 * m, m, false));
        // Only the same objects seen an interval apart support a prune.
        assert!(!first.confirmed(m), "one scan");
        let soon = NamespaceScan::after(Some(&first), Usage::default(), 7, t0 + m / 2);
        assert!(!soon.confirmed(m), "two scans, too close");
        assert!(second.confirmed(m) && third.confirmed(m));
        assert!(!changed.confirmed(m), "changed since");
    }

    #[test]
    fn a_page_is_counted_keeping_key_ids_only() {
        let a = Keyring::new(vec![Key::from_seed(Seed::from_bytes([1; 32]))]).unwrap();
        let ta = token::encrypt(&a, "x", b"1").unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let secrets = serde_json::json!({
            "kind": "SecretList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "99", "continue": "next"},
            "items": [
                {"metadata": {"name": "s1", "resourceVersion": "5", "managedFields": [{"x": 1}]},
                 "data": {"cfg": b64(&format!("a={ta}\nb=ENCSTR:!")), "other": b64("plain")},
                 "type": "Opaque"},
                {"data": {"k": b64(&ta)}, "metadata": {"name": "s2", "resourceVersion": "6"}},
                {"metadata": {"name": "empty", "resourceVersion": "7"}}
            ]
        });
        let (mut u, mut fp) = (Usage::default(), fingerprint_hasher());
        let body = serde_json::to_vec(&secrets).unwrap();
        assert_eq!(
            count_page("ns", ListKind::Secret, &body[..], &mut u, &mut fp).unwrap().as_deref(),
            Some("next")
        );
        let ia = a.primary().id();
        assert_eq!(u.counts, BTreeMap::from([(ia, 2)]));
        assert_eq!(u.places[&ia], vec!["ns/Secret/s1:cfg", "ns/Secret/s2:k"]);
        assert_eq!(u.unreadable_places, vec!["ns/Secret/s1:cfg"]);
        let cms = serde_json::json!({
            "metadata": {"continue": ""},
            "items": [{"metadata": {"name": "c", "resourceVersion": "8"},
                       "data": {"text": format!("x: {ta}")}, "binaryData": {"bin": b64(&ta)}}]
        });
        let body = serde_json::to_vec(&cms).unwrap();
        assert_eq!(count_page("ns", ListKind::ConfigMap, &body[..], &mut u, &mut fp).unwrap(), None);
        assert_eq!(u.count(ia), 4);
        let empty = serde_json::json!({"metadata": {}, "items": null});
        let body = serde_json::to_vec(&empty).unwrap();
        assert_eq!(count_page("ns", ListKind::ConfigMap, &body[..], &mut u, &mut fp).unwrap(), None);
        // The fingerprint follows names and resourceVersions.
        let print = |rv: &str| {
            let mut h = fingerprint_hasher();
            let page = serde_json::json!({"items": [{"metadata": {"name": "c", "resourceVersion": rv}}]});
            count_page(
                "ns",
                ListKind::ConfigMap,
                &serde_json::to_vec(&page).unwrap()[..],
                &mut Usage::default(),
                &mut h,
            )
            .unwrap();
            h.finish()
        };
        assert_eq!(print("1"), print("1"));
        assert_ne!(print("1"), print("2"));
        // A Secret value that is not base64 fails the page (nothing is pruned).
        let bad = serde_json::json!({"items": [{"metadata": {"name": "s"}, "data": {"k": "!!"}}]});
        let body = serde_json::to_vec(&bad).unwrap();
        assert!(count_page("ns", ListKind::Secret, &body[..], &mut u, &mut fp).is_err());
    }

    #[test]
    fn counts_of_namespaces_add_up() {
        let a = Keyring::new(vec![Key::from_seed(Seed::from_bytes([1; 32]))]).unwrap();
        let ta = token::encrypt(&a, "x", b"1").unwrap();
        let (mut one, mut two) = (Usage::default(), Usage::default());
        one.add("a", "ConfigMap", "c", "k", ta.as_bytes());
        two.add("b", "ConfigMap", "c", "k", format!("{ta} ENCSTR:?").as_bytes());
        one.merge(&two);
        assert_eq!(one.count(a.primary().id()), 2);
        assert_eq!(one.places[&a.primary().id()], vec!["a/ConfigMap/c:k", "b/ConfigMap/c:k"]);
        assert_eq!((one.unreadable, one.unreadable_places.clone()), (1, vec!["b/ConfigMap/c:k".into()]));
    }
}
