//! `jit-ssh host sync`: installs a verified KRL that a real sshd enforces,
//! and keeps the old files (exiting non-zero) on a tampered KRL, a wrong
//! signature, a signature by an untrusted key, a truncated download, an
//! unreachable CA, a KRL OpenSSH would refuse, and a rollback.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jit_ssh_e2e::fake_ca::FakeCa;
use jit_ssh_e2e::{
    bin, have_tools, keygen, login_name, run, run_ok, ssh_with_cert, Sshd, SSH, SSHD, SSH_KEYGEN,
};

const NS: &str = "jit-ssh-krl@jit-ssh";

/// A KRL built by `jit-ssh-ca krl build` with `version` and `spec`.
fn krl(dir: &Path, ca_pub: &Path, version: u64, spec: &str) -> Vec<u8> {
    let spec_path = dir.join(format!("spec{version}"));
    std::fs::write(&spec_path, spec).unwrap();
    let out = dir.join(format!("krl{version}"));
    run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args([
                "krl",
                "build",
                "--krl-version",
                &version.to_string(),
                "--ca",
            ])
            .arg(ca_pub)
            .arg(&spec_path)
            .arg("-o")
            .arg(&out),
    );
    std::fs::read(out).unwrap()
}

/// `ssh-keygen -Y sign` over `data` with `key`, in the KRL namespace.
fn sign(dir: &Path, key: &Path, data: &[u8]) -> Vec<u8> {
    let f = dir.join("to-sign");
    std::fs::write(&f, data).unwrap();
    let _ = std::fs::remove_file(dir.join("to-sign.sig"));
    run_ok(
        Command::new(SSH_KEYGEN)
            .args(["-q", "-Y", "sign", "-n", NS, "-f"])
            .arg(key)
            .arg(&f),
    );
    std::fs::read(dir.join("to-sign.sig")).unwrap()
}

fn ca_keys_json(pub_path: &Path) -> String {
    let line = std::fs::read_to_string(pub_path).unwrap();
    format!("{{\"keys\":[\"{}\"]}}", line.trim())
}

fn sync(url: &str, dir: &Path, extra: &[&str]) -> Output {
    run(Command::new(bin("jit-ssh"))
        .args(["host", "sync", "--ca", url, "--dir"])
        .arg(dir)
        .args(extra))
}

fn snapshot(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(dir.join("revoked.krl")).unwrap(),
        std::fs::read(dir.join("ca-keys")).unwrap(),
    )
}

