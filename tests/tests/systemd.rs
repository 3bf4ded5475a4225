//! The shipped systemd units pass `systemd-analyze verify`, and their
//! sandboxing keeps systemd's own exposure score low.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use jit_ssh_e2e::{bin, have_tools, run};

const ANALYZE: &str = "/usr/bin/systemd-analyze";

fn units() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd")
}

/// Copies `name` into `dir` with ExecStart pointing at the built binary
/// (verify checks that the executable exists).
fn prepared(dir: &Path, name: &str, binary: &str) -> PathBuf {
    let text = std::fs::read_to_string(units().join(name)).unwrap();
    let path = dir.join(name);
    std::fs::write(
        &path,
        text.replace(
            &format!("/usr/local/bin/{binary}"),
            &bin(binary).display().to_string(),
        ),
    )
    .unwrap();
    path
}

fn verify(paths: &[&Path], unit: &str) {
    let out = run(Command::new(ANALYZE).arg("verify").args(paths));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{err}"
    );
    assert!(
        !err.contains(unit),
        "systemd-analyze verify complained:\n{err}"
    );
}

/// systemd's "Overall exposure level" for `unit` from `security --offline`.
fn exposure(path: &Path, unit: &str) -> f64 {
    let out = run(Command::new(ANALYZE)
        .args(["security", "--offline=yes"])
        .arg(path));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.split(&format!("{unit}: ")).nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"))
}

#[test]
fn the_ca_unit_verifies_and_is_hardened() {
    if !have_tools("systemd_unit", &[ANALYZE]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = prepared(tmp.path(), "jit-ssh-ca.service", "jit-ssh-ca");
    verify(&[&path], "jit-ssh-ca.service");
    let score = exposure(&path, "jit-ssh-ca.service");
    assert!(score <= 2.0, "exposure level {score} (want ≤ 2.0, \"OK\")");
    let unit = std::fs::read_to_string(&path).unwrap();
    for needle in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "UMask=0077",
    ] {
        assert!(unit.contains(needle), "unit lacks {needle:?}");
    }
}

#[test]
fn the_host_sync_units_verify_and_are_hardened() {
    if !have_tools("systemd_host_sync", &[ANALYZE]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let service = prepared(tmp.path(), "jit-ssh-host-sync.service", "jit-ssh-host");
    let timer = tmp.path().join("jit-ssh-host-sync.timer");
    std::fs::copy(units().join("jit-ssh-host-sync.timer"), &timer).unwrap();
    verify(&[&service, &timer], "jit-ssh-host-sync");
    assert!(std::fs::read_to_string(&timer)
        .unwrap()
        .contains("OnUnitActiveSec=30s"));
    let score = exposure(&service, "jit-ssh-host-sync.service");
    assert!(score <= 3.0, "exposure level {score}");
}

#[test]
fn the_host_recorder_units_verify_and_are_hardened() {
    if !have_tools("systemd_host_recorder", &[ANALYZE]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let service = prepared(tmp.path(), "jit-ssh-host-recorder.service", "jit-ssh-host");
    let socket = tmp.path().join("jit-ssh-host-recorder.socket");
    std::fs::copy(units().join("jit-ssh-host-recorder.socket"), &socket).unwrap();
    verify(&[&service, &socket], "jit-ssh-host-recorder");
    let sock = std::fs::read_to_string(&socket).unwrap();
    for needle in [
        "ListenStream=/run/jit-ssh/recorder.sock",
        "SocketMode=0666",
        "DirectoryMode=0755",
    ] {
        assert!(sock.contains(needle), "socket unit lacks {needle:?}");
    }
    let unit = std::fs::read_to_string(&service).unwrap();
    for needle in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/jit-ssh/recordings\n",
        "UMask=0077",
    ] {
        assert!(unit.contains(needle), "unit lacks {needle:?}");
    }
    let score = exposure(&service, "jit-ssh-host-recorder.service");
    eprintln!("recorder exposure level {score}");
    assert!(score <= 3.0, "exposure level {score} (2.6 when written)");
}
