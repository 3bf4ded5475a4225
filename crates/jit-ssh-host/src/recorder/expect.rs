//! Logins the recorder must hear of. sshd runs `jit-ssh-host principals`
//! (its `AuthorizedPrincipalsCommand`) for every certificate login, from
//! its root monitor process, with the certificate itself (`%T %k`). When
//! that certificate's signed force-command runs the session wrapper
//! (recorded or not), the command tells the recorder before sshd accepts
//! the login: "the sshd monitor PID is letting in certificate N". From
//! then on, every process the login's sshd session process starts must be
//! that certificate's wrapper within [`GRACE`]: for a recorded
//! certificate one that announced itself to the recorder, for
//! `record = "off"` one the recorder sees run the wrapper binary with the
//! signed force-command (it records nothing). One that is not (a shell
//! whose startup file exec'd something else instead of the wrapper) ends
//! the whole login. The recorder also ends the login itself 2 s after the
//! certificate's `valid_before` or after the KRL revoked it, should the
//! wrapper not have (stopped, or never run): see [`super::login_end`].
//! This closes the shell-startup-file bypass of the wrapper
//! (docs/sessions.md).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ssh_key::Certificate;

use super::login_end::{Ending, LoginEnd};
use super::peer::{is_sshd, parent_of, runs_wrapper, same_exe, start_time};
use super::reap::{table, ProcessTable};
use super::watched_logins::Saved;

/// How long a process of a watched login may run without being its
/// session wrapper. What runs there legitimately before the wrapper is
/// the user's shell between sshd's fork and its exec of the
/// force-command (its startup files, `~/.ssh/rc`): milliseconds. A whole
/// login (`ssh host 'echo hi'`, key exchange and the wrapper included)
/// took at most 1.45 s here under a load average of 6.5 (debug build),
/// so 2 s leaves a margin for a loaded host while keeping what a
/// startup file can run unwrapped short (docs/sessions.md).
pub const GRACE: Duration = Duration::from_secs(2);

/// How long a recorded login's real wrapper (the wrapper binary run as
/// the signed force-command) may run before it announces itself: it
/// waits 10 s for the recorder's answer, then refuses the login itself.
/// Its checks before the hello (the KRL, the name service) can take
/// longer than [`GRACE`] on a loaded host or a large KRL.
pub const WRAPPER_GRACE: Duration = Duration::from_secs(12);

/// What `jit-ssh-host principals` sends (frame kind `Expect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The account (sshd's `%u`).
    pub account: String,
    /// The certificate as sshd saw it: `TYPE BASE64` (`%T %k`).
    pub certificate: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExpectError {
    #[error(
        "the principals command's parent ({parent:?}, running {exe:?}) is not a root sshd process"
    )]
    NotSshdMonitor { parent: Option<i32>, exe: String },
    #[error("the certificate does not parse: {0}")]
    Certificate(#[source] ssh_key::Error),
    #[error(transparent)]
    Untrusted(crate::session::Refusal),
}

/// The record mode of a certificate whose force-command runs the session
/// wrapper (`… session … --record MODE …`, as the CA writes it), if it
/// does.
pub fn wrapper_record_mode(cert: &Certificate) -> Option<&str> {
    let fc = cert.critical_options().get("force-command")?;
    let words: Vec<&str> = fc.split_whitespace().collect();
    if !words.contains(&"session") {
        return None;
    }
    words
        .windows(2)
        .find(|w| w[0] == "--record" && matches!(w[1], "off" | "output" | "full"))
        .map(|w| w[1])
}

/// Whether a certificate's force-command runs the wrapper with a
/// recording policy.
pub fn records(cert: &Certificate) -> bool {
    matches!(wrapper_record_mode(cert), Some("output" | "full"))
}

/// Whether a certificate's force-command runs the session wrapper at all
/// (`record = "off"` too): its logins are the recorder's to watch.
pub fn runs_wrapper_policy(cert: &Certificate) -> bool {
    wrapper_record_mode(cert).is_some()
}

