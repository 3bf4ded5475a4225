//! A recorded session from login to playback with the real CA: a rule
//! that records output, a host enrolled with the CA (the recorder signs
//! with its enrolled key), `jit-ssh login` and `ssh -tt` as the
//! engineer, the recording kept in the spool while the CA cannot be
//! reached and sent by the restarted recorder, and an auditor's `jit-ssh audit play
//! --cat` (whose file Debian's `asciinema cat` shows).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use jit_ssh_e2e::people::People;
use jit_ssh_e2e::recorder::Recorder;
use jit_ssh_e2e::session_host::{Terminal, SSHD_SESSION_LINES};
use jit_ssh_e2e::world::ok_json;
use jit_ssh_e2e::{
    bin, have_login_tools, login_name, run, run_ok, ssh_command, DevCa, SshAgent, Sshd,
};

#[test]
fn a_recorded_session_is_uploaded_and_plays_for_an_auditor() {
    if !have_login_tools("sessions_record_ca_e2e") {
        return;
    }
    if run(Command::new("id").arg("-u")).stdout != b"0\n" {
        let msg = "sessions_record_ca_e2e: the host recorder runs as root";
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

    // The dev CA, its first rule recording output through the wrapper.
    let mut ca = DevCa::start(&dev, &account);
    ca.stop();
    let config = dev.join("ca.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "session = { end_at_expiry = false, record = \"off\" }",
        "session = { record = \"output\" }",
        1,
    );
    std::fs::write(
        &config,
        format!(
            "{text}\n[sessions]\nwrapper = \"{} session --dir {} --recorder-socket {}\"\n",
            bin("jit-ssh-host").display(),
            host_dir.display(),
            socket.display()
        ),
    )
    .unwrap();
    let ca = DevCa::start(&dev, &account);
    let agent = SshAgent::start(&root);
    let people = People {
        root: root.clone(),
        ca_url: ca.url.clone(),
        agent: agent.socket.clone(),
    };
    people.enroll(&config, "alice");
    people.enroll(&config, "sam");

    // The host: sshd (which makes the host key), enrolled with that key.
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
    let sync = |extra: &[&str]| {
        let out = run(Command::new(bin("jit-ssh-host"))
            .args(["sync", "--ca-url", &ca.url, "--dir"])
            .arg(&host_dir)
            .args(extra));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let fp = run_ok(
        Command::new("ssh-keygen")
            .arg("-lf")
            .arg(dev.join("ca").join("ca_key.pub")),
    )
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_owned();
    sync(&["--bootstrap-fingerprint", &fp]);
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
    // First with the CA out of reach: the recording waits in the spool.
    let mut rec = Recorder::start_at(&root, &host_dir, Some("http://127.0.0.1:1"));
    assert_eq!(rec.socket, socket);

    let issued = ok_json(&run(people.jit_ssh("alice").args([
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
    let mut ssh = ssh_command(sshd.port());
    ssh.arg("-o")
        .arg(format!("IdentityAgent={}", agent.socket.display()))
        .arg(format!("{account}@127.0.0.1"));
    let mut t = Terminal::open(ssh);
    t.type_line("echo uploaded-$((6*7))");
    t.wait_for("uploaded-42", Duration::from_secs(15));
    let session = rec.sessions()[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    t.type_line("exit");
    assert!(
        t.wait_exit(Duration::from_secs(10)).is_some(),
        "{}",
        t.text()
    );

    let spooled = rec.wait_ended(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    assert!(spooled.exists(), "uploaded to nowhere?");
    assert!(rec.log_text().contains("will retry"), "{}", rec.log_text());
    // A recorder restarted with the CA reachable sends what was spooled.
    rec.stop();
    let rec = Recorder::start_at(&root, &host_dir, Some(&ca.url));
    // Every chunk acknowledged: the session leaves the spool.
    let until = Instant::now() + Duration::from_secs(20);
    while !rec.sessions().is_empty() {
        assert!(
            Instant::now() < until,
            "the recording was not uploaded; recorder log:\n{}\nCA log:\n{}",
            rec.log_text(),
            std::fs::read_to_string(&ca.stderr_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let listed = ok_json(&run(people.jit_ssh("sam").args([
        "--json",
        "audit",
        "sessions",
        "--timeout",
        "60s",
    ])));
    let text = listed.to_string();
    assert!(text.contains(&session) && text.contains(&serial), "{text}");

    let played =
        run(people
            .jit_ssh("sam")
            .args(["audit", "play", &session, "--cat", "--timeout", "60s"]));
    assert!(
        played.status.success(),
        "{}",
        String::from_utf8_lossy(&played.stderr)
    );
    let cast = String::from_utf8_lossy(&played.stdout).into_owned();
    assert!(cast.contains("echo uploaded-$((6*7))"), "{cast}");
    assert!(cast.contains("uploaded-42"), "{cast}");
    let file = root.join("played.cast");
    std::fs::write(&file, &cast).unwrap();
    if std::path::Path::new("/usr/bin/asciinema").exists() {
        let out = run(Command::new("script")
            .args(["-q", "-e", "-c"])
            .arg(format!("/usr/bin/asciinema cat {}", file.display()))
            .arg("/dev/null"));
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("uploaded-42"));
    }
    drop(t);
    drop(rec);
    drop(sshd);
    drop(ca);
}
