//! Differential test of YAML names: random documents — nested mappings and
//! sequences, tokens in every scalar style, comments and plain values laced
//! with NEL, LS, PS, CR, colons, dashes and key-like text — are read by
//! encstr and by PyYAML (a YAML 1.1 reader, as many apps use). Wherever
//! encstr accepts a document holding tokens and PyYAML reads it too, every
//! token must sit under the same name in both: a token encstr verifies
//! under one name must never reach the app under another. The documents
//! change every run; a mismatch prints the document and the seed.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use encstr_core::{ConfigFile, Format};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

#[derive(Debug, Clone)]
enum Node {
    Token(Style),
    Plain(String),
    Map(Vec<Node>),
    Seq(Vec<Node>),
    Flow(Vec<Node>),
}

#[derive(Debug, Clone, Copy)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
    Folded,
}

/// Text for comments and plain values: line breaks of YAML 1.1 only,
/// indentation, and what looks like keys and tokens.
fn junk() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        1 => Just("\u{85}"),
        1 => Just("\u{2028}"),
        1 => Just("\u{2029}"),
        2 => Just("\r"),
        4 => Just(" "),
        3 => Just("  "),
        6 => Just("x"),
        3 => Just(":"),
        2 => Just("- "),
        3 => Just("kz: "),
        3 => Just("ENCSTR:Evil0"),
        2 => Just("#"),
        2 => Just("'"),
    ];
    prop::collection::vec(piece, 0..4).prop_map(|v| v.concat())
}

fn node() -> impl Strategy<Value = Node> {
    let style = prop_oneof![
        Just(Style::Plain),
        Just(Style::Single),
        Just(Style::Double),
        Just(Style::Literal),
        Just(Style::Folded)
    ];
    let leaf = prop_oneof![style.prop_map(Node::Token), junk().prop_map(|j| Node::Plain(format!("v{j}")))];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Node::Map),
            prop::collection::vec(inner.clone(), 1..3).prop_map(Node::Seq),
            prop::collection::vec(inner, 1..3).prop_map(Node::Flow),
        ]
    })
}

/// A document: a top-level mapping, with a comment (of junk) after some
/// lines.
fn document() -> impl Strategy<Value = String> {
    (prop::collection::vec(node(), 1..4), prop::collection::vec(junk(), 8)).prop_map(|(nodes, comments)| {
        let mut r = Render { out: String::new(), tokens: 0, comments, next: 0 };
        r.map(&nodes, 0);
        r.out
    })
}

struct Render {
    out: String,
    tokens: usize,
    comments: Vec<String>,
    next: usize,
}

impl Render {
    fn comment(&mut self) -> String {
        self.next += 1;
        let c = &self.comments[self.next % self.comments.len()];
        if c.is_empty() { String::new() } else { format!("  #{c}") }
    }

    fn token(&mut self) -> String {
        self.tokens += 1;
        format!("ENCSTR:Tok{}A", self.tokens)
    }

    /// A scalar inline (after `key: ` or `- `), with what follows its line.
    fn scalar(&mut self, n: &Node, indent: usize) -> String {
        match n {
            Node::Token(style) => {
                let t = self.token();
                let pad = " ".repeat(indent + 2);
                match style {
                    Style::Plain => format!("{t}{}\n", self.comment()),
                    Style::Single => format!("'{t}'{}\n", self.comment()),
                    Style::Double => format!("\"{t}\"{}\n", self.comment()),
                    Style::Literal => format!("|{}\n{pad}{t}\n", self.comment()),
                    Style::Folded => format!(">-{}\n{pad}{t}\n", self.comment()),
                }
            }
            Node::Plain(v) => format!("{v}\n"),
            _ => unreachable!(),
        }
    }

    fn flow(&mut self, items: &[Node]) -> String {
        let parts: Vec<String> = items
            .iter()
            .map(|n| match n {
                Node::Token(_) => self.token(),
                Node::Plain(_) => "plain".into(),
                Node::Map(m) | Node::Seq(m) | Node::Flow(m) => format!("[{}]", self.flow(m)),
            })
            .collect();
        parts.join(", ")
    }

