//! Ending an sshd session from the root side, when its wrapper died
//! without saying the session ended or the certificate's deadline passed
//! with the wrapper no longer enforcing it.
//!
//! The recorder knows sshd's process for the session (the wrapper's
//! parent, checked at the start). While the session runs it notes, once a
//! second, the kernel session ids of every process below that sshd
//! process (the wrapper's, the shell's on the inner pty, a job's that
//! called `setsid`), so that processes a killed wrapper left behind
//! (reparented to init, out of sshd's tree) are still found. A noted
//! session with no process left is forgotten at the next look: its id is
//! a pid the kernel hands out again, and a user who cycles through pids
//! with `setsid` jobs would otherwise get root to hang up whoever's
//! session (an sshd connection, a daemon) later has that id. Ending the
//! session: SIGHUP and SIGCONT to every process of those sessions and
//! below sshd, SIGKILL after [`hangup::GRACE`], then sshd's session process
//! itself, which closes the connection.
//!
//! What a process of a noted session starts is noted too (once sshd is
//! gone nothing runs below it). A noted session whose id the kernel may
//! have handed out again since the last look is kept only if a process
//! in it is older than that look ([`super::pid_reuse`]). A process that
//! double-forks into a session of its own between two looks is
//! reparented to init and not found this way. On a host where
//! logind puts each sshd login in a `session-N.scope` cgroup (`UsePAM
//! yes` with pam_systemd), every process of that cgroup is ended too,
//! which catches those (not exercised by the tests: their sshd runs
//! without systemd). Elsewhere the recorder gives each watched login a
//! cgroup of its own ([`super::login_cgroup`]), ended whole with
//! `cgroup.kill` after the hang-up.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use rustix::process::Signal;

use super::peer::{is_sshd, start_time, Peer};
use super::pid_reuse::Mark;
use crate::session::hangup;

/// The processes of one sshd session, as far as the recorder has seen.
#[derive(Debug, Clone)]
pub struct Watched {
    sshd_pid: i32,
    /// When `sshd_pid` started (`/proc/PID/stat` field 22): once sshd's
    /// process is gone its pid is the kernel's to hand out again, and
    /// what runs below a process that merely has that pid now (another
    /// user's login) is not this session's.
    sshd_start: Option<u64>,
    sids: BTreeSet<i32>,
    /// When each of `sids` was last seen to be the login's: a session
    /// id handed out again since is another session's unless a process
    /// in it is older than that ([`super::pid_reuse`]).
    since: BTreeMap<i32, Mark>,
    /// Sessions never to touch: the recorder's own, and sshd's (the
    /// listener and the connection's monitor live there).
    spare_sids: BTreeSet<i32>,
    /// The login's logind scope, `…/user.slice/…/session-N.scope` where
    /// cgroup2 is mounted.
    scope: Option<std::path::PathBuf>,
    /// The login's own cgroup ([`super::login_cgroup`]), which the
    /// recorder made: every process of the login is in it.
    cgroup: Option<std::path::PathBuf>,
}

/// The logind session scope in the text of `/proc/PID/cgroup` (cgroup
/// v2), if the process is in one; never a broader cgroup.
pub fn session_scope(cgroup: &str) -> Option<std::path::PathBuf> {
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let last = path.rsplit('/').next()?;
    let ok = last.starts_with("session-")
        && last.ends_with(".scope")
        && path.starts_with("/user.slice/")
        && !path.contains("..");
    ok.then(|| v2_mount().join(path.trim_start_matches('/')))
}

/// The logind session scope `pid` is in, if it is the login's own: not
/// one that sshd's listener (the topmost sshd above `sshd_pid`) is in
/// too. sshd started by hand from someone's session with `UsePAM no`
/// runs every login in that person's scope, and ending such a login
/// signalled everything there: their shell, and the listener (found in
/// review; `sessions_login_cgroup_review_e2e.rs::
/// without_a_cgroup_a_login_in_the_scope_sshd_runs_in_ends_nothing_else_there`).
pub fn login_scope(pid: i32, sshd_pid: i32) -> Option<std::path::PathBuf> {
    let scope_of = |p: i32| {
        std::fs::read_to_string(format!("/proc/{p}/cgroup"))
            .ok()
            .and_then(|c| session_scope(&c))
    };
    let scope = scope_of(pid)?;
    match listener_above(sshd_pid) {
        Some(listener) if scope_of(listener).as_ref() == Some(&scope) => None,
        _ => Some(scope),
    }
}

