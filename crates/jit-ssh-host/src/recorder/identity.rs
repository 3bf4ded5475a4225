//! The certificate behind a recorded session, read by the recorder itself:
//! from the file sshd named in the wrapper's environment as exec'd
//! (`SSH_USER_AUTH`), checked against this host's trusted CA keys, and
//! matched to what the wrapper claims. What goes into the recording's
//! header comes from the certificate, not from the wrapper's message.

use std::path::Path;

use jit_ssh_recording::{RecordMode, SessionId, SessionInfo};
use ssh_key::Certificate;

use super::peer::{environ_var, Peer};
use super::protocol::Hello;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the wrapper's environment names no SSH_USER_AUTH file")]
    NoAuthInfo,
    #[error("the wrapper's SSH_USER_AUTH {0:?} is not a file sshd writes ({AUTH_INFO_PREFIX}…)")]
    AuthInfoPath(String),
    #[error("the wrapper's SSH_USER_AUTH {path}: {why}")]
    AuthInfoFile { path: String, why: String },
    #[error(transparent)]
    AuthInfo(#[from] crate::session::auth_info::AuthInfoError),
    #[error(transparent)]
    Untrusted(crate::session::Refusal),
    #[error("no certificate of serial {serial} and key id {key_id:?} in the session's authentication record")]
    NotClaimed { serial: u64, key_id: String },
    #[error("the certificate has no principal for account {0:?} (ACCOUNT@HOST)")]
    NoPrincipal(String),
    #[error("the certificate's key id {0:?} is not jit-ssh:USER:GRANT:SERIAL")]
    KeyId(String),
    #[error(
        "the wrapper names grant {claimed:?} but the certificate's key id is of grant {actual:?}"
    )]
    OtherGrant { claimed: String, actual: String },
    #[error("unknown record mode {0:?}")]
    Record(String),
    #[error("the wrapper runs as {found:?}, not the certificate's force-command {forced:?}")]
    NotForced { found: String, forced: String },
}

/// The stricter of two record modes (a wrapper cannot record less than
/// the certificate's force-command says).
fn stricter(a: RecordMode, b: RecordMode) -> RecordMode {
    if a == RecordMode::Full || b == RecordMode::Full {
        RecordMode::Full
    } else {
        RecordMode::Output
    }
}

pub fn record_mode(s: &str) -> Result<RecordMode, IdentityError> {
    match s {
        "output" => Ok(RecordMode::Output),
        "full" => Ok(RecordMode::Full),
        other => Err(IdentityError::Record(other.to_owned())),
    }
}

/// The record mode in a force-command (`… --record MODE …`), if any.
fn forced_record(cert: &Certificate) -> Option<RecordMode> {
    let fc = cert.critical_options().get("force-command")?;
    let mut words = fc.split_whitespace();
    while let Some(w) = words.next() {
        if w == "--record" {
            return record_mode(words.next()?).ok();
        }
        if let Some(v) = w.strip_prefix("--record=") {
            return record_mode(v).ok();
        }
    }
    None
}

/// sshd's `mkstemp` template for the `ExposeAuthInfo` file.
pub const AUTH_INFO_PREFIX: &str = "/tmp/sshauth.";

/// The certificates in the file the wrapper's `SSH_USER_AUTH` names,
/// read by root. The variable is the user's to set (a shell startup file
/// can export it before exec'ing the wrapper), so the recorder opens
/// nothing but a file where sshd writes them: never a device (opening
/// `/dev/watchdog` arms it), a FIFO (the open would block a worker for
/// good) or a symlink, and only a regular file the peer's uid owns
/// (sshd writes it as the user).
fn auth_info_certificates(peer: &Peer, path: &str) -> Result<Vec<Certificate>, IdentityError> {
    use rustix::fs::{Mode, OFlags};
    use std::os::unix::fs::MetadataExt;
    let name = path
        .strip_prefix(AUTH_INFO_PREFIX)
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| IdentityError::AuthInfoPath(path.to_owned()))?;
    let file_err = |why: String| IdentityError::AuthInfoFile {
        path: path.to_owned(),
        why,
    };
    // Through the wrapper's own root: the file is in the session's /tmp,
    // and the recorder's unit has a private one.
    let seen = format!("/proc/{}/root{AUTH_INFO_PREFIX}{name}", peer.pid);
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = rustix::fs::open(seen.as_str(), flags | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| file_err(std::io::Error::from(e).to_string()))?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(|e| file_err(e.to_string()))?;
    if !meta.is_file() {
        return Err(file_err("not a regular file".into()));
    }
    if meta.uid() != peer.uid {
        return Err(file_err(format!(
            "owned by uid {}, not the session's uid {}",
            meta.uid(),
            peer.uid
        )));
    }
    let text = crate::session::auth_info::read_bounded_from(file, 64 * 1024).map_err(file_err)?;
    Ok(crate::session::auth_info::certificates_in(&text, path)?)
}

