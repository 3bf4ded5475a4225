//! Certificates and detached signatures per second through a SoftHSM2
//! token (the PKCS#11 signer) against the key-file signer, on 1, 2 and 4
//! threads sharing one signer. Prints a table.
//!
//! `cargo bench -p jit-ssh-ca --bench hsm_sign` (needs Debian's softhsm2;
//! says so and stops without it).
//!
//! Both signers verify every signature they make before returning it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jit_ssh_ca::names::{AccountName, GrantId, HostName, Serial, UserName};
use jit_ssh_ca::profile::{CertProfile, CertSpec};
use jit_ssh_ca::signer::pkcs11::{self, Pkcs11Signer, TokenKeyConfig};
use jit_ssh_ca::signer::{CaSigner, FileSigner};
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, PrivateKey};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn token(dir: &Path) -> TokenKeyConfig {
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\n", tokens.display()),
    )
    .unwrap();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "bench"])
        .args(["--pin", "1234", "--so-pin", "5678"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let pin_file = dir.join("pin");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&pin_file)
            .unwrap();
        std::io::Write::write_all(&mut f, b"1234\n").unwrap();
    }
    let cfg = TokenKeyConfig {
        module: MODULE.into(),
        token_label: "bench".into(),
        key_label: "ca".into(),
        pin_file,
    };
    pkcs11::generate(&cfg).unwrap();
    cfg
}

/// Signatures per second with `threads` threads for `time`.
fn rate(
    signer: &Arc<dyn CaSigner>,
    threads: usize,
    time: Duration,
    op: fn(&dyn CaSigner, u64),
) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let s = signer.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while start.elapsed() < time {
                    op(s.as_ref(), (t as u64) << 32 | (n + 1));
                    n += 1;
                }
                n
            })
        })
        .collect();
    let n: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    n as f64 / start.elapsed().as_secs_f64()
}

fn certificate(s: &dyn CaSigner, serial: u64) {
    thread_local! {
        static USER: PrivateKey = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
    }
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
    let (b, _) = USER.with(|u| {
        CertProfile::default()
            .build(
                &spec,
                u.public_key(),
                Serial::new(serial).unwrap(),
                1_800_000_000,
            )
            .unwrap()
    });
    std::hint::black_box(s.sign(b).unwrap());
}

fn detached(s: &dyn CaSigner, _: u64) {
    std::hint::black_box(
        s.sign_detached(
            "jit-ssh-audit@jit-ssh",
            b"jit-ssh-audit-checkpoint-v1\n1\nabc\n",
        )
        .unwrap(),
    );
}

fn main() {
    if !Path::new(MODULE).exists() {
        eprintln!("hsm_sign: {MODULE} missing (apt-get install -y softhsm2); nothing measured");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = token(dir.path());
    let hsm: Arc<dyn CaSigner> = Arc::new(Pkcs11Signer::open(&cfg).unwrap());
    let file: Arc<dyn CaSigner> = Arc::new(FileSigner::new(
        PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap(),
    ));
    let time = Duration::from_secs(2);
    println!("| signer | what | threads | per second |");
    println!("|---|---|---:|---:|");
    for (name, signer) in [("key file", &file), ("SoftHSM2 (PKCS#11)", &hsm)] {
        for (what, op) in [
            ("certificate", certificate as fn(&dyn CaSigner, u64)),
            ("SSHSIG", detached),
        ] {
            for threads in [1, 2, 4] {
                let r = rate(signer, threads, time, op);
                println!("| {name} | {what} | {threads} | {r:.0} |");
            }
        }
    }
}
