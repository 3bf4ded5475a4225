//! The `jit-ssh-ca` binary as an operator runs it: `check-config`, `serve
//! --config` with TLS, `invite` through the admin socket, SIGTERM.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn ca() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jit-ssh-ca"))
}

/// Stops the server by pid with SIGTERM (then SIGKILL) even on failure.
struct Server(Option<Child>);

impl Server {
    fn stop(&mut self) -> Option<i32> {
        let mut child = self.0.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(s)) = child.try_wait() {
                return s.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_config(dir: &Path, listen: &str, tls: bool) -> std::path::PathBuf {
    let tls_section = if tls {
        format!(
            "[tls]\ncert = \"{0}/tls.crt\"\nkey = \"{0}/tls.key\"\n",
            dir.display()
        )
    } else {
        String::new()
    };
    let text = format!(
        r#"listen = "{listen}"
public_url = "https://localhost:8443"
data_dir = "{dir}/data"
ca_key = {{ kind = "file", path = "{dir}/ca/ca_key" }}
{tls_section}
[[users]]
name = "alice"
groups = ["sre"]

[host_groups.dev]
hosts = ["*.dev"]
accounts = ["oncall"]

[[rules]]
groups = ["sre"]
host_groups = ["dev"]
max_ttl = "15m"
"#,
        dir = dir.display()
    );
    let path = dir.join("ca.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_reports_every_problem_and_passes_a_good_file() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(ca()
        .args(["init", "--dir"])
        .arg(tmp.path().join("ca"))
        .status()
        .unwrap()
        .success());
    let good = write_config(tmp.path(), "127.0.0.1:8722", false);
    let out = ca().arg("check-config").arg(&good).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (1 users, 1 host groups, 1 rules"));

    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace("127.0.0.1:8722", "0.0.0.0:8722")
        .replace("\"15m\"", "\"3h\"")
        .replace(
            "[\"sre\"]\n\n[host",
            "[\"sre\"]\nroles = [\"root\"]\n\n[host",
        );
    std::fs::write(&good, text).unwrap();
    let out = ca().arg("check-config").arg(&good).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    for needle in [
        "3 problem(s)",
        "line 1: listen",
        "line 9: users.alice: unknown role \"root\"",
        "over the hard cap",
    ] {
        assert!(err.contains(needle), "missing {needle:?}:\n{err}");
    }
}

#[test]
fn serve_with_tls_invite_through_the_admin_socket_and_stop_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(ca()
        .args(["init", "--dir"])
        .arg(dir.join("ca"))
        .status()
        .unwrap()
        .success());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), cert.signing_key.serialize_pem()).unwrap();
    let config = write_config(dir, "127.0.0.1:0", true);

    let mut child = ca()
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut server = Server(Some(child));
    // Read stdout on a thread so a server that never prints fails the
    // test after 30 s instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let bound = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("serve printed no \"bound to\" line");
        if let Some(a) = line.strip_prefix("bound to ") {
            break a.to_owned();
        }
    };
    let port = bound.rsplit(':').next().unwrap();

    // HTTPS answers with the CA key; the certificate is checked. (Clients
    // are dropped at the end of the block: open keep-alive connections
    // would make the graceful shutdown below wait for them.)
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap(),
            )
            .build()
            .unwrap();
        let keys: serde_json::Value = rt
            .block_on(async {
                client
                    .get(format!("https://localhost:{port}/v1/ca-keys"))
                    .send()
                    .await?
                    .json()
                    .await
            })
            .unwrap();
        let ca_pub = std::fs::read_to_string(dir.join("ca/ca_key.pub")).unwrap();
        assert_eq!(keys["keys"][0].as_str().unwrap(), ca_pub.trim());
        // A client that does not trust the certificate is refused.
        let untrusted = reqwest::Client::builder().build().unwrap();
        assert!(rt
            .block_on(
                untrusted
                    .get(format!("https://localhost:{port}/healthz"))
                    .send()
            )
            .is_err());
    }

    // invite goes through the running server's admin socket.
    let out = ca()
        .args(["invite", "alice", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("enroll alice: https://localhost:8443/enroll/"),
        "{stdout}"
    );
    let out = ca()
        .args(["invite", "mallory", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in the CA's configuration"));
    let socket = dir.join("data/admin.sock");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A second server on the same data directory is refused.
    let out = ca()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());

    assert_eq!(server.stop(), Some(0));
    assert!(!socket.exists());
}
