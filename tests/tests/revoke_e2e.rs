//! Revocation reaching plain sshd, with the real binaries: an engineer logs
//! in, security revokes (confirmed with a WebAuthn touch in Chromium), one
//! `jit-ssh host sync` later sshd refuses that certificate while another
//! still works; the same by grant and by user, which also blocks new
//! logins until `jit-ssh-ca enable-user`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use jit_ssh_e2e::world::{ok_json, ssh_via_agent, World};
use jit_ssh_e2e::{bin, have_login_tools, run, run_ok};

#[test]
fn revocations_reach_sshd_after_one_host_sync() {
    if !have_login_tools("revoke_e2e") {
        return;
    }
    let w = World::start();
    let host = w.host(&["db-1.dev", "db-2.dev", "db-3.dev"]);
    let sshd = &host.sshd;
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
    // Serials are decimal strings (JavaScript numbers lose digits).
    let (s1, s2) = (
        c1["serial"].as_str().unwrap().to_owned(),
        c2["serial"].as_str().unwrap().to_owned(),
    );
    assert!(
        ssh_via_agent(sshd.port(), &w.account, &w.agent.socket)
            .status
            .success(),
        "{}",
        sshd.log()
    );

    // By serial: the revoked certificate is refused, the other still works.
    let r = ok_json(&revoke(&["--serial", &s1]));
    assert_eq!(r["serials"][0].as_str(), Some(s1.as_str()));
    host.sync();
    let out = ssh_via_agent(sshd.port(), &w.account, &w.agent.socket);
    assert!(out.status.success(), "{}", sshd.log());
    let log = sshd.log();
    assert!(log.contains("revoked by file"), "{log}");
    assert!(log.contains(&format!("(serial {s2})")), "{log}");

    // By grant: the second one goes too, and nothing is left to log in with.
    let grant = c2["request"].as_str().unwrap();
    let r = ok_json(&revoke(&["--grant", grant]));
    assert_eq!(r["serials"][0].as_str(), Some(s2.as_str()));
    host.sync();
    assert!(!ssh_via_agent(sshd.port(), &w.account, &w.agent.socket)
        .status
        .success());

    // By user: a fresh certificate is revoked and new logins are blocked
    // until an admin re-enables the user.
    let c3 = ok_json(&w.login("db-3.dev", "10m"));
    let r = ok_json(&revoke(&["--user", &w.account]));
    assert_eq!(r["serials"][0].as_str(), c3["serial"].as_str());
    host.sync();
    assert!(!ssh_via_agent(sshd.port(), &w.account, &w.agent.socket)
        .status
        .success());
    let blocked = w.login("db-3.dev", "10m");
    assert!(!blocked.status.success());
    // `login --json`: the error is a JSON object on stdout.
    let said: serde_json::Value = serde_json::from_slice(&blocked.stdout).unwrap();
    assert!(
        said["error"]["message"]
            .as_str()
            .unwrap()
            .contains("blocked by a revocation"),
        "{said}"
    );
    run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["enable-user", &w.account, "--dev-dir"])
            .arg(&w.ca.dev_dir),
    );
    ok_json(&w.login("db-3.dev", "10m"));
    host.sync();
    assert!(
        ssh_via_agent(sshd.port(), &w.account, &w.agent.socket)
            .status
            .success(),
        "{}",
        sshd.log()
    );

    // Revoking what is already revoked says so.
    let again = revoke(&["--serial", &s1]);
    assert_eq!(again.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to revoke"));
}
