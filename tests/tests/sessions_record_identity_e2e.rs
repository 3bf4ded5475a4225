//! The recorder takes the certificate sshd let the login in with, not the
//! one a user shows it: `SSH_USER_AUTH` is an environment variable the
//! user's shell startup files can set before the wrapper starts.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use jit_ssh_e2e::recorder::Recorder;
use jit_ssh_e2e::session_host::SessionHost;
use jit_ssh_e2e::{have_tools, run, SSH, SSHD, SSH_KEYGEN};

fn ready(test: &str) -> bool {
    if !have_tools(test, &[SSHD, SSH, SSH_KEYGEN]) {
        return false;
    }
    let root = run(Command::new("id").arg("-u")).stdout == b"0\n";
    if !root {
        let msg = format!("{test}: the host recorder runs as root; run the tests as root");
        if std::env::var("JIT_SSH_REQUIRE_E2E").as_deref() == Ok("1") {
            panic!("JIT_SSH_REQUIRE_E2E=1 but {msg}");
        }
        eprintln!("\n!!!!!!!! SKIPPED END-TO-END TEST {msg} !!!!!!!!\n");
    }
    root
}

/// Removes an sshd-style auth file when dropped.
struct AuthFile(std::path::PathBuf);

impl Drop for AuthFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_session_cannot_pass_as_another_certificates_of_the_same_account() {
    if !ready("sessions_record_identity_e2e") {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let rec = Recorder::start(&h, None);
    // Another certificate for the same account (on a shared account, the
    // other person's sshd file in /tmp is this uid's and readable).
    let (other, other_serial, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let line = std::fs::read_to_string(&other).unwrap();
    let file = AuthFile(std::path::PathBuf::from(format!(
        "/tmp/sshauth.review-e2e-{}",
        std::process::id()
    )));
    std::fs::write(&file.0, format!("publickey {}", line.trim())).unwrap();
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
