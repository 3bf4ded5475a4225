//! A recorder that restarts (a crash, `systemctl restart`, an upgrade;
//! `Restart=always` brings it back within a second) still ends the
//! logins the previous one watched: a login only the recorder can end
//! (`ssh -N` port forwards under a wrapped certificate, recorded or not;
//! a stopped `record = "off"` wrapper) no longer outlives its
//! certificate once the recorder restarted (review finding; seen failing
//! before: the connection was still open 18 s after `valid_before`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jit_ssh_e2e::recorder::Recorder;
use jit_ssh_e2e::session_host::SessionHost;
use jit_ssh_e2e::{have_tools, run, SSH, SSHD, SSH_KEYGEN};

/// The tools, and root (the recorder reads other users' /proc entries).
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

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// When `child` exited (seconds since the epoch), if within `within`.
fn exited_at(child: &mut std::process::Child, within: Duration) -> Option<f64> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return Some(now());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn a_recorder_restart_does_not_free_a_watched_login_from_its_certificates_end() {
    if !ready("recorder_restart_watch_e2e") {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let mut rec = Recorder::start(&h, None);
    let (cert, _, valid_before) = h.certificate("12s", &rec.wrapper_args("off"));
    // `ssh -N`: no wrapper ever runs; only the recorder ends it.
    let mut ssh = h.ssh(&cert).arg("-N").stdin(Stdio::null()).spawn().unwrap();
    // Logged in (sshd runs the principals command for the query and
    // again for the signature: the recorder must be there for both).
    let until = Instant::now() + Duration::from_secs(10);
    while !h.sshd.log().contains("Accepted publickey") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        h.sshd.log().contains("Accepted publickey")
            && rec.log_text().contains("watching the login"),
        "sshd:\n{}\nrecorder:\n{}",
        h.sshd.log(),
        rec.log_text()
    );
    // The recorder restarts (systemd brings it back within a second).
    rec.stop();
    let rec = Recorder::start(&h, None);
    let ended = exited_at(&mut ssh, Duration::from_secs(30));
    let late = ended.map(|t| t - valid_before as f64);
    eprintln!("after a recorder restart, `ssh -N` ended {late:?} s after valid_before");
    assert!(
        late.is_some_and(|l| (0.0..=6.0).contains(&l)),
        "ended {late:?} s after expiry; recorder log:\n{}",
        rec.log_text()
    );
}
