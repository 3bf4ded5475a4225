//! The real host recorder (`jit-ssh-host recorder`) beside a
//! [`SessionHost`]: its own socket, spool and the sshd's host key, and
//! reading back what it spooled.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use jit_ssh_recording::Chunk;

use crate::bin;
use crate::session_host::SessionHost;

/// systemd's tool for running a socket-activated service by hand.
pub const ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

pub struct Recorder {
    pub child: Child,
    pub socket: PathBuf,
    pub spool: PathBuf,
    pub log: PathBuf,
}

impl Recorder {
    /// Starts a recorder for `h` (uploading to `ca_url` when given) and
    /// waits for its socket.
    pub fn start(h: &SessionHost, ca_url: Option<&str>) -> Recorder {
        Self::start_at(&h.root, &h.dir, ca_url)
    }

    /// A recorder for `h` with `extra` arguments (its spool limits, say).
    pub fn start_with_args(h: &SessionHost, extra: &[&str]) -> Recorder {
        Self::launch_program(&h.root, &h.dir, None, false, &bin("jit-ssh-host"), extra)
    }

    /// [`Recorder::start_at`] with `extra` arguments.
    pub fn start_at_with(
        root: &Path,
        dir: &Path,
        ca_url: Option<&str>,
        extra: &[&str],
    ) -> Recorder {
        Self::launch_program(root, dir, ca_url, false, &bin("jit-ssh-host"), extra)
    }

    /// A recorder signing with `root/ssh_host_ed25519_key` (the key
    /// [`crate::Sshd`] makes there), trusting `dir/ca-keys`.
    pub fn start_at(root: &Path, dir: &Path, ca_url: Option<&str>) -> Recorder {
        Self::launch(root, dir, ca_url, false)
    }

    /// A recorder started as systemd's socket activation starts it
    /// (`systemd-socket-activate` binds the socket and passes it in
    /// LISTEN_FDS); its own `--socket` names a path it must not bind.
    pub fn start_activated(h: &SessionHost) -> Recorder {
        Self::launch(&h.root, &h.dir, None, true)
    }

    /// A recorder running `program` (a release build, for measuring).
    pub fn start_program(h: &SessionHost, program: &Path) -> Recorder {
        Self::launch_program(&h.root, &h.dir, None, false, program, &[])
    }

    /// [`Recorder::start_program`] with `extra` arguments.
    pub fn start_program_with(h: &SessionHost, program: &Path, extra: &[&str]) -> Recorder {
        Self::launch_program(&h.root, &h.dir, None, false, program, extra)
    }

    fn launch(root: &Path, dir: &Path, ca_url: Option<&str>, activated: bool) -> Recorder {
        Self::launch_program(root, dir, ca_url, activated, &bin("jit-ssh-host"), &[])
    }

    fn launch_program(
        root: &Path,
        dir: &Path,
        ca_url: Option<&str>,
        activated: bool,
        program: &Path,
        extra: &[&str],
    ) -> Recorder {
        let socket = root.join("run-jit-ssh").join("recorder.sock");
        let spool = root.join("spool");
        let log = root.join("recorder.log");
        let mut c = if activated {
            std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
            let mut c = Command::new(ACTIVATE);
            c.arg("-l").arg(&socket).arg(program);
            c
        } else {
            Command::new(program)
        };
        let own = if activated {
            root.join("not-bound").join("recorder.sock")
        } else {
            socket.clone()
        };
        c.arg("recorder")
            .arg("--socket")
            .arg(&own)
            .arg("--spool")
            .arg(&spool)
            .arg("--host-key")
            .arg(root.join("ssh_host_ed25519_key"))
            .arg("--dir")
            .arg(dir)
            .args(if extra.contains(&"--chunk-seconds") {
                &[][..]
            } else {
                &["--chunk-seconds", "1"][..]
            })
            .args(extra)
            // A test machine's disk may be fuller than the default 5 %
            // floor allows; only tests of the floor set one.
            .args(if extra.contains(&"--spool-min-free") {
                &[][..]
            } else {
                &["--spool-min-free", "16MiB", "--spool-min-free-percent", "0"][..]
            })
            .env_remove("JIT_SSH_CA_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(url) = ca_url {
            c.args(["--ca-url", url]);
        }
        let child = c.spawn().unwrap();
        let r = Recorder {
            child,
            socket,
            spool,
            log,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while !r.socket.exists() {
            assert!(
                Instant::now() < until,
                "no recorder socket:\n{}",
                r.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    /// The wrapper flags that record to this recorder.
    pub fn wrapper_args(&self, record: &str) -> String {
        format!(
            "--record {record} --recorder-socket {}",
            self.socket.display()
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sessions in the spool.
    pub fn sessions(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.spool)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        v
    }

    /// Waits for one ended session in the spool.
    pub fn wait_ended(&self, within: Duration) -> PathBuf {
        let until = Instant::now() + within;
        loop {
            if let Some(d) = self
                .sessions()
                .into_iter()
                .find(|d| d.join("ended").exists())
            {
                return d;
            }
            assert!(
                Instant::now() < until,
                "no session ended in the spool; recorder log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asks the recorder to stop as systemd does (SIGTERM) and waits up
    /// to `within` for it to exit: its status, or `None` if it did not.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The login cgroups it made (docs/sessions.md) that are empty: a
        // test that ends before the recorder's next look would leave
        // them to the next recorder started on this machine. One a live
        // login still holds is not empty and stays (rmdir refuses it),
        // for a restarted recorder to take back, or for
        // [`remove_left_login_cgroups`] once sshd's harness ended it.
        for path in login_cgroups_in(&self.log_text()) {
            if path.exists() && std::fs::remove_dir(&path).is_err() {
                LEFT.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(path);
            }
        }
    }
}

/// Login cgroups a stopped recorder could not remove: a login still ran
/// in them (a test that stops its recorder mid-login on purpose, or
/// drops it before its sshd).
static LEFT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes the login cgroups stopped recorders left that are empty now,
/// waiting up to `within` for them to empty (their logins' last
/// processes going after sshd's harness ended them). A cgroup still in
/// use stays listed: another test's login may still run in it.
pub fn remove_left_login_cgroups(within: Duration) {
    let until = Instant::now() + within;
    loop {
        let mut left = LEFT.lock().unwrap_or_else(PoisonError::into_inner);
        left.retain(|p| p.exists() && std::fs::remove_dir(p).is_err());
        if left.is_empty() || Instant::now() >= until {
            return;
        }
        drop(left);
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop();
        // Dropped after its sshd: the logins sshd's harness ended may
        // still be going.
        remove_left_login_cgroups(Duration::from_secs(1));
    }
}

/// The header line and chunks a spooled session holds.
pub fn spooled(dir: &Path) -> (String, Vec<Chunk>) {
    let header = std::fs::read_to_string(dir.join("header")).unwrap();
    let raw = std::fs::read(dir.join("chunks")).unwrap();
    let mut chunks = Vec::new();
    let mut rest = raw.as_slice();
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        chunks.push(Chunk::from_bytes(&rest[4..4 + len]).unwrap());
        rest = &rest[4 + len..];
    }
    (header, chunks)
}

/// The login cgroups a recorder's log says it made (`… run in cgroup
/// PATH`).
pub fn login_cgroups_in(log: &str) -> Vec<std::path::PathBuf> {
    log.lines()
        .filter_map(|l| l.split(" run in cgroup ").nth(1))
        .map(|p| std::path::PathBuf::from(p.trim()))
        .collect()
}
