//! `jit-ssh-ca serve --dev` as a child process on 127.0.0.1:0. Stopped
//! with SIGTERM (then SIGKILL) by pid when dropped, even if a test fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::bin;

pub struct DevCa {
    child: Option<Child>,
    pub dev_dir: PathBuf,
    pub url: String,
    pub enroll_url: String,
    pub stderr_log: PathBuf,
}

impl DevCa {
    /// Starts the dev CA for `user` and waits for its enrollment link.
    pub fn start(dev_dir: &Path, user: &str) -> DevCa {
        let mut cmd = Command::new(bin("jit-ssh-ca"));
        cmd.args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--dev-user",
            user,
            "--dev-dir",
        ])
        .arg(dev_dir);
        Self::spawn(cmd, dev_dir, Some(user))
    }

    /// Starts `serve --dev` as the README does — from `cwd`, with the
    /// default dev folder `.jit-ssh-dev` and user `admin` — but on port 0.
    pub fn start_in(cwd: &Path) -> DevCa {
        let mut cmd = Command::new(bin("jit-ssh-ca"));
        cmd.current_dir(cwd)
            .args(["serve", "--dev", "--listen", "127.0.0.1:0"]);
        Self::spawn(cmd, &cwd.join(".jit-ssh-dev"), Some("admin"))
    }

    /// Starts `serve --config CONFIG` (its `listen` port 0 and `public_url`
    /// `http://localhost:0`); `dir` holds its CA key under `ca/`.
    pub fn start_config(dir: &Path, config: &Path) -> DevCa {
        let mut cmd = Command::new(bin("jit-ssh-ca"));
        cmd.args(["serve", "--config"]).arg(config);
        Self::spawn(cmd, dir, None)
    }

    fn spawn(mut cmd: Command, dev_dir: &Path, user: Option<&str>) -> DevCa {
        let stderr_log = dev_dir.with_extension("stderr.log");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).expect("stderr log"))
            .spawn()
            .expect("starting jit-ssh-ca serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut ca = DevCa {
            child: Some(child),
            dev_dir: dev_dir.to_owned(),
            url: String::new(),
            enroll_url: String::new(),
            stderr_log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while ca.url.is_empty() || (user.is_some() && ca.enroll_url.is_empty()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "jit-ssh-ca serve did not come up; its log:\n{}",
                    std::fs::read_to_string(&ca.stderr_log).unwrap_or_default()
                )
            });
            if let Some(u) = line.strip_prefix("jit-ssh-ca listening on ") {
                ca.url = u.trim().to_owned();
            }
            if let Some(link) = user.and_then(|u| line.strip_prefix(&format!("enroll {u}: "))) {
                ca.enroll_url = link.trim().to_owned();
            }
        }
        ca
    }

    pub fn ca_public_key(&self) -> PathBuf {
        self.dev_dir.join("ca").join("ca_key.pub")
    }

    /// Sends SIGTERM and waits for a clean exit; returns its status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for DevCa {
    fn drop(&mut self) {
        self.stop();
    }
}
