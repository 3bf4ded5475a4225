//! CA key rotation end to end, with the real binaries, a real sshd that
//! trusts what `jit-ssh-host sync` installs, ssh-agent and Chromium (for
//! the WebAuthn touch): a certificate the old key signed logs in before,
//! during and after `rotate stage` and `rotate activate`; after activate a
//! new certificate is signed by the next key and sshd accepts it; `rotate
//! retire` is refused while the old key's last certificate could still be
//! valid, and after it and a sync the old key is gone from the host.
//! Certificates live 20 s here, so the whole rotation takes about half a
//! minute.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use jit_ssh_e2e::people::People;
use jit_ssh_e2e::world::{ok_json, ssh_via_agent};
use jit_ssh_e2e::{
    bin, have_login_tools, login_name, run, run_ok, DevCa, SshAgent, Sshd, SSH_KEYGEN,
};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn rotate(config: &Path, step: &str) -> Output {
    run(Command::new(bin("jit-ssh-ca"))
        .args(["rotate", step, "--config"])
        .arg(config))
}

fn sync(url: &str, dir: &Path, extra: &[&str]) {
    let out = run(Command::new(bin("jit-ssh-host"))
        .args(["sync", "--ca-url", url, "--dir"])
        .arg(dir)
        .args(extra));
    assert!(out.status.success(), "host sync: {}", text(&out));
}

/// SHA256 fingerprints of the keys in the host's `ca-keys` file.
fn held_keys(dir: &Path) -> Vec<String> {
    run_ok(Command::new(SSH_KEYGEN).arg("-lf").arg(dir.join("ca-keys")))
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect()
}

