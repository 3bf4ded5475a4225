//! Non-interactive use through the session wrapper with a real sshd:
//! exit codes, binary-safe pipes, scp, sftp and rsync byte for byte; and
//! the logins the wrapper refuses (fail closed) with a message saying why.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

use jit_ssh_e2e::session_host::SessionHost;
use jit_ssh_e2e::{have_tools, run, SSH, SSHD, SSH_KEYGEN};

const SCP: &str = "/usr/bin/scp";
const SFTP: &str = "/usr/bin/sftp";
const RSYNC: &str = "/usr/bin/rsync";

fn random_bytes(len: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

#[test]
fn commands_keep_their_exit_status_stderr_and_bytes() {
    if !have_tools("sessions_transfer_e2e", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let h = SessionHost::start();
    let (cert, _, _) = h.certificate("10m", "--record off");
    let status = |cmd: &str| run(h.ssh(&cert).arg(cmd)).status.code();
    assert_eq!(status("true"), Some(0), "{}", h.sshd.log());
    assert_eq!(status("false"), Some(1));
    assert_eq!(status("exit 7"), Some(7));
    // Death by a signal: 128 + n, as a shell reports it.
    assert_eq!(status("kill -9 $$"), Some(137));
    let out = run(h.ssh(&cert).arg("echo to-out; echo to-err >&2"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-err\n");
    // The command the user asked for ran, not a login shell.
    let out = run(h.ssh(&cert).arg("echo $SSH_ORIGINAL_COMMAND | wc -w"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");

    // 3 MB of random bytes through `cat` and back, unchanged.
    let data = random_bytes(3 * 1024 * 1024);
    let mut child = h
        .ssh(&cert)
        .arg("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&sent).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "the bytes changed on the way");
}

#[test]
fn scp_sftp_and_rsync_copy_byte_for_byte() {
    if !have_tools(
        "sessions_transfer_e2e",
        &[SSHD, SSH, SSH_KEYGEN, SCP, SFTP, RSYNC],
    ) {
        return;
    }
    let h = SessionHost::start();
    let (cert, _, _) = h.certificate("10m", "--record off");
    // The size: 100 MB of random bytes (and an odd tail), so a
    // short read, a lost last buffer or a text-mode mangling shows.
    let data = random_bytes(100 * 1024 * 1024 + 17);
    let src = h.root.join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let port = h.sshd.port().to_string();
    let remote = |name: &str| format!("{}@127.0.0.1:{}", h.account, h.root.join(name).display());
    let base = [
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
    ];
    let opts = h.ssh_options(&cert);
    let same = |name: &str| {
        let got = std::fs::read(h.root.join(name)).unwrap();
        assert_eq!(got.len(), data.len(), "{name}");
        assert!(got == data, "{name}: the bytes changed");
    };

    // scp over the sftp protocol (the default), then the old scp protocol.
    let out = run(Command::new(SCP)
        .args(base)
        .args(&opts)
        .args(["-P", &port])
        .arg(&src)
        .arg(remote("by-scp.bin")));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        h.sshd.log()
    );
    same("by-scp.bin");
    let out = run(Command::new(SCP)
        .arg("-O")
        .args(base)
        .args(&opts)
        .args(["-P", &port])
        .arg(&src)
        .arg(remote("by-scp-O.bin")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    same("by-scp-O.bin");

    // sftp: put, then get back.
    let batch = h.root.join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} {}\nget {} {}\n",
            src.display(),
            h.root.join("by-sftp.bin").display(),
            h.root.join("by-sftp.bin").display(),
            h.root.join("back-sftp.bin").display()
        ),
    )
    .unwrap();
    let out = run(Command::new(SFTP)
        .args(base)
        .args(&opts)
        .args(["-P", &port, "-b"])
        .arg(&batch)
        .arg(format!("{}@127.0.0.1", h.account)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    same("by-sftp.bin");
    same("back-sftp.bin");

    // rsync over ssh.
    let e = format!("ssh {} {} -p {port}", base.join(" "), opts.join(" "));
    let out = run(Command::new(RSYNC)
        .args(["-a", "-e", &e])
        .arg(&src)
        .arg(remote("by-rsync.bin")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    same("by-rsync.bin");
}

#[test]
fn without_expose_auth_info_the_login_is_refused_with_the_reason() {
    if !have_tools("sessions_transfer_e2e", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let h = SessionHost::start_with("");
    let (cert, _, _) = h.certificate("10m", "--record off");
    let out = run(h.ssh(&cert).arg("echo should-not-run"));
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jit-ssh: login refused"), "{err}");
    assert!(err.contains("ExposeAuthInfo yes"), "{err}");
}

#[test]
fn a_recording_policy_refuses_the_login_while_no_recorder_runs() {
    if !have_tools("sessions_transfer_e2e", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let h = SessionHost::start();
    for record in ["output", "full"] {
        let (cert, _, _) = h.certificate("10m", &format!("--record {record}"));
        let out = run(h.ssh(&cert).arg("echo should-not-run"));
        assert_eq!(out.status.code(), Some(255));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("recording is required by policy")
                && err.contains("no recorder is reachable at"),
            "{err}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    }
}

#[test]
fn a_certificate_already_in_the_krl_or_from_another_ca_is_refused_by_the_wrapper() {
    if !have_tools("sessions_transfer_e2e", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let h = SessionHost::start();
    let (cert, _, _) = h.certificate("10m", "--record off");
    // The wrapper reads a different KRL than sshd only if misconfigured;
    // pointing it at a missing one must refuse, not ignore revocations.
    let missing = h.root.join("nowhere");
    let force = format!(
        "{} session --dir {} --record off",
        jit_ssh_e2e::bin("jit-ssh-host").display(),
        missing.display()
    );
    let (bad, _, _) = h.certificate_forcing("10m", &force);
    let out = run(h.ssh(&bad).arg("true"));
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("login refused"));
    // The good one still works.
    assert!(run(h.ssh(&cert).arg("true")).status.success());
}

#[test]
fn a_command_is_ended_at_expiry_with_no_notice_in_its_output() {
    if !have_tools("sessions_transfer_e2e", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let h = SessionHost::start();
    let (cert, _, valid_before) = h.certificate("8s", "--record off");
    let out = run(h.ssh(&cert).arg("echo started; sleep 60; echo never"));
    let ended = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let late = ended - valid_before as f64;
    eprintln!("command ended {late:.2} s after valid_before");
    assert!(
        (-0.5..=2.0).contains(&late),
        "ended {late:.2} s after expiry"
    );
    // stdout is the command's alone: no notice, no message in the data.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jit-ssh: the certificate expired at"), "{err}");
    assert!(!err.contains("this session ends in"), "{err}");
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn killing_the_wrapper_from_a_command_closes_the_connection() {
    if !have_tools("sessions_transfer_e2e", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let h = SessionHost::start();
    let (cert, _, _) = h.certificate("10m", "--record off");
    let started = std::time::Instant::now();
    // The command's parent is the wrapper.
    let out = run(h.ssh(&cert).arg("kill -9 $PPID; sleep 7304; echo survived"));
    let took = started.elapsed();
    eprintln!(
        "kill -9 of the wrapper: ssh exited {:?} after {took:?}; the command left running: {}",
        out.status.code(),
        jit_ssh_e2e::session_host::process_running("sleep 7304")
    );
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
    jit_ssh_e2e::session_host::kill_marked("sleep 7304");
}
