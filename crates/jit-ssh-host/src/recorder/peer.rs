//! Who is on the other end of the socket, from what the kernel and
//! `/proc` say rather than from what the wrapper claims: the peer's uid
//! and pid (SO_PEERCRED), the account that uid is, the peer's parent
//! (which must be an sshd session process), and the peer's environment
//! as it was exec'd (where sshd named the certificate file).

use std::path::Path;

/// What the recorder established about a wrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub pid: i32,
    /// The account named by `uid` in /etc/passwd.
    pub account: String,
    /// The peer's parent: sshd's process for this session.
    pub sshd_pid: i32,
    /// The peer's kernel session id.
    pub sid: i32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerError {
    #[error("the peer's credentials are unavailable")]
    NoCredentials,
    #[error("uid {0} is not an account (/etc/passwd, getent passwd)")]
    NoAccount(u32),
    #[error("the wrapper says it runs as {claimed:?}, but its uid {uid} is {actual:?}")]
    OtherAccount {
        claimed: String,
        uid: u32,
        actual: String,
    },
    #[error("process {0} is gone or unreadable")]
    Gone(i32),
    #[error("the wrapper's parent {pid} is {exe:?}, not an sshd session process")]
    NotUnderSshd { pid: i32, exe: String },
    #[error("the wrapper's parent is {actual}, not the sshd process {claimed} it names")]
    OtherParent { claimed: u32, actual: i32 },
    #[error("the peer does not run the session wrapper {0}")]
    NotTheWrapper(String),
    #[error("the wrapper was started with {0} set")]
    Preloaded(&'static str),
}

/// Variables that load code of the user's choice into the real wrapper.
const LOADERS: [&str; 3] = ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"];

/// Whether `pid` runs the wrapper binary at `wrapper` (the same file),
/// with nothing of the user's preloaded into it: a user's own program
/// speaking the protocol, or the real one with a library of theirs,
/// could announce a session and stream nothing of it.
pub fn runs_wrapper(pid: i32, wrapper: &Path) -> Result<(), PeerError> {
    use std::os::unix::fs::MetadataExt;
    let not = || PeerError::NotTheWrapper(wrapper.display().to_string());
    let theirs = std::fs::metadata(format!("/proc/{pid}/exe")).map_err(|_| not())?;
    let ours = std::fs::metadata(wrapper).map_err(|_| not())?;
    if (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()) {
        return Err(not());
    }
    for var in LOADERS {
        if environ_var(pid, var).is_some() {
            return Err(PeerError::Preloaded(var));
        }
    }
    Ok(())
}

/// The name of `uid` in a passwd file's text.
pub fn account_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

/// The name of `uid` from the system's name service (LDAP, sssd…), for
/// accounts not in /etc/passwd: `getent passwd UID`.
fn from_nss(uid: u32) -> Option<String> {
    let out = std::process::Command::new("getent")
        .args(["passwd", &uid.to_string()])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    account_of(&String::from_utf8_lossy(&out.stdout), uid)
}

/// Field `n` after the command name of `/proc/PID/stat` (1 ppid, 3 sid).
pub fn stat_field(pid: i32, n: usize) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n)?.parse().ok()
}

/// When `pid` started, in clock ticks since boot: with the pid, what
/// names one process (a pid alone is reused once its process is gone).
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn parent_of(pid: i32) -> Option<i32> {
    stat_field(pid, 1)
}

pub fn session_of(pid: i32) -> Option<i32> {
    stat_field(pid, 3)
}

/// Whether `pid` runs sshd (OpenSSH 9.8+ names the per-session binary
/// `sshd-session`).
pub fn is_sshd(pid: i32) -> Result<(), PeerError> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map_err(|_| PeerError::Gone(pid))?;
    let name = exe.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if matches!(name, "sshd" | "sshd-session") {
        Ok(())
    } else {
        Err(PeerError::NotUnderSshd {
            pid,
            exe: exe.display().to_string(),
        })
    }
}

/// The file `pid` runs (device, inode).
fn exe_id(pid: i32) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((m.dev(), m.ino()))
}

/// Whether `a` and `b` run the same file (a fork that did not exec).
pub fn same_exe(a: i32, b: i32) -> bool {
    exe_id(a).is_some_and(|id| exe_id(b) == Some(id))
}

