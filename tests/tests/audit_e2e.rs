//! Auditing with the real binaries: an engineer logs in to a real sshd;
//! the key id and serial sshd logs lead, through `jit-ssh audit --serial`,
//! to the CA's record of that certificate; `jit-ssh audit export` and
//! `jit-ssh audit verify --ca-key` prove the chain, and any edit, deletion,
//! reordering or unsigned tail fails verification naming the record.
//! Sign-in is a WebAuthn touch in Chromium, once for the whole run.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use jit_ssh_e2e::world::{ok_json, ssh_via_agent, World};
use jit_ssh_e2e::{bin, have_login_tools, run, SSH_KEYGEN};

/// The key id and serial from sshd's `Accepted publickey … ID … (serial N)`.
fn accepted(log: &str) -> (String, u64) {
    let line = log
        .lines()
        .find(|l| l.contains("Accepted publickey") && l.contains("ID jit-ssh:"))
        .unwrap_or_else(|| panic!("no accepted login in the sshd log:\n{log}"));
    let id = line
        .split("ID ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let serial = line
        .split("(serial ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (id.to_owned(), serial)
}

#[test]
fn sshd_logins_join_the_audit_log_and_exports_verify_offline() {
    if !have_login_tools("audit_e2e") {
        return;
    }
    let mut w = World::start();
    let host = w.host(&["db-1.dev"]);
    let sshd = &host.sshd;

    // Log in and use the certificate: sshd names it.
    let cert = ok_json(&w.login("db-1.dev", "10m"));
    let out = ssh_via_agent(sshd.port(), &w.account, &w.agent.socket);
    assert!(out.status.success(), "{}", sshd.log());
    let (key_id, serial) = accepted(&sshd.log());
    assert_eq!(Some(serial.to_string().as_str()), cert["serial"].as_str());

    // The auditor's question: which record is that login's certificate?
    let audit = |args: &[&str]| {
        run(w
            .jit_ssh()
            .arg("audit")
            .args(args)
            .args(["--timeout", "60s"]))
    };
    let by_serial = audit(&["--serial", &serial.to_string(), "--json"]);
    assert!(
        by_serial.status.success(),
        "{}",
        String::from_utf8_lossy(&by_serial.stderr)
    );
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&by_serial.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let issued = &records[0]["event"];
    assert_eq!(issued["kind"], "certificate_issued");
    assert_eq!(issued["key_id"], key_id.as_str());
    assert_eq!(issued["user"], w.account.as_str());
    assert_eq!(issued["host"], "db-1.dev");
    let grant = issued["grant"].as_str().unwrap();
    assert_eq!(key_id, format!("jit-ssh:{}:{grant}:{serial}", w.account));

    // A readable table, through the saved sign-in (no second touch).
    let table = audit(&["--grant", grant]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    for kind in [
        "request_created",
        "mfa_verified",
        "policy_decision",
        "certificate_issued",
    ] {
        assert!(text.contains(kind), "{text}");
    }
    let first = String::from_utf8_lossy(&by_serial.stderr);
    assert!(first.contains("Sign in as"), "{first}");
    let second = String::from_utf8_lossy(&table.stderr);
    assert!(!second.contains("Sign in as"), "{second}");

    // Export and verify with only the CA public key.
    let file = w.root.join("audit.jsonl");
    let out = run(w
        .jit_ssh()
        .args(["audit", "export", "-o"])
        .arg(&file)
        .args(["--timeout", "60s"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verify = |path: &std::path::Path| {
        run(Command::new(bin("jit-ssh"))
            .args(["audit", "verify"])
            .arg(path)
            .arg("--ca-key")
            .arg(w.ca.ca_public_key()))
    };
    let ok = verify(&file);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("OK: "));

    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let at = lines
        .iter()
        .position(|l| l.contains("\"certificate_issued\""))
        .unwrap();
    let seq_at = |i: usize| {
        serde_json::from_str::<serde_json::Value>(&lines[i]).unwrap()["seq"]
            .as_u64()
            .unwrap()
    };
    let tampered = |name: &str, edit: &dyn Fn(&mut Vec<String>)| {
        let mut copy = lines.clone();
        edit(&mut copy);
        let path = w.root.join(name);
        std::fs::write(&path, copy.join("\n") + "\n").unwrap();
        let out = verify(&path);
        assert_eq!(
            out.status.code(),
            Some(8),
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let edited = tampered("edited.jsonl", &|l| {
        l[at] = l[at].replace("db-1.dev", "db-9.dev")
    });
    assert!(
        edited.contains(&format!("record {} ", seq_at(at))),
        "{edited}"
    );
    assert!(edited.contains("altered"), "{edited}");
    let deleted = tampered("deleted.jsonl", &|l| drop(l.remove(at)));
    assert!(
        deleted.contains(&format!("record {} ", seq_at(at + 1))),
        "{deleted}"
    );
    let swapped = tampered("swapped.jsonl", &|l| l.swap(at, at + 1));
    assert!(
        swapped.contains(&format!("record {} ", seq_at(at + 1))),
        "{swapped}"
    );
    // OpenSSH agrees the final checkpoint is the CA's signature.
    let cp: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(cp["event"]["kind"], "checkpoint");
    let sig = w.root.join("checkpoint.sig");
    std::fs::write(&sig, cp["event"]["signature"].as_str().unwrap()).unwrap();
    let message = format!(
        "jit-ssh-audit-checkpoint-v1\n{}\n{}\n",
        cp["event"]["seq"],
        cp["event"]["hash"].as_str().unwrap()
    );
    let mut check = Command::new(SSH_KEYGEN)
        .args([
            "-Y",
            "check-novalidate",
            "-n",
            "jit-ssh-audit@jit-ssh",
            "-s",
        ])
        .arg(&sig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    // Without its final checkpoint, the tail is vouched for by nothing.
    let unsigned = tampered("unsigned.jsonl", &|l| drop(l.pop()));
    assert!(unsigned.contains("no signed checkpoint"), "{unsigned}");

    // Shutting down signs the head too.
    ok_json(&w.login("db-1.dev", "10m"));
    assert_eq!(w.ca.stop(), Some(0));
    let chain = std::fs::read_to_string(w.ca.dev_dir.join("data/audit/chain.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(chain.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"]["kind"], "checkpoint");
    assert_eq!(last["event"]["trigger"], "shutdown");
}
