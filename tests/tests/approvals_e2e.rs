//! The approval workflow with the real binaries, ssh-agent and Chromium:
//! a CA configured with an on-call schedule from an iCalendar fixture
//! (tests/fixtures/oncall.ics), two engineers and two approvers, and a
//! local webhook receiver.
//!
//! - Alice, on call (primary layer) per the feed, gets a certificate with
//!   no approver.
//! - Bob (only secondary in the feed) waits; his client says who was asked.
//!   He cannot approve his own request. Carol approves on the approve page
//!   in a real browser; approving twice is refused; Dave approves with
//!   `jit-ssh approve`, and Bob's login completes.
//! - Break-glass issues at once, marked in the key id, and the webhook
//!   receiver gets the notification.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use jit_ssh_e2e::agent::{SSH_ADD, SSH_AGENT};
use jit_ssh_e2e::people::People;
use jit_ssh_e2e::world::ok_json;
use jit_ssh_e2e::{
    bin, browser_script, have_tools, run, run_ok, DevCa, SshAgent, CHROMIUM, NODE, SSH_KEYGEN,
};

/// A webhook receiver on 127.0.0.1:0 keeping every body (a thread; it
/// goes with the test process).
fn webhook() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hook",
        listener.local_addr().unwrap().port()
    );
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = conn.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break Vec::new();
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break buf[end + 4..end + 4 + len].to_vec();
                    }
                }
            };
            if let Ok(v) = serde_json::from_slice(&body) {
                seen.lock().unwrap().push(v);
            }
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

/// A child process killed when dropped (a test that fails leaves nothing).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(bodies: &Mutex<Vec<serde_json::Value>>, event: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(v) = bodies.lock().unwrap().iter().find(|v| v["event"] == event) {
            return v.clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no {event} notification; got {:?}", bodies.lock().unwrap());
}

#[test]
fn on_call_gets_in_others_wait_for_approvers_and_break_glass_is_loud() {
    let (_, playwright) = browser_script();
    let playwright = playwright.to_string_lossy().into_owned();
    if !have_tools(
        "approvals_e2e",
        &[SSH_KEYGEN, SSH_AGENT, SSH_ADD, CHROMIUM, NODE, &playwright],
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["init", "--dir"])
            .arg(root.join("ca")),
    );
    let (hook, bodies) = webhook();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/oncall.ics");
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
email = "alice@example.com"

[[users]]
name = "bob"
groups = ["sre"]
email = "bob@example.com"

[[users]]
name = "carol"
groups = ["leads"]
roles = ["approver"]

[[users]]
name = "dave"
groups = ["leads"]
roles = ["approver"]

[host_groups.web]
hosts = ["web-*.test"]
accounts = ["www"]

[[rules]]
groups = ["sre"]
host_groups = ["web"]
max_ttl = "30m"
approval = "oncall"
schedule = "web"
layers = ["primary"]
fallback = "approvers"
approvers = ["leads"]
min_approvals = 2
break_glass = true
break_glass_max_ttl = "5m"

[schedules.web]
kind = "ical"
source = "{fixture}"
time_zone = "Europe/Berlin"
layers = {{ primary = "level 1", secondary = "level 2" }}