#[test]
fn host_sync_installs_only_what_verifies_and_sshd_enforces_it() {
    if !have_tools("host_sync", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca_key = keygen(root, "ca");
    let ca_pub = ca_key.with_extension("pub");
    let other_key = keygen(root, "not-the-ca");
    let fingerprint = run_ok(Command::new(SSH_KEYGEN).arg("-lf").arg(&ca_pub))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    let host_dir: PathBuf = root.join("etc-ssh-jit-ssh");

    let ca = FakeCa::start();
    ca.serve("/v1/ca-keys", ca_keys_json(&ca_pub));
    let v1 = krl(root, &ca_pub, 1, "");
    ca.serve("/v1/krl", v1.clone());
    ca.serve("/v1/krl.sig", sign(root, &ca_key, &v1));

    // First use needs the fingerprint; then the trusted keys are on disk.
    assert_eq!(sync(&ca.url, &host_dir, &[]).status.code(), Some(2));
    let out = sync(
        &ca.url,
        &host_dir,
        &["--bootstrap-fingerprint", &fingerprint],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // sshd with the installed files accepts two users' certificates.
    let account = login_name();
    let setup = run_ok(
        Command::new(bin("jit-ssh"))
            .args([
                "host",
                "setup",
                "--host",
                "db-1.dev",
                "--account",
                &account,
                "--dir",
            ])
            .arg(&host_dir),
    );
    assert!(setup.contains("RevokedKeys /"), "{setup}");
    let (alice, bob) = (keygen(root, "alice"), keygen(root, "bob"));
    let cert = |key: &Path, serial: &str| {
        run_ok(
            Command::new(SSH_KEYGEN)
                .args(["-q", "-s"])
                .arg(&ca_key)
                .args([
                    "-I",
                    "jit-ssh:test:g:1",
                    "-n",
                    &format!("{account}@db-1.dev"),
                    "-V",
                    "+1h",
                    "-z",
                    serial,
                ])
                .arg(key.with_extension("pub")),
        );
        PathBuf::from(format!("{}-cert.pub", key.display()))
    };
    let (alice_cert, bob_cert) = (cert(&alice, "1001"), cert(&bob, "1002"));
    let sshd = Sshd::start(
        root,
        &host_dir.join("ca-keys"),
        &host_dir.join("revoked.krl"),
        &host_dir.join("principals"),
    );
    assert!(
        ssh_with_cert(sshd.port(), &account, &alice, &alice_cert, &["true"])
            .status
            .success(),
        "{}",
        sshd.log()
    );

    // The CA revokes alice's serial: one sync later sshd refuses her, not bob.
    let v2 = krl(root, &ca_pub, 2, "serial: 1001\n");
    ca.serve("/v1/krl", v2.clone());
    ca.serve("/v1/krl.sig", sign(root, &ca_key, &v2));
    let out = sync(&ca.url, &host_dir, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !ssh_with_cert(sshd.port(), &account, &alice, &alice_cert, &["true"])
            .status
            .success()
    );
    assert!(
        ssh_with_cert(sshd.port(), &account, &bob, &bob_cert, &["true"])
            .status
            .success(),
        "{}",
        sshd.log()
    );

    // Every bad answer leaves the files as they were, with a reason.
    let good = snapshot(&host_dir);
    let v3 = krl(root, &ca_pub, 3, "serial: 1001\nserial: 1002\n");
    let mut tampered = v3.clone();
    *tampered.last_mut().unwrap() ^= 0x01;
    let dense_spec: String = (1..40_000u64)
        .step_by(2)
        .map(|s| format!("serial: {s}\n"))
        .collect();
    std::fs::write(root.join("dense.spec"), &dense_spec).unwrap();
    run_ok(
        Command::new(SSH_KEYGEN)
            .args(["-q", "-k", "-z", "4", "-s"])
            .arg(&ca_pub)
            .arg("-f")
            .arg(root.join("dense.krl"))
            .arg(root.join("dense.spec")),
    );
    let unreadable = std::fs::read(root.join("dense.krl")).unwrap();
    let v1_again = v1.clone();
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, &str)> = vec![
        (
            "tampered KRL",
            tampered,
            sign(root, &ca_key, &v3),
            "does not verify",
        ),
        (
            "wrong signature",
            v3.clone(),
            sign(root, &ca_key, &v2),
            "does not verify",
        ),
        (
            "untrusted signer",
            v3.clone(),
            sign(root, &other_key, &v3),
            "does not verify",
        ),
        (
            "truncated download",
            v3[..v3.len() / 2].to_vec(),
            sign(root, &ca_key, &v3),
            "does not verify",
        ),
        (
            "KRL OpenSSH refuses",
            unreadable.clone(),
            sign(root, &ca_key, &unreadable),
            "OpenSSH would refuse",
        ),
        (
            "rollback",
            v1_again.clone(),
            sign(root, &ca_key, &v1_again),
            "rollback",
        ),
    ];
    for (what, body, sig, needle) in cases {
        ca.serve("/v1/krl", body);
        ca.serve("/v1/krl.sig", sig);
        let out = sync(&ca.url, &host_dir, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: sync succeeded");
        assert!(
            err.contains(needle) && err.contains("left as they were"),
            "{what}: {err}"
        );
        assert_eq!(snapshot(&host_dir), good, "{what}: files changed");
    }
    // A CA key set sharing nothing with the trusted one is refused.
    ca.serve(
        "/v1/ca-keys",
        ca_keys_json(&other_key.with_extension("pub")),
    );
    let out = sync(&ca.url, &host_dir, &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("share none"));
    assert_eq!(snapshot(&host_dir), good);
    // Unreachable CA, with an old KRL: non-zero and a staleness warning.
    let url = ca.url.clone();
    drop(ca);
    let out = sync(&url, &host_dir, &["--max-age", "0s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("warning: the KRL held is"), "{err}");
    assert_eq!(snapshot(&host_dir), good);
    // And sshd still enforces the last good KRL.
    assert!(
        !ssh_with_cert(sshd.port(), &account, &alice, &alice_cert, &["true"])
            .status
            .success()
    );
}
