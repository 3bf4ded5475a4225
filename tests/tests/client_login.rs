//! `jit-ssh login` with the real binaries: `jit-ssh-ca serve --dev`, a
//! real ssh-agent, a real sshd trusting the CA, and headless Chromium with
//! a virtual authenticator opening the printed link (as `$BROWSER`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use jit_ssh_e2e::world::{ok_json, ssh_via_agent, World};
use jit_ssh_e2e::{bin, have_login_tools, http_get, run, Sshd, SSH};

fn tools(test: &str) -> bool {
    have_login_tools(test)
}

#[test]
fn login_loads_one_certificate_that_sshd_accepts_and_that_expires() {
    if !tools("client_login") {
        return;
    }
    let w = World::start();
    let principals = w.root.join("principals");
    std::fs::create_dir(&principals).unwrap();
    std::fs::write(
        principals.join(&w.account),
        format!("{0}@db-1.dev\n{0}@db-2.dev\n", w.account),
    )
    .unwrap();
    let krl = w.root.join("revoked.krl");
    run(Command::new(bin("jit-ssh-ca"))
        .args(["krl", "build", "-o"])
        .arg(&krl));
    let sshd = Sshd::start(&w.root, &w.ca.ca_public_key(), &krl, &principals);

    let first = ok_json(&w.login("db-1.dev", "10m"));
    assert_eq!(first["principals"][0], format!("{}@db-1.dev", w.account));
    eprintln!("login timings (ms): {}", first["timings"]);
    assert_eq!(w.agent.certificates().len(), 1);
    let out = ssh_via_agent(sshd.port(), &w.account, &w.agent.socket);
    assert!(
        out.status.success(),
        "ssh through the agent failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "via-agent");

    // Once `ssh-config --ca-fingerprint` made jit-ssh hold the CA key,
    // every login refreshes its known_hosts (host CA keys, removed hosts).
    let fp = jit_ssh_e2e::signed_ca::fingerprint(&w.ca.dev_dir.join("ca/ca_key"));
    ok_json(&run(w.jit_ssh().args([
        "--json",
        "ssh-config",
        "--host",
        "*.dev",
        "--ca-fingerprint",
        &fp,
    ])));
    let known_hosts = w.root.join("known_hosts");
    assert!(std::fs::read_to_string(&known_hosts)
        .unwrap()
        .contains("@cert-authority *.dev"));
    std::fs::remove_file(&known_hosts).unwrap();

    // A second login to the same host replaces the first certificate.
    let second = ok_json(&w.login("db-1.dev", "10m"));
    assert!(
        std::fs::read_to_string(&known_hosts)
            .unwrap()
            .contains("@cert-authority *.dev"),
        "the login did not refresh known_hosts"
    );
    assert_eq!(second["replaced"], 1);
    assert_eq!(
        w.agent.certificates().len(),
        1,
        "{:?}",
        w.agent.certificates()
    );
    assert_ne!(first["serial"], second["serial"]);
    let status = ok_json(&run(w.jit_ssh().args(["--json", "status"])));
    assert_eq!(status[0]["serial"], second["serial"]);
    assert_eq!(status[0]["host"], "db-1.dev");

    // `jit-ssh ssh` with a valid certificate loaded runs ssh at once; for a
    // host without one it logs in first. (A stand-in `ssh` on PATH records
    // how it was run.)
    let fakebin = w.root.join("fakebin");
    std::fs::create_dir(&fakebin).unwrap();
    let recorded = w.root.join("ssh-args");
    std::fs::write(
        fakebin.join("ssh"),
        format!("#!/bin/sh\necho \"$@\" >> {}\n", recorded.display()),
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(fakebin.join("ssh"))
        .status()
        .unwrap();
    let path = format!(
        "{}:{}",
        fakebin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(w
        .jit_ssh()
        .env("PATH", &path)
        .args(["ssh", "db-1.dev", "--as", &w.account, "--", "uptime"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&recorded).unwrap(),
        format!("-l {} db-1.dev uptime\n", w.account)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("/mfa/"),
        "logged in again needlessly"
    );
    let out = run(w
        .jit_ssh()
        .env("PATH", &path)
        .args(["ssh", "db-3.dev", "--as", &w.account]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/mfa/"),
        "did not log in first"
    );
    assert!(std::fs::read_to_string(&recorded)
        .unwrap()
        .ends_with(&format!("-l {} db-3.dev\n", w.account)));
    ok_json(&run(w.jit_ssh().args(["--json", "logout", "db-3.dev"])));

    // The ssh_config snippet is valid for the real ssh.
    let out = run(w
        .jit_ssh()
        .args(["ssh-config", "--host", "*.prod", "--host", "*.dev"]));
    let snippet = w.root.join("ssh_config");
    std::fs::write(&snippet, &out.stdout).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(
        "Match originalhost *.prod,*.dev exec \"jit-ssh login --if-needed --quiet --as %r %n\""
    ));
    let parsed = run(Command::new(SSH)
        .arg("-G")
        .arg("-F")
        .arg(&snippet)
        .arg("other.example"));
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );

    // A 3-second certificate: the agent drops it when it expires.
    ok_json(&w.login("db-2.dev", "3s"));
    assert_eq!(w.agent.certificates().len(), 2);
    std::thread::sleep(Duration::from_millis(4500));
    let left = w.agent.certificates();
    assert_eq!(left.len(), 1, "{left:?}");

    let out = run(w.jit_ssh().args(["logout"]));
    assert!(out.status.success());
    assert!(w.agent.certificates().is_empty());
    // With nothing loaded, sshd has nothing to accept.
    assert!(!ssh_via_agent(sshd.port(), &w.account, &w.agent.socket)
        .status
        .success());
}

#[test]
fn each_failure_exits_with_its_code_and_a_next_step() {
    if !tools("client_errors") {
        return;
    }
    let w = World::start();
    let check = |out: Output, code: i32, needle: &str| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        assert!(
            code == 130 || err.contains("jit-ssh: next:"),
            "no next step in:\n{err}"
        );
    };
    check(
        run(w
            .jit_ssh()
            .env_remove("SSH_AUTH_SOCK")
            .args(["login", "db.dev"])),
        3,
        "SSH_AUTH_SOCK is not set",
    );
    check(
        run(w
            .jit_ssh()
            .env("SSH_AUTH_SOCK", w.root.join("dead.sock"))
            .args(["login", "db.dev"])),
        3,
        "does not answer",
    );
    check(
        run(w
            .jit_ssh()
            .env("JIT_SSH_CA_URL", "http://127.0.0.1:9")
            .args(["login", "db.dev"])),
        4,
        "cannot reach the CA",
    );
    check(
        run(w
            .jit_ssh()
            .env("JIT_SSH_CA_URL", "http://ca.example.com")
            .args(["login", "db.dev"])),
        2,
        "must be https",
    );
    // TLS to a server that does not speak it: unreachable, with the cause.
    let https = w.ca.url.replace("http://", "https://");
    check(
        run(w
            .jit_ssh()
            .env("JIT_SSH_CA_URL", &https)
            .args(["login", "db.dev"])),
        4,
        "cannot reach the CA",
    );
    check(
        run(w
            .jit_ssh()
            .env("JIT_SSH_USER", "nobody")
            .args(["login", "db.dev"])),
        5,
        "not enrolled",
    );
    // A TTL over the CA's cap is a usage error, with the command's help.
    check(
        run(w
            .jit_ssh()
            .args(["login", "db.dev", "--as", &w.account, "--ttl", "2h"])),
        2,
        "jit-ssh login --help",
    );
    // --json: the error is one JSON document on stdout, same exit code.
    let out = run(w.jit_ssh().args([
        "--json", "login", "db.dev", "--as", &w.account, "--ttl", "2h",
    ]));
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "usage", "{doc}");
    assert_eq!(doc["error"]["exit_code"], 2, "{doc}");
    assert!(doc["error"]["next"].is_string(), "{doc}");
    // Denied after the touch, with the CA's reason.
    check(
        run(w
            .jit_ssh()
            .args(["login", "web.prod", "--as", &w.account, "--timeout", "60s"])),
        6,
        "no rule lets you reach web.prod",
    );
    // Nobody confirms: timed out, and the request is withdrawn.
    check(
        run(w.jit_ssh().args([
            "login",
            "db.dev",
            "--as",
            &w.account,
            "--no-browser",
            "--timeout",
            "2s",
        ])),
        7,
        "no decision within 2s",
    );
    assert!(w.agent.certificates().is_empty());

    // Ctrl-C while waiting cancels the request on the CA.
    let mut child = w
        .jit_ssh()
        .args(["login", "db.dev", "--as", &w.account, "--no-browser"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let link = loop {
        let line = lines.next().expect("jit-ssh printed no link").unwrap();
        if line.starts_with("http://") {
            break line;
        }
    };
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let id = link.rsplit('/').next().unwrap();
    let summary = http_get(&format!("{}/v1/requests/{id}/summary", w.ca.url));
    assert!(summary.contains("\"status\":\"cancelled\""), "{summary}");
}