[[notify]]
kind = "webhook"
url = "{hook}"
"#,
            root = root.display(),
            fixture = fixture.display(),
        ),
    )
    .unwrap();
    let check = run(Command::new(bin("jit-ssh-ca"))
        .args(["check-config"])
        .arg(&config));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let ca = DevCa::start_config(&root, &config);
    let agent = SshAgent::start(&root);
    let people = People {
        root: root.clone(),
        ca_url: ca.url.clone(),
        agent: agent.socket.clone(),
    };
    for user in ["alice", "bob", "carol", "dave"] {
        people.enroll(&config, user);
    }

    // Who is on call, as the CA sees it.
    let oncall = run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["oncall", "web", "--config"])
            .arg(&config),
    );
    assert!(
        oncall.contains("primary") && oncall.contains("alice@example.com = alice"),
        "{oncall}"
    );
    assert!(
        oncall.contains("secondary") && oncall.contains("bob@example.com = bob"),
        "{oncall}"
    );

    let login = |user: &str, host: &str, extra: &[&str]| {
        let mut c = people.jit_ssh(user);
        c.args([
            "--json",
            "login",
            host,
            "--as",
            "www",
            "--ttl",
            "5m",
            "--timeout",
            "90s",
        ])
        .args(extra);
        c
    };

    // 1. Alice is on call: no approver involved.
    let a = ok_json(&run(&mut login("alice", "web-1.test", &[])));
    // Serials are decimal strings (JavaScript numbers lose digits).
    assert!(a["serial"]
        .as_str()
        .is_some_and(|s| s.parse::<u64>().is_ok()));

    // 2. Bob is not (secondary only): he waits, and is told who was asked.
    let mut bob = Running(
        login("bob", "web-1.test", &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stderr = bob.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut bob_said = Vec::new();
    let approve_url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("bob's login said: {bob_said:?}"));
        bob_said.push(line.clone());
        if line.contains("/approve/") {
            break line.trim().to_owned();
        }
    };
    assert!(
        bob_said
            .iter()
            .any(|l| l
                .contains("Needs 2 approval(s) (you are not on call in web) from: carol, dave")),
        "{bob_said:?}"
    );
    let request = approve_url.rsplit('/').next().unwrap().to_owned();
    let pending = wait_for(&bodies, "pending_approval");
    assert_eq!(pending["approvers"], serde_json::json!(["carol", "dave"]));
    assert_eq!(pending["url"].as_str(), Some(approve_url.as_str()));

    // Bob cannot approve his own request.
    let own = run(people
        .jit_ssh("bob")
        .args(["approve", &request, "--timeout", "60s"]));
    assert_eq!(
        own.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    assert!(String::from_utf8_lossy(&own.stderr).contains("cannot approve or deny it themselves"));

    // Carol approves on the page, in Chromium; a second time is refused.
    let first = people.on_page(&approve_url, "carol", "approve");
    assert!(
        first.starts_with(
            "Your approval is recorded (1 of 2). The request waits for 1 more approver."
        ),
        "{first}"
    );
    let again = people.on_page(&approve_url, "carol", "approve");
    assert!(
        again.contains("carol already approved this request"),
        "{again}"
    );

    // Dave approves from his terminal; Bob's login completes.
    let dave = run(people.jit_ssh("dave").args([
        "approve",
        &request,
        "--comment",
        "ok",
        "--timeout",
        "60s",
    ]));
    assert!(
        dave.status.success(),
        "{}",
        String::from_utf8_lossy(&dave.stderr)
    );
    assert!(String::from_utf8_lossy(&dave.stdout).contains("the certificate was issued to bob"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = bob.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "bob's login did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    bob.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    bob_said.extend(rx.try_iter());
    assert!(status.success(), "{bob_said:?}");
    let issued: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(issued["serial"]
        .as_str()
        .is_some_and(|s| s.parse::<u64>().is_ok()));
    assert!(
        bob_said
            .iter()
            .any(|l| l.contains("approved by carol (1 of 2)")),
        "{bob_said:?}"
    );
    wait_for(&bodies, "approved");

    // The pending list no longer shows it.
    let list = run(people
        .jit_ssh("carol")
        .args(["--json", "requests", "--timeout", "60s"]));
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&request));
    // One JSON array, as `status --json` prints.
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert!(listed.iter().all(|r| r["id"] != request.as_str()));

    // 3. Break-glass: at once, marked, notified.
    let bg = run(&mut login(
        "bob",
        "web-2.test",
        &[
            "--break-glass",
            "--reason",
            "site down, no approver answering",
        ],
    ));
    let bg = ok_json(&bg);
    let status = ok_json(&run(people.jit_ssh("bob").args(["--json", "status"])));
    let key_id = status
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["serial"] == bg["serial"])
        .map(|c| c["key_id"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(key_id.ends_with(":break-glass"), "{key_id}");
    let n = wait_for(&bodies, "break_glass");
    assert_eq!(
        (n["user"].as_str(), n["host"].as_str()),
        (Some("bob"), Some("web-2.test"))
    );
    assert_eq!(n["reason"], "site down, no approver answering");
    // Break-glass needs a reason.
    let no_reason = run(&mut login("bob", "web-2.test", &["--break-glass"]));
    assert_eq!(no_reason.status.code(), Some(2));
}
