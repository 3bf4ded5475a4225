//! The shipped systemd unit passes `systemd-analyze verify`, and its
//! sandboxing keeps systemd's own exposure score low.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use jit_ssh_e2e::{bin, have_tools, run};

const ANALYZE: &str = "/usr/bin/systemd-analyze";

#[test]
fn the_ca_unit_verifies_and_is_hardened() {
    if !have_tools("systemd_unit", &[ANALYZE]) {
        return;
    }
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/jit-ssh-ca.service"),
    )
    .unwrap();
    // verify checks that ExecStart exists: point it at the built binary.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("jit-ssh-ca.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/jit-ssh-ca",
            &bin("jit-ssh-ca").display().to_string(),
        ),
    )
    .unwrap();

    let out = run(Command::new(ANALYZE).arg("verify").arg(&path));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{err}"
    );
    assert!(
        !err.contains("jit-ssh-ca.service"),
        "systemd-analyze verify complained:\n{err}"
    );

    let out = run(Command::new(ANALYZE)
        .args(["security", "--offline=yes"])
        .arg(&path));
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("jit-ssh-ca.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(
        score <= 2.0,
        "exposure level {score} (want ≤ 2.0, \"OK\"):\n{text}"
    );
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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");
    let tmp = tempfile::tempdir().unwrap();
    let service = std::fs::read_to_string(dir.join("jit-ssh-host-sync.service"))
        .unwrap()
        .replace(
            "/usr/local/bin/jit-ssh",
            &bin("jit-ssh").display().to_string(),
        );
    let path = tmp.path().join("jit-ssh-host-sync.service");
    std::fs::write(&path, service).unwrap();
    let timer = tmp.path().join("jit-ssh-host-sync.timer");
    std::fs::copy(dir.join("jit-ssh-host-sync.timer"), &timer).unwrap();

    let out = run(Command::new(ANALYZE).arg("verify").arg(&path).arg(&timer));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{err}"
    );
    assert!(
        !err.contains("jit-ssh-host-sync"),
        "systemd-analyze verify complained:\n{err}"
    );
    let timer_text = std::fs::read_to_string(&timer).unwrap();
    assert!(timer_text.contains("OnUnitActiveSec=30s"));

    let out = run(Command::new(ANALYZE)
        .args(["security", "--offline=yes"])
        .arg(&path));
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("jit-ssh-host-sync.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(score <= 3.0, "exposure level {score}:\n{text}");
}
