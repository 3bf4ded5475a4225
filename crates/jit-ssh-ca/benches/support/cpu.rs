//! CPU time spent by processes during a run, read from `/proc`: a figure
//! that, unlike certificates per second, changes little when something
//! else shares the machine.

use std::time::Duration;

/// utime + stime of `pid` (0 if it is gone).
fn of_pid(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // After the command name: 0 state … 11 utime, 12 stime (clock ticks).
    let hz = 100; // USER_HZ on Linux
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A group of processes whose CPU is summed: named pids, and optionally
/// every child of a parent (PostgreSQL's backends under the postmaster).
pub struct Group {
    pids: Vec<u32>,
    children_of: Option<u32>,
}

impl Group {
    pub fn pids(pids: Vec<u32>) -> Group {
        Group {
            pids,
            children_of: None,
        }
    }

    pub fn with_children(parent: u32) -> Group {
        Group {
            pids: vec![parent],
            children_of: Some(parent),
        }
    }

    /// Per-pid CPU now (a pid that appears later counts from zero).
    pub fn sample(&self) -> Vec<(u32, Duration)> {
        let mut all = self.pids.clone();
        if let Some(parent) = self.children_of {
            if let Ok(dir) = std::fs::read_dir("/proc") {
                all.extend(
                    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                        .filter(|&p| parent_of(p) == Some(parent)),
                );
            }
        }
        all.into_iter().map(|p| (p, of_pid(p))).collect()
    }
}

/// CPU used between two samples of the same group.
pub fn spent(before: &[(u32, Duration)], after: &[(u32, Duration)]) -> Duration {
    after
        .iter()
        .map(|(pid, t)| {
            let was = before
                .iter()
                .find(|(p, _)| p == pid)
                .map_or(Duration::ZERO, |(_, t)| *t);
            t.saturating_sub(was)
        })
        .sum()
}

/// The postmaster's pid, from the first line of `DATA/postmaster.pid`.
pub fn postmaster(data_dir: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}
