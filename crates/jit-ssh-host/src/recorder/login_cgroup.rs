//! A cgroup of its own for each watched login on a host without logind
//! session scopes. The recorder follows a login's processes by kernel
//! session id below sshd, looking once a second: a process that
//! double-forks out of the login between two looks (`setsid -f job`) is
//! reparented to init in a session nobody saw, and outlived the
//! certificate and its revocation. So when the principals command
//! announces a login, before it gets its answer (and so before sshd
//! accepts the login and forks anything for it), the recorder moves the
//! login's sshd monitor into a new cgroup below the monitor's own (in the
//! cgroup v2 hierarchy): every process of the login is born there and
//! cannot leave (only root moves processes between cgroups), and ending
//! the login ends the whole cgroup (`cgroup.kill`, Linux 5.14).
//!
//! Fail closed on what is killed, open on the login: only a cgroup this
//! module made (below the hierarchy's mount, never its root, named
//! [`PREFIX`]…) is ever killed or removed, and only the announced monitor
//! (root sshd, the start time it had) is ever moved. When no cgroup can
//! be made the login goes on as before, followed by session id only, and
//! the recorder says so.

use std::path::{Component, Path, PathBuf};

use super::peer::start_time;

/// The start of every login cgroup's name.
pub const PREFIX: &str = "jit-ssh-login-";

/// `CGROUP2_SUPER_MAGIC` (linux/magic.h).
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup2 file system is mounted (/proc/self/mountinfo)")]
    NotMounted,
    #[error("{0} is not a cgroup2 file system")]
    NotCgroup2(PathBuf),
    #[error("{0} is mounted read-only")]
    ReadOnly(PathBuf),
    #[error("{path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("process {0}'s cgroup v2 path {1:?} is not one a login cgroup can go below")]
    BadPath(i32, String),
    #[error("process {0} is no longer the announced sshd monitor")]
    NotMonitor(i32),
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot move sshd monitor {pid} into {path}: {source}")]
    Move {
        pid: i32,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the cgroup v2 hierarchy is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    mount: PathBuf,
}

