//! Time to produce a fresh, signed KRL after one revocation when 100,000
//! unexpired revoked certificates are already in it. Prints a table.
//!
//! `cargo bench -p jit-ssh-ca --bench krl_publish`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use jit_ssh_audit_disk::DiskAuditLog;
use jit_ssh_ca::config;
use jit_ssh_ca::service::Ca;
use jit_ssh_ca::signer::FileSigner;
use jit_ssh_ca::store::{RevokedSerial, SledStore};

const CONFIG: &str = r#"
listen = "127.0.0.1:8722"
public_url = "http://localhost:8722"
data_dir = "unused"
ca_key = { kind = "file", path = "unused" }
"#;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config::parse(CONFIG, "bench").unwrap();
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let store = Arc::new(SledStore::open(&dir.path().join("state")).unwrap());
    let audit = Arc::new(DiskAuditLog::open(&dir.path().join("audit")).unwrap());
    let ca = Ca::new(cfg, Arc::new(FileSigner::new(key)), store.clone(), audit).unwrap();

    let far = 4_000_000_000u64;
    let mut rng = rand::thread_rng();
    let existing: Vec<RevokedSerial> = (0..100_000)
        .map(|_| RevokedSerial {
            serial: rng.gen_range(1..=u64::MAX),
            valid_before: far,
        })
        .collect();
    ca.add_revoked(&existing).unwrap();
    let first = ca.krl().unwrap();

    let rounds = 20;
    let mut fresh = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..rounds {
        ca.add_revoked(&[RevokedSerial {
            serial: rng.gen_range(1..=u64::MAX),
            valid_before: far,
        }])
        .unwrap();
        let t = Instant::now();
        let k = ca.krl().unwrap();
        fresh.push(t.elapsed());
        assert!(k.version > first.version);
        let t = Instant::now();
        ca.krl().unwrap();
        cached.push(t.elapsed());
    }
    fresh.sort();
    cached.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("| KRL with 100,000 revoked serials, after one more revocation | p50 ms | max ms |");
    println!("|-------------------------------------------------------------|--------|--------|");
    println!(
        "| fresh: plan, encode, sign (SSHSIG)                          | {:6.2} | {:6.2} |",
        ms(fresh[rounds / 2]),
        ms(fresh[rounds - 1])
    );
    println!(
        "| cached (same version)                                       | {:6.3} | {:6.3} |",
        ms(cached[rounds / 2]),
        ms(cached[rounds - 1])
    );
    println!(
        "\nKRL size {} bytes (target: fresh ≤ 10 ms)",
        first.bytes.len()
    );
}