/// The topmost of the sshd processes `pid` is (or is below): sshd's
/// listener, or `None` if `pid` is no sshd process.
fn listener_above(pid: i32) -> Option<i32> {
    let mut top = None;
    let mut p = pid;
    // An sshd chain is three deep (listener, monitor, session process);
    // the bound only guards against a table changing under the walk.
    for _ in 0..16 {
        if super::peer::is_sshd(p).is_err() {
            break;
        }
        top = Some(p);
        match super::peer::parent_of(p) {
            Some(q) if q > 1 => p = q,
            _ => break,
        }
    }
    top
}

/// Where cgroup2 is mounted: `/sys/fs/cgroup`, or `/sys/fs/cgroup/unified`
/// on a hybrid layout, where a scope looked for below the former was
/// never found (`tests::a_logind_scope_is_found_where_cgroup2_is_mounted`).
fn v2_mount() -> &'static std::path::Path {
    static MOUNT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    MOUNT.get_or_init(|| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|t| super::login_cgroup::mount_in(&t))
            .unwrap_or_else(|| "/sys/fs/cgroup".into())
    })
}

/// pid → (ppid, sid) of every process.
pub type ProcessTable = HashMap<i32, (i32, i32)>;

/// The process table, from one pass over /proc. Zombies are left out:
/// nothing is left of them to end, and on a host whose init reaps
/// slowly (this test VM's keeps them for seconds) each look found what
/// the last hang-up had killed and hung it up again.
pub fn table() -> ProcessTable {
    let mut t = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") {
            continue;
        }
        if let (Some(ppid), Some(sid)) = (
            f.get(1).and_then(|s| s.parse().ok()),
            f.get(3).and_then(|s| s.parse().ok()),
        ) {
            t.insert(pid, (ppid, sid));
        }
    }
    t
}

/// `root` and every process below it, found through
/// `/proc/PID/task/TID/children` rather than a pass over all of /proc:
/// cheap enough to look at a young login many times a second.
pub fn subtree(root: i32) -> ProcessTable {
    let mut t = HashMap::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if t.contains_key(&pid) {
            continue;
        }
        let Some(stat) = crate::proc_stat::read(pid) else {
            continue;
        };
        if crate::proc_stat::field(&stat, 0) == Some("Z") {
            continue;
        }
        let (Some(ppid), Some(sid)) = (
            crate::proc_stat::number(&stat, 1),
            crate::proc_stat::number(&stat, 3),
        ) else {
            continue;
        };
        t.insert(pid, (ppid, sid));
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            todo.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
    }
    t
}

/// Every process below `root` in `t`. Linear in the table: a look that
/// went over the whole table for each process found (and over what it
/// had found for each) took 7.9 s for a login of 10,000 processes,
/// under the registry's lock every other login's principals command
/// waits on (`tests::a_look_at_a_login_with_thousands_of_sessions_stays_short`).
fn descendants(t: &HashMap<i32, (i32, i32)>, root: i32) -> Vec<i32> {
    descendants_of(t, [root])
}

