//! Keyrings: ordered lists of keys whose last key (the primary) encrypts and
//! all of which decrypt, and their text form (one base64 seed per line).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{Key, KeyId, Seed};

/// An ordered list of keys. The last one is the primary; every key decrypts.
///
/// Lookups by key id go through a hash index, so decrypting costs the same
/// with one key or thousands. Each key lives in its own heap allocation that
/// never moves: growing, reordering or shrinking the keyring moves only
/// pointers, so it leaves no stray copy of key material behind in freed
/// memory, and every key is wiped when it is dropped.
#[derive(Clone, Debug)]
pub struct Keyring {
    // Boxed on purpose: a `Vec<Key>` would copy the keys' bytes into each
    // new buffer when it grows or shifts, leaving the old ones in freed memory.
    #[allow(clippy::vec_box)]
    keys: Vec<Box<Key>>,
    /// Key id → positions in `keys` (more than one only on an id collision).
    index: HashMap<KeyId, Vec<usize>, BuildHasherDefault<IdHasher>>,
}

/// Key ids are HKDF output, uniformly distributed: they are their own hash.
/// (The map's content comes from the trusted keyring; a token can only
/// choose which bucket a lookup probes.)
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // Spread the 32 id bits over the whole word (Fibonacci hashing).
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
}

impl Keyring {
    /// A keyring of the given keys, oldest first. Fails if it is empty or a
    /// key appears twice.
    ///
    /// Each key is re-derived into its own allocation and `keys` is dropped
    /// (and wiped) in place: moving keys out of a `Vec` would leave their
    /// bytes in the freed buffer.
    pub fn new(keys: Vec<Key>) -> Result<Self> {
        let lines = (1..=keys.len()).collect();
        Keyring::with_lines(keys.iter().map(|k| Box::new(k.clone())).collect(), lines)
    }

    /// A keyring of one key.
    pub fn single(key: Key) -> Self {
        Keyring::with_lines(vec![Box::new(key)], vec![1]).expect("one key is a valid keyring")
    }

