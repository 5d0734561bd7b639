//! Property tests: round trips over arbitrary names and plaintexts, and no
//! parser panics on arbitrary input.

use encstr_core::formats::Format;
use encstr_core::formats::path::{self, Segment};
use encstr_core::keys::{Key, Seed};
use encstr_core::{ConfigFile, Keyring, token};
use proptest::prelude::*;

fn ring() -> Keyring {
    Keyring::new(vec![Key::from_seed(Seed::from_bytes([11; 32])), Key::from_seed(Seed::from_bytes([12; 32]))])
        .unwrap()
}

/// Text with the characters that break naive escaping.
fn nasty_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('"'),
            Just('\''),
            Just('\\'),
            Just('#'),
            Just('='),
            Just(':'),
            Just('!'),
            Just('$'),
            Just('{'),
            Just('}'),
            Just('\n'),
            Just('\r'),
            Just('\t'),
            Just(' '),
            Just('\u{0}'),
            Just('\u{7f}'),
            Just('\u{85}'),
            Just('\u{2028}'),
            Just('\u{feff}'),
            Just('é'),
            Just('🔑'),
            any::<char>(),
            prop::char::range('a', 'z'),
        ],
        0..40,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// Mapping keys that break naive path naming.
fn nasty_key() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('.'),
            Just('['),
            Just(']'),
            Just('"'),
            Just('\\'),
            Just('\n'),
            Just('\u{1}'),
            Just(' '),
            Just('0'),
            Just('名'),
            prop::char::range('a', 'c'),
        ],
        0..6,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![nasty_key().prop_map(Segment::Key), (0usize..12).prop_map(Segment::Index)]
}

/// A document path: keys and indexes, ending in a string value.
fn doc_path() -> impl Strategy<Value = Vec<Segment>> {
    prop::collection::vec(segment(), 1..6)
}

/// JSON text of a document holding `leaf` at `path` (earlier sequence items
/// are empty strings, so indexes are real positions).
fn json_doc(path: &[Segment], leaf: &str) -> String {
    let mut doc = serde_json::Value::String(leaf.to_owned());
    for seg in path.iter().rev() {
        doc = match seg {
            Segment::Key(k) => serde_json::json!({ k.clone(): doc }),
            Segment::Index(i) => {
                let mut items = vec![serde_json::Value::String(String::new()); *i];
                items.push(doc);
                serde_json::Value::Array(items)
            }
        };
    }
    doc.to_string()
}

