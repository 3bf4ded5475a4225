//! Several CA URLs (replicas): `jit-ssh login` and `jit-ssh-host sync`
//! move past a replica that cannot be reached or answers 5xx (a replica
//! whose database is down answers 503) and finish on one that works; with
//! none reachable they fail, naming each. The real binaries, a real
//! ssh-agent, sshd and Chromium as the person.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use jit_ssh_e2e::fake_ca::{Answer, FakeCa, ANY_PATH};
use jit_ssh_e2e::signed_ca::{fingerprint, stderr};
use jit_ssh_e2e::world::{ok_json, ssh_via_agent, World};
use jit_ssh_e2e::{bin, have_login_tools, have_tools, run, Sshd, SSH_KEYGEN};

fn tools(test: &str) -> bool {
    have_login_tools(test)
}

/// A loopback URL nobody listens on (bound, then closed).
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
}

#[test]
fn login_and_host_sync_finish_on_the_replica_that_works() {
    if !tools("failover_e2e") {
        return;
    }
    let w = World::start();
    let unavailable = FakeCa::start();
    unavailable.answer(ANY_PATH, Answer::Status(503));
    let replicas = format!("{},{},{}", dead_url(), unavailable.url, w.ca.url);

    // The host: first sync through the list, trusting the CA by fingerprint.
    let dir = w.root.join("etc-ssh-jit-ssh");
    let fp = fingerprint(&w.ca.dev_dir.join("ca/ca_key"));
    let out = run(Command::new(bin("jit-ssh-host"))
        .args(["--json", "sync", "--ca-url", &replicas, "--dir"])
        .arg(&dir)
        .args(["--bootstrap-fingerprint", &fp]));
    let synced = ok_json(&out);
    assert_eq!(
        synced["ca_url"].as_str().unwrap().trim_end_matches('/'),
        w.ca.url,
        "the sync names the replica that served it"
    );
    let said = stderr(&out);
    assert!(
        said.contains("trying the next") && said.contains("503"),
        "each replica passed over is said: {said}"
    );
    let principals = dir.join("principals");
    std::fs::create_dir_all(&principals).unwrap();
    std::fs::write(
        principals.join(&w.account),
        format!("{}@db-1.dev\n", w.account),
    )
    .unwrap();
    let sshd = Sshd::start(
        &w.root,
        &dir.join("ca-keys"),
        &dir.join("revoked.krl"),
        &principals,
    );

    // The engineer: the same list; the login (create, long poll, touch,
    // certificate) completes on the working replica.
    let out = run(w.jit_ssh().env("JIT_SSH_CA_URL", &replicas).args([
        "--json",
        "login",
        "db-1.dev",
        "--as",
        &w.account,
        "--ttl",
        "5m",
        "--timeout",
        "60s",
    ]));
    let issued = ok_json(&out);
    assert_eq!(issued["principals"][0], format!("{}@db-1.dev", w.account));
    assert!(stderr(&out).contains("trying the next"), "{}", stderr(&out));
    let ssh = ssh_via_agent(sshd.port(), &w.account, &w.agent.socket);
    assert!(
        ssh.status.success(),
        "ssh with the certificate from the working replica: {}\n{}",
        stderr(&ssh),
        sshd.log()
    );
}

#[test]
fn with_no_replica_answering_login_and_sync_fail_naming_each() {
    if !have_tools("failover_e2e", &[SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let unavailable = FakeCa::start();
    unavailable.answer(ANY_PATH, Answer::Status(503));
    let dead = dead_url();
    let replicas = format!("{dead},{}", unavailable.url);

    let out = run(Command::new(bin("jit-ssh-host"))
        .args(["sync", "--ca-url", &replicas, "--dir"])
        .arg(tmp.path().join("dir"))
        .args(["--bootstrap-fingerprint", "SHA256:none"]));
    // 9, not 4: with nothing held yet the host is also stale, which is
    // what its monitor must see first; the unreachable replicas are said.
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains(&dead) && said.contains(&unavailable.url) && said.contains("503"),
        "{said}"
    );
    assert!(
        !tmp.path().join("dir/ca-keys").exists(),
        "nothing installed"
    );

    let agent = jit_ssh_e2e::SshAgent::start(tmp.path());
    let out = run(Command::new(bin("jit-ssh"))
        .env("JIT_SSH_CA_URL", &replicas)
        .env("JIT_SSH_USER", "alice")
        .env("JIT_SSH_CONFIG", tmp.path().join("none.toml"))
        .env("XDG_RUNTIME_DIR", tmp.path())
        .env("SSH_AUTH_SOCK", &agent.socket)
        .env("BROWSER", "/bin/false")
        .args(["login", "db-1.dev", "--timeout", "10s"]));
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(
        said.contains(&dead) && said.contains("no replica answered"),
        "{said}"
    );
    assert!(agent.certificates().is_empty());
}