    fn map(&mut self, items: &[Node], indent: usize) {
        let pad = " ".repeat(indent);
        for (i, n) in items.iter().enumerate() {
            let key = format!("k{indent}{i}");
            match n {
                Node::Map(m) => {
                    let c = self.comment();
                    let _ = writeln!(self.out, "{pad}{key}:{c}");
                    self.map(m, indent + 2);
                }
                Node::Seq(s) => {
                    let c = self.comment();
                    let _ = writeln!(self.out, "{pad}{key}:{c}");
                    self.seq(s, indent + 2);
                }
                Node::Flow(f) => {
                    let f = self.flow(f);
                    let _ = writeln!(self.out, "{pad}{key}: [{f}]");
                }
                leaf => {
                    let s = self.scalar(leaf, indent);
                    let _ = write!(self.out, "{pad}{key}: {s}");
                }
            }
        }
    }

    fn seq(&mut self, items: &[Node], indent: usize) {
        let pad = " ".repeat(indent);
        for n in items {
            match n {
                Node::Map(m) => {
                    let _ = writeln!(self.out, "{pad}-");
                    self.map(m, indent + 2);
                }
                Node::Seq(s) => {
                    let _ = writeln!(self.out, "{pad}-");
                    self.seq(s, indent + 2);
                }
                Node::Flow(f) => {
                    let f = self.flow(f);
                    let _ = writeln!(self.out, "{pad}- [{f}]");
                }
                leaf => {
                    let s = self.scalar(leaf, indent);
                    let _ = write!(self.out, "{pad}- {s}");
                }
            }
        }
    }
}

/// encstr's names of the tokens of a document it accepts.
fn encstr_names(doc: &str) -> Option<Vec<(String, String)>> {
    let file = ConfigFile::parse(Format::Yaml, doc.as_bytes(), "x").ok()?;
    let mut names: Vec<(String, String)> = file
        .tokens()
        .map(|e| (e.name.as_deref().unwrap_or_default().to_owned(), e.value.as_str().to_owned()))
        .collect();
    names.sort();
    Some(names)
}

#[test]
fn every_token_encstr_accepts_has_the_name_pyyaml_reads_it_under() {
    let seed: [u8; 32] = std::array::from_fn(|_| rand_byte());
    let mut runner =
        TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let docs: Vec<String> =
        (0..1500).map(|_| document().new_tree(&mut runner).expect("a document").current()).collect();
    let dir = std::env::temp_dir().join(format!("encstr-yaml-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("docs.json");
    std::fs::write(&input, serde_json::to_string(&docs).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parsers/yaml_token_paths.py");
    let out = Command::new("python3").arg(script).arg(&input).output().expect("python3 runs");
    assert!(out.status.success(), "PyYAML: {}", String::from_utf8_lossy(&out.stderr));
    let theirs: Vec<Option<Vec<(String, String)>>> = serde_json::from_slice(&out.stdout).unwrap();
    let (mut compared, mut refused, mut hazards) = (0, 0, 0);
    for (doc, theirs) in docs.iter().zip(theirs) {
        hazards += usize::from(doc.contains(['\u{85}', '\u{2028}', '\u{2029}']));
        let Some(ours) = encstr_names(doc) else {
            refused += 1;
            continue;
        };
        let Some(theirs) = theirs else { continue };
        if ours.is_empty() && theirs.is_empty() {
            continue;
        }
        compared += 1;
        assert_eq!(
            ours,
            theirs,
            "encstr and PyYAML name the tokens differently (seed {}):\n{doc:?}",
            seed.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
    }
    eprintln!("{compared} documents compared, {refused} refused by encstr, {hazards} with NEL/LS/PS");
    assert!(
        compared > 300 && refused > 50,
        "the generator explores too little: {compared} compared, {refused} refused"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A random byte from the OS (the seed changes every run and is printed on
/// a mismatch).
fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    getrandom::fill(&mut b).expect("randomness");
    b[0]
}
