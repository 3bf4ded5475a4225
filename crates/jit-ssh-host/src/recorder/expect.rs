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
//! (docs/sessions.md). Before it answers, the recorder puts the monitor
//! into a cgroup of its own where logind gives the login no scope
//! ([`super::login_cgroup`]): every process of the login is born there.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ssh_key::Certificate;

use super::login_end::{Ending, LoginEnd};
use super::peer::{is_sshd, parent_of, runs_wrapper, same_exe, start_time};
use super::pid_reuse::Mark;
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
    /// When the recorder started watching it: a young login is looked at
    /// quickly ([`look_young`]).
    since: Instant,
}

impl Login {
    fn of(&self, monitor: i32) -> bool {
        self.monitor_start.is_some() && start_time(monitor) == self.monitor_start
    }

    /// The login, for the recorder's log.
    fn what(&self) -> String {
        format!(
            "{} logged in with certificate serial {} ({})",
            self.account, self.serial, self.key_id
        )
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
    /// Logins whose sshd is gone but whose processes are not all
    /// (what a killed wrapper left): ended at the certificate's end.
    left: Vec<Login>,
    /// Where the logins are kept for the next recorder
    /// ([`super::watched_logins`]); `None`: in memory only.
    saved: Option<std::path::PathBuf>,
    /// What was last written there.
    last_saved: Vec<Saved>,
    /// Where logins get a cgroup of their own, or why nowhere
    /// ([`super::login_cgroup`]); unset: nowhere (unit tests).
    cgroups: Option<super::login_cgroup::Cgroups>,
}

impl Registry {
    /// Keeps the watched logins where a restarted recorder finds them
    /// (written only when that changed).
    fn persist(&mut self) {
        let Some(path) = &self.saved else {
            return;
        };
        let saved = |monitor: i32, l: &Login| {
            Some(Saved {
                monitor,
                monitor_start: l.monitor_start?,
                account: l.account.clone(),
                certificate: l.cert.to_openssh().ok()?,
                sessions: l.end.saved().to_vec(),
                cgroup: l.end.cgroup().map(Path::to_path_buf),
            })
        };
        let mut logins: Vec<Saved> = self
            .logins
            .iter()
            .filter_map(|(&monitor, l)| saved(monitor, l))
            .collect();
        logins.sort_by_key(|s| (s.monitor, s.monitor_start));
        logins.extend(self.left.iter().filter_map(|l| {
            // Its monitor is gone: a later process with its pid must not
            // pass for it, whatever start time it saves.
            saved(0, l)
        }));
        if logins == self.last_saved {
            return;
        }
        match super::watched_logins::save(path, &logins) {
            Ok(()) => self.last_saved = logins,
            Err(e) => eprintln!(
                "jit-ssh-host recorder: {}: cannot keep the watched logins: {e}",
                path.display()
            ),
        }
    }
}

/// Takes back the logins a previous recorder watched (kept at `path`),
/// whose sshd monitor still runs as the same process or which left
/// processes still running, and keeps them at `path` from now on.
/// Returns how many.
pub fn restore(
    r: &Shared,
    path: std::path::PathBuf,
    dir: &Path,
    cgroups: super::login_cgroup::Cgroups,
) -> usize {
    let mut reg = lock(r);
    for s in super::watched_logins::load(&path) {
        let same = start_time(s.monitor) == Some(s.monitor_start) && is_root_sshd(s.monitor);
        let Ok(cert) = Certificate::from_openssh(&s.certificate) else {
            continue;
        };
        // Its signature was checked when it was kept (the file is
        // root's); not again: a CA key retired since must not free the
        // logins it let in from their end.
        if !runs_wrapper_policy(&cert) {
            continue;
        }
        let mut login = login(s.monitor, &s.account, cert, dir);
        // As kept, so a login left after its monitor is gone is kept on
        // by this recorder too.
        login.monitor_start = Some(s.monitor_start);
        // Only a login cgroup of this host's hierarchy (the file is
        // root's, but nothing else is ever killed).
        let cgroup = s
            .cgroup
            .filter(|c| cgroups.as_ref().is_ok_and(|h| h.is_login_cgroup(c)));
        login.end.set_cgroup(cgroup);
        login.end.restore(&s.sessions);
        if let Some(c) = login.end.cgroup().filter(|_| same || !login.end.is_over()) {
            eprintln!(
                "jit-ssh-host recorder: {}: taken back; its processes run in cgroup {}",
                login.what(),
                c.display()
            );
        }
        if same {
            reg.logins.insert(s.monitor, login);
        } else if !login.end.is_over() {
            // sshd is gone, not all of what the login ran: a wrapper
            // killed before or while the recorder was down.
            reg.left.push(login);
        }
    }
    reg.saved = Some(path);
    reg.persist();
    // Those of logins that ended while no recorder ran, empty now.
    if let Ok(h) = &cgroups {
        let keep: Vec<_> = reg
            .logins
            .values()
            .chain(reg.left.iter())
            .filter_map(|l| l.end.cgroup().map(Path::to_path_buf))
            .collect();
        h.remove_stale(&keep);
    }
    reg.cgroups = Some(cgroups);
    reg.logins.len() + reg.left.len()
}

/// The login of sshd monitor `monitor` under `cert`.
fn login(monitor: i32, account: &str, cert: Certificate, dir: &Path) -> Login {
    Login {
        serial: cert.serial(),
        key_id: cert.key_id().to_owned(),
        account: account.to_owned(),
        recorded: records(&cert),
        end: LoginEnd::new(&cert, dir),
        cert,
        monitor_start: start_time(monitor),
        since: Instant::now(),
    }
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
    let mut l = login(monitor, &e.account, cert, dir);
    // One cgroup a connection: a later principals call of the same
    // monitor (sshd asks for each key it is offered) finds it in place.
    let cgroup = match &reg.cgroups {
        Some(c) => super::login_cgroup::for_login(c, monitor, l.monitor_start, l.serial, &l.what()),
        None => None,
    };
    if let Some(c) = &cgroup {
        eprintln!(
            "jit-ssh-host recorder: {}: sshd (pid {monitor}) and the login run in cgroup {}",
            l.what(),
            c.display()
        );
    }
    l.end.set_cgroup(cgroup);
    if let Some(old) = reg.logins.insert(monitor, l) {
        // A gone monitor's pid handed to this one before a sweep saw it
        // go: what that login left is still to end.
        if !old.of(monitor) {
            reg.left.push(old);
        }
    }
    reg.persist();
    Ok(Some(mode))
}

/// The own cgroup of the login whose sshd session process is `sshd_pid`
/// (as [`login_of`]), if it has one.
pub fn cgroup_of(r: &Shared, sshd_pid: i32) -> Option<std::path::PathBuf> {
    login_at(&lock(r), sshd_pid).and_then(|l| l.end.cgroup().map(Path::to_path_buf))
}

/// The login whose sshd session process is `sshd_pid`: its monitor is
/// `sshd_pid`'s parent, or `sshd_pid` itself for a root login.
fn login_at(reg: &Registry, sshd_pid: i32) -> Option<&Login> {
    [Some(sshd_pid), parent_of(sshd_pid)]
        .into_iter()
        .flatten()
        .find_map(|m| reg.logins.get(&m).filter(|l| l.of(m)))
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
    login_at(&lock(r), sshd_pid).map(|l| (l.serial, l.key_id.clone()))
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

/// sshd's session processes of the login of monitor `monitor`: its
/// forks (children running the same file: the unprivileged child), or
/// the monitor itself for a root login, which has none. A program of the
/// user's named sshd is not a fork.
fn session_processes(t: &ProcessTable, monitor: i32) -> Vec<i32> {
    let forks: Vec<i32> = children(t, monitor)
        .into_iter()
        .filter(|&c| same_exe(c, monitor))
        .collect();
    if forks.is_empty() {
        vec![monitor]
    } else {
        forks
    }
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
/// binary. A login whose sshd is gone is watched on while a process it
/// ran still runs (what a killed wrapper left), and ended at its
/// certificate's end.
pub fn sweep(r: &Shared, wrapper: &Path) -> Vec<Ending> {
    let mut reg = lock(r);
    let now = Instant::now();
    let gone: Vec<i32> = reg
        .logins
        .iter()
        .filter(|&(&m, l)| !(is_sshd(m).is_ok() && l.of(m)))
        .map(|(&m, _)| m)
        .collect();
    for m in gone {
        if let Some(l) = reg.logins.remove(&m) {
            reg.left.push(l);
        }
    }
    reg.announced
        .retain(|&(p, started)| start_time(p) == Some(started));
    let Registry {
        logins,
        announced,
        first_seen,
        left,
        ..
    } = &mut *reg;
    let mut bad = Vec::new();
    let mut seen = HashSet::new();
    // One look at /proc for every login (each was a scan of its own).
    // Read before the table: see [`super::pid_reuse`].
    let mark = Mark::now();
    let t = table();
    for (&monitor, login) in logins.iter_mut() {
        // The session runs below the monitor's unprivileged child, or
        // below the monitor itself (a root login has no such child).
        let ends = session_processes(&t, monitor);
        let mut sessions = vec![monitor];
        sessions.extend(ends.iter().filter(|&&s| s != monitor));
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
                    bad.push(
                        Ending::below_sshd(
                            session,
                            format!(
                                "{}, {}, but process {child} ran {}s without {}",
                                login.what(),
                                if login.recorded {
                                    "which must be recorded"
                                } else {
                                    "whose session must run through the wrapper"
                                },
                                grace.as_secs(),
                                if login.recorded {
                                    "a session wrapper announcing itself"
                                } else {
                                    "its session wrapper"
                                },
                            ),
                        )
                        .in_cgroup(login.end.cgroup()),
                    );
                }
            }
        }
        // The certificate's end: sshd's session processes (the monitor
        // itself for a root login), except those whose recorded wrapper
        // runs, whose session handler ends them with the recording's end.
        let spared: Vec<i32> = ends
            .iter()
            .copied()
            .filter(|s| login.recorded && wrapped.contains(s))
            .collect();
        bad.extend(
            login
                .end
                .look(&t, mark, &login.cert, &ends, &spared, &login.what()),
        );
    }
    for login in left.iter_mut() {
        bad.extend(
            login
                .end
                .look(&t, mark, &login.cert, &[], &[], &login.what()),
        );
    }
    left.retain(|l| {
        if !l.end.is_over() {
            return true;
        }
        if let Some(c) = l.end.cgroup() {
            super::login_cgroup::remove_ended(c, &l.what());
        }
        false
    });
    first_seen.retain(|p, _| seen.contains(p));
    reg.persist();
    bad
}

