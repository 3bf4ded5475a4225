//! The `jit-ssh-ca` binary's own behaviour at its edges: refusals and exit
//! codes an operator sees. (Also makes `cargo test --workspace` build the
//! binary that the end-to-end tests in tests/ run.)

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn ca() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jit-ssh-ca"))
}

#[test]
fn init_makes_a_private_key_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let out = ca().args(["init", "--dir"]).arg(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = dir.join("ca_key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let before = std::fs::read(&key).unwrap();

    let out = ca().args(["init", "--dir"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    assert_eq!(std::fs::read(&key).unwrap(), before, "the CA key changed");
}

#[test]
fn init_with_a_passphrase_and_sign_needs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let pass = tmp.path().join("pass");
    std::fs::write(&pass, "s3cret phrase\n").unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dir = tmp.path().join("ca");
    let out = ca()
        .args(["init", "--dir"])
        .arg(&dir)
        .arg("--passphrase-file")
        .arg(&pass)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join("ca_key")).unwrap();
    assert!(ssh_key::PrivateKey::from_openssh(&text)
        .unwrap()
        .is_encrypted());

    let user =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let pubkey = tmp.path().join("u.pub");
    std::fs::write(&pubkey, user.public_key().to_openssh().unwrap()).unwrap();
    std::fs::create_dir(tmp.path().join("data")).unwrap();
    let sign = |extra: &[&std::ffi::OsStr]| {
        ca().arg("sign")
            .arg("--data")
            .arg(tmp.path().join("data"))
            .arg("--ca-key")
            .arg(dir.join("ca_key"))
            .args([
                "--user", "u", "--host", "h.dev", "--as", "oncall", "--ttl", "5m", "--reason",
                "test",
            ])
            .args(extra)
            .arg(&pubkey)
            .output()
            .unwrap()
    };
    let out = sign(&[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--passphrase-file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sign(&["--passphrase-file".as_ref(), pass.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tmp.path().join("u-cert.pub").exists());
}

#[test]
fn a_ca_key_readable_by_others_is_refused_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    assert!(ca()
        .args(["init", "--dir"])
        .arg(&dir)
        .status()
        .unwrap()
        .success());
    std::fs::set_permissions(dir.join("ca_key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::create_dir(tmp.path().join("data")).unwrap();
    let out = ca()
        .arg("sign")
        .arg("--data")
        .arg(tmp.path().join("data"))
        .arg("--ca-key")
        .arg(dir.join("ca_key"))
        .args([
            "--user", "u", "--host", "h.dev", "--as", "oncall", "--ttl", "5m", "--reason", "test",
        ])
        .arg(dir.join("ca_key.pub"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("readable by group or others") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn krl_build_reports_the_bad_line_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    assert!(ca()
        .args(["init", "--dir"])
        .arg(&dir)
        .status()
        .unwrap()
        .success());
    let spec = tmp.path().join("spec");
    std::fs::write(&spec, "serial: 5\nserial: five\n").unwrap();
    let out_path = tmp.path().join("out.krl");
    let out = ca()
        .args(["krl", "build", "--ca"])
        .arg(dir.join("ca_key.pub"))
        .arg(&spec)
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(":2: invalid serial"),
        "{err}"
    );
    assert!(!out_path.exists());
}

#[test]
fn krl_show_output_builds_the_same_krl() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    assert!(ca()
        .args(["init", "--dir"])
        .arg(&dir)
        .status()
        .unwrap()
        .success());
    let spec = tmp.path().join("spec");
    std::fs::write(
        &spec,
        "serial: 7\nserial: 100-5000\nid: jit-ssh:alice:g:9\n",
    )
    .unwrap();
    let build = |spec: &std::path::Path, out: &std::path::Path| {
        assert!(ca()
            .args(["krl", "build", "--ca"])
            .arg(dir.join("ca_key.pub"))
            .arg(spec)
            .arg("-o")
            .arg(out)
            .status()
            .unwrap()
            .success());
    };
    let first = tmp.path().join("a.krl");
    build(&spec, &first);
    let shown = ca().args(["krl", "show"]).arg(&first).output().unwrap();
    let shown_spec = tmp.path().join("shown");
    std::fs::write(&shown_spec, &shown.stdout).unwrap();
    let second = tmp.path().join("b.krl");
    build(&shown_spec, &second);
    let a = jit_ssh_krl::Krl::decode(&std::fs::read(&first).unwrap()).unwrap();
    let b = jit_ssh_krl::Krl::decode(&std::fs::read(&second).unwrap()).unwrap();
    assert_eq!(
        a.cert_sections().collect::<Vec<_>>(),
        b.cert_sections().collect::<Vec<_>>()
    );
}
