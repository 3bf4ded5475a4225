//! Ending a session: SIGHUP (and SIGCONT, so stopped jobs see it) to every
//! process of the session, then SIGKILL to whatever is left after a short
//! grace. "The session" is a kernel session id: the child's own for a pty
//! session (it is the session leader of the new pty), the wrapper's for a
//! piped one (the child shares it), so background jobs in other process
//! groups go too. A process that left the session with `setsid` is not
//! found: see docs/threat-model.md.

use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// How long processes get to exit on SIGHUP before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// The session id in the text of `/proc/PID/stat` (after the command
/// name, which may itself hold spaces and parentheses).
pub fn session_of(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // state, ppid, pgrp, session
    rest.split_whitespace().nth(3)?.parse().ok()
}

/// Processes in session `sid`, except the ones in `spare`.
pub fn members(sid: i32, spare: &[i32]) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| !spare.contains(pid))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| session_of(&s))
                == Some(sid)
        })
        .collect()
}

fn signal_all(pids: &[i32], sig: Signal) {
    for pid in pids.iter().filter_map(|&p| Pid::from_raw(p)) {
        // Gone already, or not ours: nothing more to do for it.
        let _ = kill_process(pid, sig);
    }
}

/// Hangs up session `sid` (sparing `spare`: the wrapper and its parent),
/// waiting up to [`GRACE`] before SIGKILL. Blocking: call it off the
/// async runtime's threads.
pub fn hang_up(sid: i32, spare: &[i32]) {
    let pids = members(sid, spare);
    signal_all(&pids, Signal::HUP);
    signal_all(&pids, Signal::CONT);
    let until = Instant::now() + GRACE;
    while Instant::now() < until {
        if live(&members(sid, spare)).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_all(&members(sid, spare), Signal::KILL);
}

/// Those of `pids` that are not zombies (a zombie waits for its parent,
/// not for a signal).
fn live(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().next().map(|st| st != "Z")
                })
                .unwrap_or(false)
        })
        .collect()
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
    fn this_test_process_is_found_in_its_own_session() {
        let me = i32::try_from(std::process::id()).unwrap();
        let sid = rustix::process::getsid(None)
            .unwrap()
            .as_raw_nonzero()
            .get();
        assert!(members(sid, &[]).contains(&me));
        assert!(!members(sid, &[me]).contains(&me));
    }
}
