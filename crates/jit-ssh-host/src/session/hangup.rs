//! Ending a session: SIGHUP (and SIGCONT, so stopped jobs see it) to every
//! process of the session, then SIGKILL to whatever is left after a short
//! grace. "The session" is a kernel session id: the child's own for a pty
//! session (it is the session leader of the new pty), the wrapper's for a
//! piped one (the child shares it), so background jobs in other process
//! groups go too. A process that left the session with `setsid` is not
//! found: see docs/threat-model.md.
//!
//! A session id of 0 means the session leader lives outside our pid
//! namespace (a container's init started us without `setsid`). Every
//! process in the namespace may share it, so it is never hung up: the
//! caller falls back to the child's process group ([`Scope::Group`]).

use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use crate::proc_stat;

/// How long processes get to exit on SIGHUP before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// Which processes make up the session to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every process of a kernel session (always a real id, above 0).
    Session(i32),
    /// Every process of one process group, for when the session id is not
    /// ours to use (see the module docs).
    Group(i32),
}

/// The session id in the text of `/proc/PID/stat`.
pub fn session_of(stat: &str) -> Option<i32> {
    proc_stat::number(stat, 3)
}

/// This process's session id, or `None` when it is 0 (a leader outside
/// our pid namespace) or cannot be read. Read from `/proc` rather than
/// through getsid(2), whose wrapper cannot represent a session id of 0.
pub fn own_session() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    session_of(&stat).filter(|&sid| sid > 0)
}

fn in_scope(stat: &str, scope: Scope) -> bool {
    match scope {
        Scope::Session(sid) => sid > 0 && session_of(stat) == Some(sid),
        Scope::Group(pgid) => pgid > 0 && proc_stat::number(stat, 2) == Some(pgid),
    }
}

/// Processes in `scope`, except the ones in `spare`.
pub fn members(scope: Scope, spare: &[i32]) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| !spare.contains(pid))
        .filter(|&pid| proc_stat::read(pid).is_some_and(|s| in_scope(&s, scope)))
        .collect()
}

pub fn signal_all(pids: &[i32], sig: Signal) {
    for pid in pids.iter().filter_map(|&p| Pid::from_raw(p)) {
        // Gone already, or not ours: nothing more to do for it.
        let _ = kill_process(pid, sig);
    }
}

/// Hangs up `scope` (sparing `spare`: the wrapper and its parent),
/// waiting up to [`GRACE`] before SIGKILL. Blocking: call it off the
/// async runtime's threads.
pub fn hang_up(scope: Scope, spare: &[i32]) {
    end_processes(|| members(scope, spare));
}

/// SIGHUP and SIGCONT to what `members` finds, then SIGKILL to what it
/// finds once [`GRACE`] passed with any of them still running (looked
/// up again each time: a process may fork meanwhile). The wrapper's
/// hang-up and the recorder's share it.
pub fn end_processes(members: impl Fn() -> Vec<i32>) {
    let pids = members();
    signal_all(&pids, Signal::HUP);
    signal_all(&pids, Signal::CONT);
    let until = Instant::now() + GRACE;
    while Instant::now() < until {
        if proc_stat::live(&members()).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_all(&members(), Signal::KILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_id_is_read_past_a_command_name_with_spaces() {
        let stat = "4242 (a (weird) name) S 4200 4242 4100 34816 4242 4194304 0";
        assert_eq!(session_of(stat), Some(4100));
        assert_eq!(session_of("garbage"), None);
    }

    #[test]
    fn a_session_or_group_id_of_zero_selects_nothing() {
        let stat = "4242 (sh) S 1 0 0 34816 4242 4194304 0";
        assert!(!in_scope(stat, Scope::Session(0)));
        assert!(!in_scope(stat, Scope::Group(0)));
        assert!(in_scope("4242 (sh) S 1 77 4100 0", Scope::Group(77)));
    }

    #[test]
    fn a_child_in_its_own_group_is_found_and_hung_up() {
        use std::os::unix::process::CommandExt;
        // The test itself may run with session and group id 0 (a
        // container's init as leader), so it makes a group of its own.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        assert!(members(Scope::Group(pid), &[]).contains(&pid));
        assert!(!members(Scope::Group(pid), &[pid]).contains(&pid));
        hang_up(Scope::Group(pid), &[]);
        let status = child.wait().unwrap();
        assert!(!status.success(), "sleep was not hung up: {status}");
        let me = i32::try_from(std::process::id()).unwrap();
        if let Some(sid) = own_session() {
            assert!(members(Scope::Session(sid), &[]).contains(&me));
        }
    }
}
