//! The real `jit-ssh-ca serve` with `[metrics] listen`: `/metrics`,
//! `/livez` and `/readyz` on their own listener, `/metrics` absent from
//! the main one, and `jit-ssh-ca ready --wait` (the systemd unit's
//! ExecStartPost) answering from the running server.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

fn ca() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jit-ssh-ca"))
}

/// Kills the server by pid even when the test fails.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let res = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    })
}

#[test]
fn a_missing_or_empty_metrics_token_is_a_config_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(ca()
        .args(["init", "--dir"])
        .arg(dir.join("ca"))
        .status()
        .unwrap()
        .success());
    let token = dir.join("metrics.token");
    let config = dir.join("ca.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\npublic_url = \"http://localhost:0\"\ndata_dir = \"{d}/data\"\nca_key = {{ kind = \"file\", path = \"{d}/ca/ca_key\" }}\n[metrics]\ntoken_file = \"{t}\"\n",
            d = dir.display(),
            t = token.display()
        ),
    )
    .unwrap();
    for contents in [None, Some("  \n")] {
        if let Some(c) = contents {
            std::fs::write(&token, c).unwrap();
        }
        let out = ca().arg("check-config").arg(&config).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("metrics.token_file"), "{err}");
        let out = ca()
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "serve started without a usable token"
        );
    }
    std::fs::write(&token, "s3cret\n").unwrap();
    let out = ca().arg("check-config").arg(&config).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_with_a_metrics_listener_and_ready_for_systemd() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(ca()
        .args(["init", "--dir"])
        .arg(dir.join("ca"))
        .status()
        .unwrap()
        .success());
    let config = dir.join("ca.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
public_url = "http://localhost:0"
data_dir = "{dir}/data"
ca_key = {{ kind = "file", path = "{dir}/ca/ca_key" }}

[metrics]
listen = "127.0.0.1:0"

[[users]]
name = "alice"
groups = ["sre"]
"#,
            dir = dir.display()
        ),
    )
    .unwrap();

    // Nothing runs yet: ready says so, after its wait.
    let out = ca()
        .args(["ready", "--wait", "1s", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());

    let mut child = ca()
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Server(child);
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let (mut main, mut metrics) = (None, None);
    for line in lines.by_ref() {
        if let Some(a) = line.strip_prefix("bound to ") {
            main = Some(a.to_owned());
        }
        if let Some(a) = line.strip_prefix("metrics bound to ") {
            metrics = Some(a.to_owned());
            break;
        }
    }
    let (main, metrics) = (main.unwrap(), metrics.unwrap());

    let out = ca()
        .args(["ready", "--wait", "30s", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (s, text) = get(&metrics, "/metrics");
    assert_eq!(s, 200, "{text}");
    assert!(
        text.contains("# TYPE jit_ssh_certificates_issued_total counter"),
        "{text}"
    );
    assert!(text.contains("jit_ssh_connections_open "), "{text}");
    assert_eq!(get(&metrics, "/livez"), (200, "ok\n".to_owned()));
    let (s, ready) = get(&metrics, "/readyz");
    assert_eq!(s, 200, "{ready}");
    // The main listener has liveness and readiness, not the metrics.
    assert_eq!(get(&main, "/metrics").0, 404);
    assert_eq!(get(&main, "/readyz").0, 200);
    assert_eq!(get(&main, "/healthz"), (200, "ok\n".to_owned()));
}
