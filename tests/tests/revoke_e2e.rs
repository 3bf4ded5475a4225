//! Revocation reaching plain sshd, with the real binaries: an engineer logs
//! in, security revokes (confirmed with a WebAuthn touch in Chromium), one
//! `jit-ssh host sync` later sshd refuses that certificate while another
//! still works; the same by grant and by user, which also blocks new
//! logins until `jit-ssh-ca enable-user`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use jit_ssh_e2e::agent::{SSH_ADD, SSH_AGENT};
use jit_ssh_e2e::world::{ok_json, ssh_via_agent, World};
use jit_ssh_e2e::{
    bin, browser_script, have_tools, run, run_ok, Sshd, CHROMIUM, NODE, SSH, SSHD, SSH_KEYGEN,
};

#[test]
fn revocations_reach_sshd_after_one_host_sync() {
    let (_, playwright) = browser_script();
    let playwright = playwright.to_string_lossy().into_owned();
    if !have_tools(
        "revoke_e2e",
        &[
            SSHD,
            SSH,
            SSH_KEYGEN,
            SSH_AGENT,
            SSH_ADD,
            CHROMIUM,
            NODE,
            &playwright,
        ],
    ) {
        return;
    }
    let w = World::start();
    let host_dir = w.root.join("etc-ssh-jit-ssh");
    let fp = run_ok(
        Command::new(SSH_KEYGEN)
            .arg("-lf")
            .arg(w.ca.ca_public_key()),
    )
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_owned();
    let sync = |first: bool| {
        let mut c = Command::new(bin("jit-ssh"));
        c.args(["host", "sync", "--ca", &w.ca.url, "--dir"])
            .arg(&host_dir);
        if first {
            c.args(["--bootstrap-fingerprint", &fp]);
        }
        let out = run(&mut c);
        assert!(
            out.status.success(),
            "host sync: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sync(true);
    let principals = host_dir.join("principals");
    std::fs::create_dir_all(&principals).unwrap();
    std::fs::write(
        principals.join(&w.account),
        format!("{0}@db-1.dev\n{0}@db-2.dev\n{0}@db-3.dev\n", w.account),
    )
    .unwrap();
    let sshd = Sshd::start(
        &w.root,
        &host_dir.join("ca-keys"),
        &host_dir.join("revoked.krl"),
        &principals,
    );
    let revoke = |args: &[&str]| {
        run(w
            .jit_ssh()
            .args([
                "--json",
                "revoke",
                "--reason",
                "e2e revocation",
                "--timeout",
                "60s",
            ])
            .args(args))
    };

    let c1 = ok_json(&w.login("db-1.dev", "10m"));
    let c2 = ok_json(&w.login("db-2.dev", "10m"));
    let (s1, s2) = (
        c1["serial"].as_u64().unwrap(),
        c2["serial"].as_u64().unwrap(),
    );
    assert!(
        ssh_via_agent(sshd.port(), &w.account, &w.agent.socket)
            .status
            .success(),
        "{}",
        sshd.log()
    );

    // By serial: the revoked certificate is refused, the other still works.
    let r = ok_json(&revoke(&["--serial", &s1.to_string()]));
    assert_eq!(r["serials"][0].as_u64(), Some(s1));
    sync(false);
    let out = ssh_via_agent(sshd.port(), &w.account, &w.agent.socket);
    assert!(out.status.success(), "{}", sshd.log());
    let log = sshd.log();
    assert!(log.contains("revoked by file"), "{log}");
    assert!(log.contains(&format!("(serial {s2})")), "{log}");

    // By grant: the second one goes too, and nothing is left to log in with.
    let grant = c2["request"].as_str().unwrap();
    let r = ok_json(&revoke(&["--grant", grant]));
    assert_eq!(r["serials"][0].as_u64(), Some(s2));
    sync(false);
    assert!(!ssh_via_agent(sshd.port(), &w.account, &w.agent.socket)
        .status
        .success());

    // By user: a fresh certificate is revoked and new logins are blocked
    // until an admin re-enables the user.
    let c3 = ok_json(&w.login("db-3.dev", "10m"));
    let r = ok_json(&revoke(&["--user", &w.account]));
    assert_eq!(r["serials"][0].as_u64(), c3["serial"].as_u64());
    sync(false);
    assert!(!ssh_via_agent(sshd.port(), &w.account, &w.agent.socket)
        .status
        .success());
    let blocked = w.login("db-3.dev", "10m");
    assert!(!blocked.status.success());
    assert!(String::from_utf8_lossy(&blocked.stderr).contains("blocked by a revocation"));
    run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["enable-user", &w.account, "--dev-dir"])
            .arg(&w.ca.dev_dir),
    );
    ok_json(&w.login("db-3.dev", "10m"));
    sync(false);
    assert!(
        ssh_via_agent(sshd.port(), &w.account, &w.agent.socket)
            .status
            .success(),
        "{}",
        sshd.log()
    );

    // Revoking what is already revoked says so.
    let again = revoke(&["--serial", &s1.to_string()]);
    assert_eq!(again.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to revoke"));
}
