//! Every parser is linear in its input: for each format and for inputs that
//! used to be pathological (many dotted TOML keys, many YAML block scalars,
//! long continuation chains, long multi-line values), parse a document of
//! n units and one of 8n, and print `t(8n) / (8 · t(n))`. About 1 means
//! linear; a quadratic parser shows about 8.
//!
//! ```text
//! cargo run --release -p encstr-core --example parse_scaling
//! ```

use std::time::Instant;

use encstr_core::{ConfigFile, Format};

const TOKEN: &str = "ENCSTR:AS01PUr3wut7dI2iP2n0Z1ao/a5cPNbq9DOrvg8zTd1epafyVao/53zUVI3hujP08EnBeA4=";

/// A case: its name, the format, and a document of `n` units.
type Case = (&'static str, Format, fn(usize) -> String);

/// Documents of `n` units, one generator per case.
fn cases() -> Vec<Case> {
    vec![
        ("properties: one key per line", Format::Properties, |n| {
            (0..n).map(|i| format!("svc.k{i}.password = {TOKEN}\n")).collect()
        }),
        ("properties: one long continued line", Format::Properties, |n| {
            format!("k = {}end\n", "part \\\n    ".repeat(n))
        }),
        ("dotenv: one variable per line", Format::Dotenv, |n| {
            (0..n).map(|i| format!("export K{i}_PASSWORD='{TOKEN}' # c\n")).collect()
        }),
        ("dotenv: one long multi-line value", Format::Dotenv, |n| format!("K=\"{}\"\n", "line\n".repeat(n))),
        ("yaml: flat mapping", Format::Yaml, |n| (0..n).map(|i| format!("k{i}: {TOKEN}\n")).collect()),
        ("yaml: block scalars", Format::Yaml, |n| {
            (0..n).map(|i| format!("k{i}: |\n  {TOKEN}\n\n")).collect()
        }),
        ("yaml: sequence of mappings", Format::Yaml, |n| {
            (0..n).map(|i| format!("- name: s{i}\n  token: {TOKEN}\n")).collect()
        }),
        ("json: flat object", Format::Json, |n| {
            let body: Vec<String> = (0..n).map(|i| format!("\"k{i}.x\": \"{TOKEN}\"")).collect();
            format!("{{{}}}", body.join(",\n"))
        }),
        ("toml: dotted keys in one table", Format::Toml, |n| {
            (0..n).map(|i| format!("a.b{i}.c = \"{TOKEN}\"\n")).collect()
        }),
        ("toml: many tables", Format::Toml, |n| {
            (0..n).map(|i| format!("[t{i}]\npassword = \"{TOKEN}\"\n")).collect()
        }),
        ("toml: array of tables", Format::Toml, |n| {
            (0..n).map(|_| format!("[[servers]]\ntoken = \"{TOKEN}\"\n")).collect()
        }),
    ]
}

/// The fastest of a few parses, in seconds.
fn parse_time(format: Format, doc: &str) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            let file = ConfigFile::parse(format, doc.as_bytes(), "doc").expect("parses");
            std::hint::black_box(file.entries().len());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let n: usize = std::env::args().nth(1).map_or(2_000, |a| a.parse().expect("n is a number"));
    println!("{:<40} {:>12} {:>12} {:>7}", "case", "n", "8n", "ratio");
    let mut worst: f64 = 0.0;
    for (name, format, make) in cases() {
        let (small, large) = (make(n), make(8 * n));
        let (a, b) = (parse_time(format, &small), parse_time(format, &large));
        let ratio = b / (8.0 * a);
        worst = worst.max(ratio);
        println!("{name:<40} {:>10.2}ms {:>10.2}ms {ratio:>7.2}", a * 1e3, b * 1e3);
    }
    println!("worst ratio {worst:.2} (1 is linear, 8 would be quadratic)");
}