    /// Build the keyring, reporting a duplicate by its line number.
    #[allow(clippy::vec_box)]
    fn with_lines(keys: Vec<Box<Key>>, lines: Vec<usize>) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::EmptyKeyring);
        }
        let mut ring = Keyring { keys, index: HashMap::default() };
        ring.reindex();
        // Equal seeds have equal ids, so only keys sharing an id are compared.
        for positions in ring.index.values() {
            for (n, &i) in positions.iter().enumerate().skip(1) {
                if positions[..n].iter().any(|&j| ring.keys[j].seed() == ring.keys[i].seed()) {
                    return Err(Error::DuplicateKey { line: lines[i], key_id: ring.keys[i].id() });
                }
            }
        }
        Ok(ring)
    }

    /// A keyring with one new random key.
    pub fn generate() -> Result<Self> {
        Ok(Keyring::single(Key::generate()?))
    }

    /// Parse the keyring text format: one standard-base64 32-byte seed per
    /// line, white space trimmed, empty lines and `#` comments ignored.
    ///
    /// Errors name the 1-based line and never echo its content.
    pub fn parse(text: &str) -> Result<Self> {
        let mut keys: Vec<Box<Key>> = Vec::new();
        let mut lines: Vec<usize> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let seed = Seed::from_base64(line).ok_or(Error::InvalidKeyLine { line: i + 1 })?;
            keys.push(Box::new(Key::from_seed(seed)));
            lines.push(i + 1);
        }
        Keyring::with_lines(keys, lines)
    }

    /// The text form: one base64 seed per line, oldest first, primary last,
    /// with a trailing newline. This is key material.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(self.keys.len() * 45));
        for key in &self.keys {
            out.push_str(&key.seed().to_base64());
            out.push('\n');
        }
        out
    }

    /// The keys, oldest first.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Key> {
        self.keys.iter().map(|k| &**k)
    }

    /// The key ids, oldest first (the primary last).
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.id()).collect()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a keyring holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The primary key: the last one, which encrypts.
    pub fn primary(&self) -> &Key {
        self.keys.last().expect("a keyring is never empty")
    }

    /// The keys whose id is `id` (normally one, none if unknown).
    pub fn candidates(&self, id: KeyId) -> impl Iterator<Item = &Key> {
        self.index.get(&id).map(Vec::as_slice).unwrap_or_default().iter().map(|&i| &*self.keys[i])
    }

    /// Whether `key` is the primary (the very key, not only its id: two
    /// keys may share an id).
    pub fn is_primary(&self, key: &Key) -> bool {
        std::ptr::eq(key, self.primary())
    }

    /// Whether a key with this id is in the keyring.
    pub fn contains(&self, id: KeyId) -> bool {
        self.index.contains_key(&id)
    }

    /// Append a key as the new primary (rotation without staging).
    pub fn append(&mut self, key: Key) -> Result<()> {
        self.check_new(&key)?;
        self.keys.push(Box::new(key));
        self.reindex();
        Ok(())
    }

    /// Insert a key just before the primary: it is distributed and decrypts,
    /// but the primary keeps encrypting until [`Keyring::promote`].
    pub fn stage(&mut self, key: Key) -> Result<()> {
        self.check_new(&key)?;
        let at = self.keys.len() - 1;
        self.keys.insert(at, Box::new(key));
        self.reindex();
        Ok(())
    }

    /// Move the key `id` to the end, making it the primary.
    pub fn promote(&mut self, id: KeyId) -> Result<()> {
        let pos = self.position(id)?;
        let key = self.keys.remove(pos);
        self.keys.push(key);
        self.reindex();
        Ok(())
    }

    /// Remove (and wipe) the key `id`. The primary cannot be removed.
    pub fn remove(&mut self, id: KeyId) -> Result<()> {
        let pos = self.position(id)?;
        if pos == self.keys.len() - 1 {
            return Err(Error::PrimaryKey { key_id: id });
        }
        drop(self.keys.remove(pos));
        self.reindex();
        Ok(())
    }

    /// Keep only the `keep` newest keys (at least the primary); returns the
    /// ids removed, oldest first.
    pub fn retain_newest(&mut self, keep: usize) -> Vec<KeyId> {
        let keep = keep.max(1);
        if self.keys.len() <= keep {
            return Vec::new();
        }
        let removed: Vec<KeyId> = self.keys.drain(..self.keys.len() - keep).map(|k| k.id()).collect();
        self.reindex();
        removed
    }

    fn position(&self, id: KeyId) -> Result<usize> {
        match self.index.get(&id).map(Vec::as_slice) {
            None | Some([]) => Err(Error::KeyNotFound { key_id: id }),
            Some([pos]) => Ok(*pos),
            Some(_) => Err(Error::AmbiguousKeyId { key_id: id }),
        }
    }

    fn check_new(&self, key: &Key) -> Result<()> {
        if self.candidates(key.id()).any(|k| k.seed() == key.seed()) {
            return Err(Error::DuplicateKey { line: self.keys.len() + 1, key_id: key.id() });
        }
        Ok(())
    }

    fn reindex(&mut self) {
        self.index.clear();
        for (i, key) in self.keys.iter().enumerate() {
            self.index.entry(key.id()).or_default().push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key::from_seed(Seed::from_bytes([b; 32]))
    }

    #[test]
    fn parse_ignores_comments_blank_lines_and_white_space() {
        let a = key(1).seed().to_base64();
        let b = key(2).seed().to_base64();
        let text = format!("# keys\n\n  {}  \r\n# old\n\t{}\n", a.as_str(), b.as_str());
        let ring = Keyring::parse(&text).unwrap();
        assert_eq!(ring.ids(), vec![key(1).id(), key(2).id()]);
        assert_eq!(ring.primary().id(), key(2).id());
        assert_eq!(ring.to_text().as_str(), format!("{}\n{}\n", a.as_str(), b.as_str()));
    }

    #[test]
    fn parse_errors_name_the_line_and_never_echo_it() {
        let a = key(1).seed().to_base64();
        let bad = "c2VjcmV0LXRoYXQtaXMtbm90LWEta2V5";
        let err = Keyring::parse(&format!("{}\n\n{bad}\n", a.as_str())).unwrap_err();
        assert!(matches!(err, Error::InvalidKeyLine { line: 3 }), "{err:?}");
        assert!(!err.to_string().contains(bad));

        let err = Keyring::parse(&format!("{}\n#\n{}\n", a.as_str(), a.as_str())).unwrap_err();
        assert!(matches!(err, Error::DuplicateKey { line: 3, .. }), "{err:?}");
        assert!(!err.to_string().contains(a.as_str()));

        assert!(matches!(Keyring::parse("# nothing\n\n").unwrap_err(), Error::EmptyKeyring));
    }

    #[test]
    fn stage_promote_remove() {
        let mut ring = Keyring::new(vec![key(1), key(2)]).unwrap();
        ring.stage(key(3)).unwrap();
        assert_eq!(ring.ids(), vec![key(1).id(), key(3).id(), key(2).id()]);
        assert_eq!(ring.primary().id(), key(2).id());
        ring.promote(key(3).id()).unwrap();
        assert_eq!(ring.ids(), vec![key(1).id(), key(2).id(), key(3).id()]);
        assert!(matches!(ring.remove(key(3).id()), Err(Error::PrimaryKey { .. })));
        ring.remove(key(1).id()).unwrap();
        assert_eq!(ring.ids(), vec![key(2).id(), key(3).id()]);
        assert!(matches!(ring.remove(key(1).id()), Err(Error::KeyNotFound { .. })));
        assert!(matches!(ring.append(key(2)), Err(Error::DuplicateKey { .. })));
        assert!(matches!(ring.stage(key(3)), Err(Error::DuplicateKey { .. })));
    }

    #[test]
    fn retain_newest_keeps_the_primary() {
        let mut ring = Keyring::new(vec![key(1), key(2), key(3)]).unwrap();
        assert_eq!(ring.retain_newest(0), vec![key(1).id(), key(2).id()]);
        assert_eq!(ring.ids(), vec![key(3).id()]);
        assert!(ring.retain_newest(5).is_empty());
    }

    #[test]
    fn lookup_by_id() {
        let ring = Keyring::new((1..=50).map(key).collect()).unwrap();
        assert_eq!(ring.candidates(key(17).id()).count(), 1);
        assert_eq!(ring.candidates(key(77).id()).count(), 0);
        assert!(ring.contains(key(50).id()));
    }
}
