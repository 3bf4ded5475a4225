//! Certificates per second on one core, against `ssh-keygen -s` run once
//! per certificate, measured in the same run. Prints a table.
//!
//! `cargo bench -p jit-ssh-ca --bench sign`
//!
//! Our figure includes the verification of every fresh signature
//! (`FileSigner::sign` checks what it signed; ssh-key's own check runs
//! only in debug builds): that check stays.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use jit_ssh_audit::{Actor, IssuedVia};
use jit_ssh_audit_disk::DiskAuditLog;
use jit_ssh_ca::issue::{issue, IssueRequest};
use jit_ssh_ca::names::{AccountName, GrantId, HostName, Reason, Serial, UserName};
use jit_ssh_ca::profile::{CertProfile, CertSpec};
use jit_ssh_ca::signer::{CaSigner, FileSigner};
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, PrivateKey};

fn main() {
    let ca = FileSigner::new(PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap());
    let user = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
    let spec = CertSpec {
        user: UserName::parse("alice").unwrap(),
        host: HostName::parse("db-1.prod").unwrap(),
        account: AccountName::parse("postgres").unwrap(),
        grant: GrantId::random(&mut rand::rngs::OsRng),
        ttl: Duration::from_secs(600),
        source_address: vec![],
        force_command: None,
        extensions: vec![],
        break_glass: false,
    };
    let profile = CertProfile::default();
    let now = 1_800_000_000;

    // Warm up, then time profile build + sign (+ verify) on this thread.
    let n = 20_000u64;
    for i in 1..=1000 {
        let (b, _) = profile
            .build(&spec, user.public_key(), Serial::new(i).unwrap(), now)
            .unwrap();
        ca.sign(b).unwrap();
    }
    let start = Instant::now();
    for i in 1..=n {
        let (b, _) = profile
            .build(&spec, user.public_key(), Serial::new(i).unwrap(), now)
            .unwrap();
        std::hint::black_box(ca.sign(b).unwrap());
    }
    let ours = start.elapsed();

    // Full offline issuance: serial check, sign, durable audit record.
    let dir = tempfile::tempdir().unwrap();
    let audit = DiskAuditLog::open(dir.path()).unwrap();
    let reason = Reason::parse("bench").unwrap();
    let m = 2_000u64;
    let start = Instant::now();
    for _ in 0..m {
        let req = IssueRequest {
            spec: &spec,
            public_key: user.public_key(),
            reason: &reason,
            actor: Actor::System,
            via: IssuedVia::OfflineSign,
            session: None,
            preceding: vec![],
        };
        issue(&ca, &audit, &profile, req, now).unwrap();
    }
    let issued = start.elapsed();

    // Baseline: ssh-keygen -s, one process per certificate.
    let tmp = tempfile::tempdir().unwrap();
    let ca_path = tmp.path().join("ca");
    let key_path = tmp.path().join("user");
    for p in [&ca_path, &key_path] {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(p)
            .status();
        assert!(
            ok.map(|s| s.success()).unwrap_or(false),
            "ssh-keygen is needed for the baseline"
        );
    }
    let k = 100u64;
    let start = Instant::now();
    for i in 1..=k {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&ca_path)
            .args([
                "-I",
                "bench",
                "-n",
                "postgres@db-1.prod",
                "-V",
                "+10m",
                "-z",
                &i.to_string(),
            ])
            .arg(key_path.with_extension("pub"))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let theirs = start.elapsed();

    let row = |name: &str, count: u64, d: Duration| {
        println!(
            "| {name:<52} | {count:>7} | {:>10.1} µs | {:>10.0}/s |",
            d.as_secs_f64() * 1e6 / count as f64,
            count as f64 / d.as_secs_f64()
        );
    };
    println!("| what (one core)                                      |   certs |   per cert |       rate |");
    println!("|------------------------------------------------------|---------|------------|------------|");
    row("jit-ssh profile + sign + verify (ssh-key)", n, ours);
    row("jit-ssh issue(): + serial check + durable audit", m, issued);
    row("baseline: ssh-keygen -s, one process per cert", k, theirs);
    println!(
        "\nsigning: {:.0}x the certificates/s of ssh-keygen -s (target ≥ 12,000/s)",
        (n as f64 / ours.as_secs_f64()) / (k as f64 / theirs.as_secs_f64())
    );
}
