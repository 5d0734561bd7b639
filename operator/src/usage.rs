//! Which keys are still in use: ENCSTR tokens in ConfigMaps carry the id of
//! the key that made them, readable without decrypting.

use std::collections::BTreeMap;

use encstr_core::{KeyId, token};

/// Places that use a key are reported up to this many.
pub const MAX_PLACES: usize = 5;

/// Token counts and (some) places per key id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens per key id.
    pub counts: BTreeMap<KeyId, u32>,
    /// Up to [`MAX_PLACES`] places (`namespace/configmap:key`) per key id.
    pub places: BTreeMap<KeyId, Vec<String>>,
}

/// Key ids of every token in a text (config files hold them anywhere).
pub fn token_key_ids(text: &str) -> Vec<KeyId> {
    let mut ids = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(token::PREFIX) {
        let after = &rest[i + token::PREFIX.len()..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
            .unwrap_or(after.len());
        let candidate = &rest[i..i + token::PREFIX.len() + len];
        if let Ok(id) = token::key_id(candidate) {
            ids.push(id);
        }
        rest = &after[len..];
    }
    ids
}

impl Usage {
    /// Count the tokens of one ConfigMap.
    pub fn add_configmap(&mut self, namespace: &str, name: &str, data: &BTreeMap<String, String>) {
        for (key, value) in data {
            for id in token_key_ids(value) {
                *self.counts.entry(id).or_default() += 1;
                let places = self.places.entry(id).or_default();
                let place = format!("{namespace}/{name}:{key}");
                if places.len() < MAX_PLACES && !places.contains(&place) {
                    places.push(place);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use encstr_core::{Key, Keyring, Seed};

    use super::*;

    #[test]
    fn counts_tokens_inside_config_files() {
        let a = Keyring::new(vec![Key::from_seed(Seed::from_bytes([1; 32]))]).unwrap();
        let b = Keyring::new(vec![Key::from_seed(Seed::from_bytes([2; 32]))]).unwrap();
        let ta = token::encrypt(&a, "x", b"1").unwrap();
        let tb = token::encrypt(&b, "y", b"2").unwrap();
        let file = format!("db.password = {ta}\nother: \"{tb}\"\nnot: ENCSTR:garbage!\nagain={ta}");
        let mut u = Usage::default();
        u.add_configmap("ns", "app", &BTreeMap::from([("app.properties".to_owned(), file)]));
        u.add_configmap("ns2", "cfg", &BTreeMap::from([("raw".to_owned(), ta.clone())]));
        let (ia, ib) = (a.primary().id(), b.primary().id());
        assert_eq!(u.counts, BTreeMap::from([(ia, 3), (ib, 1)]));
        assert_eq!(u.places[&ia], vec!["ns/app:app.properties", "ns2/cfg:raw"]);
    }
}