/// The mount point of the cgroup2 file system in the text of
/// `/proc/self/mountinfo` (a hybrid layout has it at
/// `/sys/fs/cgroup/unified`, a pure v2 host at `/sys/fs/cgroup`).
pub fn mount_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(unescape(left.split_whitespace().nth(4)?)))
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && b[i + 2..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 path in the text of `/proc/PID/cgroup` (its `0::`
/// line), if it is a plain absolute path: no `..`, no `(deleted)`
/// suffix of a removed cgroup.
pub fn v2_path(cgroup: &str) -> Option<&str> {
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let plain = path.starts_with('/')
        && !path.contains(' ')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    plain.then_some(path)
}

/// The name of the login cgroup of sshd monitor `monitor` (started at
/// `start`) letting in certificate `serial`.
pub fn name_of(serial: u64, monitor: i32, start: u64) -> String {
    format!("{PREFIX}{serial}-{monitor}-{start}")
}

impl Hierarchy {
    /// The cgroup2 hierarchy this process sees, from
    /// `/proc/self/mountinfo`.
    pub fn find() -> Result<Hierarchy, CgroupError> {
        let path = PathBuf::from("/proc/self/mountinfo");
        let text = std::fs::read_to_string(&path)
            .map_err(|source| CgroupError::Unreadable { path, source })?;
        Hierarchy::at(&mount_in(&text).ok_or(CgroupError::NotMounted)?)
    }

    /// The hierarchy mounted at `mount`, which must be a writable
    /// cgroup2 file system.
    pub fn at(mount: &Path) -> Result<Hierarchy, CgroupError> {
        let fs = rustix::fs::statfs(mount).map_err(|e| CgroupError::Unreadable {
            path: mount.to_owned(),
            source: e.into(),
        })?;
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        if fs.f_type as u64 != CGROUP2_SUPER_MAGIC {
            return Err(CgroupError::NotCgroup2(mount.to_owned()));
        }
        let vfs = rustix::fs::statvfs(mount).map_err(|e| CgroupError::Unreadable {
            path: mount.to_owned(),
            source: e.into(),
        })?;
        if vfs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
            return Err(CgroupError::ReadOnly(mount.to_owned()));
        }
        Ok(Hierarchy {
            mount: mount.to_owned(),
        })
    }

    /// A hierarchy at `mount`, unchecked (tests of path handling).
    #[cfg(test)]
    pub fn unchecked(mount: &Path) -> Hierarchy {
        Hierarchy {
            mount: mount.to_owned(),
        }
    }

    /// Whether `path` is a login cgroup of this hierarchy: strictly
    /// below its mount, through plain names only, the last one starting
    /// with [`PREFIX`]. Nothing else is ever killed or removed.
    pub fn is_login_cgroup(&self, path: &Path) -> bool {
        let Ok(rest) = path.strip_prefix(&self.mount) else {
            return false;
        };
        let mut names = Vec::new();
        for c in rest.components() {
            match c {
                Component::Normal(n) => names.push(n),
                _ => return false,
            }
        }
        names
            .last()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() > PREFIX.len() && n.starts_with(PREFIX))
    }

    /// The directory of cgroup v2 path `path` (from `/proc/PID/cgroup`).
    fn dir_of(&self, path: &str) -> PathBuf {
        self.mount.join(path.trim_start_matches('/'))
    }

    /// Where the login cgroup of `monitor` goes, given the text of its
    /// `/proc/PID/cgroup`, and whether it is still to be made: its
    /// current cgroup when that already is this monitor's login cgroup
    /// (a second principals call of the same connection), else a new
    /// child of its current cgroup. That is inside `ssh.service`'s on a
    /// systemd host, so that stopping sshd still covers it; and inside a
    /// logind session scope too: before the principals command's answer
    /// a scope is not this login's (pam_systemd makes that one at PAM's
    /// session start) but the listener's, sshd started by hand from
    /// someone's session, whose every process that login's end ended.
    /// Another login's cgroup (an sshd started from inside a login has
    /// its connections' monitors there) is neither shared nor gone
    /// below: that login's end kills every cgroup below its own, another
    /// person's login with it. The new one goes beside the outermost
    /// login cgroup around the monitor.
    pub fn target(
        &self,
        cgroup: &str,
        serial: u64,
        monitor: i32,
        start: u64,
    ) -> Result<(PathBuf, bool), CgroupError> {
        let path = v2_path(cgroup)
            .ok_or_else(|| CgroupError::BadPath(monitor, cgroup.trim().to_owned()))?;
        let here = self.dir_of(path);
        let own = format!("-{monitor}-{start}");
        if self.is_login_cgroup(&here)
            && here
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(&own))
        {
            return Ok((here, false));
        }
        let base = self.beside_logins(&here).unwrap_or(&here);
        Ok((base.join(name_of(serial, monitor, start)), true))
    }

    /// The parent of the outermost login cgroup at or around `here`, if
    /// `here` is in one.
    fn beside_logins<'a>(&self, here: &'a Path) -> Option<&'a Path> {
        here.ancestors()
            .filter(|a| self.is_login_cgroup(a))
            .last()
            .and_then(Path::parent)
    }

    /// Moves this process (the recorder) out of a login cgroup it was
    /// started in (by a process of that login: `service … restart` on a
    /// host without systemd), to beside the outermost one: a login's end
    /// kills every process of its cgroup, and took the recorder along.
    /// Returns where it went, if it had to.
    pub fn leave_logins(&self) -> Result<Option<PathBuf>, CgroupError> {
        let path = PathBuf::from("/proc/self/cgroup");
        let text = std::fs::read_to_string(&path)
            .map_err(|source| CgroupError::Unreadable { path, source })?;
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        let here = self.dir_of(
            v2_path(&text).ok_or_else(|| CgroupError::BadPath(me, text.trim().to_owned()))?,
        );
        let Some(base) = self.beside_logins(&here) else {
            return Ok(None);
        };
        std::fs::write(base.join("cgroup.procs"), me.to_string()).map_err(|source| {
            CgroupError::Move {
                pid: me,
                path: base.to_owned(),
                source,
            }
        })?;
        Ok(Some(base.to_owned()))
    }

    /// Puts sshd monitor `monitor` (started at `start`, checked to be a
    /// root sshd by the caller) into its login's own cgroup, made now or
    /// by an earlier principals call of the same connection; returns
    /// where that is. Called
    /// before the principals command is answered: sshd has forked
    /// nothing of the login yet.
    pub fn place(&self, monitor: i32, start: u64, serial: u64) -> Result<PathBuf, CgroupError> {
        let proc_cgroup = PathBuf::from(format!("/proc/{monitor}/cgroup"));
        let cgroup =
            std::fs::read_to_string(&proc_cgroup).map_err(|source| CgroupError::Unreadable {
                path: proc_cgroup.clone(),
                source,
            })?;
        if start_time(monitor) != Some(start) {
            return Err(CgroupError::NotMonitor(monitor));
        }
        let (dir, new) = self.target(&cgroup, serial, monitor, start)?;
        if !new {
            return Ok(dir);
        }
        let mut moved = make_and_move(&dir, monitor)?;
        // Removed between the two as an empty stale one (a recorder
        // starting on a host of many: tests run several): once more.
        if moved
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        {
            moved = make_and_move(&dir, monitor)?;
        }
        if let Err(source) = moved {
            let _ = std::fs::remove_dir(&dir);
            return Err(CgroupError::Move {
                pid: monitor,
                path: dir,
                source,
            });
        }
        // The pid could have gone to another process between the check
        // and the move (the monitor killed meanwhile): that one goes back
        // where it was, the login is not placed.
        if start_time(monitor) != Some(start) {
            if let Some(old) = v2_path(&cgroup) {
                let _ = std::fs::write(self.dir_of(old).join("cgroup.procs"), monitor.to_string());
            }
            let _ = std::fs::remove_dir(&dir);
            return Err(CgroupError::NotMonitor(monitor));
        }
        Ok(dir)
    }

    /// Removes the login cgroups below the mount that hold nothing and
    /// are not in `keep` (a previous recorder's, whose logins ended while
    /// it was down); says which still hold processes that no watched
    /// login names. Returns how many were removed.
    pub fn remove_stale(&self, keep: &[PathBuf]) -> usize {
        let mut removed = 0;
        let mut todo = vec![(self.mount.clone(), 0)];
        while let Some((dir, depth)) = todo.pop() {
            // Deeper than any real hierarchy; a bound on the walk.
            if depth > 32 {
                continue;
            }
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let p = e.path();
                if !self.is_login_cgroup(&p) {
                    todo.push((p, depth + 1));
                    continue;
                }
                if keep.contains(&p) {
                    continue;
                }
                if populated(&p) {
                    eprintln!(
                        "jit-ssh-host recorder: {}: a login cgroup no watched login names still holds processes: left alone",
                        p.display()
                    );
                } else if remove(&p).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// The recorder's login cgroups: the hierarchy, or why there is none
/// (said once, when the recorder starts).
pub type Cgroups = Result<Hierarchy, String>;

/// The cgroups the recorder starts with: `root` names the hierarchy's
/// mount (tests), else it is found in `/proc/self/mountinfo`. Says,
/// once, when there is none.
pub fn start(root: Option<&Path>) -> Cgroups {
    let h = match root {
        Some(r) => Hierarchy::at(r),
        None => Hierarchy::find(),
    };
    // Left in a login's cgroup, it would end itself with that login.
    let h = h.and_then(|h| {
        if let Some(to) = h.leave_logins()? {
            eprintln!(
                "jit-ssh-host recorder: started inside a login's cgroup: moved to {}, so that login's end does not end the recorder",
                to.display()
            );
        }
        Ok(h)
    });
    h.map_err(|e| {
        let why = e.to_string();
        eprintln!(
            "jit-ssh-host recorder: no cgroup for logins ({why}): logins without a logind session scope are followed by kernel session only, and a process that double-forks out of one between two looks is not ended at its certificate's end or revocation"
        );
        why
    })
}

/// The own cgroup of the login of sshd monitor `monitor` (started at
/// `start`) under certificate `serial`, placed now; `None` when it
/// cannot be made, which is said (`what` names the
/// login) and changes nothing else: the login goes on, followed by
/// kernel session as before.
pub fn for_login(
    cgroups: &Cgroups,
    monitor: i32,
    start: Option<u64>,
    serial: u64,
    what: &str,
) -> Option<PathBuf> {
    let h = cgroups.as_ref().ok()?;
    let placed = match start {
        Some(start) => h.place(monitor, start, serial),
        None => Err(CgroupError::NotMonitor(monitor)),
    };
    match placed {
        Ok(dir) => Some(dir),
        Err(e) => {
            eprintln!(
                "jit-ssh-host recorder: {what}: no cgroup of its own ({e}): followed by kernel session only, a process that double-forks out of it between two looks is not ended at its certificate's end or revocation"
            );
            None
        }
    }
}

/// Makes the cgroup at `dir` (there already: made by an earlier call
/// for the same monitor, whose start time is in the name, that failed
/// to move it) and moves `pid` into it; the outer error is the mkdir's.
fn make_and_move(dir: &Path, pid: i32) -> Result<std::io::Result<()>, CgroupError> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(CgroupError::Create {
                path: dir.to_owned(),
                source,
            })
        }
    }
    Ok(std::fs::write(dir.join("cgroup.procs"), pid.to_string()))
}

