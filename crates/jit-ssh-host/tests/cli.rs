//! `jit-ssh-host` as systemd and an operator run it: refusals that need no
//! CA, with their exit codes. (Also makes `cargo test` build the binary
//! the end-to-end tests run.)

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn host() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jit-ssh-host"))
}

#[test]
fn usage_errors_exit_2_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["sync", "--ca-url", "http://ca.example.invalid"],
            "refusing plain http",
        ),
        (
            &["sync", "--ca-url", "http://localhost:9", "--max-age", "30s"],
            "--max-age must be at least 1m",
        ),
        (
            &["sync", "--ca-url", "http://localhost:9"],
            "holds no trusted CA keys",
        ),
    ];
    for (args, needle) in cases {
        let out = host()
            .args(args)
            .arg("--dir")
            .arg(dir.path().join("etc"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(err.contains("jit-ssh-host: next:"), "{err}");
    }
}
