//! Whole configuration files: find the tokens, and seal, re-encrypt, check
//! or decrypt them. Pure functions from bytes to bytes; the caller does I/O.

use std::borrow::Cow;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::formats::{self, Entry, Format};
use crate::glob::{Pattern, any_matches};
use crate::keyring::Keyring;
use crate::keys::KeyId;
use crate::recipient::Recipient;
use crate::token;

/// A parsed configuration file: its bytes and every value in it.
pub struct ConfigFile<'a> {
    format: Format,
    bytes: &'a [u8],
    entries: Vec<Entry<'a>>,
    /// YAML: a character YAML 1.1 readers break lines at, outside a quoted
    /// or block scalar (line, character). A file holding tokens with one is
    /// refused; sealing one is refused.
    hazard: Option<(usize, char)>,
}

/// A value that could not be processed, with where it is.
#[derive(Debug)]
pub struct ValueError {
    /// 1-based line of the value.
    pub line: usize,
    /// Full secret name (prefix included); empty for an `unnamed` place.
    pub name: String,
    /// What went wrong (carries no plaintext or token body).
    pub error: Error,
}

/// The outcome of checking one token of a [`ConfigFile`] (whose names it
/// borrows).
#[derive(Debug)]
pub struct TokenReport<'f> {
    /// 1-based line of the token.
    pub line: usize,
    /// Full secret name (prefix included); empty for an `unnamed` place.
    pub name: Cow<'f, str>,
    /// The key id in the token's first bytes (`None` if even those are not
    /// a token's).
    pub key_id: Option<KeyId>,
    /// The token's version from the same bytes: 1 (made with a keyring) or
    /// 2 (sealed to a recipient); `None` with `key_id`.
    pub version: Option<u8>,
    /// `None` if not checked (no keyring), else whether it decrypts. A token
    /// in a place without a name is always `unnamed`, keyring or not.
    pub result: Option<Result<()>>,
}

/// A value that was sealed or re-encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// 1-based line of the value.
    pub line: usize,
    /// Full secret name (prefix included).
    pub name: String,
    /// The key that now protects it.
    pub key_id: KeyId,
}

/// A file with sealed values.
#[derive(Debug)]
pub struct Sealed {
    /// The new file content.
    pub bytes: Zeroizing<Vec<u8>>,
    /// The values that were sealed.
    pub changed: Vec<Changed>,
}

/// Result of re-encrypting a file.
#[derive(Debug)]
pub struct Reencrypted {
    /// The new file content, `None` if every token was already current.
    pub bytes: Option<Zeroizing<Vec<u8>>>,
    /// The tokens that were re-encrypted.
    pub changed: Vec<Changed>,
    /// Number of tokens already made by the primary key.
    pub current: usize,
}

/// Result of decrypting a whole file (its `Debug` omits the bytes: they
/// hold the plaintexts).
pub struct Rendered {
    /// The file with every token replaced by its plaintext.
    pub bytes: Zeroizing<Vec<u8>>,
    /// Number of tokens decrypted.
    pub decrypted: usize,
    /// Secret names of plaintext values that match the seal patterns.
    pub plaintext_names: Vec<(usize, String)>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("bytes", &self.bytes.len())
            .field("decrypted", &self.decrypted)
            .field("plaintext_names", &self.plaintext_names)
            .finish()
    }
}