fn owner(pid: i32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

/// Whether `pid` is sshd's own process for a login: named sshd and
/// root's (the monitor), or the very file its root sshd parent runs (the
/// unprivileged child sshd forks for a non-root login). The name alone
/// is the user's to choose: a copy of any program called `sshd`, as the
/// parent of the real wrapper, would otherwise pass for sshd.
pub fn is_login_sshd(pid: i32) -> Result<(), PeerError> {
    is_sshd(pid)?;
    let root_sshd = |p: i32| owner(p) == Some(0) && is_sshd(p).is_ok();
    if owner(pid) == Some(0) {
        return Ok(());
    }
    match parent_of(pid) {
        Some(parent) if root_sshd(parent) && same_exe(pid, parent) => Ok(()),
        _ => Err(PeerError::NotUnderSshd {
            pid,
            exe: std::fs::read_link(format!("/proc/{pid}/exe"))
                .map(|e| e.display().to_string())
                .unwrap_or_default(),
        }),
    }
}

/// One variable of `pid`'s environment as it was exec'd.
pub fn environ_var(pid: i32, name: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    env.split(|&b| b == 0).find_map(|kv| {
        kv.strip_prefix(prefix.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

/// Checks a wrapper that connected with credentials (`uid`, `pid`) and
/// claims `account` and `sshd_pid`.
pub fn check(
    uid: u32,
    pid: i32,
    account: &str,
    sshd_pid: u32,
    passwd: &Path,
    wrapper: &Path,
) -> Result<Peer, PeerError> {
    let text = std::fs::read_to_string(passwd).unwrap_or_default();
    let listed = account_of(&text, uid);
    let other = |actual: String| PeerError::OtherAccount {
        claimed: account.to_owned(),
        uid,
        actual,
    };
    if let Some(actual) = listed.as_ref().filter(|a| *a != account) {
        return Err(other(actual.clone()));
    }
    let parent = parent_of(pid).ok_or(PeerError::Gone(pid))?;
    if u32::try_from(parent).ok() != Some(sshd_pid) {
        return Err(PeerError::OtherParent {
            claimed: sshd_pid,
            actual: parent,
        });
    }
    is_login_sshd(parent)?;
    runs_wrapper(pid, wrapper)?;
    // The name service last, once the peer is a wrapper under sshd: a
    // lookup can be slow (LDAP), and any local user can connect.
    let actual = listed
        .or_else(|| from_nss(uid))
        .ok_or(PeerError::NoAccount(uid))?;
    if actual != account {
        return Err(other(actual));
    }
    let sid = session_of(pid).ok_or(PeerError::Gone(pid))?;
    Ok(Peer {
        uid,
        pid,
        account: actual,
        sshd_pid: parent,
        sid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_comes_from_the_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n";
        assert_eq!(account_of(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(account_of(passwd, 0).as_deref(), Some("root"));
        assert_eq!(account_of(passwd, 7), None);
        // Not in the file: the name service (getent) answers.
        assert_eq!(from_nss(0).as_deref(), Some("root"));
        assert_eq!(from_nss(4_000_000_000), None);
    }

    #[test]
    fn only_the_wrapper_binary_without_preloads_counts() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(matches!(
            runs_wrapper(me, Path::new("/bin/sh")),
            Err(PeerError::NotTheWrapper(_))
        ));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .env_clear()
            .env("LD_PRELOAD", "")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let sleep = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(
            runs_wrapper(pid, &sleep).unwrap_err(),
            PeerError::Preloaded("LD_PRELOAD")
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn a_users_program_named_sshd_is_not_sshd() {
        if !rustix::process::getuid().is_root() {
            eprintln!(
                "a_users_program_named_sshd_is_not_sshd: needs root to run as nobody: skipped"
            );
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let fake = dir.path().join("sshd");
        std::fs::copy("/bin/sleep", &fake).unwrap();
        let mut child = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&fake)
            .arg("5")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(is_sshd(pid), Ok(()), "the name alone passes");
        let got = is_login_sshd(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            matches!(got, Err(PeerError::NotUnderSshd { .. })),
            "{got:?}"
        );
    }

    #[test]
    fn a_peer_not_under_sshd_costs_no_name_service_lookup() {
        let me = i32::try_from(std::process::id()).unwrap();
        let parent = parent_of(me).unwrap();
        let passwd = tempfile::NamedTempFile::new().unwrap();
        // A uid the file does not list: only the name service could say.
        let got = check(
            4_000_000_000,
            me,
            "tester",
            parent as u32,
            passwd.path(),
            Path::new("/proc/self/exe"),
        );
        assert!(
            matches!(got, Err(PeerError::NotUnderSshd { .. })),
            "{got:?}"
        );
    }

    #[test]
    fn a_process_not_under_sshd_is_refused() {
        let me = i32::try_from(std::process::id()).unwrap();
        let parent = parent_of(me).unwrap();
        let passwd = tempfile::NamedTempFile::new().unwrap();
        let uid = rustix::process::getuid().as_raw();
        std::fs::write(passwd.path(), format!("tester:x:{uid}:0::/:/bin/sh\n")).unwrap();
        // The test runner's parent is a shell or cargo, not sshd.
        let got = check(
            uid,
            me,
            "tester",
            parent as u32,
            passwd.path(),
            Path::new("/proc/self/exe"),
        );
        assert!(
            matches!(got, Err(PeerError::NotUnderSshd { .. })),
            "{got:?}"
        );
        // A claimed account that is not the uid's.
        assert!(matches!(
            check(
                uid,
                me,
                "root2",
                parent as u32,
                passwd.path(),
                Path::new("/proc/self/exe")
            ),
            Err(PeerError::OtherAccount { .. })
        ));
        // A claimed parent that is not the real one.
        assert!(matches!(
            check(
                uid,
                me,
                "tester",
                1,
                passwd.path(),
                Path::new("/proc/self/exe")
            ),
            Err(PeerError::OtherParent { .. }) | Err(PeerError::NotUnderSshd { .. })
        ));
    }
}
