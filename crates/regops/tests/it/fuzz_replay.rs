//! The fuzz targets on stable, in CI: every seed in `fuzz/corpus/<target>/` and a few hundred
//! seeded mutations of each (bit flips, insertions, deletions, truncations, repeats, splices
//! with another seed) go through the same entry functions the cargo-fuzz targets call. The bar
//! is the fuzzers': no panic (a panic fails this test, naming the input). Time and memory are
//! bounded by the fuzzers' `-timeout=1 -rss_limit_mb=256` on nightly; see fuzz/README.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::PathBuf;

/// SplitMix64: repeatable mutations, run to run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that make parsers take other paths: structure, quoting, anchors, escapes, UTF-8.
const INTERESTING: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\n",
    b"\"",
    b"'",
    b"&a ",
    b"*a",
    b"<<: *a",
    b"- ",
    b"  ",
    b"\\",
    b"=",
    b"!",
    b"(",
    b")",
    b"@",
    b"/",
    b"\xc3\xa9",
    b"\xff",
    b"0x",
    b"~",
    b"---\n",
    b"null",
    b"!!binary ",
    b"\t",
    b"#",
];

fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                v.splice(at..at, piece.iter().copied());
            }
            2 if !v.is_empty() => {
                let end = (at + rng.below(16) + 1).min(v.len());
                v.drain(at.min(end)..end);
            }
            3 => v.truncate(at),
            4 if !v.is_empty() => {
                // Repeat a slice: nesting and long lines.
                let start = rng.below(v.len());
                let end = (start + rng.below(64) + 1).min(v.len());
                let piece: Vec<u8> = v[start..end].to_vec();
                for _ in 0..rng.below(8) + 1 {
                    v.splice(at..at, piece.iter().copied());
                }
            }
            5 if !other.is_empty() => {
                let start = rng.below(other.len());
                let end = (start + rng.below(256) + 1).min(other.len());
                v.splice(at..at, other[start..end].iter().copied());
            }
            _ => v.push(rng.below(256) as u8),
        }
    }
    v
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= 5,
        "{target}: a seed corpus of {}",
        seeds.len()
    );
    seeds
}

fn replay(target: &str, mutations: usize, entry: fn(&[u8])) {
    let seeds = corpus(target);
    let mut rng = Rng(0x5EED ^ target.len() as u64);
    let mut run = 0;
    for (i, (name, seed)) in seeds.iter().enumerate() {
        let other = &seeds[(i + 1) % seeds.len()].1;
        let mut inputs = vec![seed.clone()];
        inputs.extend((0..mutations).map(|_| mutate(seed, other, &mut rng)));
        for (k, input) in inputs.iter().enumerate() {
            let outcome = std::panic::catch_unwind(|| entry(input));
            assert!(
                outcome.is_ok(),
                "{target}: panicked on seed {name}, mutation {k}: {:?}",
                String::from_utf8_lossy(input)
            );
            run += 1;
        }
    }
    println!("{target}: {run} inputs, no panic");
}

#[test]
fn spec_yaml() {
    replay("spec_yaml", 150, regops::fuzz_entry::spec_yaml);
}

#[test]
fn spec_toml() {
    replay("spec_toml", 150, regops::fuzz_entry::spec_toml);
}

#[test]
fn state_file() {
    replay("state_file", 300, regops::fuzz_entry::state_file);
}

#[test]
fn image_ref() {
    replay("image_ref", 500, regops::fuzz_entry::image_ref);
}

#[test]
fn www_authenticate() {
    replay(
        "www_authenticate",
        500,
        regops::fuzz_entry::www_authenticate,
    );
}

#[test]
fn label_selector() {
    replay(
        "label_selector",
        500,
        kube_test_server::selector::fuzz_entry,
    );
}
