//! What the recorder's login cgroups (docs/sessions.md, "Logins' own
//! cgroups") must not end: a process that is not the login's but was
//! started from inside it, on a host without systemd, where a daemon
//! restarted from a shell (`service … restart`) is born in that shell's
//! cgroup, and a login's end kills every process of its cgroup.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jit_ssh_e2e::recorder::Recorder;
use jit_ssh_e2e::session_host::{kill_marked, process_running, SessionHost};

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// As in sessions_login_cgroup_e2e.rs.
const LATE: f64 = 5.0;

/// The first login cgroup the recorder said it made, waiting for it.
fn first_cgroup(rec: &Recorder, within: Duration) -> PathBuf {
    let until = Instant::now() + within;
    loop {
        let log = rec.log_text();
        if let Some(p) = log.lines().find_map(|l| l.split(" run in cgroup ").nth(1)) {
            return PathBuf::from(p.trim());
        }
        assert!(Instant::now() < until, "no login cgroup:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An admin restarts the recorder from a shell of a watched login on a
/// host without systemd (`service jit-ssh-recorder restart`): the new
/// recorder is born in that login's cgroup. At the login's end it killed
/// that cgroup, and itself with it: every other login went unwatched and
/// no new one could get in.
#[test]
fn a_recorder_restarted_from_inside_a_login_outlives_that_login() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_login_cgroup_review_e2e") {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let mut rec = Recorder::start(&h, None);
    let (cert, _, valid_before) = h.certificate("14s", &rec.wrapper_args("off"));
    // A job of the login, left in its cgroup.
    let out = jit_ssh_e2e::run(
        h.ssh(&cert)
            .arg("setsid -f sleep 7391 </dev/null >/dev/null 2>&1; echo started"),
    );
    assert_eq!(out.stdout, b"started\n", "{out:?}");
    let cgroup = first_cgroup(&rec, Duration::from_secs(10));
    let started = process_running("sleep 7391");
    rec.stop();
    // Started by a process of that login: born in its cgroup.
    let script = h.root.join("recorder-from-the-login");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ > '{}/cgroup.procs' || exit 1\nexec '{}' \"$@\"\n",
            cgroup.display(),
            jit_ssh_e2e::bin("jit-ssh-host").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut rec = Recorder::start_program(&h, &script);
    let until = Instant::now() + Duration::from_secs(30);
    while process_running("sleep 7391") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let late = now_unix() - valid_before as f64;
    kill_marked("sleep 7391");
    std::thread::sleep(Duration::from_secs(3));
    let recorder_ran = rec.child.try_wait().unwrap().is_none();
    let log = rec.log_text();
    eprintln!("the login ended {late:.2} s after valid_before; log:\n{log}");
    assert!(started, "the login never ran: the test shows nothing");
    assert!(
        (-1.0..=LATE).contains(&late),
        "the login did not end at its certificate's end ({late:.2} s after it); log:\n{log}"
    );
    assert!(
        recorder_ran,
        "the recorder ended itself with the login it was started in; log:\n{log}"
    );
}
