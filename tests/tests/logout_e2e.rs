//! `jit-ssh logout` ends the sign-in at the CA (session 11's review):
//! before, it only deleted the local token file, so a copy of the token
//! (auditors read the audit log and recordings with it) worked until its
//! 15-minute end. A CA that cannot be reached is said, and the local file
//! still goes.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use jit_ssh_e2e::world::World;
use jit_ssh_e2e::{have_login_tools, run};

/// The saved sign-in files under the world's `$XDG_RUNTIME_DIR`.
fn saved(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("jit-ssh"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("session-")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Signs in (through `jit-ssh audit`) and returns a copy of the token.
fn sign_in_and_copy_token(w: &World) -> String {
    let out = run(w.jit_ssh().args(["audit", "--json", "--timeout", "60s"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = saved(&w.root);
    assert_eq!(files.len(), 1, "{files:?}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    saved["token"].as_str().unwrap().to_owned()
}

/// The HTTP status the CA answers `GET /v1/audit` with `token`.
fn audit_status(ca_url: &str, token: &str) -> String {
    let out = run(Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{}/v1/audit", ca_url.trim_end_matches('/')),
    ]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn logout_ends_the_sign_in_at_the_ca_and_says_when_it_cannot() {
    if !have_login_tools("logout_e2e") {
        return;
    }
    let mut w = World::start();
    let copy = sign_in_and_copy_token(&w);
    assert_eq!(audit_status(&w.ca.url, &copy), "200");

    let out = run(w.jit_ssh().arg("logout"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(saved(&w.root).is_empty(), "the local file stays");
    // The copy is useless at once, not in 15 minutes.
    assert_eq!(audit_status(&w.ca.url, &copy), "401", "{err}");

    // Signed in again, then the CA is gone: logout says the sign-in was
    // not ended there, and still deletes the local file.
    let copy = sign_in_and_copy_token(&w);
    w.ca.stop();
    let out = run(w.jit_ssh().arg("logout"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(saved(&w.root).is_empty(), "the local file stays");
    assert!(
        err.contains("could not end the sign-in at the CA") && err.contains(&w.ca.url),
        "{err}"
    );
    assert!(!err.contains(&copy), "the token is never printed: {err}");
}
