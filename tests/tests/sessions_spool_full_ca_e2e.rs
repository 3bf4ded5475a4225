//! Running out of room, end to end with the real CA: a CA whose
//! recordings store is below its free-space floor answers uploads 507 and
//! stores nothing; the host recorder keeps the chunks and retries with
//! its backoff; a session flooding the host's capped spool meanwhile is
//! ended as `spool-full` and the next recorded login refused; once the CA
//! has room, the spool drains, the auditor sees the session ended
//! `spool-full`, and logins are recorded again.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use jit_ssh_e2e::people::People;
use jit_ssh_e2e::recording_ca::{wait_uploaded, RecordingSite};
use jit_ssh_e2e::{have_login_tools, run, run_ok, runs_as_root, SshAgent};

const FLOOD: &str = "head -c 20000000 /dev/urandom | base64 -w 76; echo flood-done";

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
    if !have_login_tools("sessions_spool_full_ca_e2e")
        || !runs_as_root("sessions_spool_full_ca_e2e")
    {
        return;
    }
    let site = RecordingSite::in_temp_dir();

    // No machine has 100 TiB free: every upload is below the floor.
    let ca = site.start_ca("[recordings]\nmin_free = \"100TiB\"\n");
    let agent = SshAgent::start(&site.root);
    let mut people = People::enrolled(&site.root, &ca, &agent, &site.config(), &["alice", "sam"]);

    let host = site.enrolled_host(&ca, "db-1.dev");

    let rec = site.recorder(Some(&ca.url), &["--spool-max", "256KiB"]);
    let serial = people.login("alice", "db-1.dev", &site.account);
    let ssh = || host.ssh(&agent.socket);

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
    let listed = people.audit_sessions("sam");
    assert!(!listed.contains(&session), "{listed}");

    // The spool is over its cap: the next recorded login is refused.
    let out = run(ssh().arg("echo should-not-run"));
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this host's recording spool is full"), "{err}");

    // The CA has room again (the floor lifted; on a real CA: space freed).
    drop(ca);
    let ca = site.start_ca("");
    people.ca_url = ca.url.clone();
    drop(rec);
    let rec = site.recorder(Some(&ca.url), &["--spool-max", "256KiB"]);
    wait_uploaded(&rec, &ca, Duration::from_secs(60));
    // One JSON line per recording.
    let listed = people.audit_sessions("sam");
    let row: serde_json::Value = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|s| s["session"] == session.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(row["reason"], "spool-full", "{row}");
    assert_eq!(row["serial"].to_string().trim_matches('"'), serial, "{row}");
    // And the human table names it too.
    let table = run_ok(
        people
            .jit_ssh("sam")
            .args(["audit", "sessions", "--timeout", "60s"]),
    );
    assert!(table.contains("spool-full"), "{table}");
    // The whole recording verifies for the auditor.
    people.play("sam", &session);

    // Room in the spool again: a recorded login works.
    let out = run(ssh().arg("echo recorded-again"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("recorded-again"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(rec);
    drop(host);
    drop(ca);
}
