//! The `jit-ssh` binary starts and describes itself. (Also makes
//! `cargo test --workspace` build the binary for the end-to-end tests.)

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn prints_its_version() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jit-ssh"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("jit-ssh "));
}
