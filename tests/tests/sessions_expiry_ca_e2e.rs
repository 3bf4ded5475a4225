//! Sessions that end at their certificate's expiry are taken by the CA,
//! which refuses chunks recorded past `valid_before` plus a short grace
//! (docs/recordings.md): a 20 s certificate, one session ended by its
//! wrapper at `valid_before`, one whose wrapper was stopped and which
//! the recorder ends a few seconds later; both upload whole, list as
//! `expiry` and play for an auditor.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use jit_ssh_e2e::people::People;
use jit_ssh_e2e::recording_ca::{wait_uploaded, RecordingSite};
use jit_ssh_e2e::{have_login_tools, run, runs_as_root, SshAgent};

#[test]
fn sessions_ended_at_their_certificates_expiry_are_taken_whole() {
    if !have_login_tools("sessions_expiry_ca_e2e") || !runs_as_root("sessions_expiry_ca_e2e") {
        return;
    }
    let site = RecordingSite::in_temp_dir();
    let ca = site.start_ca("");
    let agent = SshAgent::start(&site.root);
    let people = People::enrolled(&site.root, &ca, &agent, &site.config(), &["alice", "sam"]);
    let host = site.enrolled_host(&ca, "db-1.dev");
    let rec = site.recorder(Some(&ca.url), &[]);

    let out = run(people.jit_ssh("alice").args([
        "--json",
        "login",
        "db-1.dev",
        "--as",
        &site.account,
        "--ttl",
        "20s",
        "--timeout",
        "60s",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spawn = |cmd: &str| {
        host.ssh(&agent.socket)
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut by_wrapper = spawn("echo until-expiry; sleep 7391");
    let mut by_recorder = spawn("kill -STOP $PPID; sleep 7392");
    for (what, child) in [("wrapper", &mut by_wrapper), ("recorder", &mut by_recorder)] {
        assert!(
            jit_ssh_e2e::session_host::exited_at(child, Duration::from_secs(40)).is_some(),
            "the {what}'s session outlived its certificate; recorder log:\n{}",
            rec.log_text()
        );
    }
    // Every chunk acknowledged, the end chunks included.
    wait_uploaded(&rec, &ca, Duration::from_secs(30));
    let listed = people.audit_sessions("sam");
    let rows: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{listed}");
    for r in &rows {
        assert_eq!(r["reason"], "expiry", "{listed}");
        people.play("sam", r["session"].as_str().unwrap());
    }
    let log = std::fs::read_to_string(&ca.stderr_log).unwrap_or_default();
    assert!(
        !log.contains("a session ends with its certificate"),
        "{log}"
    );
    drop(rec);
    drop(host);
    drop(ca);
}
