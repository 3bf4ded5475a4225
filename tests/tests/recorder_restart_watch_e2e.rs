//! A recorder that restarts (a crash, `systemctl restart`, an upgrade;
//! `Restart=always` brings it back within a second) still ends the
//! logins the previous one watched: a login only the recorder can end
//! (`ssh -N` port forwards under a wrapped certificate, recorded or not;
//! a stopped `record = "off"` wrapper) no longer outlives its
//! certificate once the recorder restarted (review finding; seen failing
//! before: the connection was still open 18 s after `valid_before`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use jit_ssh_e2e::recorder::Recorder;
use jit_ssh_e2e::session_host::SessionHost;

#[test]
fn a_recorder_restart_does_not_free_a_watched_login_from_its_certificates_end() {
    if !jit_ssh_e2e::have_recorder_tools("recorder_restart_watch_e2e") {
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
    let ended = jit_ssh_e2e::session_host::exited_at(&mut ssh, Duration::from_secs(30));
    let late = ended.map(|t| t - valid_before as f64);
    eprintln!("after a recorder restart, `ssh -N` ended {late:?} s after valid_before");
    assert!(
        late.is_some_and(|l| (0.0..=6.0).contains(&l)),
        "ended {late:?} s after expiry; recorder log:\n{}",
        rec.log_text()
    );
}
