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

/// What an operator runs on a host whose CA refused a session: the
/// listing names it with the CA's reason, `--retry` clears the mark and
/// keeps the recording, and a session that was not refused is not
/// "retried".
#[test]
fn recordings_lists_a_refused_session_with_the_cas_reason_and_retry_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    for id in ["s-ok", "s-no"] {
        std::fs::create_dir_all(spool.join(id)).unwrap();
        std::fs::write(spool.join(id).join("chunks"), [0u8; 100]).unwrap();
        std::fs::write(spool.join(id).join("ended"), b"").unwrap();
    }
    std::fs::write(
        spool.join("s-no").join("refused"),
        r#"{"refused_at":1,"status":403,"code":"forbidden","message":"grant g already has 3 recorded sessions","chunk":0}"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = host()
            .arg("recordings")
            .arg("--spool")
            .arg(&spool)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, text, err) = run(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        text.contains("s-no  refused ")
            && text.contains("(403 forbidden): grant g already has 3 recorded sessions"),
        "{text}"
    );
    assert!(text.contains("s-ok  ended, waiting for the CA"), "{text}");
    let (_, json, _) = run(&["--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["session"], "s-no");
    assert_eq!(v[0]["state"], "refused");
    assert_eq!(v[0]["refused"]["code"], "forbidden");

    let (code, _, err) = run(&["--retry", "s-ok"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the CA has not refused it"), "{err}");
    let (code, _, err) = run(&["--retry", "s-no"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!spool.join("s-no").join("refused").exists());
    assert!(spool.join("s-no").join("chunks").exists());
}
