//! `jit-ssh-ca sign` (offline issuance) after a key rotation: the data
//! directory's rotation state names the signing key, and a certificate
//! from any other key (the previous one, still on disk) is refused before
//! anything is written to the audit log.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jit_ssh_ca::rotation_state::{make_key, RoleState, RotationFile};

fn sign(data: &Path, key: &Path, user_pub: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jit-ssh-ca"))
        .arg("sign")
        .arg("--data")
        .arg(data)
        .arg("--ca-key")
        .arg(key)
        .args([
            "--user", "alice", "--host", "db-1.dev", "--as", "oncall", "--ttl", "5m", "--reason",
            "test",
        ])
        .arg(user_pub)
        .output()
        .unwrap()
}

#[test]
fn offline_sign_uses_the_key_the_rotation_made_active() {
    let tmp = tempfile::tempdir().unwrap();
    let old = jit_ssh_ca::ca_key::init(&tmp.path().join("ca"), None).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let user =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let user_pub = tmp.path().join("alice.pub");
    std::fs::write(&user_pub, user.public_key().to_openssh().unwrap()).unwrap();

    // No rotation yet: the config's key signs.
    let out = sign(&data, &old.key_path, &user_pub);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The next key is active now.
    let (next, _) = make_key(&data, "user", 1_800_000_000, None).unwrap();
    RotationFile {
        version: 0,
        user: Some(RoleState {
            active: next.clone(),
            staged: None,
            retiring: None,
        }),
        host: None,
    }
    .save(&data)
    .unwrap();
    let records = || {
        use jit_ssh_audit::AuditLog;
        jit_ssh_audit_disk::DiskAuditLog::open(&data.join("audit"))
            .unwrap()
            .verify()
            .unwrap()
            .records
    };
    let before = records();
    let cert: PathBuf = tmp.path().join("alice-cert.pub");
    let first = std::fs::read(&cert).unwrap();
    let out = sign(&data, &old.key_path, &user_pub);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("not the CA's signing key") && err.contains(&next.display().to_string()),
        "{err}"
    );
    assert_eq!(records(), before);
    assert_eq!(std::fs::read(&cert).unwrap(), first);

    let out = sign(&data, &next, &user_pub);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = ssh_key::Certificate::from_openssh(&std::fs::read_to_string(&cert).unwrap()).unwrap();
    let active = jit_ssh_ca::ca_key::load(&next, None).unwrap();
    assert_eq!(c.signature_key(), active.public_key().key_data());
}