/// The `active:` / `staged:` fingerprint in `rotate …` output.
fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {out}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn a_rotation_keeps_logins_working_and_retire_waits_for_the_last_old_certificate() {
    if !have_login_tools("rotation_e2e") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    let account = login_name();
    run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["init", "--dir"])
            .arg(root.join("ca")),
    );
    let config = root.join("ca.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen = "127.0.0.1:0"
public_url = "http://localhost:0"
data_dir = "{root}/data"
ca_key = {{ kind = "file", path = "{root}/ca/ca_key" }}

[limits]
clock_skew = "1s"

[[users]]
name = "alice"
groups = ["sre"]

[host_groups.dev]
hosts = ["*.dev"]
accounts = ["{account}"]

[[rules]]
groups = ["sre"]
host_groups = ["dev"]
max_ttl = "20s"
approval = "none"
# This sshd runs no session wrapper (sessions_e2e tests it).
session = {{ end_at_expiry = false, record = "off" }}
"#,
            root = root.display(),
        ),
    )
    .unwrap();
    let ca = DevCa::start_config(&root, &config);
    for d in ["old-agent", "new-agent"] {
        std::fs::create_dir(root.join(d)).unwrap();
    }
    let old_agent = SshAgent::start(&root.join("old-agent"));
    let new_agent = SshAgent::start(&root.join("new-agent"));
    let people = People {
        root: root.clone(),
        ca_url: ca.url.clone(),
        agent: old_agent.socket.clone(),
    };
    people.enroll(&config, "alice");
    let login = |agent: &SshAgent| {
        ok_json(&run(people
            .jit_ssh("alice")
            .env("SSH_AUTH_SOCK", &agent.socket)
            .args([
                "--json",
                "login",
                "db-1.dev",
                "--as",
                &account,
                "--ttl",
                "20s",
                "--timeout",
                "60s",
            ])))
    };

    // The host trusts the CA key by fingerprint once, then what sync installs.
    let host = root.join("etc-ssh-jit-ssh");
    let old_fp = run_ok(
        Command::new(SSH_KEYGEN)
            .arg("-lf")
            .arg(root.join("ca/ca_key.pub")),
    )
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_owned();
    sync(&ca.url, &host, &["--bootstrap-fingerprint", &old_fp]);
    assert_eq!(held_keys(&host), vec![old_fp.clone()]);
    let principals = host.join("principals");
    std::fs::create_dir_all(&principals).unwrap();
    std::fs::write(principals.join(&account), format!("{account}@db-1.dev\n")).unwrap();
    let sshd = Sshd::start(
        &root,
        &host.join("ca-keys"),
        &host.join("revoked.krl"),
        &principals,
    );
    // Logs in with `agent`'s certificate; sshd names the serial and CA key.
    let ssh = |agent: &SshAgent, serial: &str, ca_fp: &str| {
        let out = ssh_via_agent(sshd.port(), &account, &agent.socket);
        assert!(out.status.success(), "{}\n{}", text(&out), sshd.log());
        let log = sshd.log();
        let accepted = log
            .lines()
            .rfind(|l| l.contains("Accepted publickey"))
            .unwrap()
            .to_owned();
        assert!(
            accepted.contains(&format!("(serial {serial})")) && accepted.contains(ca_fp),
            "{accepted}"
        );
    };

    // Before: a certificate from the old key.
    let old_cert = login(&old_agent);
    let old_serial = old_cert["serial"].as_str().unwrap().to_owned();
    let old_valid_before = old_cert["valid_before"].as_u64().unwrap();
    ssh(&old_agent, &old_serial, &old_fp);

    // Activate with nothing staged is refused.
    let out = rotate(&config, "activate");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no next user CA key is staged"),
        "{}",
        text(&out)
    );

    // Stage: the host holds both keys after one sync; the old cert works.
    let out = rotate(&config, "stage");
    assert!(out.status.success(), "{}", text(&out));
    let next_fp = field(&String::from_utf8_lossy(&out.stdout), "staged:");
    assert_ne!(next_fp, old_fp);
    let again = rotate(&config, "stage");
    assert!(!again.status.success());
    assert!(text(&again).contains("already staged"), "{}", text(&again));
    sync(&ca.url, &host, &[]);
    assert_eq!(held_keys(&host), vec![old_fp.clone(), next_fp.clone()]);
    ssh(&old_agent, &old_serial, &old_fp);

    // Activate: what hosts fetch is now signed by the next key, which they
    // hold; the old certificate still logs in; a new one is by the next key.
    let out = rotate(&config, "activate");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        field(&String::from_utf8_lossy(&out.stdout), "active:"),
        next_fp
    );
    sync(&ca.url, &host, &[]);
    assert_eq!(held_keys(&host), vec![next_fp.clone(), old_fp.clone()]);
    ssh(&old_agent, &old_serial, &old_fp);
    let new_cert = login(&new_agent);
    let new_serial = new_cert["serial"].as_str().unwrap().to_owned();
    ssh(&new_agent, &new_serial, &next_fp);

    // Retire is refused while the old key's last certificate may be valid.
    let out = rotate(&config, "retire");
    assert!(!out.status.success());
    assert!(text(&out).contains("may be valid until"), "{}", text(&out));
    assert!(
        now() < old_valid_before,
        "the test ran too slowly to check this"
    );
    ssh(&old_agent, &old_serial, &old_fp);

    // It goes through once that certificate (and the skew) is past.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = rotate(&config, "retire");
        if out.status.success() {
            assert!(
                now() > old_valid_before,
                "retired while {old_serial} was valid"
            );
            break;
        }
        assert!(text(&out).contains("may be valid until"), "{}", text(&out));
        assert!(Instant::now() < deadline, "retire never allowed");
        std::thread::sleep(Duration::from_millis(500));
    }
    sync(&ca.url, &host, &[]);
    assert_eq!(held_keys(&host), vec![next_fp.clone()]);
    // The next key's certificates still log in (a fresh one: the first
    // may have expired while retire waited).
    let newer = login(&new_agent);
    ssh(&new_agent, newer["serial"].as_str().unwrap(), &next_fp);
    let status = run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["rotate", "status", "--config"])
            .arg(&config),
    );
    assert!(!status.contains("previous:"), "{status}");
}