/// Whether the cgroup at `dir` (or one below it) holds a process. A
/// cgroup that is gone holds none; one that cannot be read is taken to
/// hold some (watched on rather than forgotten).
pub fn populated(dir: &Path) -> bool {
    match std::fs::read_to_string(dir.join("cgroup.events")) {
        Ok(t) => t
            .lines()
            .find_map(|l| l.strip_prefix("populated "))
            .is_none_or(|v| v.trim() != "0"),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// The processes in the cgroup at `dir` itself.
pub fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// SIGKILL to every process of the cgroup at `dir` and below it, by the
/// kernel, which also catches a process forked meanwhile.
pub fn kill(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join("cgroup.kill"), "1")
}

/// Removes the (empty) cgroup at `dir`.
pub fn remove(dir: &Path) -> std::io::Result<()> {
    std::fs::remove_dir(dir)
}

/// Removes the cgroup at `dir` of a login of which nothing runs (`what`
/// names it in the log): it is empty for good, since nothing but root's
/// hand puts a process into a cgroup that has none.
pub fn remove_ended(dir: &Path, what: &str) {
    if let Err(e) = remove(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!(
                "jit-ssh-host recorder: {what}: cannot remove cgroup {}: {e}",
                dir.display()
            );
        }
    }
}

#[cfg(test)]
#[path = "login_cgroup_tests.rs"]
mod tests;