/// Never the file's bytes (it may be a plaintext file being sealed); the
/// values show as [`Text`] does.
impl std::fmt::Debug for ConfigFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("format", &self.format)
            .field("bytes", &self.bytes.len())
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl<'a> ConfigFile<'a> {
    /// Parse a file. `base_name` names a raw file's value. Properties files
    /// that are not UTF-8 are read as ISO-8859-1, as Java does; other text
    /// formats must be UTF-8. A raw file that is not UTF-8 holds no value.
    pub fn parse(format: Format, bytes: &'a [u8], base_name: &str) -> Result<Self> {
        let entries = match std::str::from_utf8(bytes) {
            Ok(text) => formats::scan(format, text, base_name)?,
            Err(_) if format == Format::Raw => Vec::new(),
            Err(_) if format == Format::Properties => {
                // ISO-8859-1 takes at most two bytes of UTF-8 per byte; the
                // view may hold plaintexts, so it is sized once and wiped.
                let mut text = formats::secret_string(bytes.len() * 2);
                text.extend(bytes.iter().map(|&b| b as char));
                let entries = formats::scan(format, &text, base_name)?;
                // Spans index the UTF-8 string; map them back to bytes
                // (one byte per character in ISO-8859-1). The values are
                // copied out of the view, which is wiped when it goes.
                let mut to_byte = vec![0usize; text.len() + 1];
                for (n, (i, c)) in text.char_indices().enumerate() {
                    for k in 0..c.len_utf8() {
                        to_byte[i + k] = n;
                    }
                }
                to_byte[text.len()] = bytes.len();
                entries
                    .into_iter()
                    .map(|e| {
                        let mut e = e.into_owned();
                        e.span = to_byte[e.span.start]..to_byte[e.span.end];
                        e
                    })
                    .collect()
            }
            Err(_) => return Err(Error::NotUtf8),
        };
        disjoint(format, &entries, bytes.len())?;
        let hazard = match (format, std::str::from_utf8(bytes)) {
            (Format::Yaml, Ok(text)) => formats::yaml::line_break_hazard(text, &entries),
            _ => None,
        };
        // Tokens as encstr reads them, or text a YAML 1.1 reader may read
        // as one (inside what encstr reads as a plain value).
        let holds_tokens =
            || entries.iter().any(Entry::is_token) || memchr::memmem::find(bytes, b"ENCSTR:").is_some();
        if let Some(h) = hazard
            && holds_tokens()
        {
            return Err(formats::yaml::hazard_error(h));
        }
        Ok(ConfigFile { format, bytes, entries, hazard })
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Every value of the file, in order.
    pub fn entries(&self) -> &[Entry<'a>] {
        &self.entries
    }

    /// The values that are tokens.
    pub fn tokens(&self) -> impl Iterator<Item = &Entry<'a>> {
        self.entries.iter().filter(|e| e.is_token())
    }

    /// Whether the file holds any token.
    pub fn has_tokens(&self) -> bool {
        self.tokens().next().is_some()
    }

    /// The file with some values replaced; everything else byte for byte.
    /// The output is allocated once at its final size (it holds plaintexts
    /// when rendering: no reallocation may leave copies behind).
    fn rewrite(&self, mut edits: Vec<(&Entry, Zeroizing<Vec<u8>>)>) -> Zeroizing<Vec<u8>> {
        edits.sort_by_key(|(e, _)| e.span.start);
        let size = edits.iter().fold(self.bytes.len(), |n, (e, text)| n - e.span.len() + text.len());
        let mut out = Zeroizing::new(Vec::with_capacity(size));
        let mut at = 0;
        for (entry, text) in &edits {
            out.extend_from_slice(&self.bytes[at..entry.span.start]);
            out.extend_from_slice(text);
            at = entry.span.end;
        }
        out.extend_from_slice(&self.bytes[at..]);
        out
    }

    fn token_text(&self, entry: &Entry, token: &str) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(formats::encode_token(self.format, entry, token).into_bytes())
    }

    /// Encrypt every plaintext value whose name matches `patterns` (empty
    /// values and tokens are left alone). Returns the new file and what was
    /// sealed, or `None` when nothing matched. All or nothing: a value that
    /// cannot be sealed — one in a place without a name that a pattern
    /// matches (`unnamed`), or one too long for a token — is reported with
    /// every other such value, and nothing is produced.
    pub fn seal(
        &self,
        keyring: &Keyring,
        patterns: &[Pattern],
        prefix: &str,
    ) -> Result<Option<Sealed>, Vec<ValueError>> {
        self.seal_with(keyring.primary().id(), patterns, prefix, |name, plain| {
            token::encrypt(keyring, name, plain)
        })
    }

    /// Like [`ConfigFile::seal`], but sealing each value to a recipient
    /// (ENCSTR v2 tokens): no keyring needed.
    pub fn seal_to(
        &self,
        recipient: &Recipient,
        patterns: &[Pattern],
        prefix: &str,
    ) -> Result<Option<Sealed>, Vec<ValueError>> {
        self.seal_with(recipient.key_id(), patterns, prefix, |name, plain| {
            token::seal_to(recipient, name, plain)
        })
    }

    fn seal_with(
        &self,
        key_id: KeyId,
        patterns: &[Pattern],
        prefix: &str,
        make: impl Fn(&str, &[u8]) -> Result<String>,
    ) -> Result<Option<Sealed>, Vec<ValueError>> {
        let mut edits = Vec::new();
        let mut sealed = Vec::new();
        let mut errors = Vec::new();
        for entry in &self.entries {
            let name = entry.secret_name().unwrap_or_default();
            if entry.is_token() || entry.value.is_empty() || !any_matches(patterns, name) {
                continue;
            }
            let full = full_name(prefix, name);
            // A value that could never be rendered back (dotenv `${...}`,
            // which readers expand) is refused now, not at render time.
            let result = named(entry)
                .and_then(|()| formats::check_plaintext(self.format, entry, entry.value.as_bytes()))
                .and_then(|()| self.keeps_its_type(entry))
                .and_then(|()| make(&full, entry.value.as_bytes()));
            match result {
                Ok(token) => {
                    edits.push((entry, self.token_text(entry, &token)));
                    sealed.push(Changed { line: entry.line, name: full.into_owned(), key_id });
                }
                Err(error) => {
                    errors.push(ValueError { line: entry.line, name: crate::error::shown_name(&full), error })
                }
            }
        }
        if let Some(h) = self.hazard.filter(|_| !sealed.is_empty()) {
            errors.push(ValueError { line: h.0, name: String::new(), error: formats::yaml::hazard_error(h) });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok((!sealed.is_empty()).then(|| Sealed { bytes: self.rewrite(edits), changed: sealed }))
    }

    /// A plain YAML value that reads as a number, boolean or null would
    /// render as a quoted string (another type to the app): refused.
    fn keeps_its_type(&self, entry: &Entry) -> Result<()> {
        let plain = self.format == Format::Yaml
            && entry.quote == formats::Quote::None
            && !matches!(self.bytes.get(entry.span.start), Some(b'|' | b'>'));
        if plain && formats::yaml::implicit_non_string(&entry.value) {
            return Err(Error::Unrepresentable {
                format: "yaml",
                line: entry.line,
                name: entry.name.as_deref().unwrap_or_default().to_owned(),
                reason: "a plain value that reads as a number, boolean or null would render as a quoted string (another type to the app); quote it to seal it as a string",
            });
        }
        Ok(())
    }

    /// Re-encrypt under the primary key every token made by another key
    /// (judged by the key that verifies the token, not by its key id: two
    /// keys may share an id), keeping its version (ENCSTR v2 §5): a v1 token
    /// becomes v1 under the primary key, a sealed (v2) token is sealed to the
    /// primary's recipient. All or nothing: if any token fails to decrypt,
    /// every failure is returned and nothing is produced.
    pub fn reencrypt(&self, keyring: &Keyring, prefix: &str) -> Result<Reencrypted, Vec<ValueError>> {
        let primary = keyring.primary().id();
        let mut edits = Vec::new();
        let mut changed = Vec::new();
        let mut current = 0;
        let mut errors = Vec::new();
        for entry in self.tokens() {
            let name = full_name(prefix, entry.secret_name().unwrap_or_default());
            let result =
                named(entry).and_then(|()| token::open(keyring, &name, &entry.value)).and_then(|opened| {
                    if keyring.is_primary(opened.key) {
                        return Ok(None);
                    }
                    if opened.version == token::SEALED_VERSION {
                        token::seal_to(keyring.primary().recipient(), &name, &opened.plaintext).map(Some)
                    } else {
                        token::encrypt(keyring, &name, &opened.plaintext).map(Some)
                    }
                });
            match result {
                Ok(None) => current += 1,
                Ok(Some(token)) => {
                    edits.push((entry, self.token_text(entry, &token)));
                    changed.push(Changed { line: entry.line, name: name.into_owned(), key_id: primary });
                }
                Err(error) => {
                    errors.push(ValueError { line: entry.line, name: crate::error::shown_name(&name), error })
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let bytes = (!changed.is_empty()).then(|| self.rewrite(edits));
        Ok(Reencrypted { bytes, changed, current })
    }

    /// Report every token: its version and key id and, with a keyring,
    /// whether it decrypts.
    pub fn check(&self, keyring: Option<&Keyring>, prefix: &str) -> Vec<TokenReport<'_>> {
        self.tokens()
            .map(|entry| {
                let name = full_name(prefix, entry.secret_name().unwrap_or_default());
                let (version, key_id) = token::peek(&entry.value).unzip();
                let result = match named(entry) {
                    Err(unnamed) => Some(Err(unnamed)),
                    Ok(()) => keyring.map(|k| token::decrypt(k, &name, &entry.value).map(drop)),
                };
                TokenReport { line: entry.line, name, key_id, version, result }
            })
            .collect()
    }

    /// Decrypt every token into the file's own syntax. All or nothing: every
    /// failing value is reported and no output is produced.
    /// `plaintext_patterns` selects the plaintext values to report (names
    /// that look like secrets but are not encrypted).
    ///
    /// Every plaintext is decrypted first and the output is allocated once,
    /// at its exact size, then each value is written straight into it: no
    /// intermediate copy of a plaintext, no reallocation.
    pub fn render(
        &self,
        keyring: &Keyring,
        prefix: &str,
        plaintext_patterns: &[Pattern],
    ) -> Result<Rendered, Vec<ValueError>> {
        let mut opened: Vec<(&Entry, Zeroizing<Vec<u8>>, usize)> = Vec::new();
        let mut errors = Vec::new();
        let mut plaintext_names = Vec::new();
        for entry in &self.entries {
            let name = full_name(prefix, entry.secret_name().unwrap_or_default());
            if !entry.is_token() {
                if !entry.value.is_empty()
                    && let Some(n) = entry.secret_name()
                    && any_matches(plaintext_patterns, n)
                {
                    plaintext_names.push((entry.line, name.into_owned()));
                }
                continue;
            }
            let plain = named(entry)
                .and_then(|()| token::decrypt(keyring, &name, &entry.value))
                .and_then(|plain| formats::check_plaintext(self.format, entry, &plain).map(|()| plain));
            match plain {
                Ok(plain) => {
                    let len = formats::plaintext_len(self.format, entry, &plain);
                    opened.push((entry, plain, len));
                }
                Err(error) => {
                    errors.push(ValueError { line: entry.line, name: crate::error::shown_name(&name), error })
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        opened.sort_by_key(|(e, _, _)| e.span.start);
        let size = opened.iter().fold(self.bytes.len(), |n, (e, _, len)| n - e.span.len() + len);
        let mut out = Zeroizing::new(Vec::with_capacity(size));
        let mut at = 0;
        for (entry, plain, _) in &opened {
            out.extend_from_slice(&self.bytes[at..entry.span.start]);
            formats::write_plaintext(self.format, entry, plain, &mut out);
            at = entry.span.end;
        }
        out.extend_from_slice(&self.bytes[at..]);
        debug_assert_eq!(out.len(), size);
        Ok(Rendered { bytes: out, decrypted: opened.len(), plaintext_names })
    }
}

/// Every value's span lies in the file, in order, none overlapping another:
/// rewriting relies on it. A reader that broke it is an error naming the
/// line, never a panic or a mangled output.
fn disjoint(format: Format, entries: &[Entry], len: usize) -> Result<()> {
    let mut at = 0;
    for e in entries {
        if e.span.start < at || e.span.start > e.span.end || e.span.end > len {
            return Err(Error::Parse {
                format: format.name(),
                line: e.line,
                message: "a value overlaps another (an internal error of encstr's reader: please report it)"
                    .into(),
            });
        }
        at = e.span.end;
    }
    Ok(())
}

/// `unnamed` unless the entry's place has a name (ENCSTR v1 §4), and
/// `aliased` if another place reads it too.
fn named(entry: &Entry) -> Result<()> {
    let name = entry.secret_name().ok_or(Error::Unnamed)?;
    match &entry.aliased {
        None => Ok(()),
        Some(a) => Err(Error::Aliased {
            name: name.to_owned(),
            alias: a.name.as_deref().filter(|n| !n.is_empty()).unwrap_or("a place without a name").to_owned(),
            alias_line: a.line,
        }),
    }
}

fn full_name<'n>(prefix: &str, name: &'n str) -> Cow<'n, str> {
    if prefix.is_empty() { Cow::Borrowed(name) } else { Cow::Owned(format!("{prefix}{name}")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Key, Seed};

    fn ring() -> Keyring {
        Keyring::new(vec![Key::from_seed(Seed::from_bytes([5; 32]))]).unwrap()
    }

    #[test]
    fn seal_then_render_restores_the_file() {
        let ring = ring();
        let text = "# db\ndb.password = s3cr3t: with = signs\ndb.user=app\napi.token=\n";
        let file = ConfigFile::parse(Format::Properties, text.as_bytes(), "x").unwrap();
        let Sealed { bytes: sealed, changed } = file.seal(&ring, &Pattern::defaults(), "").unwrap().unwrap();
        assert_eq!(changed.len(), 1, "empty values are not sealed");
        let sealed_text = std::str::from_utf8(&sealed).unwrap();
        assert!(sealed_text.starts_with("# db\ndb.password = ENCSTR:"), "{sealed_text}");
        assert!(sealed_text.ends_with("\ndb.user=app\napi.token=\n"));
        let again = ConfigFile::parse(Format::Properties, &sealed, "x").unwrap();
        assert!(again.seal(&ring, &Pattern::defaults(), "").unwrap().is_none(), "tokens are left alone");
        let rendered = again.render(&ring, "", &[]).unwrap();
        assert_eq!(
            std::str::from_utf8(&rendered.bytes).unwrap(),
            "# db\ndb.password = s3cr3t\\: with \\= signs\ndb.user=app\napi.token=\n"
        );
    }

    #[test]
    fn prefix_is_part_of_the_name() {
        let ring = ring();
        let file = ConfigFile::parse(Format::Dotenv, b"DB_PASSWORD=x\n", "x").unwrap();
        let sealed = file.seal(&ring, &Pattern::defaults(), "app/").unwrap().unwrap().bytes;
        let file = ConfigFile::parse(Format::Dotenv, &sealed, "x").unwrap();
        assert!(file.render(&ring, "app/", &[]).is_ok());
        let errors = file.render(&ring, "", &[]).unwrap_err();
        assert_eq!(errors[0].error.kind(), "authentication_failed");
        assert_eq!(errors[0].name, "DB_PASSWORD");
    }

    #[test]
    fn latin1_properties_keep_their_bytes() {
        let ring = ring();
        let mut bytes = b"# caf\xe9\nname=Jos\xe9\npassword=p\xe4ss\n".to_vec();
        let file = ConfigFile::parse(Format::Properties, &bytes, "x").unwrap();
        assert_eq!(file.entries()[1].value.as_str(), "päss");
        let sealed = file.seal(&ring, &Pattern::defaults(), "").unwrap().unwrap().bytes;
        assert!(sealed.starts_with(b"# caf\xe9\nname=Jos\xe9\npassword=ENCSTR:"));
        let file = ConfigFile::parse(Format::Properties, &sealed, "x").unwrap();
        let rendered = file.render(&ring, "", &[]).unwrap();
        bytes.truncate(bytes.len() - 5);
        bytes.extend_from_slice(b"p\\u00E4ss\n");
        assert_eq!(rendered.bytes.as_slice(), bytes.as_slice());
    }

    #[test]
    fn render_reports_every_failure_and_produces_nothing() {
        let ring = ring();
        let other = Keyring::new(vec![Key::from_seed(Seed::from_bytes([6; 32]))]).unwrap();
        let a = token::encrypt(&other, "a", b"x").unwrap();
        let b = token::encrypt(&ring, "b", b"y").unwrap();
        let text = format!("a: {a}\nb: {b}\nc: ENCSTR:no!pe\nd: {b}\n");
        let file = ConfigFile::parse(Format::Yaml, text.as_bytes(), "x").unwrap();
        let errors = file.render(&ring, "", &[]).unwrap_err();
        let got: Vec<_> = errors.iter().map(|e| (e.line, e.name.as_str(), e.error.kind())).collect();
        assert_eq!(
            got,
            vec![(1, "a", "unknown_key"), (3, "c", "malformed"), (4, "d", "authentication_failed")]
        );
    }

    #[test]
    fn tokens_in_places_without_a_name_are_unnamed() {
        let ring = ring();
        let t = token::encrypt(&ring, "", b"x").unwrap();
        let docs = [
            (Format::Yaml, format!("{t}\n")),
            (Format::Yaml, format!("? [complex]\n: {t}\n")),
            (Format::Json, format!("\"{t}\"")),
            (Format::Properties, format!("={t}\n")),
        ];
        for (format, doc) in docs {
            let file = ConfigFile::parse(format, doc.as_bytes(), "x").unwrap();
            let errors = file.render(&ring, "", &[]).unwrap_err();
            assert_eq!((errors.len(), errors[0].error.kind()), (1, "unnamed"), "{format}: {doc}");
            assert!(errors[0].name.is_empty());
            assert_eq!(file.reencrypt(&ring, "app/").unwrap_err()[0].error.kind(), "unnamed");
            let reports = file.check(None, "");
            assert!(
                matches!(&reports[0].result, Some(Err(Error::Unnamed))),
                "{format}: without a keyring too"
            );
            assert!(matches!(&file.check(Some(&ring), "")[0].result, Some(Err(Error::Unnamed))));
        }
    }

    /// A token whose anchor an alias or merge key reads elsewhere, or a
    /// dotenv variable another value expands, would reach the app under
    /// another name: render, check, reencrypt and seal refuse it, naming
    /// the other place.
    #[test]
    fn values_read_under_another_name_too_are_refused() {
        let ring = ring();
        let t = token::encrypt(&ring, "db.password", b"s3cr3t").unwrap();
        let yaml = format!("db:\n  password: &p {t}\nui:\n  banner: *p\n");
        let e = token::encrypt(&ring, "DB_PASSWORD", b"s3cr3t").unwrap();
        let dotenv = format!("DB_PASSWORD={e}\nBANNER=${{DB_PASSWORD}}\n");
        for (format, doc, name, other) in [
            (Format::Yaml, yaml, "db.password", "line 4 as ui.banner"),
            (Format::Dotenv, dotenv, "DB_PASSWORD", "line 2 as BANNER"),
        ] {
            let file = ConfigFile::parse(format, doc.as_bytes(), "x").unwrap();
            let errors = file.render(&ring, "", &[]).unwrap_err();
            assert_eq!((errors.len(), errors[0].name.as_str(), errors[0].error.kind()), (1, name, "aliased"));
            assert!(errors[0].error.to_string().contains(other), "{}", errors[0].error);
            assert_eq!(file.reencrypt(&ring, "").unwrap_err()[0].error.kind(), "aliased");
            assert!(matches!(&file.check(None, "")[0].result, Some(Err(Error::Aliased { .. }))));
        }
        let plain =
            ConfigFile::parse(Format::Yaml, b"db:\n  password: &p s3cr3t\nui: {banner: *p}\n", "x").unwrap();
        let errors = plain.seal(&ring, &Pattern::defaults(), "").unwrap_err();
        assert_eq!((errors[0].name.as_str(), errors[0].error.kind()), ("db.password", "aliased"));
    }

    /// NEL, LS and PS are line breaks to YAML 1.1 readers and not to
    /// encstr's: outside a quoted or block scalar value they are refused in
    /// a file holding tokens, and sealing a file with one is refused.
    #[test]
    fn yaml_1_1_line_breaks_outside_quoted_or_block_scalars_are_refused_with_tokens() {
        let ring = ring();
        let t = token::encrypt(&ring, "db.password", b"x").unwrap();
        for (c, what) in [('\u{85}', "U+0085 (NEL)"), ('\u{2028}', "U+2028"), ('\u{2029}', "U+2029")] {
            for doc in [
                format!("db:\n  password: {t}\n# note{c}smtp: {{}}\n"),
                format!("db:\n  password: |  # header{c}\n    {t}\n"),
                format!("db{c}:\n  password: {t}\n"),
            ] {
                let err = ConfigFile::parse(Format::Yaml, doc.as_bytes(), "x").unwrap_err();
                assert_eq!(err.kind(), "parse", "{doc:?}");
                assert!(err.to_string().contains(what), "{err}");
            }
            // Found by the differential test: encstr reads no token here (it
            // is inside a plain value), PyYAML reads one under k00[0][1].
            let hidden = format!("k00:  #\r- {c}\n  - v\n  - >-\n    ENCSTR:Tok1A\n");
            assert_eq!(ConfigFile::parse(Format::Yaml, hidden.as_bytes(), "x").unwrap_err().kind(), "parse");
            // Inside quoted and block scalar values they are content.
            for doc in [
                format!("db:\n  password: {t}\n  banner: \"a{c}b\"\n  motd: 'a{c}b'\n  text: |\n    a{c}b\n"),
                format!("# note{c}\nplain: x\n"),
            ] {
                assert!(ConfigFile::parse(Format::Yaml, doc.as_bytes(), "x").is_ok(), "{doc:?}");
            }
            let text = format!("# n{c}\ndb:\n  password: s3cr3t\n");
            let plain = ConfigFile::parse(Format::Yaml, text.as_bytes(), "x").unwrap();
            let errors = plain.seal(&ring, &Pattern::defaults(), "").unwrap_err();
            assert_eq!((errors[0].line, errors[0].error.kind()), (1, "parse"));
        }
    }

    /// Block scalars with CR LF and lone CR line breaks: the replaced span
    /// is the scalar's own, whatever the line breaks, and everything else
    /// stays byte for byte.
    #[test]
    fn yaml_block_scalars_render_in_place_with_any_line_break() {
        let ring = ring();
        let t = token::encrypt(&ring, "db.password", b"s3cr3t").unwrap();
        for nl in ["\n", "\r\n", "\r"] {
            let doc = format!("x: >{nl}  folded{nl}db:{nl}  password: |-  # c{nl}    {t}{nl}  user: u{nl}");
            let file = ConfigFile::parse(Format::Yaml, doc.as_bytes(), "x").unwrap();
            let out = file.render(&ring, "", &[]).unwrap();
            let want = format!("x: >{nl}  folded{nl}db:{nl}  password: \"s3cr3t\"  # c{nl}  user: u{nl}");
            assert_eq!(std::str::from_utf8(&out.bytes).unwrap(), want, "{nl:?}");
        }
    }

    #[test]
    fn overlapping_or_out_of_range_spans_are_an_error_not_a_panic() {
        let e = |span: std::ops::Range<usize>| {
            Entry::new(None, 3, span, formats::Text::Slice("v"), formats::Quote::None)
        };
        assert!(disjoint(Format::Yaml, &[e(0..2), e(2..4)], 4).is_ok());
        for (entries, len) in [
            (vec![e(0..3), e(2..4)], 4),
            (vec![e(0..5)], 4),
            (vec![e(3..3), e(2..4)], 4),
            (vec![e(std::ops::Range { start: 3, end: 2 })], 4),
        ] {
            let err = disjoint(Format::Yaml, &entries, len).unwrap_err();
            assert_eq!(
                (err.kind(), err.to_string().starts_with("line 3: invalid yaml")),
                ("parse", true),
                "{err}"
            );
        }
    }

    #[test]
    fn seal_refuses_dotenv_values_that_could_never_render() {
        let ring = ring();
        let file =
            ConfigFile::parse(Format::Dotenv, b"API_PASSWORD=a${B}c\nDB_PASSWORD=fine\n", "x").unwrap();
        let errors = file.seal(&ring, &Pattern::defaults(), "").unwrap_err();
        let got: Vec<_> = errors.iter().map(|e| (e.line, e.error.kind())).collect();
        assert_eq!(got, [(1, "unrepresentable")]);
    }

    #[test]
    fn debug_output_holds_no_plaintext() {
        let ring = ring();
        let text = "db.password = s3cr3t-value\napi.token = \"quoted\\u0041secret\"\n";
        let file = ConfigFile::parse(Format::Properties, text.as_bytes(), "x").unwrap();
        let sealed = file.seal(&ring, &Pattern::defaults(), "").unwrap().unwrap();
        let again = ConfigFile::parse(Format::Properties, &sealed.bytes, "x").unwrap();
        let rendered = again.render(&ring, "", &[]).unwrap();
        for shown in [format!("{file:?}"), format!("{again:?}"), format!("{:?}", file.entries())] {
            for secret in ["s3cr3t", "secret", "quoted"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
        assert!(!format!("{rendered:?}").contains("115, 51, 99"), "the rendered bytes");
    }

    #[test]
    fn seal_keeps_yaml_types_or_refuses() {
        let ring = ring();
        let all = [Pattern::new("*").unwrap()];
        let doc =
            "port: 5432\nratio: 1.5e3\nhex: 0x1F\nsexa: 1:30\nflag: yes\non: Off\nnothing: ~\nnan: .NaN\n";
        let file = ConfigFile::parse(Format::Yaml, doc.as_bytes(), "x").unwrap();
        let errors = file.seal(&ring, &all, "").unwrap_err();
        assert_eq!(errors.len(), 8, "{errors:?}");
        assert!(errors.iter().all(|e| e.error.kind() == "unrepresentable"));
        // Strings, quoted values and block scalars are sealed.
        let ok = "a: hunter2\nb: 'true'\nc: \"5432\"\nd: |\n  12\ne: 12abc\nf: 1.2.3\n";
        let file = ConfigFile::parse(Format::Yaml, ok.as_bytes(), "x").unwrap();
        assert_eq!(file.seal(&ring, &all, "").unwrap().unwrap().changed.len(), 6);
    }

    #[test]
    fn errors_carry_long_names_cut_short() {
        let ring = ring();
        let other = Keyring::new(vec![Key::from_seed(Seed::from_bytes([6; 32]))]).unwrap();
        let long = "k".repeat(3000);
        let t = token::encrypt(&other, &format!("{long}.password"), b"x").unwrap();
        let doc = format!("? {long}\n: {{password: {t}}}\n");
        let file = ConfigFile::parse(Format::Yaml, doc.as_bytes(), "x").unwrap();
        let errors = file.render(&ring, "", &[]).unwrap_err();
        assert!(errors[0].name.len() <= crate::error::MAX_SHOWN_NAME + 3 && errors[0].name.ends_with('…'));
        assert!(errors[0].error.to_string().len() < 600, "{}", errors[0].error);
    }

    #[test]
    fn seal_refuses_values_without_a_name() {
        let ring = ring();
        let file = ConfigFile::parse(Format::Yaml, b"s3cr3t\n", "x").unwrap();
        assert!(file.seal(&ring, &Pattern::defaults(), "").unwrap().is_none(), "no pattern matches no name");
        let errors = file.seal(&ring, &[Pattern::new("*").unwrap()], "").unwrap_err();
        assert_eq!((errors[0].line, errors[0].error.kind()), (1, "unnamed"));
        let file = ConfigFile::parse(Format::Properties, b"a.password=x\n=y\n", "x").unwrap();
        let errors = file.seal(&ring, &[Pattern::new("*").unwrap()], "").unwrap_err();
        assert_eq!(errors.iter().map(|e| (e.line, e.error.kind())).collect::<Vec<_>>(), [(2, "unnamed")]);
    }

    #[test]
    fn rewrites_allocate_once() {
        let ring = ring();
        let long = "p".repeat(5000);
        let sealed = ConfigFile::parse(Format::Json, format!("{{\"password\": \"{long}\"}}").as_bytes(), "x")
            .unwrap()
            .seal(&ring, &Pattern::defaults(), "")
            .unwrap()
            .unwrap();
        assert_eq!(sealed.bytes.capacity(), sealed.bytes.len());
        let rendered =
            ConfigFile::parse(Format::Json, &sealed.bytes, "x").unwrap().render(&ring, "", &[]).unwrap();
        assert_eq!(rendered.bytes.capacity(), rendered.bytes.len());
        assert_eq!(rendered.bytes.len(), long.len() + 16);
    }

    #[test]
    fn reencrypt_moves_old_tokens_to_the_primary() {
        let mut ring = ring();
        let old = token::encrypt(&ring, "k", b"v").unwrap();
        ring.append(Key::from_seed(Seed::from_bytes([9; 32]))).unwrap();
        let new = token::encrypt(&ring, "n", b"w").unwrap();
        let text = format!("{{\"k\": \"{old}\", \"n\": \"{new}\"}}");
        let file = ConfigFile::parse(Format::Json, text.as_bytes(), "x").unwrap();
        let Reencrypted { bytes, changed, current } = file.reencrypt(&ring, "").unwrap();
        assert_eq!((changed.len(), current), (1, 1));
        let file = ConfigFile::parse(Format::Json, bytes.as_ref().unwrap(), "x").unwrap();
        let reports = file.check(Some(&ring), "");
        assert!(
            reports.iter().all(|r| r.key_id == Some(ring.primary().id()) && matches!(r.result, Some(Ok(()))))
        );
        assert!(std::str::from_utf8(bytes.as_ref().unwrap()).unwrap().contains(&new));
    }

    #[test]
    fn seal_to_a_recipient_needs_no_keyring_and_renders_with_it() {
        let ring = ring();
        let recipient = ring.primary().recipient().clone();
        let text = "db:\n  password: \"s3cr3t: #x\"\n  user: app\n";
        let file = ConfigFile::parse(Format::Yaml, text.as_bytes(), "x").unwrap();
        let Sealed { bytes, changed } =
            file.seal_to(&recipient, &Pattern::defaults(), "app/").unwrap().unwrap();
        assert_eq!(
            changed,
            [Changed { line: 2, name: "app/db.password".into(), key_id: ring.primary().id() }]
        );
        let file = ConfigFile::parse(Format::Yaml, &bytes, "x").unwrap();
        let reports = file.check(Some(&ring), "app/");
        assert_eq!((reports[0].version, reports[0].key_id), (Some(2), Some(ring.primary().id())));
        assert!(matches!(reports[0].result, Some(Ok(()))));
        let rendered = file.render(&ring, "app/", &[]).unwrap();
        let out = std::str::from_utf8(&rendered.bytes).unwrap();
        assert!(out.starts_with("db:\n  password: ") && out.ends_with("\n  user: app\n"), "{out}");
        assert!(!out.contains("ENCSTR:"), "{out}");
        let file = ConfigFile::parse(Format::Yaml, b"s3cr3t\n", "x").unwrap();
        let errors = file.seal_to(&recipient, &[Pattern::new("*").unwrap()], "").unwrap_err();
        assert_eq!(errors[0].error.kind(), "unnamed");
    }

    /// ENCSTR v2 §5: a v1 token stays v1, a v2 token stays v2, each under the
    /// primary key; tokens of the primary are left alone in both versions.
    #[test]
    fn reencrypt_keeps_each_tokens_version() {
        let mut ring = ring();
        let old_v1 = token::encrypt(&ring, "a", b"1").unwrap();
        let old_v2 = token::seal_to(ring.primary().recipient(), "b", b"2").unwrap();
        ring.append(Key::from_seed(Seed::from_bytes([9; 32]))).unwrap();
        let new_v2 = token::seal_to(ring.primary().recipient(), "c", b"3").unwrap();
        let text = format!("a={old_v1}\nb={old_v2}\nc={new_v2}\n");
        let file = ConfigFile::parse(Format::Properties, text.as_bytes(), "x").unwrap();
        let Reencrypted { bytes, changed, current } = file.reencrypt(&ring, "").unwrap();
        assert_eq!((changed.len(), current), (2, 1));
        let bytes = bytes.unwrap();
        let file = ConfigFile::parse(Format::Properties, &bytes, "x").unwrap();
        let got: Vec<_> = file.check(Some(&ring), "").into_iter().map(|r| (r.version, r.key_id)).collect();
        let primary = Some(ring.primary().id());
        assert_eq!(got, [(Some(1), primary), (Some(2), primary), (Some(2), primary)]);
        assert!(std::str::from_utf8(&bytes).unwrap().contains(&new_v2));
        let rendered = file.render(&ring, "", &[]).unwrap();
        assert_eq!(rendered.bytes.as_slice(), b"a=1\nb=2\nc=3\n");
    }
}