/// The same document as TOML: a root key, then inline tables and arrays.
fn toml_doc(path: &[Segment], leaf: &str) -> Option<String> {
    let Segment::Key(first) = &path[0] else { return None };
    let quote = |k: &str| serde_json::Value::String(k.to_owned()).to_string().replace("\\u007f", "\\u007F");
    let mut value = quote(leaf);
    for seg in path[1..].iter().rev() {
        value = match seg {
            Segment::Key(k) => format!("{{ {} = {value} }}", quote(k)),
            Segment::Index(i) => {
                let mut items = vec!["\"\"".to_owned(); *i];
                items.push(value);
                format!("[{}]", items.join(", "))
            }
        };
    }
    Some(format!("{} = {value}\n", quote(first)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A properties line is read the same whether it is one natural line
    /// (the fast path) or joined from continuations (the general path).
    #[test]
    fn properties_lines_read_alike_on_both_paths(line in "[a-z\\\\:= \\t!#é🔑u0-9A-F]{1,30}") {
        prop_assume!(!line.starts_with([' ', '\t', '#', '!']));
        let trailing = line.bytes().rev().take_while(|&b| b == b'\\').count();
        prop_assume!(trailing % 2 == 0);
        let (one_text, joined_text) = (format!("{line}\n"), format!("{line}\\\n\n"));
        let one = ConfigFile::parse(Format::Properties, one_text.as_bytes(), "f");
        let joined = ConfigFile::parse(Format::Properties, joined_text.as_bytes(), "f");
        match (one, joined) {
            (Ok(a), Ok(b)) => {
                let (a, b) = (&a.entries()[0], &b.entries()[0]);
                prop_assert_eq!(&a.name, &b.name);
                prop_assert_eq!(a.value.as_str(), b.value.as_str());
            }
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            (a, b) => prop_assert!(false, "{:?} vs {:?}", a.map(|_| ()), b.map(|_| ())),
        }
    }

    /// The naming is injective: every name decodes to the one path it came from.
    #[test]
    fn path_names_invert(segs in prop::collection::vec(segment(), 0..8)) {
        let name = path::join(&segs);
        prop_assert_eq!(path::segments(&name), Some(segs), "{}", name);
    }

    /// JSON, YAML and TOML name a value by exactly its path (ENCSTR v1 §4),
    /// whatever the keys hold.
    #[test]
    fn tree_formats_name_values_by_their_path(p in doc_path()) {
        let expected = path::join(&p);
        let leaf = "ENCSTR:leaf";
        let json = json_doc(&p, leaf);
        // YAML 1.2 reads JSON; flow collections and double-quoted keys.
        let mut docs = vec![(Format::Json, json.clone()), (Format::Yaml, json)];
        if let Some(toml) = toml_doc(&p, leaf) {
            docs.push((Format::Toml, toml));
        }
        for (format, doc) in docs {
            let file = ConfigFile::parse(format, doc.as_bytes(), "f").map_err(|e| TestCaseError::fail(format!("{format}: {e}: {doc}")))?;
            let token = file.tokens().next().expect("the leaf");
            prop_assert_eq!(token.name.as_deref(), Some(expected.as_str()), "{} {}", format, doc);
        }
    }

    #[test]
    fn token_round_trip(name in any::<String>(), plain in prop::collection::vec(any::<u8>(), 0..300)) {
        let ring = ring();
        let t = token::encrypt(&ring, &name, &plain).unwrap();
        let back = token::decrypt(&ring, &name, &t).unwrap();
        prop_assert_eq!(back.as_slice(), plain.as_slice());
        prop_assert_eq!(token::key_id(&t).unwrap(), ring.primary().id());
    }

    #[test]
    fn token_is_bound_to_its_name(name in any::<String>(), other in any::<String>(), plain in any::<Vec<u8>>()) {
        prop_assume!(name != other);
        let ring = ring();
        let t = token::encrypt(&ring, &name, &plain).unwrap();
        prop_assert_eq!(token::decrypt(&ring, &other, &t).unwrap_err().kind(), "authentication_failed");
    }

    #[test]
    fn any_bit_flip_is_rejected(plain in any::<Vec<u8>>(), bit in any::<prop::sample::Index>()) {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let ring = ring();
        let t = token::encrypt(&ring, "n", &plain).unwrap();
        let mut payload = engine.decode(&t[7..]).unwrap();
        let i = bit.index(payload.len() * 8);
        payload[i / 8] ^= 1 << (i % 8);
        let tampered = format!("ENCSTR:{}", engine.encode(&payload));
        let kind = token::decrypt(&ring, "n", &tampered).unwrap_err().kind();
        prop_assert!(matches!(kind, "authentication_failed" | "unknown_key" | "unsupported_version"), "{}", kind);
    }

    #[test]
    fn token_parser_never_panics(s in "ENCSTR:[A-Za-z0-9+/=]{0,120}|\\PC*") {
        let _ = token::decrypt(&ring(), "n", &s);
        let _ = token::key_id(&s);
    }

    #[test]
    fn keyring_parser_never_panics(s in "\\PC*|([A-Za-z0-9+/=]{40,48}\n){0,4}") {
        if let Err(e) = Keyring::parse(&s) {
            // Errors never echo the input line.
            for line in s.lines().filter(|l| l.trim().len() > 8) {
                prop_assert!(!e.to_string().contains(line.trim()));
            }
        }
    }

    #[test]
    fn config_parsers_never_panic(bytes in any::<Vec<u8>>(), text in "\\PC*") {
        for format in [Format::Properties, Format::Dotenv, Format::Yaml, Format::Json, Format::Toml, Format::Raw] {
            let _ = ConfigFile::parse(format, &bytes, "f");
            let _ = ConfigFile::parse(format, text.as_bytes(), "f");
        }
    }

    /// Seal then render gives back every value exactly, in every format, for
    /// arbitrary plaintexts (what the format can represent).
    #[test]
    fn seal_render_round_trip(value in nasty_text(), key in "[a-z][a-z0-9_]{0,8}") {
        let ring = ring();
        let name = format!("{key}_password");
        let token = token::encrypt(&ring, &name, value.as_bytes()).unwrap();
        let docs = [
            (Format::Properties, format!("# c\n{name} = {token}\nx=1\n")),
            (Format::Dotenv, format!("# c\n{name}={token} # c\nX=1\n")),
            (Format::Yaml, format!("# c\n{name}: {token} # c\nx: 1\n")),
            (Format::Json, format!("{{\"{name}\": \"{token}\", \"x\": 1}}")),
            (Format::Toml, format!("# c\n{name} = \"{token}\" # c\nx = 1\n")),
        ];
        for (format, doc) in docs {
            let file = ConfigFile::parse(format, doc.as_bytes(), "f").unwrap();
            let rendered = match file.render(&ring, "", &[]) {
                Ok(r) => r,
                // dotenv cannot hold `${...}` or some backslash endings.
                Err(e) if format == Format::Dotenv && e[0].error.kind() == "unrepresentable" => continue,
                Err(e) => panic!("{format}: {:?}", e),
            };
            let out = ConfigFile::parse(format, &rendered.bytes, "f").unwrap();
            let got = out.entries().iter().find(|e| e.secret_name() == Some(name.as_str())).unwrap();
            prop_assert_eq!(got.value.as_str(), value.as_str(), "{}", format);
            // Everything else is untouched.
            prop_assert!(out.entries().len() == file.entries().len());
        }
    }
}

#[test]
fn the_longest_plaintext_round_trips() {
    let ring = ring();
    let plain: Vec<u8> = (0..token::MAX_PLAINTEXT_LEN).map(|i| (i * 7 + 3) as u8).collect();
    let t = token::encrypt(&ring, "big", &plain).unwrap();
    assert_eq!(token::decrypt(&ring, "big", &t).unwrap().as_slice(), plain.as_slice());
}
