//! Which keys are still in use: ENCSTR tokens carry the id of the key that
//! made them in their first bytes, readable without decrypting, so tokens
//! anywhere in ConfigMap and Secret values (config files, wrapped, escaped
//! or cut) are counted.

use std::collections::BTreeMap;

use encstr_core::{KeyId, token};

/// Places that use a key are reported up to this many.
pub const MAX_PLACES: usize = 5;

/// Token counts and (some) places per key id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens per key id.
    pub counts: BTreeMap<KeyId, u32>,
    /// Up to [`MAX_PLACES`] places (`namespace/kind/name:key`) per key id.
    pub places: BTreeMap<KeyId, Vec<String>>,
}

/// Key ids of every token in a value (bytes: binary data counts too).
pub fn token_key_ids(value: &[u8]) -> Vec<KeyId> {
    let prefix = token::PREFIX.as_bytes();
    memchr::memmem::find_iter(value, prefix)
        .filter_map(|i| {
            let head = value.get(i + prefix.len()..i + prefix.len() + 8)?;
            let head = std::str::from_utf8(head).ok()?;
            token::peek_key_id(&format!("{}{head}", token::PREFIX))
        })
        .collect()
}

impl Usage {
    /// Count the tokens of one value of an object.
    pub fn add(&mut self, namespace: &str, kind: &str, name: &str, key: &str, value: &[u8]) {
        for id in token_key_ids(value) {
            *self.counts.entry(id).or_default() += 1;
            let places = self.places.entry(id).or_default();
            let place = format!("{namespace}/{kind}/{name}:{key}");
            if places.len() < MAX_PLACES && !places.contains(&place) {
                places.push(place);
            }
        }
    }

    /// Tokens counted for a key.
    pub fn count(&self, id: KeyId) -> u32 {
        self.counts.get(&id).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use encstr_core::{Key, Keyring, Seed};

    use super::*;

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
    }
}