/// Every process below any of `roots` in `t`, in one pass.
fn descendants_of(t: &HashMap<i32, (i32, i32)>, roots: impl IntoIterator<Item = i32>) -> Vec<i32> {
    let mut kids: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, &(ppid, _)) in t {
        kids.entry(ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut todo: Vec<i32> = roots.into_iter().collect();
    let mut seen: HashSet<i32> = todo.iter().copied().collect();
    while let Some(p) = todo.pop() {
        for &pid in kids.get(&p).into_iter().flatten() {
            if seen.insert(pid) {
                out.push(pid);
                todo.push(pid);
            }
        }
    }
    out
}

impl Watched {
    pub fn new(peer: &Peer) -> Watched {
        let mut spare_sids = BTreeSet::from([0]);
        spare_sids.extend(hangup::own_session());
        spare_sids.extend(super::peer::session_of(peer.sshd_pid));
        let scope = login_scope(peer.pid, peer.sshd_pid);
        let mut w = Watched {
            sshd_pid: peer.sshd_pid,
            sshd_start: start_time(peer.sshd_pid),
            sids: BTreeSet::new(),
            since: BTreeMap::new(),
            spare_sids,
            scope,
            cgroup: None,
        };
        if !w.spare_sids.contains(&peer.sid) {
            w.sids.insert(peer.sid);
        }
        w.refresh();
        w
    }

    /// The processes below sshd's session process `sshd_pid` (a login no
    /// wrapper announced).
    pub fn below_sshd(sshd_pid: i32) -> Watched {
        let mut w = Watched::of_sshd(sshd_pid);
        w.refresh();
        w
    }

    /// [`Watched::below_sshd`] with nothing noted yet: the caller looks.
    pub fn of_sshd(sshd_pid: i32) -> Watched {
        let mut spare_sids = BTreeSet::from([0]);
        spare_sids.extend(hangup::own_session());
        spare_sids.extend(super::peer::session_of(sshd_pid));
        let scope = login_scope(sshd_pid, sshd_pid);
        Watched {
            sshd_pid,
            sshd_start: start_time(sshd_pid),
            sids: BTreeSet::new(),
            since: BTreeMap::new(),
            spare_sids,
            scope,
            cgroup: None,
        }
    }

    /// The same, with the login's own cgroup (made by the recorder).
    pub fn with_cgroup(mut self, cgroup: Option<std::path::PathBuf>) -> Watched {
        self.cgroup = cgroup;
        self
    }

    /// A login's own cgroup alone: what is left of a login whose sshd
    /// processes are gone, in no session the recorder saw (a job that
    /// double-forked away between two looks).
    pub fn of_cgroup(cgroup: std::path::PathBuf) -> Watched {
        Watched::restored(0, None, BTreeSet::new()).with_cgroup(Some(cgroup))
    }

    /// The login's own cgroup, if it has one.
    pub fn cgroup(&self) -> Option<&std::path::Path> {
        self.cgroup.as_deref()
    }

    /// The kernel sessions noted.
    pub fn sids(&self) -> &BTreeSet<i32> {
        &self.sids
    }

    /// When session `sid` was last seen to be the login's.
    pub fn seen(&self, sid: i32) -> Option<Mark> {
        self.since.get(&sid).copied()
    }

    /// Which sshd session process this is: its pid and start time.
    pub fn id(&self) -> (i32, Option<u64>) {
        (self.sshd_pid, self.sshd_start)
    }

    /// What a restarted recorder takes back of a login's processes
    /// ([`super::watched_logins`]): sshd's session process as it was,
    /// and the kernel sessions still held by a process the previous
    /// recorder named (so none is a later session that got a freed id).
    pub fn restored(sshd_pid: i32, sshd_start: Option<u64>, sids: BTreeSet<i32>) -> Watched {
        let mut spare_sids = BTreeSet::from([0]);
        spare_sids.extend(hangup::own_session());
        let mut scope = None;
        if sshd_start.is_some() && start_time(sshd_pid) == sshd_start {
            spare_sids.extend(super::peer::session_of(sshd_pid));
            scope = login_scope(sshd_pid, sshd_pid);
        }
        let sids: BTreeSet<i32> = sids.difference(&spare_sids).copied().collect();
        // Each held by the process the previous recorder named, now.
        let since = Mark::now()
            .map(|m| sids.iter().map(|&s| (s, m)).collect())
            .unwrap_or_default();
        Watched {
            sshd_pid,
            sshd_start,
            sids,
            since,
            spare_sids,
            scope,
            cgroup: None,
        }
    }

    /// Whether sshd's session process is gone and nothing of the login
    /// that was seen still runs: nothing left to end.
    pub fn is_over_in(&self, t: &ProcessTable) -> bool {
        !self.sshd_is_ours()
            && self.members_from(t).is_empty()
            && !self
                .cgroup
                .as_deref()
                .is_some_and(super::login_cgroup::populated)
    }

    /// Each noted kernel session with the oldest process still in it
    /// (pid and start time), for [`Watched::restored`]: while that
    /// process lives, the session id is not free to be handed out again.
    pub fn anchors(&self, t: &ProcessTable) -> Vec<(i32, i32, u64)> {
        // One pass over the table, not one per session.
        let mut oldest: std::collections::BTreeMap<i32, (u64, i32)> = Default::default();
        for (&pid, &(_, sid)) in t {
            if !self.sids.contains(&sid) {
                continue;
            }
            let Some(start) = start_time(pid) else {
                continue;
            };
            let o = oldest.entry(sid).or_insert((start, pid));
            *o = (*o).min((start, pid));
        }
        oldest
            .into_iter()
            .map(|(sid, (start, pid))| (sid, pid, start))
            .collect()
    }

    /// Notes the sessions of the processes below sshd's in `t`, a table
    /// of only part of the processes ([`subtree`]), forgetting none.
    /// `mark` was read before `t`.
    pub fn note_from(&mut self, t: &ProcessTable, mark: Option<Mark>) {
        for pid in self.below_sshd_now(t) {
            if let Some(&(_, sid)) = t.get(&pid) {
                self.note(sid, mark);
            }
        }
    }

    fn note(&mut self, sid: i32, mark: Option<Mark>) {
        if self.spare_sids.contains(&sid) {
            return;
        }
        self.sids.insert(sid);
        if let Some(m) = mark {
            self.since.insert(sid, m);
        }
    }

    /// Notes the sessions of every process now below sshd's.
    pub fn refresh(&mut self) {
        let mark = Mark::now();
        self.refresh_at(&table(), mark);
    }

    /// [`Watched::refresh`] from a table already read (tests: the mark
    /// is read after it).
    #[cfg(test)]
    pub fn refresh_from(&mut self, t: &ProcessTable) {
        self.refresh_at(t, Mark::now());
    }

    /// The noted sessions that may be other sessions by now, given the
    /// table `t` read after `now`: their id may have been handed out
    /// again since they were last seen to be the login's, and no process
    /// in them is older than that (one pass over the table).
    fn handed_out(&self, t: &ProcessTable, now: Option<&Mark>) -> BTreeSet<i32> {
        let Some(now) = now else {
            return BTreeSet::new();
        };
        let mut maybe: BTreeMap<i32, u64> = self
            .since
            .iter()
            .filter(|&(&sid, then)| self.sids.contains(&sid) && then.may_hand_out(now, sid))
            .map(|(&sid, then)| (sid, then.tick))
            .collect();
        for (&pid, &(_, sid)) in t {
            let Some(&then) = maybe.get(&sid) else {
                continue;
            };
            if start_time(pid).is_some_and(|started| started < then) {
                maybe.remove(&sid);
            }
        }
        maybe.into_keys().collect()
    }

    /// [`Watched::refresh`] from a table `t` read after `mark`.
    pub fn refresh_at(&mut self, t: &ProcessTable, mark: Option<Mark>) {
        // A session with no process left is over, and its id is free: once
        // the pid is reused, a new session (another user's login, a
        // daemon) can have it. Forget it, or the hang-up ends that one;
        // and one whose id was handed out again between two looks.
        let live: BTreeSet<i32> = t.values().map(|&(_, sid)| sid).collect();
        let gone = self.handed_out(t, mark.as_ref());
        self.sids.retain(|s| live.contains(s) && !gone.contains(s));
        let sids = self.sids.clone();
        for s in sids {
            self.note(s, mark);
        }
        let Watched { sids, since, .. } = &mut *self;
        since.retain(|s, _| sids.contains(s));
        // What a process of a noted session started is the login's too,
        // in a session of its own or not: once sshd is gone nothing runs
        // below it, and `kill -9 $PPID; sleep 1; setsid job` outlived
        // the certificate. (A job whose parent is gone by the next look,
        // a double fork, is still not found.)
        let mut roots = vec![self.sshd_pid];
        roots.extend(
            t.iter()
                .filter(|(_, (_, sid))| self.sids.contains(sid))
                .map(|(&pid, _)| pid),
        );
        let sshd = self.sshd_is_ours();
        for pid in descendants_of(t, roots.into_iter().filter(|&r| sshd || r != self.sshd_pid)) {
            if let Some(&(_, sid)) = t.get(&pid) {
                self.note(sid, mark);
            }
        }
    }

    /// The login's processes now; a noted session whose id was handed
    /// out again since the last look (during a hang-up's grace, too) is
    /// left out.
    fn members(&self) -> Vec<i32> {
        let mark = Mark::now();
        let t = table();
        let mut w = self.clone();
        let gone = self.handed_out(&t, mark.as_ref());
        w.sids.retain(|s| !gone.contains(s));
        w.members_from(&t)
    }

    /// Whether `sshd_pid` is still the process it was.
    fn sshd_is_ours(&self) -> bool {
        self.sshd_start.is_some() && start_time(self.sshd_pid) == self.sshd_start
    }

    /// The processes below sshd's session process, if it is still there.
    fn below_sshd_now(&self, t: &HashMap<i32, (i32, i32)>) -> Vec<i32> {
        if self.sshd_is_ours() {
            descendants(t, self.sshd_pid)
        } else {
            Vec::new()
        }
    }

    fn members_from(&self, t: &HashMap<i32, (i32, i32)>) -> Vec<i32> {
        let mut pids = self.below_sshd_now(t);
        let mut have: HashSet<i32> = pids.iter().copied().collect();
        for (&pid, &(_, sid)) in t {
            if self.sids.contains(&sid) && have.insert(pid) {
                pids.push(pid);
            }
        }
        if let Some(scope) = &self.scope {
            let procs = std::fs::read_to_string(scope.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                if have.insert(pid) {
                    pids.push(pid);
                }
            }
        }
        if let Some(cgroup) = &self.cgroup {
            // Not sshd's session process nor the monitor above it: they
            // get the hang-up's TERM last, as on any host, and the
            // cgroup's kill after.
            let sshd = [Some(self.sshd_pid), super::peer::parent_of(self.sshd_pid)];
            for pid in super::login_cgroup::procs(cgroup) {
                if !sshd.contains(&Some(pid)) && have.insert(pid) {
                    pids.push(pid);
                }
            }
        }
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        pids.retain(|&p| p != me && p > 1);
        pids
    }

    /// Ends the session (blocking: call it off the async runtime);
    /// returns how many processes were signalled, for the log.
    pub fn hang_up(&self) -> String {
        let pids = self.members();
        let mut said = format!(
            "{} processes of sessions {:?} and below sshd {}",
            pids.len(),
            self.sids,
            self.sshd_pid
        );
        hangup::end_processes(|| self.members());
        // sshd's session process last: the connection closes with it. It
        // is checked again, so a recycled pid is never hit.
        if self.sshd_alive() {
            hangup::signal_all(&[self.sshd_pid], Signal::TERM);
            std::thread::sleep(Duration::from_millis(200));
            if self.sshd_alive() {
                hangup::signal_all(&[self.sshd_pid], Signal::KILL);
            }
        }
        // Last, whatever is still in the login's cgroup (a process
        // forked between a look and its signal, the monitor): the kernel
        // kills it all at once, forks included.
        if let Some(c) = &self.cgroup {
            match super::login_cgroup::kill(c) {
                Ok(()) => said.push_str(&format!(", then all of cgroup {}", c.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => said.push_str(&format!(", but not cgroup {}: {e}", c.display())),
            }
        }
        said
    }

    /// Whether sshd's session process is still there.
    pub fn sshd_alive(&self) -> bool {
        self.sshd_is_ours() && is_sshd(self.sshd_pid).is_ok()
    }
}

#[cfg(test)]
#[path = "reap_tests.rs"]
mod tests;
