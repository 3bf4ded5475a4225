//! Running out of room, end to end with the real CA: a CA whose
//! recordings store is below its free-space floor answers uploads 507 and
//! stores nothing; the host recorder keeps the chunks and retries with
//! its backoff; a session flooding the host's capped spool meanwhile is
//! ended as `spool-full` and the next recorded login refused; once the CA
//! has room, the spool drains, the auditor sees the session ended
//! `spool-full`, and logins are recorded again.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jit_ssh_e2e::people::People;
use jit_ssh_e2e::recorder::Recorder;
use jit_ssh_e2e::session_host::SSHD_SESSION_LINES;
use jit_ssh_e2e::world::ok_json;
use jit_ssh_e2e::{
    bin, have_login_tools, login_name, run, run_ok, ssh_command, DevCa, SshAgent, Sshd,
};

const FLOOD: &str = "head -c 20000000 /dev/urandom | base64 -w 76; echo flood-done";

/// The dev CA with its first rule recording output, plus `extra` config.
fn start_ca(dev: &Path, account: &str, host_dir: &Path, socket: &Path, extra: &str) -> DevCa {
    let config = dev.join("ca.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let base = text.split("\n# test-extra\n").next().unwrap().replacen(
        "session = { end_at_expiry = false, record = \"off\" }",
        "session = { record = \"output\" }",
        1,
    );
    let wrapper = format!(
        "\n[sessions]\nwrapper = \"{} session --dir {} --recorder-socket {}\"\n",
        bin("jit-ssh-host").display(),
        host_dir.display(),
        socket.display()
    );
    std::fs::write(&config, format!("{base}\n# test-extra\n{wrapper}{extra}")).unwrap();
    DevCa::start(dev, account)
}

