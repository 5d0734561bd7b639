//! The crypto floor of a render, for `bench/render.py`: decrypt every token
//! of a list in-process and print the seconds it took (keyring loading and
//! reading the list are not timed).
//!
//! ```text
//! cargo run --release -p encstr-core --example decrypt_floor -- KEYRING TOKENS [RUNS]
//! ```
//! `TOKENS` holds one `name<TAB>token` per line. The median of `RUNS`
//! (default 15) passes is printed.

use std::time::Instant;

use encstr_core::{Keyring, token};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, keyring, tokens, rest @ ..] = &args[..] else {
        eprintln!("usage: decrypt_floor KEYRING TOKENS [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = rest.first().map_or(15, |r| r.parse().expect("RUNS is a number"));
    let ring = Keyring::parse(&std::fs::read_to_string(keyring).expect("keyring")).expect("keyring parses");
    let list = std::fs::read_to_string(tokens).expect("token list");
    let pairs: Vec<(&str, &str)> = list.lines().filter_map(|l| l.split_once('\t')).collect();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            for (name, tok) in &pairs {
                std::hint::black_box(token::decrypt(&ring, name, tok).expect("decrypts"));
            }
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{:.6} {}", times[times.len() / 2], pairs.len());
}
