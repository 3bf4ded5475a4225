//! Whether a kernel session id the recorder noted can belong to another
//! session by now. A session id is its leader's pid; the kernel keeps it
//! while any process is in the session, and hands it out again once
//! none is. A user who cycled the pids up to just below their own job's
//! session id (32,768 forks at this VM's `pid_max`) and then ended the
//! job can have the next process that calls setsid get that id (another
//! login's sshd, a daemon) between two of the recorder's looks, which
//! saw the session live at both: the hang-up at the certificate's end
//! then ended that other session.
//!
//! A [`Mark`] is where the kernel's pid counter stood: from one mark to
//! the next, the pids handed out lie after the first mark's last pid and
//! up to the next's, unless the counter went a whole turn. A session id
//! outside that stretch was not handed out: the session is the one
//! noted. One inside it is the one noted only if a process in it now
//! started before the first mark (it was in the session then, so the id
//! was never free). A noted session whose processes all ended and gave
//! way to new ones of the same job across such a stretch (a fork chain)
//! is forgotten: failing open for the login's own processes, which can
//! leave a session with `setsid -f` anyway, rather than hanging up
//! someone else's.

/// Pids the kernel does not hand out again after its first turn
/// (`RESERVED_PIDS`).
const RESERVED: i64 = 300;

/// Where the kernel's pid counter stood, read before a look at the
/// process table. Kept in `SPOOL/watched-logins` too: a restarted
/// recorder asks the same of what the previous one saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mark {
    /// The first 64 bits of the kernel's boot id: ticks and pids of
    /// another boot mean nothing.
    boot: u64,
    /// Clock ticks since boot, the unit of a process's start time.
    pub tick: u64,
    /// The last pid handed out (`/proc/sys/kernel/ns_last_pid`).
    last: i64,
    /// Tasks created since boot (`processes` in `/proc/stat`, threads
    /// included: each takes a pid).
    forks: u64,
    /// `/proc/sys/kernel/pid_max`.
    pid_max: i64,
    /// Tasks now (`/proc/loadavg`): what skips the counter ahead.
    tasks: u64,
}

fn read_number<T: std::str::FromStr>(path: &str) -> Option<T> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The first 64 bits of `/proc/sys/kernel/random/boot_id`.
fn boot() -> Option<u64> {
    static BOOT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let hex: String = id
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(16)
            .collect();
        u64::from_str_radix(&hex, 16).ok()
    })
}

impl Mark {
    /// Now; `None` where the kernel does not tell (no `ns_last_pid`):
    /// then every noted session counts as the one noted while a process
    /// is in it, as before marks.
    pub fn now() -> Option<Mark> {
        // The tick first: a process that started before it started
        // before everything read after it.
        let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
        // Seconds with two decimals; start times are in USER_HZ, 100 on
        // Linux: the same hundredths.
        let (secs, hundredths) = uptime.split_whitespace().next()?.split_once('.')?;
        let tick = secs.parse::<u64>().ok()? * 100 + hundredths.parse::<u64>().ok()?;
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let forks = stat
            .lines()
            .find_map(|l| l.strip_prefix("processes "))?
            .trim()
            .parse()
            .ok()?;
        let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
        let tasks = loadavg
            .split_whitespace()
            .nth(3)?
            .split('/')
            .nth(1)?
            .parse()
            .ok()?;
        Some(Mark {
            boot: boot()?,
            tick,
            last: read_number("/proc/sys/kernel/ns_last_pid")?,
            forks,
            pid_max: read_number("/proc/sys/kernel/pid_max")?,
            tasks,
        })
    }

    /// Whether `other` was read since the machine last booted, as this.
    pub fn same_boot(&self, other: &Mark) -> bool {
        self.boot == other.boot
    }

    /// Whether pid `id` may have been handed out after `self` and up to
    /// `now`.
    pub fn may_hand_out(&self, now: &Mark, id: i32) -> bool {
        if self.boot != now.boot {
            return true;
        }
        let made = now.forks.saturating_sub(self.forks);
        if made == 0 {
            return false;
        }
        let pid_max = now.pid_max.max(self.pid_max);
        // How far the counter went, if it went less than a whole turn.
        let went = if self.last <= now.last {
            now.last - self.last
        } else {
            (pid_max - 1 - self.last) + (now.last - RESERVED + 1)
        };
        // Each task made takes a pid of that stretch, and the counter
        // skips the pids in use (at most a pid and a session or group
        // id per task): more tasks than the stretch holds, or enough
        // for a whole turn, and any pid may have been handed out (also
        // when root set the counter back: `ns_last_pid`).
        let made = i64::try_from(made).unwrap_or(i64::MAX);
        let skipped = i64::try_from(2 * now.tasks.max(self.tasks)).unwrap_or(i64::MAX);
        if made > went || made.saturating_add(skipped) >= pid_max - RESERVED {
            return true;
        }
        let id = i64::from(id);
        if self.last <= now.last {
            self.last < id && id <= now.last
        } else {
            id > self.last || id <= now.last
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(last: i64, forks: u64) -> Mark {
        Mark {
            boot: 1,
            tick: 0,
            last,
            forks,
            pid_max: 32768,
            tasks: 100,
        }
    }

    #[test]
    fn only_the_stretch_the_counter_went_through_is_handed_out() {
        let (a, b) = (mark(1000, 10), mark(1050, 40));
        assert!(a.may_hand_out(&b, 1001) && a.may_hand_out(&b, 1050));
        assert!(!a.may_hand_out(&b, 1000) && !a.may_hand_out(&b, 1051));
        assert!(!a.may_hand_out(&a, 1000));
        // Past pid_max, back to the start.
        let (a, b) = (mark(32700, 10), mark(400, 110));
        assert!(a.may_hand_out(&b, 32767) && a.may_hand_out(&b, 350));
        assert!(!a.may_hand_out(&b, 401) && !a.may_hand_out(&b, 32700));
        // Enough tasks made for a whole turn: anything.
        let (a, b) = (mark(1000, 10), mark(1050, 40_000));
        assert!(a.may_hand_out(&b, 999));
        // More tasks made than pids the counter went past: it did not
        // only go forward (root set it back): anything.
        let (a, b) = (mark(1000, 10), mark(1000, 11));
        assert!(a.may_hand_out(&b, 1000));
        // No task made, nothing handed out.
        assert!(!mark(1000, 10).may_hand_out(&mark(900, 10), 950));
        // Another boot: anything.
        let other = Mark {
            boot: 2,
            ..mark(1000, 10)
        };
        assert!(other.may_hand_out(&mark(1000, 10), 5));
    }

    #[test]
    fn the_kernel_tells_where_its_counter_stands() {
        let a = Mark::now().expect("this kernel has ns_last_pid");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let b = Mark::now().unwrap();
        let _ = child.wait();
        assert!(a.may_hand_out(&b, pid), "{a:?} {b:?} {pid}");
        assert!(b.tick >= a.tick && b.forks > a.forks);
    }

    impl Mark {
        /// This mark as if read on another boot.
        pub fn of_another_boot(self) -> Mark {
            Mark {
                boot: self.boot.wrapping_add(1),
                ..self
            }
        }
    }
}