/// A login sshd is letting in with a certificate that runs the wrapper.
struct Login {
    serial: u64,
    key_id: String,
    account: String,
    /// Whether the wrapper records (and so must announce itself); else
    /// it is recognised by what it runs.
    recorded: bool,
    cert: Certificate,
    /// The certificate's end, enforced from here too.
    end: LoginEnd,
    /// When the monitor started: once it is gone, a later connection's
    /// monitor can have its pid (a plain-key login, or a certificate
    /// that does not record, whose principals command tells nothing),
    /// and must not inherit this login's duties and be ended.
    monitor_start: Option<u64>,
}

impl Login {
    fn of(&self, monitor: i32) -> bool {
        self.monitor_start.is_some() && start_time(monitor) == self.monitor_start
    }
}

/// What the recorder knows of logins and wrappers.
#[derive(Default)]
pub struct Registry {
    /// By sshd monitor pid.
    logins: HashMap<i32, Login>,
    /// Wrappers that announced themselves: pid and start time, so a
    /// process that gets a gone wrapper's pid is not taken for it.
    announced: HashSet<(i32, u64)>,
    /// When a process below a login's sshd was first seen.
    first_seen: HashMap<i32, Instant>,
    /// Where the logins are kept for the next recorder
    /// ([`super::watched_logins`]); `None`: in memory only.
    saved: Option<std::path::PathBuf>,
}

impl Registry {
    /// Keeps the watched logins where a restarted recorder finds them.
    fn persist(&self) {
        let Some(path) = &self.saved else {
            return;
        };
        let logins: Vec<Saved> = self
            .logins
            .iter()
            .filter_map(|(&monitor, l)| {
                Some(Saved {
                    monitor,
                    monitor_start: l.monitor_start?,
                    account: l.account.clone(),
                    certificate: l.cert.to_openssh().ok()?,
                })
            })
            .collect();
        if let Err(e) = super::watched_logins::save(path, &logins) {
            eprintln!(
                "jit-ssh-host recorder: {}: cannot keep the watched logins: {e}",
                path.display()
            );
        }
    }
}

/// Takes back the logins a previous recorder watched (kept at `path`),
/// whose sshd monitor still runs as the same process, and keeps them at
/// `path` from now on. Returns how many.
pub fn restore(r: &Shared, path: std::path::PathBuf, dir: &Path) -> usize {
    let mut reg = lock(r);
    for s in super::watched_logins::load(&path) {
        let same = start_time(s.monitor) == Some(s.monitor_start) && is_root_sshd(s.monitor);
        let Ok(cert) = Certificate::from_openssh(&s.certificate) else {
            continue;
        };
        // Its signature was checked when it was kept (the file is
        // root's); not again: a CA key retired since must not free the
        // logins it let in from their end.
        if !same || !runs_wrapper_policy(&cert) {
            continue;
        }
        watch(&mut reg, s.monitor, &s.account, cert, dir);
    }
    reg.saved = Some(path);
    reg.persist();
    reg.logins.len()
}

/// Watches the login of sshd monitor `monitor` under `cert`.
fn watch(reg: &mut Registry, monitor: i32, account: &str, cert: Certificate, dir: &Path) {
    reg.logins.insert(
        monitor,
        Login {
            serial: cert.serial(),
            key_id: cert.key_id().to_owned(),
            account: account.to_owned(),
            recorded: records(&cert),
            end: LoginEnd::new(&cert, dir),
            cert,
            monitor_start: start_time(monitor),
        },
    );
}

pub type Shared = Arc<Mutex<Registry>>;

fn lock(r: &Shared) -> std::sync::MutexGuard<'_, Registry> {
    r.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records a login sshd's principals command announced; `pid` is the