fn wait_for(
    what: &str,
    within: Duration,
    mut done: impl FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let until = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < until, "{what}; log:\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_ca_out_of_room_and_a_full_spool_lose_nothing_and_the_auditor_sees_spool_full() {
    if !have_login_tools("sessions_spool_full_ca_e2e") {
        return;
    }
    if run(Command::new("id").arg("-u")).stdout != b"0\n" {
        let msg = "sessions_spool_full_ca_e2e: the host recorder runs as root";
        if std::env::var("JIT_SSH_REQUIRE_E2E").as_deref() == Ok("1") {
            panic!("JIT_SSH_REQUIRE_E2E=1 but {msg}");
        }
        eprintln!("\n!!!!!!!! SKIPPED END-TO-END TEST {msg} !!!!!!!!\n");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    let account = login_name();
    let dev = root.join("dev");
    let host_dir = root.join("etc-ssh-jit-ssh");
    let socket = root.join("run-jit-ssh").join("recorder.sock");

    let mut ca = DevCa::start(&dev, &account);
    ca.stop();
    // No machine has 100 TiB free: every upload is below the floor.
    let ca = start_ca(
        &dev,
        &account,
        &host_dir,
        &socket,
        "[recordings]\nmin_free = \"100TiB\"\n",
    );
    let config = dev.join("ca.toml");
    let agent = SshAgent::start(&root);
    let people = |url: &str| People {
        root: root.clone(),
        ca_url: url.to_owned(),
        agent: agent.socket.clone(),
    };
    people(&ca.url).enroll(&config, "alice");
    people(&ca.url).enroll(&config, "sam");

    std::fs::create_dir_all(host_dir.join("principals")).unwrap();
    std::fs::write(
        host_dir.join("principals").join(&account),
        format!("{account}@db-1.dev\n"),
    )
    .unwrap();
    let token = run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["host-token", "--group", "dev", "--dev-dir"])
            .arg(&dev),
    )
    .trim()
    .to_owned();
    let fp = run_ok(
        Command::new("ssh-keygen")
            .arg("-lf")
            .arg(dev.join("ca").join("ca_key.pub")),
    )
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_owned();
    let out = run(Command::new(bin("jit-ssh-host"))
        .args(["sync", "--ca-url", &ca.url, "--dir"])
        .arg(&host_dir)
        .args(["--bootstrap-fingerprint", &fp]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sshd = Sshd::start_with(
        &root,
        &host_dir.join("ca-keys"),
        &host_dir.join("revoked.krl"),
        &host_dir.join("principals"),
        SSHD_SESSION_LINES,
    );
    let out = run(Command::new(bin("jit-ssh-host"))
        .args([
            "enroll", "--ca-url", &ca.url, "--token", &token, "--name", "db-1.dev", "--key",
        ])
        .arg(root.join("ssh_host_ed25519_key"))
        .arg("--dir")
        .arg(&host_dir));
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rec = Recorder::start_at_with(&root, &host_dir, Some(&ca.url), &["--spool-max", "256KiB"]);
    let issued = ok_json(&run(people(&ca.url).jit_ssh("alice").args([
        "--json",
        "login",
        "db-1.dev",
        "--as",
        &account,
        "--ttl",
        "10m",
        "--timeout",
        "60s",
    ])));
    let serial = issued["serial"].as_str().unwrap().to_owned();
    let ssh = || {
        let mut c = ssh_command(sshd.port());
        c.arg("-o")
            .arg(format!("IdentityAgent={}", agent.socket.display()))
            .arg(format!("{account}@127.0.0.1"));
        c
    };

    // The flood fills the spool (the CA takes nothing): ended spool-full.
    let out = ssh().arg(FLOOD).stdin(Stdio::null()).output().unwrap();
    assert!(
        !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("flood-done"),
        "the flood ran to its end; recorder log:\n{}",
        rec.log_text()
    );
    let spooled: PathBuf = rec.wait_ended(Duration::from_secs(10));
    let session = spooled.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        rec.log_text()
            .contains("this host's recording spool is full"),
        "ssh: {}\nrecorder log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        rec.log_text()
    );
    // The CA's 507 reaches the recorder's log in its own words; the
    // recorder keeps every chunk and tries again later, backing off.
    let chunks_before = std::fs::read(spooled.join("chunks")).unwrap();
    wait_for(
        "no second refused upload",
        Duration::from_secs(20),
        || {
            rec.log_text().matches("507 Insufficient Storage: the CA's recordings store is below its free-space floor").count() >= 2
        },
        || rec.log_text(),
    );
    let log = rec.log_text();
    assert!(
        log.contains("will retry in 2s") && log.contains("will retry in 4s"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(spooled.join("chunks")).unwrap(),
        chunks_before
    );
    assert!(
        !spooled.join("sent").exists(),
        "the CA acknowledged chunks it refused"
    );
    // Nothing reached the CA: it lists no session.
    let listed = run_ok(people(&ca.url).jit_ssh("sam").args([
        "--json",
        "audit",
        "sessions",
        "--timeout",
        "60s",
    ]));
    assert!(!listed.contains(&session), "{listed}");

    // The spool is over its cap: the next recorded login is refused.
    let out = run(ssh().arg("echo should-not-run"));
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this host's recording spool is full"), "{err}");

    // The CA has room again (the floor lifted; on a real CA: space freed).
    drop(ca);
    let ca = start_ca(&dev, &account, &host_dir, &socket, "");
    drop(rec);
    let rec = Recorder::start_at_with(&root, &host_dir, Some(&ca.url), &["--spool-max", "256KiB"]);
    wait_for(
        "the spool did not drain",
        Duration::from_secs(60),
        || rec.sessions().is_empty(),
        || {
            format!(
                "{}\nCA:\n{}",
                rec.log_text(),
                std::fs::read_to_string(&ca.stderr_log).unwrap_or_default()
            )
        },
    );
    // One JSON line per recording.
    let listed = run_ok(people(&ca.url).jit_ssh("sam").args([
        "--json",
        "audit",
        "sessions",
        "--timeout",
        "60s",
    ]));
    let row: serde_json::Value = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|s| s["session"] == session.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(row["reason"], "spool-full", "{row}");
    assert_eq!(row["serial"].to_string().trim_matches('"'), serial, "{row}");
    // And the human table names it too.
    let table =
        run_ok(
            people(&ca.url)
                .jit_ssh("sam")
                .args(["audit", "sessions", "--timeout", "60s"]),
        );
    assert!(table.contains("spool-full"), "{table}");
    // The whole recording verifies for the auditor.
    let played = run(people(&ca.url).jit_ssh("sam").args([
        "audit",
        "play",
        &session,
        "--cat",
        "--timeout",
        "60s",
    ]));
    assert!(
        played.status.success(),
        "{}",
        String::from_utf8_lossy(&played.stderr)
    );

    // Room in the spool again: a recorded login works.
    let out = run(ssh().arg("echo recorded-again"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("recorded-again"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(rec);
    drop(sshd);
    drop(ca);
}
