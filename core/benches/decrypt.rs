//! `cargo bench -p encstr-core`: decrypt cost per value (v1, and v2 sealed
//! to a recipient), its independence from keyring size, and checking a
//! 10,000-value YAML file.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use encstr_core::keys::{Key, Seed};
use encstr_core::{ConfigFile, Format, Keyring, token};

fn keyring(n: usize) -> Keyring {
    Keyring::new((0..n).map(|i| Key::from_seed(Seed::from_bytes(seed(i)))).collect()).unwrap()
}

fn seed(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    s
}

fn decrypt(c: &mut Criterion) {
    let secret = [b'x'; 32];
    let mut group = c.benchmark_group("decrypt_32_bytes");
    for n in [1usize, 1000] {
        let ring = keyring(n);
        let token = token::encrypt(&ring, "db.password", &secret).unwrap();
        group.bench_function(format!("{n}_keys"), |b| {
            b.iter(|| token::decrypt(black_box(&ring), black_box("db.password"), black_box(&token)).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("open_v2_32_bytes");
    for n in [1usize, 1000] {
        let ring = keyring(n);
        let token = token::seal_to(ring.primary().recipient(), "db.password", &secret).unwrap();
        group.bench_function(format!("{n}_keys"), |b| {
            b.iter(|| token::decrypt(black_box(&ring), black_box("db.password"), black_box(&token)).unwrap())
        });
    }
    group.finish();

    let ring = keyring(1);
    c.bench_function("encrypt_32_bytes", |b| {
        b.iter(|| token::encrypt(&ring, "db.password", black_box(&secret)).unwrap())
    });
    let recipient = ring.primary().recipient().clone();
    c.bench_function("seal_v2_32_bytes", |b| {
        b.iter(|| token::seal_to(&recipient, "db.password", black_box(&secret)).unwrap())
    });
}

fn check_yaml(c: &mut Criterion) {
    let ring = keyring(3);
    let mut yaml = String::new();
    for s in 0..100 {
        yaml.push_str(&format!("service{s}:\n"));
        for v in 0..100 {
            let name = format!("service{s}.password{v}");
            yaml.push_str(&format!(
                "  password{v}: {}\n",
                token::encrypt(&ring, &name, b"0123456789abcdef0123456789abcdef").unwrap()
            ));
        }
    }
    let mut group = c.benchmark_group("yaml_10000_values");
    group.sample_size(20);
    group.bench_function("check", |b| {
        b.iter(|| {
            let file = ConfigFile::parse(Format::Yaml, yaml.as_bytes(), "big.yaml").unwrap();
            let reports = file.check(Some(&ring), "");
            assert_eq!(reports.len(), 10_000);
        })
    });
    group.bench_function("parse_only", |b| {
        b.iter(|| ConfigFile::parse(Format::Yaml, yaml.as_bytes(), "big.yaml").unwrap())
    });
    group.finish();
}

criterion_group!(benches, decrypt, check_yaml);
criterion_main!(benches);
