//! The `jit-ssh-ca` binary as an operator runs it: `check-config`, `serve
//! --config` with TLS, `invite` through the admin socket, SIGTERM; and
//! `serve --dev` as a newcomer tries it: a sample policy file to edit.

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

/// Starts `jit-ssh-ca serve …`; its stdout lines arrive on the channel (a
/// thread reads them, so a server that never prints fails a test after
/// 30 s instead of hanging it).
fn start(cmd: &mut Command) -> (Server, std::sync::mpsc::Receiver<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Server(Some(child)), rx)
}

/// The rest of the first line starting with `prefix`.
fn wait_for(lines: &std::sync::mpsc::Receiver<String>, prefix: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("serve printed no {prefix:?} line"));
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.to_owned();
        }
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

    let (mut server, lines) = start(ca().args(["serve", "--config"]).arg(&config));
    let bound = wait_for(&lines, "bound to ");
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

#[test]
fn serve_dev_writes_a_policy_to_edit_and_invites_whoever_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = tmp.path().join("dev");
    let serve = || {
        let mut c = ca();
        c.args(["serve", "--dev", "--listen", "127.0.0.1:0", "--dev-dir"])
            .arg(&dev);
        c
    };
    let (mut server, lines) = start(&mut serve());
    let policy = wait_for(&lines, "policy: ");
    assert!(
        policy.starts_with(&dev.join("ca.toml").display().to_string()),
        "{policy}"
    );
    let link = wait_for(&lines, "enroll admin: ");
    assert!(
        link.starts_with("http://localhost:") && link.contains("/enroll/"),
        "{link}"
    );

    // The sample is an ordinary config file: private, and check-config passes it.
    let file = dev.join("ca.toml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = ca().arg("check-config").arg(&file).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("OK (4 users, 2 host groups, 2 rules"),
        "{said}"
    );

    // Its users can be invited; others cannot.
    let invite = |user: &str| {
        ca().args(["invite", user, "--dev-dir"])
            .arg(&dev)
            .output()
            .unwrap()
    };
    for user in ["alice", "carol", "sam"] {
        let out = invite(user);
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .starts_with(&format!("enroll {user}: http://localhost:")),
            "{user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!invite("dave").status.success());

    // Add a user to the file and restart: the file is kept, dave is invited.
    assert_eq!(server.stop(), Some(0));
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\n[[users]]\nname = \"dave\"\ngroups = [\"dev\"]\n");
    std::fs::write(&file, &text).unwrap();
    let (mut server, lines) = start(&mut serve());
    wait_for(&lines, "bound to ");
    let out = invite("dave");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    assert_eq!(server.stop(), Some(0));

    // --dev-user must be one of the file's users.
    let out = serve().args(["--dev-user", "nobody"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody is not a user in"));
}

#[test]
fn the_example_config_fails_only_on_the_files_it_names_and_says_why() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ca.example.toml");
    let out = ca().arg("check-config").arg(&example).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let problems: Vec<&str> = err.lines().skip(1).collect();
    assert_eq!(problems.len(), 3, "{err}");
    for p in &problems {
        assert!(p.contains("No such file or directory"), "{p}");
    }
    assert!(
        problems[0].contains("/var/lib/jit-ssh/ca/ca_key")
            && problems[0].contains("jit-ssh-ca init --dir /var/lib/jit-ssh/ca"),
        "{err}"
    );
}