/// The words of `pid`'s command line as exec'd.
fn command_line(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

/// The wrapper must run as the certificate's signed force-command says
/// (sshd's shell splits it into these words). Its arguments are the
/// user's to choose otherwise (a shell startup file exec'ing the real
/// wrapper with `--record off`), and a process the wrapper's pid forked
/// before that exec could say hello on the connection the pid opened:
/// the login then ran unrecorded behind an accepted, silent session.
pub(super) fn runs_force_command(pid: i32, cert: &Certificate) -> Result<(), IdentityError> {
    let Some(forced) = cert.critical_options().get("force-command") else {
        return Ok(());
    };
    let found = command_line(pid);
    if found
        .iter()
        .map(String::as_str)
        .eq(forced.split_whitespace())
    {
        Ok(())
    } else {
        Err(IdentityError::NotForced {
            found: found.join(" "),
            forced: forced.clone(),
        })
    }
}

/// What the recorder established about a session's certificate.
pub struct Established {
    pub info: SessionInfo,
    /// When the session must end (`None`: the policy keeps it past the
    /// certificate's end).
    pub deadline: Option<u64>,
    /// The certificate, for the KRL.
    pub cert: Certificate,
}

/// Establishes the session's header fields for `peer` claiming `hello`,
/// with `dir` holding the host's `ca-keys`.
pub fn establish(
    peer: &Peer,
    hello: &Hello,
    dir: &Path,
    session_id: SessionId,
) -> Result<Established, IdentityError> {
    let path = environ_var(peer.pid, "SSH_USER_AUTH").ok_or(IdentityError::NoAuthInfo)?;
    let certs = auth_info_certificates(peer, &path)?;
    crate::session::trusted(&certs, dir).map_err(IdentityError::Untrusted)?;
    let cert = certs
        .iter()
        .find(|c| c.serial() == hello.serial && c.key_id() == hello.key_id)
        .ok_or_else(|| IdentityError::NotClaimed {
            serial: hello.serial,
            key_id: hello.key_id.clone(),
        })?;
    runs_force_command(peer.pid, cert)?;
    let prefix = format!("{}@", peer.account);
    let host = cert
        .valid_principals()
        .iter()
        .find_map(|p| p.strip_prefix(&prefix))
        .ok_or_else(|| IdentityError::NoPrincipal(peer.account.clone()))?;
    let mut parts = cert.key_id().split(':');
    let (Some("jit-ssh"), Some(user), Some(grant)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(IdentityError::KeyId(cert.key_id().to_owned()));
    };
    if let Some(claimed) = hello.grant.as_deref().filter(|g| *g != grant) {
        return Err(IdentityError::OtherGrant {
            claimed: claimed.to_owned(),
            actual: grant.to_owned(),
        });
    }
    let claimed = record_mode(&hello.record)?;
    let record = forced_record(cert).map_or(claimed, |f| stricter(f, claimed));
    let keep = cert
        .critical_options()
        .get("force-command")
        .is_some_and(|fc| fc.split_whitespace().any(|w| w == "--keep-after-expiry"));
    let info = SessionInfo {
        session_id,
        key_id: cert.key_id().to_owned(),
        serial: cert.serial().to_string(),
        grant_id: grant.to_owned(),
        user: user.to_owned(),
        host: host.to_owned(),
        account: peer.account.clone(),
        record,
    };
    Ok(Established {
        info,
        deadline: (!keep).then(|| cert.valid_before()),
        cert: cert.clone(),
    })
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod file_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stricter_mode_wins() {
        assert_eq!(
            stricter(RecordMode::Output, RecordMode::Full),
            RecordMode::Full
        );
        assert_eq!(
            stricter(RecordMode::Output, RecordMode::Output),
            RecordMode::Output
        );
        assert!(record_mode("off").is_err());
    }
}