/// How long after the principals command announced a login it is looked
/// at quickly: the login itself takes up to 1.45 s here
/// ([`GRACE`]), and a wrapper killed at once (`kill -9 $PPID` as the
/// command's first word) leaves sshd within milliseconds, between two
/// of the once-a-second sweeps.
pub const YOUNG: Duration = Duration::from_secs(5);

/// How often a young login is looked at.
pub const YOUNG_EVERY: Duration = Duration::from_millis(10);

/// Notes the kernel sessions below the sshd session processes of each
/// login announced less than [`YOUNG`] ago, from only those processes
/// (not a pass over all of /proc), so that what a wrapper killed right
/// after it started leaves is known when sshd is gone.
pub fn look_young(r: &Shared) {
    let mut reg = lock(r);
    // Read once a round, before any of its tables (not once a login:
    // `/proc/stat` is not free, on a host of many CPUs above all).
    let mut marked = None;
    for (&monitor, login) in reg.logins.iter_mut() {
        // A login whose monitor is in a cgroup of its own needs no quick
        // look: what a killed wrapper left is there. Not once logind has
        // moved the monitor into its scope (at PAM's session start).
        let held = |c: &Path| super::login_cgroup::procs(c).contains(&monitor);
        if login.since.elapsed() >= YOUNG
            || login.end.cgroup().is_some_and(held)
            || !login.of(monitor)
        {
            continue;
        }
        let mark = *marked.get_or_insert_with(Mark::now);
        let t = super::reap::subtree(monitor);
        login.end.note(&t, mark, &session_processes(&t, monitor));
    }
}

#[cfg(test)]
#[path = "expect_tests.rs"]
mod tests;
