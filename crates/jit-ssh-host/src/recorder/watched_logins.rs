//! The logins the recorder watches, kept in a root-only file beside the
//! spool's sessions (`SPOOL/watched-logins`, 0600), so that a recorder
//! that restarts (a crash, `systemctl restart`, an upgrade) still ends
//! the logins sshd let in before it: one that only the recorder can end
//! (`ssh -N` under a wrapped certificate, a stopped `record = "off"`
//! wrapper) would otherwise outlive its certificate and any revocation.
//! An entry is taken back only if its sshd monitor still runs, as root,
//! with the start time it had (not a later process with its pid).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in the spool (a file: the spool's sessions are its
/// directories).
pub const FILE: &str = "watched-logins";

/// One watched login as stored: one JSON object a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    pub monitor: i32,
    pub monitor_start: u64,
    pub account: String,
    /// `TYPE BASE64`, as the principals command sent it.
    pub certificate: String,
    /// The login's sshd session processes and the kernel sessions seen
    /// below them, kept after sshd is gone while a process of theirs
    /// still runs (what a killed wrapper left), so that a restarted
    /// recorder still ends it at the certificate's end. Absent in files
    /// of recorders before this field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<SavedSession>,
    /// The login's own cgroup ([`super::login_cgroup`]): a restarted
    /// recorder takes it back with the login. Absent when it has none;
    /// a recorder older than this field skips a line that has it (it
    /// says the line does not parse) and so forgets that login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
}

/// One sshd session process of a watched login, and what was seen below
/// it ([`super::reap::Watched`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedSession {
    pub sshd: i32,
    pub sshd_start: Option<u64>,
    pub sids: Vec<SavedSid>,
}

/// A kernel session id, with the oldest process seen in it: a
/// restarted recorder takes the id back only while that same process
/// (pid and start time) is still in it, since a session id with no
/// process left is free to be handed out to another login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedSid {
    pub sid: i32,
    pub anchor: i32,
    pub anchor_start: u64,
    /// A look that saw the session the login's: should the anchor be
    /// gone, the session is still the login's if its id was not handed
    /// out again since, or a process in it is older than that look
    /// ([`super::pid_reuse`]). Not rewritten for this alone (the file
    /// would change every second): it may be older than the anchor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<super::pid_reuse::Mark>,
}

/// Replaces the file's contents with `logins` (written beside it, then
/// renamed over it: a recorder that dies leaves the old list or the new
/// one).
pub fn save(path: &Path, logins: &[Saved]) -> std::io::Result<()> {
    let mut text = String::new();
    for l in logins {
        text.push_str(&serde_json::to_string(l).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    let tmp = tmp_of(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // No fsync: what this guards against is the recorder's own end; the
    // machine's takes every login with it.
    f.write_all(text.as_bytes())?;
    std::fs::rename(&tmp, path)
}

fn tmp_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// What the file holds (nothing when it is missing; lines that do not
/// parse are skipped and said).
pub fn load(path: &Path) -> Vec<Saved> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            eprintln!(
                "jit-ssh-host recorder: {}: cannot read the watched logins: {e}",
                path.display()
            );
            return Vec::new();
        }
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str(l) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!(
                    "jit-ssh-host recorder: {}: a watched login that does not parse: {e}",
                    path.display()
                );
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_saved_is_loaded_back_and_only_root_reads_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        assert!(load(&path).is_empty());
        let one = Saved {
            monitor: 42,
            monitor_start: 7,
            account: "oncall".into(),
            certificate: "ssh-ed25519-cert-v01@openssh.com AAAA".into(),
            sessions: vec![SavedSession {
                sshd: 43,
                sshd_start: None,
                sids: vec![SavedSid {
                    sid: 44,
                    anchor: 45,
                    anchor_start: 8,
                    seen: super::super::pid_reuse::Mark::now(),
                }],
            }],
            cgroup: Some(PathBuf::from("/sys/fs/cgroup/jit-ssh-login-1-42-7")),
        };
        save(&path, std::slice::from_ref(&one)).unwrap();
        assert_eq!(load(&path), vec![one]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        save(&path, &[]).unwrap();
        assert!(load(&path).is_empty());
        // A previous recorder's line, without sessions, still loads.
        std::fs::write(
            &path,
            "{\"monitor\":1,\"monitor_start\":2,\"account\":\"a\",\"certificate\":\"c\"}\n",
        )
        .unwrap();
        assert_eq!(load(&path)[0].sessions, vec![]);
    }
}
