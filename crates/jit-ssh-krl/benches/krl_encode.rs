//! KRL generation for 1,000,000 serials, sparse (random 64-bit) and dense
//! (random in 1..4,000,000), against `ssh-keygen -k` on the same spec
//! file, measured in the same run. Prints a table.
//!
//! `cargo bench -p jit-ssh-krl --bench krl_encode`
//! (set KRL_BENCH_SKIP_SSH_KEYGEN=1 to skip the ~50 s baseline)
//!
//! "ours" times what `jit-ssh-ca krl build` does in memory: parse the spec
//! text, build the set, plan and encode. "readable" says whether OpenSSH's
//! reader (mirrored by our decoder) accepts the bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use jit_ssh_krl::{spec, CaScope, DecodeError, Krl, MAX_BIGNUM_BYTES};
use rand::{Rng, SeedableRng};
use ssh_key::PublicKey;

const CA: &str = include_str!("../tests/data/test-ca.pub");

fn ours(spec_text: &str) -> (Duration, Vec<u8>) {
    let ca = CaScope::of(&PublicKey::from_openssh(CA.trim()).unwrap());
    let start = Instant::now();
    let mut krl = Krl::new();
    spec::apply(&mut krl, Some(&ca), spec_text, "bench").unwrap();
    let bytes = krl.encode().unwrap();
    (start.elapsed(), bytes)
}

fn theirs(spec_text: &str) -> Option<(Duration, Vec<u8>)> {
    if std::env::var("KRL_BENCH_SKIP_SSH_KEYGEN").is_ok() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.pub");
    std::fs::write(&ca, CA).unwrap();
    let spec_path = tmp.path().join("spec");
    std::fs::write(&spec_path, spec_text).unwrap();
    let out = tmp.path().join("krl");
    let start = Instant::now();
    let st = Command::new("ssh-keygen")
        .args(["-q", "-k", "-s"])
        .arg(&ca)
        .arg("-f")
        .arg(&out)
        .arg(&spec_path)
        .status()
        .ok()?;
    let took = start.elapsed();
    st.success().then(|| (took, std::fs::read(&out).unwrap()))
}

fn main() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let sparse: Vec<u64> = (0..1_000_000)
        .map(|_| rng.gen_range(1..=u64::MAX))
        .collect();
    let mut dense = HashSet::new();
    while dense.len() < 1_000_000 {
        dense.insert(rng.gen_range(1..4_000_000u64));
    }
    let dense: Vec<u64> = dense.into_iter().collect();

    println!("| set (1,000,000 serials)   | tool          |      time |      bytes | readable by OpenSSH |");
    println!("|---------------------------|---------------|-----------|------------|---------------------|");
    for (name, serials, best_readable) in [
        // A lone 64-bit serial costs 8 bytes in any readable encoding.
        ("sparse random 64-bit", &sparse, 8 * 1_000_000 + 5),
        // Bitmaps over 1..4,000,000 in 2,048-byte pieces, 17 header bytes each.
        ("dense in 1..4,000,000", &dense, {
            let span = 4_000_000u64;
            let pieces = span.div_ceil(MAX_BIGNUM_BYTES as u64 * 8);
            span / 8 + pieces * 17
        }),
    ] {
        let text: String = serials.iter().map(|s| format!("serial: {s}\n")).collect();
        let (t, bytes) = ours(&text);
        let readable = Krl::decode(&bytes).is_ok();
        println!(
            "| {name:<25} | jit-ssh-ca    | {:>7.0}ms | {:>10} | {:<19} |",
            t.as_secs_f64() * 1e3,
            bytes.len(),
            if readable { "yes" } else { "NO" }
        );
        match theirs(&text) {
            Some((t, bytes)) => {
                let readable = match Krl::decode(&bytes) {
                    Ok(_) => "yes",
                    Err(DecodeError::BignumTooLarge { .. }) => "NO: bignum too big",
                    Err(_) => "NO",
                };
                println!(
                    "| {name:<25} | ssh-keygen -k | {:>7.0}ms | {:>10} | {readable:<19} |",
                    t.as_secs_f64() * 1e3,
                    bytes.len()
                );
            }
            None => println!(
                "| {name:<25} | ssh-keygen -k |   skipped |            |                     |"
            ),
        }
        println!("| {name:<25} | best readable |           | {best_readable:>10} | (bound, estimated)  |");
    }
}
