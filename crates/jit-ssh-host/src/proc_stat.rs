//! Reading `/proc/PID/stat`: the fields after the command name, which may
//! itself hold spaces and parentheses (so the text is split after the
//! last `)`). Used by the session wrapper and the recorder to find,
//! name and end processes.

use std::str::FromStr;

/// The text of `/proc/PID/stat` (`None` once the process is gone).
pub fn read(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

/// Field `n` after the command name: 0 state, 1 ppid, 2 pgrp, 3 session,
/// 19 start time (clock ticks since boot).
pub fn field(stat: &str, n: usize) -> Option<&str> {
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(n)
}

/// Field `n` as a number.
pub fn number<T: FromStr>(stat: &str, n: usize) -> Option<T> {
    field(stat, n)?.parse().ok()
}

/// Those of `pids` that still run and are not zombies (a zombie waits
/// for its parent, not for a signal).
pub fn live(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|&pid| read(pid).is_some_and(|s| field(&s, 0).is_some_and(|st| st != "Z")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_past_a_command_name_with_spaces() {
        let stat = "4242 (a (weird) name) S 4200 4242 4100 34816";
        assert_eq!(field(stat, 0), Some("S"));
        assert_eq!(number::<i32>(stat, 3), Some(4100));
        assert_eq!(field("garbage", 0), None);
    }
}