/// command's (SO_PEERCRED), whose parent must be a root sshd. Returns the
/// certificate's record mode when it runs the wrapper (the login is then
/// watched), `None` when it does not.
pub fn expect(r: &Shared, pid: i32, e: &Expect, dir: &Path) -> Result<Option<String>, ExpectError> {
    let parent = parent_of(pid);
    let not = || ExpectError::NotSshdMonitor {
        parent,
        exe: parent
            .and_then(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok())
            .map(|e| e.display().to_string())
            .unwrap_or_default(),
    };
    let monitor = parent.ok_or_else(not)?;
    if !is_root_sshd(monitor) {
        return Err(not());
    }
    let cert = Certificate::from_openssh(&e.certificate).map_err(ExpectError::Certificate)?;
    crate::session::trusted(std::slice::from_ref(&cert), dir).map_err(ExpectError::Untrusted)?;
    let Some(mode) = wrapper_record_mode(&cert).map(str::to_owned) else {
        return Ok(None);
    };
    let mut reg = lock(r);
    watch(&mut reg, monitor, &e.account, cert, dir);
    reg.persist();
    Ok(Some(mode))
}

/// The real uid of `pid` (`/proc/PID/status`). Not the owner of
/// `/proc/PID`, which follows the effective uid: sshd's monitor runs
/// `AuthorizedPrincipalsCommandUser nobody`'s command and reads its
/// output with its effective uid swapped to `nobody` (OpenSSH's
/// `temporarily_use_uid`), its real uid still root's. A process of a
/// user's cannot have a real uid of 0.
fn real_uid(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether `pid` is sshd running as root (real uid 0): a login's
/// monitor, whatever its effective uid is for the moment.
pub fn is_root_sshd(pid: i32) -> bool {
    real_uid(pid) == Some(0) && is_sshd(pid).is_ok()
}

/// The certificate (serial, key id) sshd let in the login whose sshd
/// session process is `sshd_pid`, if the principals command told of it:
/// its monitor is `sshd_pid`'s parent, or `sshd_pid` itself for a root
/// login. The one the wrapper's `SSH_USER_AUTH` shows must be it, since
/// a shell startup file can point that variable at any certificate the
/// user can read (on a shared account, another person's sshd file).
pub fn login_of(r: &Shared, sshd_pid: i32) -> Option<(u64, String)> {
    let reg = lock(r);
    [Some(sshd_pid), parent_of(sshd_pid)]
        .into_iter()
        .flatten()
        .find_map(|m| reg.logins.get(&m).filter(|l| l.of(m)))
        .map(|l| (l.serial, l.key_id.clone()))
}

/// A wrapper the recorder accepts; `false` if that process already has
/// a session (one wrapper process streams one session: a second hello
/// from its pid is a process it forked before exec'ing the wrapper,
/// speaking on a connection the pid opened, with bytes of its choosing).
pub fn announced(r: &Shared, wrapper_pid: i32) -> bool {
    start_time(wrapper_pid).is_some_and(|started| lock(r).announced.insert((wrapper_pid, started)))
}

/// Whether `pid` is a wrapper that announced itself (the same process,
/// not one that has its pid now).
fn is_announced(announced: &HashSet<(i32, u64)>, pid: i32) -> bool {
    start_time(pid).is_some_and(|s| announced.contains(&(pid, s)))
}

/// The children of `pid` in a process table (pid → (ppid, sid)).
fn children(t: &ProcessTable, pid: i32) -> Vec<i32> {
    t.iter()
        .filter(|(_, &(ppid, _))| ppid == pid)
        .map(|(&c, _)| c)
        .collect()
}

/// Whether `pid` is the session wrapper of `login`: for a recorded
/// certificate, one that announced itself; otherwise the wrapper binary,
/// nothing preloaded, run as the certificate's signed force-command says
/// (looked at every time: a process keeps its pid and start time across
/// an exec).
fn is_its_wrapper(
    announced: &HashSet<(i32, u64)>,
    login: &Login,
    pid: i32,
    wrapper: &Path,
) -> bool {
    if login.recorded {
        return is_announced(announced, pid);
    }
    is_forced_wrapper(login, pid, wrapper)
}

/// Whether `pid` runs the wrapper binary, nothing preloaded, as the
/// login certificate's signed force-command says.
fn is_forced_wrapper(login: &Login, pid: i32, wrapper: &Path) -> bool {
    runs_wrapper(pid, wrapper).is_ok()
        && super::identity::runs_force_command(pid, &login.cert).is_ok()
}

/// One look: the logins to end, because their sshd session process
/// started a process that is not their wrapper for longer than
/// [`GRACE`], or because their certificate expired or was revoked and no
/// recorded session's handler ends them. `wrapper` is the wrapper
/// binary. Forgets logins whose sshd is gone.
pub fn sweep(r: &Shared, wrapper: &Path) -> Vec<Ending> {
    let mut reg = lock(r);
    let now = Instant::now();
    let before = reg.logins.len();
    reg.logins.retain(|&m, l| is_sshd(m).is_ok() && l.of(m));
    if reg.logins.len() != before {
        reg.persist();
    }
    reg.announced
        .retain(|&(p, started)| start_time(p) == Some(started));
    let Registry {
        logins,
        announced,
        first_seen,
        ..
    } = &mut *reg;
    let mut bad = Vec::new();
    let mut seen = HashSet::new();
    // One look at /proc for every login (each was a scan of its own).
    let t = table();
    for (&monitor, login) in logins.iter_mut() {
        // The session runs below the monitor's unprivileged child, or
        // below the monitor itself (a root login has no such child).
        // sshd's own processes are forks of the monitor (the same file);
        // a program of the user's named sshd is not.
        let forks: Vec<i32> = children(&t, monitor)
            .into_iter()
            .filter(|&c| same_exe(c, monitor))
            .collect();
        let mut sessions = vec![monitor];
        sessions.extend(&forks);
        let mut wrapped = Vec::new();
        for &session in &sessions {
            for child in children(&t, session) {
                if sessions.contains(&child) || same_exe(child, monitor) {
                    continue;
                }
                seen.insert(child);
                if is_its_wrapper(announced, login, child, wrapper) {
                    wrapped.push(session);
                    continue;
                }
                let grace = if login.recorded && is_forced_wrapper(login, child, wrapper) {
                    WRAPPER_GRACE
                } else {
                    GRACE
                };
                let first = *first_seen.entry(child).or_insert(now);
                if now.duration_since(first) >= grace {
                    bad.push(Ending::below_sshd(
                        session,
                        format!(
                            "{} logged in with certificate serial {} ({}), {}, but process {child} ran {}s without {}",
                            login.account,
                            login.serial,
                            login.key_id,
                            if login.recorded { "which must be recorded" } else { "whose session must run through the wrapper" },
                            grace.as_secs(),
                            if login.recorded { "a session wrapper announcing itself" } else { "its session wrapper" },
                        ),
                    ));
                }
            }
        }
        // The certificate's end: sshd's session processes (the monitor
        // itself for a root login), except those whose recorded wrapper
        // runs, whose session handler ends them with the recording's end.
        let ends = if forks.is_empty() {
            vec![monitor]
        } else {
            forks
        };
        let ends: Vec<i32> = ends
            .into_iter()
            .filter(|s| !(login.recorded && wrapped.contains(s)))
            .collect();
        let what = format!(
            "{} logged in with certificate serial {} ({})",
            login.account, login.serial, login.key_id
        );
        bad.extend(login.end.look(&t, &login.cert, &ends, &what));
    }
    first_seen.retain(|p, _| seen.contains(p));
    bad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cert::forcing as cert_forcing;

    #[test]
    fn only_a_recording_force_command_is_expected() {
        assert!(records(&cert_forcing(
            "/usr/local/bin/jit-ssh-host session --record output --grant g"
        )));
        assert!(records(&cert_forcing(
            "/usr/local/bin/jit-ssh-host session --record full"
        )));
        assert!(!records(&cert_forcing(
            "/usr/local/bin/jit-ssh-host session --record off --grant g"
        )));
        assert!(!records(&cert_forcing("")));
    }

    #[test]
    fn every_certificate_that_runs_the_wrapper_is_watched_recorded_or_not() {
        let off = cert_forcing("/usr/local/bin/jit-ssh-host session --record off --grant g");
        assert!(runs_wrapper_policy(&off));
        assert_eq!(wrapper_record_mode(&off), Some("off"));
        assert!(!records(&off));
        assert!(runs_wrapper_policy(&cert_forcing(
            "/usr/local/bin/jit-ssh-host session --record output --grant g"
        )));
        // No wrapper: a plain certificate, or another forced command.
        assert!(!runs_wrapper_policy(&cert_forcing("")));
        assert!(!runs_wrapper_policy(&cert_forcing(
            "/usr/bin/backup --record off"
        )));
    }

    /// Alice's recorded login (serial 9) whose sshd monitor started at
    /// `monitor_start`.
    fn recorded_login(monitor_start: Option<u64>) -> Login {
        let cert = cert_forcing("/usr/local/bin/jit-ssh-host session --record output");
        Login {
            serial: 9,
            key_id: "jit-ssh:alice:g:9".into(),
            account: "oncall".into(),
            recorded: true,
            end: LoginEnd::new(&cert, Path::new("/nonexistent")),
            cert,
            monitor_start,
        }
    }

    #[test]
    fn the_login_is_found_from_its_session_process_or_its_monitor() {
        let r = Shared::default();
        let me = i32::try_from(std::process::id()).unwrap();
        lock(&r).logins.insert(me, recorded_login(start_time(me)));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let want = Some((9, "jit-ssh:alice:g:9".to_owned()));
        assert_eq!(login_of(&r, me), want);
        assert_eq!(login_of(&r, pid), want);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(login_of(&Shared::default(), me), None);
    }

    #[test]
    fn a_later_process_with_a_gone_monitors_pid_inherits_no_login() {
        let r = Shared::default();
        let me = i32::try_from(std::process::id()).unwrap();
        // The login's monitor started before whatever has its pid now.
        let before = start_time(me).map(|t| t.saturating_sub(1));
        lock(&r).logins.insert(me, recorded_login(before));
        assert_eq!(login_of(&r, me), None);
        let _ = sweep(&r, Path::new("/nonexistent"));
        assert!(lock(&r).logins.is_empty());
    }

    #[test]
    fn a_process_with_a_gone_wrappers_pid_is_not_announced() {
        let r = Shared::default();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        assert!(announced(&r, pid));
        assert!(is_announced(&lock(&r).announced, pid));
        // One session per wrapper process.
        assert!(!announced(&r, pid));
        // What the registry holds once that wrapper is gone and another
        // process started later under its pid.
        {
            let mut reg = lock(&r);
            let entry = *reg.announced.iter().next().unwrap();
            reg.announced.clear();
            reg.announced.insert((pid, entry.1.saturating_sub(1)));
        }
        assert!(!is_announced(&lock(&r).announced, pid));
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn the_real_uid_is_read_from_proc() {
        let me = i32::try_from(std::process::id()).unwrap();
        let uid = String::from_utf8(
            std::process::Command::new("id")
                .arg("-ru")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert_eq!(real_uid(me), uid.trim().parse().ok());
        assert_eq!(real_uid(-1), None);
    }

    #[test]
    fn a_principals_command_not_run_by_a_root_sshd_is_refused() {
        let r = Shared::default();
        let me = i32::try_from(std::process::id()).unwrap();
        let e = Expect {
            account: "root".into(),
            certificate: "x".into(),
        };
        assert!(matches!(
            expect(&r, me, &e, Path::new("/nonexistent")),
            Err(ExpectError::NotSshdMonitor { .. })
        ));
    }
}
