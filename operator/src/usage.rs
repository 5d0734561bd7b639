//! Which keys are still in use: ENCSTR tokens carry the id of the key that
//! made them in their first bytes, readable without decrypting, so tokens
//! anywhere in ConfigMap and Secret values (config files, wrapped, escaped
//! or cut) are counted.

use std::collections::BTreeMap;

use encstr_core::{KeyId, token};

/// Places that use a key are reported up to this many.
pub const MAX_PLACES: usize = 5;

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
        let place = format!("{namespace}/{kind}/{name}:{key}");
        for id in token_key_ids(value) {
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
}
