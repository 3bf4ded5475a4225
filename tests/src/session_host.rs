//! A host whose certificates run through the real session wrapper: an
//! offline CA (`jit-ssh-ca sign --force-command`), the host directory
//! `jit-ssh-host sync` would keep (ca-keys, revoked.krl), and a private
//! sshd with `ExposeAuthInfo yes` and `Subsystem sftp internal-sftp`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{bin, keygen, login_name, ssh_command, Ca, Sshd};

pub const SSHD_SESSION_LINES: &str = "ExposeAuthInfo yes\nSubsystem sftp internal-sftp\n";

pub struct SessionHost {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub ca: Ca,
    /// What `jit-ssh-host sync` keeps: ca-keys, revoked.krl.
    pub dir: PathBuf,
    pub sshd: Sshd,
    pub account: String,
    /// A copy of jit-ssh-host where sshd will run it as a principals
    /// command (see [`principals_command_copy`]); removed on drop.
    _principals_bin: Option<tempfile::TempDir>,
}

/// sshd runs an `AuthorizedPrincipalsCommand` only if the program and
/// every directory above it are root's and not group or world writable.
/// A checkout under /tmp (mode 1777) or a group-writable home fails that,
/// and sshd then refuses every certificate. So the binary is copied into
/// a fresh directory under /run (root's, 0755) when that can be written
/// (as root, which these tests need), else used where it is.
fn principals_command_copy() -> (PathBuf, Option<tempfile::TempDir>) {
    use std::os::unix::fs::PermissionsExt;
    let original = bin("jit-ssh-host");
    let Ok(dir) = tempfile::Builder::new()
        .prefix("jit-ssh-e2e-")
        .tempdir_in("/run")
    else {
        return (original, None);
    };
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("jit-ssh-host");
    std::fs::copy(&original, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    (copy, Some(dir))
}

impl SessionHost {
    /// A host with the sshd lines the wrapper needs.
    pub fn start() -> SessionHost {
        Self::start_with(SSHD_SESSION_LINES)
    }

    /// A host whose sshd asks `jit-ssh-host principals` (which tells the
    /// recorder at `root/run-jit-ssh/recorder.sock` of recorded logins)
    /// instead of reading principals files itself.
    pub fn start_with_principals_command() -> SessionHost {
        Self::start_with_principals_command_and("")
    }

    /// [`Self::start_with_principals_command`] with `extra` sshd lines.
    pub fn start_with_principals_command_and(extra: &str) -> SessionHost {
        let (program, copy) = principals_command_copy();
        let extra = extra.to_owned();
        let mut host = Self::build(move |root, dir| {
            (
                root.join("no-principals-files"),
                format!(
                    "{SSHD_SESSION_LINES}{extra}AuthorizedPrincipalsCommand {} principals --dir {} --recorder-socket {} %u %T %k\nAuthorizedPrincipalsCommandUser root\n",
                    program.display(),
                    dir.display(),
                    root.join("run-jit-ssh").join("recorder.sock").display()
                ),
            )
        });
        host._principals_bin = copy;
        host
    }

    /// A host whose sshd asks for principals with the lines `jit-ssh-host
    /// setup` prints by default (the command run as `nobody`), told only
    /// where the test's recorder listens. The temp dir is made 0755 so
    /// that `nobody` reaches the principals files and the socket.
    pub fn start_with_setup_lines() -> SessionHost {
        use std::os::unix::fs::PermissionsExt;
        let (program, copy) = principals_command_copy();
        let mut host = Self::build(move |root, dir| {
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
            let out = Command::new(&program)
                .args(["setup", "--host", "db.test", "--account", &login_name()])
                .arg("--dir")
                .arg(dir)
                .arg("--principals-command")
                .arg(&program)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let socket = root.join("run-jit-ssh").join("recorder.sock");
            let lines: String = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("AuthorizedPrincipalsCommand"))
                .map(|l| {
                    l.replacen(
                        " principals ",
                        &format!(" principals --recorder-socket {} ", socket.display()),
                        1,
                    ) + "\n"
                })
                .collect();
            assert!(
                lines.contains("AuthorizedPrincipalsCommandUser nobody\n"),
                "{lines}"
            );
            (
                root.join("no-principals-files"),
                format!("{SSHD_SESSION_LINES}{lines}"),
            )
        });
        host._principals_bin = copy;
        host
    }

    /// A host whose sshd gets `extra` config lines.
    pub fn start_with(extra: &str) -> SessionHost {
        let extra = extra.to_owned();
        Self::build(move |_, dir| (dir.join("principals"), extra.clone()))
    }

    /// `sshd_setup(root, dir)`: the directory sshd reads principals files
    /// from, and its extra config lines.
    fn build(sshd_setup: impl Fn(&Path, &Path) -> (PathBuf, String)) -> SessionHost {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let ca = Ca::init(&root);
        let dir = root.join("etc-ssh-jit-ssh");
        std::fs::create_dir_all(dir.join("principals")).unwrap();
        std::fs::copy(&ca.public_key, dir.join("ca-keys")).unwrap();
        ca.build_krl("", &dir.join("revoked.krl"));
        let account = login_name();
        std::fs::write(
            dir.join("principals").join(&account),
            format!("{account}@db.test\n"),
        )
        .unwrap();
        let (principals, extra) = sshd_setup(&root, &dir);
        let sshd = Sshd::start_with(
            &root,
            &dir.join("ca-keys"),
            &dir.join("revoked.krl"),
            &principals,
            &extra,
        );
        SessionHost {
            _tmp: tmp,
            root,
            ca,
            dir,
            sshd,
            account,
            _principals_bin: None,
        }
    }

    /// The force-command the CA would set for `record`.
    pub fn wrapper(&self, args: &str) -> String {
        format!(
            "{} session --dir {} {args}",
            bin("jit-ssh-host").display(),
            self.dir.display()
        )
    }

    /// A certificate for the account, valid for `ttl`, whose force-command
    /// runs the wrapper with `args`; its path, serial and valid_before.
    pub fn certificate(&self, ttl: &str, args: &str) -> (PathBuf, u64, u64) {
        self.certificate_forcing(ttl, &self.wrapper(args))
    }

    /// A certificate (for a key of its own) whose force-command is `force`.
    pub fn certificate_forcing(&self, ttl: &str, force: &str) -> (PathBuf, u64, u64) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let key = keygen(
            &self.root,
            &format!("user{}", N.fetch_add(1, Ordering::SeqCst)),
        );
        let (cert, serial) = self.ca.sign_ok(
            &key,
            "alice",
            "db.test",
            &self.account,
            ttl,
            &["--force-command", force],
        );
        let parsed =
            ssh_key::Certificate::read_file(&cert).expect("reading the signed certificate");
        (cert, serial, parsed.valid_before())
    }

    /// `ssh` with the key and `cert` to the account at the host.
    pub fn ssh(&self, cert: &Path) -> Command {
        let mut c = ssh_command(self.sshd.port());
        c.args(self.ssh_options(cert))
            .arg(format!("{}@127.0.0.1", self.account));
        c
    }

    /// The `-o` options that make a client offer only `cert` (and its key,
    /// beside it).
    pub fn ssh_options(&self, cert: &Path) -> Vec<String> {
        let shown = cert.display().to_string();
        let key = shown.strip_suffix("-cert.pub").unwrap_or(&shown).to_owned();
        vec![
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "IdentityAgent=none".into(),
            "-o".into(),
            format!("CertificateFile={}", cert.display()),
            "-i".into(),
            key,
        ]
    }

    /// Replaces revoked.krl by rename, as `jit-ssh-host sync` does, with
    /// a KRL built from `spec`.
    pub fn install_krl(&self, spec: &str) {
        let tmp = self.root.join("next.krl");
        self.ca.build_krl(spec, &tmp);
        std::fs::rename(&tmp, self.dir.join("revoked.krl")).unwrap();
    }
}

