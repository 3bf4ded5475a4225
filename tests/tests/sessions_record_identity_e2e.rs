//! The recorder takes the certificate sshd let the login in with, not the
//! one a user shows it: `SSH_USER_AUTH` is an environment variable the
//! user's shell startup files can set before the wrapper starts.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use jit_ssh_e2e::recorder::Recorder;
use jit_ssh_e2e::session_host::{process_running, SessionHost};
use jit_ssh_e2e::{have_recorder_tools, run};

/// An sshd-style auth file (what `ExposeAuthInfo` writes and names in
/// `SSH_USER_AUTH`) showing a certificate, as a user can write one in /tmp;
/// removed when dropped.
struct AuthFile(std::path::PathBuf);

impl AuthFile {
    /// `/tmp/sshauth.review-e2e-{tag}{pid}` showing the certificate `cert`.
    fn showing(cert: &std::path::Path, tag: &str) -> AuthFile {
        let line = std::fs::read_to_string(cert).unwrap();
        let file = AuthFile(std::path::PathBuf::from(format!(
            "/tmp/sshauth.review-e2e-{tag}{}",
            std::process::id()
        )));
        std::fs::write(&file.0, format!("publickey {}", line.trim())).unwrap();
        file
    }
}

impl Drop for AuthFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_session_cannot_pass_as_another_certificates_of_the_same_account() {
    if !have_recorder_tools("sessions_record_identity_e2e") {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let rec = Recorder::start(&h, None);
    // Another certificate for the same account (on a shared account, the
    // other person's sshd file in /tmp is this uid's and readable).
    let (other, other_serial, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let file = AuthFile::showing(&other, "");
    // What `export SSH_USER_AUTH=…` in a shell startup file does: the
    // real wrapper starts, under sshd, showing the other certificate.
    let force = format!(
        "SSH_USER_AUTH={} exec {}",
        file.0.display(),
        h.wrapper(&rec.wrapper_args("output"))
    );
    let (mine, my_serial, _) = h.certificate_forcing("10m", &force);
    assert_ne!(my_serial, other_serial);
    let out = run(h.ssh(&mine).arg("echo passed-as-other"));
    let log = rec.log_text();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("passed-as-other"),
        "the session ran recorded as serial {other_serial}: {out:?}\n{log}"
    );
    assert!(
        log.contains(&format!(
            "sshd let this login in with certificate serial {my_serial}"
        )),
        "{log}"
    );
    assert!(!log.contains(&format!("serial {other_serial},")), "{log}");
}

#[test]
fn a_program_of_the_users_named_sshd_does_not_pass_for_sshd() {
    if !have_recorder_tools("sessions_record_identity_e2e") {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let rec = Recorder::start(&h, None);
    // What a shell startup file can do instead of starting the wrapper:
    // exec a program of the user's that is called sshd (here a copy of
    // sleep).
    let bin = h.root.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/sleep", bin.join("sshd")).unwrap();
    let force = format!(
        "exec {} 7312 # {}",
        bin.join("sshd").display(),
        h.wrapper(&rec.wrapper_args("output"))
    );
    let (cert, _, _) = h.certificate_forcing("10m", &force);
    let mut ssh = h
        .ssh(&cert)
        .arg("true")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    let mut ended = false;
    while Instant::now() < until {
        if let Ok(Some(_)) = ssh.try_wait() {
            ended = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !ended {
        let _ = ssh.kill();
    }
    let _ = ssh.wait();
    let survived = process_running("7312");
    kill_running(&bin.join("sshd"));
    assert!(
        ended && !survived,
        "a recorded login running a program named sshd instead of the wrapper went on; recorder log:\n{}",
        rec.log_text()
    );
    // The recorder logs once its hang-up is done.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until
        && !rec
            .log_text()
            .contains("without a session wrapper announcing itself")
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        rec.log_text()
            .contains("without a session wrapper announcing itself"),
        "{}",
        rec.log_text()
    );
}

/// Kills the processes running `exe` (this test's own copy).
fn kill_running(exe: &std::path::Path) {
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read_link(e.path().join("exe")).is_ok_and(|p| p == exe) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

#[test]
fn a_wrapper_run_with_other_arguments_than_the_certificates_is_refused() {
    if !have_recorder_tools("sessions_record_identity_e2e") {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let rec = Recorder::start(&h, None);
    // The wrapper's pid opens the connection and execs the real wrapper
    // with `--record off`; a child it forked says hello on it.
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/recorder_fork_hello.py");
    let signed = h.wrapper(&rec.wrapper_args("output"));
    let force = format!(
        "exec python3 {} {} {} {} # {signed}",
        script.display(),
        rec.socket.display(),
        jit_ssh_e2e::bin("jit-ssh-host").display(),
        h.dir.display(),
    );
    let (cert, _, _) = h.certificate_forcing("10m", &force);
    let out = run(h.ssh(&cert).arg("sleep 8; echo unrecorded-$((6*7))"));
    let log = rec.log_text();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("unrecorded-42"),
        "a login ran 8 s with a wrapper that records nothing: {out:?}\n{log}"
    );
    assert!(log.contains("not the certificate's force-command"), "{log}");
}

#[test]
fn one_wrapper_process_streams_one_session() {
    if !have_recorder_tools("sessions_record_identity_e2e") {
        return;
    }
    // A host without the principals command: the certificate shown in
    // SSH_USER_AUTH is one whose force-command the wrapper runs exactly.
    let h = SessionHost::start();
    let rec = Recorder::start(&h, None);
    let signed = h.wrapper(&rec.wrapper_args("output"));
    let (shown, _, _) = h.certificate_forcing("10m", &signed);
    let file = AuthFile::showing(&shown, "one-");
    // The wrapper's pid opens the connection, forks, and execs the real
    // wrapper as signed; the child says hello on that connection too.
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/recorder_fork_hello.py");
    let force = format!(
        "SSH_USER_AUTH={} exec python3 {} {} {} {} {}",
        file.0.display(),
        script.display(),
        rec.socket.display(),
        jit_ssh_e2e::bin("jit-ssh-host").display(),
        h.dir.display(),
        signed.split_once(' ').unwrap().1,
    );
    let (cert, _, _) = h.certificate_forcing("10m", &force);
    let out = run(h.ssh(&cert).arg("sleep 2; echo done"));
    std::thread::sleep(Duration::from_secs(1));
    let log = rec.log_text();
    let accepted = log.matches(" as root on ").count();
    assert_eq!(accepted, 1, "{out:?}\n{log}");
    assert!(log.contains("one wrapper, one session"), "{log}");
}
