//! The whole path with the real CA: a rule's default session policy puts
//! the session wrapper in the certificate; an engineer logs in with
//! `jit-ssh login` and ssh; security revokes the serial (a WebAuthn touch
//! in Chromium); one `jit-ssh host sync` later the open session ends.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use jit_ssh_e2e::ca_host::{CaHost, SyncProgram};
use jit_ssh_e2e::people::People;
use jit_ssh_e2e::recorder::Recorder;
use jit_ssh_e2e::session_host::Terminal;
use jit_ssh_e2e::sshd::host_key;
use jit_ssh_e2e::world::ok_json;
use jit_ssh_e2e::{bin, have_login_tools, login_name, run, run_ok, DevCa, SshAgent};

#[test]
fn a_revocation_and_one_host_sync_end_an_open_session() {
    if !have_login_tools("sessions_ca_e2e") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["init", "--dir"])
            .arg(root.join("ca")),
    );
    let account = login_name();
    let host_dir = CaHost::dir_in(&root);
    let config = root.join("ca.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen = "127.0.0.1:0"
public_url = "http://localhost:0"
data_dir = "{root}/data"
ca_key = {{ kind = "file", path = "{root}/ca/ca_key" }}

[[users]]
name = "alice"
groups = ["sre"]
roles = ["engineer"]

[[users]]
name = "sam"
groups = ["security"]
roles = ["security"]

[host_groups.db]
hosts = ["db-*.test"]
accounts = ["{account}"]

# No session line: the default (end at expiry, record output, through
# the wrapper).
[[rules]]
groups = ["sre"]
host_groups = ["db"]
max_ttl = "30m"

[sessions]
wrapper = "{wrapper} session --dir {host_dir} --recorder-socket {root}/run-jit-ssh/recorder.sock"
"#,
            root = root.display(),
            wrapper = bin("jit-ssh-host").display(),
            host_dir = host_dir.display(),
        ),
    )
    .unwrap();
    let check = run(Command::new(bin("jit-ssh-ca"))
        .arg("check-config")
        .arg(&config));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let ca = DevCa::start_config(&root, &config);
    let agent = SshAgent::start(&root);
    let people = People::enrolled(&root, &ca, &agent, &config, &["alice", "sam"]);

    // The host: sync (trust on first use), principals, sshd for the wrapper.
    let host = CaHost::start(&root, &ca, &account, "db-1.test", SyncProgram::Client);

    // The default policy records: the host's recorder takes the session.
    let rec = Recorder::start_at(&root, &host.dir, None);
    let serial = people.login("alice", "db-1.test", &account);
    let mut t = Terminal::open(host.ssh(&agent.socket));
    t.type_line("echo in-$((20+22))");
    t.wait_for("in-42", Duration::from_secs(15));

    let revoked = ok_json(&run(people.jit_ssh("sam").args([
        "--json",
        "revoke",
        "--serial",
        &serial,
        "--reason",
        "session e2e",
        "--timeout",
        "60s",
    ])));
    assert_eq!(revoked["serials"][0].as_str(), Some(serial.as_str()));
    // Not yet on the host: the session is still open.
    t.type_line("echo still-$((1+1))");
    t.wait_for("still-2", Duration::from_secs(5));
    host.sync();
    let synced = Instant::now();
    assert!(
        t.wait_exit(Duration::from_secs(5)).is_some(),
        "the session stayed open 5 s after the sync:\n{}",
        t.text()
    );
    eprintln!("session ended {:?} after the host sync", synced.elapsed());
    let screen = t.text();
    assert!(
        screen.contains(&format!("certificate serial {serial}")) && screen.contains("revoked"),
        "{screen}"
    );
    // The recording ends with the reason the wrapper gave.
    let ended = rec.wait_ended(Duration::from_secs(10));
    let (header, chunks) = jit_ssh_e2e::recorder::spooled(&ended);
    let v = jit_ssh_recording::verify(&header, chunks, &host_key(&root), None).unwrap();
    assert_eq!(
        v.end().unwrap().reason,
        jit_ssh_recording::EndReason::Revoked
    );
    assert_eq!(v.header().session.serial, serial);
    drop(t);
    drop(rec);
    drop(host);
    drop(ca);
}