/// An `ssh -tt` session driven through pipes: what a person types goes to
/// its stdin, everything the terminal shows is collected.
pub struct Terminal {
    pub child: Child,
    pub screen: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    pub fn open(mut ssh: Command) -> Terminal {
        let mut child = ssh
            .arg("-tt")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let screen: Arc<Mutex<Vec<u8>>> = Arc::default();
        for mut from in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let screen = screen.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    screen.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        Terminal { child, screen }
    }

    pub fn type_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until the screen shows `what`; panics with the screen after
    /// `within`.
    pub fn wait_for(&self, what: &str, within: Duration) {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if self.text().contains(what) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{what:?} did not appear within {within:?}; the screen:\n{}",
            self.text()
        );
    }

    /// Waits for ssh to exit; its exit time, or None after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::time::SystemTime> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(std::time::SystemTime::now());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a process whose command line contains `marker` is running.
pub fn process_running(marker: &str) -> bool {
    !marked(marker).is_empty()
}

/// Whether a process whose `argv[0]` is `name` is running (an ssh client
/// whose remote command mentions `name` does not count).
pub fn process_named(name: &str) -> bool {
    marked(name).into_iter().any(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .split(|&b| b == 0)
            .next()
            == Some(name.as_bytes())
    })
}

/// Stops, by pid, the processes a test started with `marker` in their
/// command line.
pub fn kill_marked(marker: &str) {
    for pid in marked(marker) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

fn marked(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_string_lossy().parse::<u32>().ok()?, e)))
        .filter(|(_, e)| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rfind(')')
                .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
            !zombie
                && String::from_utf8_lossy(&cmdline)
                    .replace('\0', " ")
                    .contains(marker)
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// Now, in seconds since the Unix epoch, to compare with a certificate's
/// `valid_before`.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Waits until no process has `marker` in its command line; when that
/// was ([`now_unix`]), or `None` after `within`.
pub fn gone_at(marker: &str, within: Duration) -> Option<f64> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if !process_running(marker) {
            return Some(now_unix());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// How long after `deadline` (Unix seconds) the processes marked
/// `marker` were gone, waiting up to `within`; whatever is left of them
/// is then stopped, so a failing test leaves no long sleep behind.
pub fn ended_after(marker: &str, deadline: f64, within: Duration) -> Option<f64> {
    let gone = gone_at(marker, within);
    kill_marked(marker);
    gone.map(|t| t - deadline)
}

/// Waits up to `within` for `child` (an ssh client) to exit; when it did
/// ([`now_unix`]). A child still running then is killed and reaped.
pub fn exited_at(child: &mut Child, within: Duration) -> Option<f64> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return Some(now_unix());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}
