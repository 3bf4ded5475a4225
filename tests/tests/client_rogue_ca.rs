//! Whoever answers for the CA URL (a rogue replica, a man in the middle of
//! plain http), against the engineer's `jit-ssh`:
//!
//! - it chooses the confirmation link `jit-ssh` hands to the browser. A
//!   link that is not a plain http(s) address — a browser option such as
//!   Chromium's `--renderer-cmd-prefix=CMD`, `file:`, `javascript:` — is
//!   shown but never given to `$BROWSER`; a plain one still opens;
//! - it can answer without end: the client stops reading at its cap;
//! - it can stall: the client gives up after its request timeout, and an
//!   audit export that stops sending gives up too.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use jit_ssh_e2e::fake_ca::{Answer, FakeCa};
use jit_ssh_e2e::{bin, run, with_max_rss};

/// `jit-ssh hosts` as alice against `ca`, whose sign-in answer carries
/// `link`; `$BROWSER` is a script that writes its arguments to `opened`.
fn sign_in_with_link(root: &Path, link: &str) -> (Output, std::path::PathBuf) {
    let ca = FakeCa::start();
    sign_in(root, &ca, link)
}

fn sign_in(root: &Path, ca: &FakeCa, link: &str) -> (Output, std::path::PathBuf) {
    let created = serde_json::json!({
        "id": "s1",
        "status": "pending_mfa",
        "mfa_url": link,
        "expires_at": "2099-01-01T00:00:00Z",
        "secret": "not-a-real-secret",
        "match_code": "K7Q-M3F",
    });
    ca.answer(
        "/v1/sessions",
        Answer::Body(serde_json::to_vec(&created).unwrap()),
    );
    let opened = root.join("opened");
    let _ = std::fs::remove_file(&opened);
    let browser = root.join("browser");
    std::fs::write(
        &browser,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}.tmp && mv {0}.tmp {0}\n",
            opened.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(alice(root, ca, &browser).args(["hosts", "--timeout", "5s"]));
    (out, opened)
}

/// `jit-ssh` as alice against `ca`, keeping its settings and saved
/// sign-ins in `root`, opening links with `browser`.
fn alice(root: &Path, ca: &FakeCa, browser: &Path) -> Command {
    let mut c = Command::new(bin("jit-ssh"));
    c.env("JIT_SSH_CA_URL", &ca.url)
        .env("JIT_SSH_USER", "alice")
        .env("JIT_SSH_CONFIG", root.join("none.toml"))
        .env("XDG_RUNTIME_DIR", root)
        .env("BROWSER", browser);
    c
}

/// What the browser script was given, once it ran (it runs beside the
/// client, which may exit first).
fn opened_with(opened: &Path, wait: Duration) -> Option<String> {
    let until = Instant::now() + wait;
    loop {
        if let Ok(args) = std::fs::read_to_string(opened) {
            return Some(args);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_link_that_is_not_a_plain_web_address_is_shown_but_never_opened() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("owned");
    for link in [
        format!("--renderer-cmd-prefix=touch {}", marker.display()),
        "file:///etc/passwd".to_owned(),
        "javascript:alert(1)".to_owned(),
    ] {
        let (out, opened) = sign_in_with_link(tmp.path(), &link);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(said.contains("not opened"), "{link}: {said}");
        assert!(
            opened_with(&opened, Duration::from_millis(500)).is_none(),
            "{link} was handed to the browser"
        );
        assert!(!marker.exists());
    }
}

#[test]
fn a_plain_link_is_opened() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, opened) = sign_in_with_link(tmp.path(), "http://localhost:8722/confirm/s1");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("not opened"), "{said}");
    assert_eq!(
        opened_with(&opened, Duration::from_secs(5)).as_deref(),
        Some("http://localhost:8722/confirm/s1\n"),
        "{said}"
    );
}

#[test]
fn an_endless_answer_is_cut_at_the_cap_announced_or_streamed() {
    let tmp = tempfile::tempdir().unwrap();
    for announced in [true, false] {
        let ca = FakeCa::start();
        ca.answer(
            "/v1/sessions",
            Answer::Endless {
                bytes: 3 << 30,
                announced,
            },
        );
        let (out, kib) = with_max_rss(alice(tmp.path(), &ca, Path::new("/bin/false")).args([
            "hosts",
            "--timeout",
            "5s",
        ]));
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains("larger than 64 MiB"), "{said}");
        // The cap itself, and the client around it: far from 3 GiB.
        assert!(
            kib < 160 * 1024,
            "peak RSS {kib} KiB (announced: {announced})"
        );
    }
}

#[test]
fn a_stalled_answer_ends_in_an_error_not_a_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = FakeCa::start();
    ca.answer("/v1/sessions", Answer::Stall(Duration::from_secs(90)));
    let started = Instant::now();
    let out =
        run(alice(tmp.path(), &ca, Path::new("/bin/false")).args(["hosts", "--timeout", "5s"]));
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(took < Duration::from_secs(60), "took {took:?}: {said}");
}

#[test]
fn an_audit_export_that_stops_sending_ends_in_an_error_not_a_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = FakeCa::start();
    // A sign-in the stand-in confirms at once, then an export that never
    // answers.
    let created = serde_json::json!({
        "id": "s1", "status": "pending_mfa", "mfa_url": "http://localhost:1/confirm/s1",
        "expires_at": "2099-01-01T00:00:00Z", "secret": "not-a-real-secret",
    });
    let active = serde_json::json!({
        "id": "s1", "user": "alice", "status": "active", "roles": ["auditor"],
        "expires_at": "2099-01-01T00:00:00Z",
    });
    ca.answer(
        "/v1/sessions",
        Answer::Body(serde_json::to_vec(&created).unwrap()),
    );
    ca.answer(
        "/v1/sessions/s1",
        Answer::Body(serde_json::to_vec(&active).unwrap()),
    );
    ca.answer("/v1/audit/export", Answer::Stall(Duration::from_secs(150)));
    let out_file = tmp.path().join("audit.jsonl");
    let started = Instant::now();
    let out = run(alice(tmp.path(), &ca, Path::new("/bin/false"))
        .args(["audit", "export", "-o"])
        .arg(&out_file)
        .args(["--timeout", "5s"]));
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(took < Duration::from_secs(100), "took {took:?}: {said}");
    assert!(!out_file.exists(), "a cut export left a file");
}
