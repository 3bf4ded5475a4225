//! The real host recorder (`jit-ssh-host recorder`) for the "wrapper +
//! recorder" row: run as root on a socket in the bench's temp dir,
//! signing with the private sshd's host key and trusting the bench CA
//! (the host directory's `ca-keys`); what each session cost it in CPU and
//! what it stored in its spool.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SETPRIV: &str = "/usr/bin/setpriv";

pub struct Recorder {
    child: Child,
    pub socket: PathBuf,
    spool: PathBuf,
    log: PathBuf,
}

/// What one recorded session cost the recorder.
#[derive(Clone, Copy)]
pub struct Recorded {
    /// CPU seconds the recorder used from before the session started to
    /// when its spool said it ended.
    pub cpu: f64,
    /// Bytes in the session's spool directory (header and chunks).
    pub stored: u64,
}

/// Root, or a loud note that the row is left out: the recorder reads
/// other users' /proc entries and ends their processes.
pub fn as_root() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if !root {
        eprintln!(
            "\n!!!!!!!! NOT ROOT: the \"jit-ssh wrapper + recorder\" row is SKIPPED (the host recorder runs as root; run the bench as root) !!!!!!!!\n"
        );
    }
    root
}

impl Recorder {
    /// `program recorder` on `root/run-jit-ssh/recorder.sock` with its
    /// spool in `root`, the host key sshd made in `root`, and `dir`'s
    /// ca-keys; waits for its socket. The default chunk policy (256 KiB or
    /// 5 s), as a host runs it; no CA URL, so recordings stay in the spool.
    pub fn start(program: &Path, root: &Path, dir: &Path) -> Recorder {
        let socket = root.join("run-jit-ssh").join("recorder.sock");
        let spool = root.join("spool");
        let log = root.join("recorder.log");
        // setpriv --pdeathsig: a bench killed by ^C (no destructors run)
        // does not leave a root recorder behind. It execs the recorder,
        // so the child's pid is the recorder's.
        let mut c = if Path::new(SETPRIV).exists() {
            let mut c = Command::new(SETPRIV);
            c.args(["--pdeathsig", "KILL", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        c.arg("recorder")
            .arg("--socket")
            .arg(&socket)
            .arg("--spool")
            .arg(&spool)
            .arg("--host-key")
            .arg(root.join("ssh_host_ed25519_key"))
            .arg("--dir")
            .arg(dir)
            .env_remove("JIT_SSH_CA_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = c.spawn().expect("starting the recorder");
        let mut r = Recorder {
            child,
            socket,
            spool,
            log,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while !r.socket.exists() {
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("the recorder exited ({status}):\n{}", r.log_text());
            }
            assert!(
                Instant::now() < until,
                "no recorder socket after 10 s:\n{}",
                r.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    /// The wrapper flags that record output to this recorder.
    pub fn wrapper_args(&self) -> String {
        format!(
            "--record output --recorder-socket {}",
            self.socket.display()
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn sessions(&self) -> HashSet<PathBuf> {
        std::fs::read_dir(&self.spool)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect()
    }

    /// utime + stime of the recorder (all its threads), in seconds.
    fn cpu(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("the recorder is gone");
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // USER_HZ is 100 on Linux.
        (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
    }

    /// Before a session: what the recorder used so far, and the sessions
    /// already spooled.
    pub fn before(&self) -> (f64, HashSet<PathBuf>) {
        (self.cpu(), self.sessions())
    }

    /// After a session: waits for its spool directory to say it ended,
    /// measures it and removes it (a 1 GiB run would otherwise keep
    /// hundreds of MB per round).
    pub fn after(&self, (cpu, known): (f64, HashSet<PathBuf>)) -> Recorded {
        let until = Instant::now() + Duration::from_secs(60);
        let dir = loop {
            if let Some(d) = self
                .sessions()
                .into_iter()
                .find(|d| !known.contains(d) && d.join("ended").exists())
            {
                break d;
            }
            assert!(
                Instant::now() < until,
                "the recorded session did not end in the spool within 60 s; recorder log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let used = self.cpu() - cpu;
        let stored = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum();
        std::fs::remove_dir_all(&dir).unwrap();
        Recorded { cpu: used, stored }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
