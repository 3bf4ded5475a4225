//! `jit-ssh-ca sign` after a killed run: the temporary certificate file
//! the killed process left is removed, and a symlink planted where a
//! temporary file would go is never written through.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn ca() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jit-ssh-ca"))
}

#[test]
fn sign_cleans_up_after_a_killed_run_and_follows_no_planted_link() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(ca()
        .args(["init", "--dir"])
        .arg(dir.join("ca"))
        .status()
        .unwrap()
        .success());
    std::fs::create_dir(dir.join("data")).unwrap();
    let user =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    std::fs::write(dir.join("u.pub"), user.public_key().to_openssh().unwrap()).unwrap();

    // A run killed with SIGKILL between writing its temporary file and
    // renaming it: its process is gone, its file is not.
    let mut killed = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = killed.id();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let leftover = dir.join(format!(".u-cert.pub.tmp.{pid}"));
    std::fs::write(&leftover, "half a certificate").unwrap();
    // A link planted at the next "predictable" temporary name.
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    for guess in 1..=50 {
        let _ = std::os::unix::fs::symlink(
            &victim,
            dir.join(format!(".u-cert.pub.tmp.{}", pid + guess)),
        );
    }

    let out = ca()
        .arg("sign")
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--ca-key")
        .arg(dir.join("ca/ca_key"))
        .args([
            "--user", "u", "--host", "h.dev", "--as", "oncall", "--ttl", "5m", "--reason", "test",
        ])
        .arg(dir.join("u.pub"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = std::fs::read_to_string(dir.join("u-cert.pub")).unwrap();
    assert!(
        cert.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{cert}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        !leftover.exists(),
        "the killed run's temporary file is still there"
    );
    // No temporary file of this run is left (they are `PID.RANDOM`); the
    // planted links were neither followed nor used.
    let ours: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix(".u-cert.pub.tmp.")
                .is_some_and(|rest| rest.contains('.'))
        })
        .collect();
    assert!(ours.is_empty(), "left behind: {ours:?}");
}
