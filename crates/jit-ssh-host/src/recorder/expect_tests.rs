//! Unit tests of [`super`] (the expected logins registry).

use super::*;
use crate::test_cert::forcing as cert_forcing;

#[test]
fn only_a_recording_force_command_is_expected() {
    assert!(records(&cert_forcing(
        "/usr/local/bin/jit-ssh-host session --record output --grant g"
    )));
    assert!(records(&cert_forcing(
        "/usr/local/bin/jit-ssh-host session --record full"
    )));
    assert!(!records(&cert_forcing(
        "/usr/local/bin/jit-ssh-host session --record off --grant g"
    )));
    assert!(!records(&cert_forcing("")));
}

#[test]
fn every_certificate_that_runs_the_wrapper_is_watched_recorded_or_not() {
    let off = cert_forcing("/usr/local/bin/jit-ssh-host session --record off --grant g");
    assert!(runs_wrapper_policy(&off));
    assert_eq!(wrapper_record_mode(&off), Some("off"));
    assert!(!records(&off));
    assert!(runs_wrapper_policy(&cert_forcing(
        "/usr/local/bin/jit-ssh-host session --record output --grant g"
    )));
    // No wrapper: a plain certificate, or another forced command.
    assert!(!runs_wrapper_policy(&cert_forcing("")));
    assert!(!runs_wrapper_policy(&cert_forcing(
        "/usr/bin/backup --record off"
    )));
}

/// Alice's recorded login (serial 9) whose sshd monitor started at
/// `monitor_start`.
fn recorded_login(monitor_start: Option<u64>) -> Login {
    let cert = cert_forcing("/usr/local/bin/jit-ssh-host session --record output");
    Login {
        serial: 9,
        key_id: "jit-ssh:alice:g:9".into(),
        account: "oncall".into(),
        recorded: true,
        end: LoginEnd::new(&cert, Path::new("/nonexistent")),
        cert,
        monitor_start,
        since: Instant::now(),
    }
}

#[test]
fn the_login_is_found_from_its_session_process_or_its_monitor() {
    let r = Shared::default();
    let me = i32::try_from(std::process::id()).unwrap();
    lock(&r).logins.insert(me, recorded_login(start_time(me)));
    let mut child = std::process::Command::new("sleep")
        .arg("5")
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let want = Some((9, "jit-ssh:alice:g:9".to_owned()));
    assert_eq!(login_of(&r, me), want);
    assert_eq!(login_of(&r, pid), want);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(login_of(&Shared::default(), me), None);
}

#[test]
fn a_later_process_with_a_gone_monitors_pid_inherits_no_login() {
    let r = Shared::default();
    let me = i32::try_from(std::process::id()).unwrap();
    // The login's monitor started before whatever has its pid now.
    let before = start_time(me).map(|t| t.saturating_sub(1));
    lock(&r).logins.insert(me, recorded_login(before));
    assert_eq!(login_of(&r, me), None);
    let _ = sweep(&r, Path::new("/nonexistent"));
    assert!(lock(&r).logins.is_empty());
}

#[test]
fn a_process_with_a_gone_wrappers_pid_is_not_announced() {
    let r = Shared::default();
    let mut child = std::process::Command::new("sleep")
        .arg("5")
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    assert!(announced(&r, pid));
    assert!(is_announced(&lock(&r).announced, pid));
    // One session per wrapper process.
    assert!(!announced(&r, pid));
    // What the registry holds once that wrapper is gone and another
    // process started later under its pid.
    {
        let mut reg = lock(&r);
        let entry = *reg.announced.iter().next().unwrap();
        reg.announced.clear();
        reg.announced.insert((pid, entry.1.saturating_sub(1)));
    }
    assert!(!is_announced(&lock(&r).announced, pid));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_real_uid_is_read_from_proc() {
    let me = i32::try_from(std::process::id()).unwrap();
    let uid = String::from_utf8(
        std::process::Command::new("id")
            .arg("-ru")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(real_uid(me), uid.trim().parse().ok());
    assert_eq!(real_uid(-1), None);
}

#[test]
fn a_principals_command_not_run_by_a_root_sshd_is_refused() {
    let r = Shared::default();
    let me = i32::try_from(std::process::id()).unwrap();
    let e = Expect {
        account: "root".into(),
        certificate: "x".into(),
    };
    assert!(matches!(
        expect(&r, me, &e, Path::new("/nonexistent")),
        Err(ExpectError::NotSshdMonitor { .. })
    ));
}

#[test]
fn what_a_login_left_after_its_sshd_went_is_kept_across_restarts_until_it_ends() {
    use super::super::watched_logins::{load, save, SavedSession, SavedSid, FILE};
    let spool = tempfile::tempdir().unwrap();
    let path = spool.path().join(FILE);
    let (mut child, sid) = super::super::test_job::session_leader();
    let cert = cert_forcing("/usr/local/bin/jit-ssh-host session --record off --grant g");
    // What a recorder kept of a login whose sshd processes are gone (no
    // process has those pids) and whose job still runs.
    let kept = Saved {
        monitor: i32::MAX - 1,
        monitor_start: 5,
        account: "oncall".into(),
        certificate: cert.to_openssh().unwrap(),
        sessions: vec![SavedSession {
            sshd: i32::MAX - 2,
            sshd_start: Some(6),
            sids: vec![SavedSid {
                sid,
                anchor: sid,
                anchor_start: start_time(sid).unwrap(),
                seen: None,
            }],
        }],
        cgroup: None,
    };
    save(&path, std::slice::from_ref(&kept)).unwrap();
    let r = Shared::default();
    assert_eq!(
        restore(
            &r,
            path.clone(),
            Path::new("/nonexistent"),
            Err("none".into())
        ),
        1
    );
    // Written back at once, for the recorder after this one (under no
    // monitor pid: a later sshd with that pid is not this login's).
    assert_eq!(
        load(&path),
        vec![Saved {
            monitor: 0,
            ..kept.clone()
        }]
    );
    let r = Shared::default();
    assert_eq!(
        restore(
            &r,
            path.clone(),
            Path::new("/nonexistent"),
            Err("none".into())
        ),
        1
    );
    assert!(
        sweep(&r, Path::new("/nonexistent")).is_empty(),
        "not due yet"
    );
    assert_eq!(load(&path)[0].sessions[0].sids[0].sid, sid);
    // Once nothing of it runs, it is forgotten.
    let _ = child.kill();
    let _ = child.wait();
    let _ = sweep(&r, Path::new("/nonexistent"));
    assert!(lock(&r).left.is_empty());
    assert!(load(&path).is_empty());
}
