//! A private `ssh-agent -D -a SOCKET`, killed by pid when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSH_AGENT: &str = "/usr/bin/ssh-agent";
pub const SSH_ADD: &str = "/usr/bin/ssh-add";

pub struct SshAgent {
    child: Child,
    pub socket: PathBuf,
}

impl SshAgent {
    pub fn start(dir: &Path) -> SshAgent {
        let socket = dir.join("agent.sock");
        let child = Command::new(SSH_AGENT)
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting ssh-agent");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "ssh-agent did not create {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        SshAgent { child, socket }
    }

    /// `ssh-add -l` lines that are certificates.
    pub fn certificates(&self) -> Vec<String> {
        let out = Command::new(SSH_ADD)
            .arg("-l")
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .expect("ssh-add -l");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("-CERT)"))
            .map(String::from)
            .collect()
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
