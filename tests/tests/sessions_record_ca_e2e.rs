//! A recorded session from login to playback with the real CA: a rule
//! that records output, a host enrolled with the CA (the recorder signs
//! with its enrolled key), `jit-ssh login` and `ssh -tt` as the
//! engineer, the recording kept in the spool while the CA cannot be
//! reached and sent by the restarted recorder, and an auditor's `jit-ssh audit play
//! --cat` (whose file Debian's `asciinema cat` shows).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use jit_ssh_e2e::people::People;
use jit_ssh_e2e::recording_ca::{wait_uploaded, RecordingSite};
use jit_ssh_e2e::session_host::Terminal;
use jit_ssh_e2e::{have_login_tools, run, runs_as_root, SshAgent};

#[test]
fn a_recorded_session_is_uploaded_and_plays_for_an_auditor() {
    if !have_login_tools("sessions_record_ca_e2e") || !runs_as_root("sessions_record_ca_e2e") {
        return;
    }
    let site = RecordingSite::in_temp_dir();

    // The dev CA, its first rule recording output through the wrapper.
    let ca = site.start_ca("");
    let agent = SshAgent::start(&site.root);
    let people = People::enrolled(&site.root, &ca, &agent, &site.config(), &["alice", "sam"]);

    // The host: sshd (which makes the host key), enrolled with that key.
    let host = site.enrolled_host(&ca, "db-1.dev");
    // First with the CA out of reach: the recording waits in the spool.
    let mut rec = site.recorder(Some("http://127.0.0.1:1"), &[]);
    assert_eq!(rec.socket, site.socket);

    let serial = people.login("alice", "db-1.dev", &site.account);
    let mut t = Terminal::open(host.ssh(&agent.socket));
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
    let rec = site.recorder(Some(&ca.url), &[]);
    // Every chunk acknowledged: the session leaves the spool.
    wait_uploaded(&rec, &ca, Duration::from_secs(20));

    let listed: serde_json::Value =
        serde_json::from_str(people.audit_sessions("sam").trim()).unwrap();
    let text = listed.to_string();
    assert!(text.contains(&session) && text.contains(&serial), "{text}");

    let cast = people.play("sam", &session);
    assert!(cast.contains("echo uploaded-$((6*7))"), "{cast}");
    assert!(cast.contains("uploaded-42"), "{cast}");
    let file = site.root.join("played.cast");
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
    drop(host);
    drop(ca);
}
