//! The naming of places (ENCSTR v1 §4) is unambiguous: every name a YAML,
//! JSON or TOML document yields decodes back to segments, and any list of
//! segments survives encoding and decoding unchanged (the encoding is
//! injective, so no two places share a name). The first byte picks the
//! mode.
#![no_main]

use encstr_core::formats::path::{self, Segment};
use encstr_core::{ConfigFile, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    match pick % 4 {
        0..=2 => {
            let format = [Format::Yaml, Format::Json, Format::Toml][pick as usize % 4];
            let Ok(file) = ConfigFile::parse(format, rest, "fuzz") else { return };
            for e in file.entries() {
                if let Some(name) = &e.name {
                    let segs = path::segments(name).expect("a document's names decode");
                    assert_eq!(&path::join(&segs), name);
                }
            }
        }
        _ => {
            // Segments from the bytes: 0xff starts an index, 0xfe separates keys.
            let text = String::from_utf8_lossy(rest);
            let segs: Vec<Segment> = text
                .split('\u{fffd}')
                .map(|part| match part.strip_prefix('#').and_then(|n| n.parse().ok()) {
                    Some(i) => Segment::Index(i),
                    None => Segment::Key(part.to_owned()),
                })
                .collect();
            let name = path::join(&segs);
            assert_eq!(path::segments(&name), Some(segs), "{name:?}");
        }
    }
});
