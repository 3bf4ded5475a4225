//! `jit-ssh ssh-config`: plain `ssh ACCOUNT@HOST` through the printed
//! snippet logs in first *as ACCOUNT* and a real sshd lets it in — for an
//! account that is not the jit-ssh user's own name (the bug: the snippet
//! asked for the user's name, and sshd said "Permission denied").

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use jit_ssh_e2e::people::People;
use jit_ssh_e2e::signed_ca::fingerprint;
use jit_ssh_e2e::{
    bin, browser_script, have_tools, login_name, run, run_ok, DevCa, SshAgent, Sshd, CHROMIUM,
    NODE, SSH, SSHD, SSH_KEYGEN,
};

#[test]
fn plain_ssh_through_the_snippet_logs_in_as_the_remote_account() {
    let (_, playwright) = browser_script();
    let playwright = playwright.to_string_lossy().into_owned();
    if !have_tools(
        "ssh_config_e2e",
        &[SSHD, SSH, SSH_KEYGEN, CHROMIUM, NODE, &playwright],
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
    // alice may reach *.dev only as the test's Unix account (not "alice").
    let account = login_name();
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

[host_groups.dev]
hosts = ["*.dev"]
accounts = ["{account}"]

[[rules]]
groups = ["sre"]
host_groups = ["dev"]
max_ttl = "15m"
approval = "none"
# This sshd runs no session wrapper (sessions_e2e tests it).
session = {{ end_at_expiry = false, record = "off" }}
"#,
            root = root.display(),
        ),
    )
    .unwrap();
    let ca = DevCa::start_config(&root, &config);
    let agent = SshAgent::start(&root);
    let people = People {
        root: root.clone(),
        ca_url: ca.url.clone(),
        agent: agent.socket.clone(),
    };
    people.enroll(&config, "alice");

    // The host: trusts the CA (host sync), accepts ACCOUNT@db-1.dev.
    let host_dir = root.join("etc-ssh-jit-ssh");
    let ca_key = root.join("ca").join("ca_key");
    run_ok(
        Command::new(bin("jit-ssh"))
            .args(["host", "sync", "--ca", &ca.url, "--dir"])
            .arg(&host_dir)
            .args(["--bootstrap-fingerprint", &fingerprint(&ca_key)]),
    );
    run_ok(
        Command::new(bin("jit-ssh"))
            .args([
                "host",
                "setup",
                "--host",
                "db-1.dev",
                "--account",
                &account,
                "--dir",
            ])
            .arg(&host_dir),
    );
    let sshd = Sshd::start(
        &root,
        &host_dir.join("ca-keys"),
        &host_dir.join("revoked.krl"),
        &host_dir.join("principals"),
    );

    // ~/.ssh/config: the snippet, then how to reach db-1.dev here.
    let out = run(people
        .jit_ssh("alice")
        .args(["--json", "ssh-config", "--host", "*.dev"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let snippet = printed["snippet"].as_str().unwrap();
    assert!(snippet.contains("--as %r %n"), "{snippet}");
    let jit_ssh_dir = bin("jit-ssh").parent().unwrap().to_owned();
    let ssh_config = root.join("ssh_config");
    std::fs::write(
        &ssh_config,
        format!(
            "{snippet}\nHost *.dev\n  HostName 127.0.0.1\n  Port {port}\n  IdentityAgent {agent}\n  IdentitiesOnly no\n  BatchMode yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
            port = sshd.port(),
            agent = agent.socket.display(),
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        jit_ssh_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let ssh = |target: &str| {
        let mut c = people.jit_ssh("alice");
        c.env("PATH", &path);
        let mut c2 = Command::new(SSH);
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => c2.env(k, v),
                None => c2.env_remove(k),
            };
        }
        run(c2
            .arg("-F")
            .arg(&ssh_config)
            .arg(target)
            .args(["echo", "through-the-snippet"]))
    };
    let out = ssh(&format!("{account}@db-1.dev"));
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("through-the-snippet"),
        "ssh: {}\nsshd: {}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    assert!(
        sshd.log()
            .contains(&format!("Accepted publickey for {account}")),
        "{}",
        sshd.log()
    );
    // The certificate is for ACCOUNT@db-1.dev, and a second ssh reuses it.
    let certs = agent.certificates();
    assert_eq!(certs.len(), 1, "{certs:?}");
    let out = ssh(&format!("{account}@db-1.dev"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(agent.certificates().len(), 1);
}
