//! What can go wrong on a host, each with the exit code the systemd unit
//! and monitors rely on (the same codes as the `jit-ssh` client's).

use std::fmt;

#[derive(Debug)]
pub enum HostError {
    /// Bad flags, or nothing trusted yet (exit 2).
    Usage(String),
    /// The CA cannot be reached (exit 4).
    CaUnreachable {
        url: String,
        detail: String,
    },
    /// What the CA offered was refused; nothing was changed (exit 1).
    SyncRefused(String),
    /// The KRL held is older than `--max-age` by its signed time (exit 9).
    Stale(String),
    /// The CA refused this host's check-in, or its answer was refused
    /// (exit 1); the KRL and CA keys were still installed.
    CheckinRefused(String),
    Other(anyhow::Error),
}

impl HostError {
    pub fn exit_code(&self) -> u8 {
        match self {
            HostError::Usage(_) => 2,
            HostError::CaUnreachable { .. } => 4,
            HostError::Stale(_) => 9,
            HostError::SyncRefused(_) | HostError::CheckinRefused(_) | HostError::Other(_) => 1,
        }
    }

    /// What to do about it.
    pub fn next_step(&self) -> Option<String> {
        Some(match self {
            HostError::Usage(_) => "see `jit-ssh-host --help` and docs/hosts.md".into(),
            HostError::CaUnreachable { url, .. } => {
                format!("check the CA URL ({url}) and this host's network")
            }
            HostError::Stale(_) => {
                "revocations since then are not enforced here: check that the CA is reachable and that `jit-ssh host sync` runs (see sync-state.json and docs/hosts.md)".into()
            }
            HostError::CheckinRefused(_) => {
                "a removed host, or one whose certificate expired, enrolls again with a new token (docs/hosts.md)".into()
            }
            HostError::SyncRefused(_) | HostError::Other(_) => return None,
        })
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Usage(m) => f.write_str(m),
            HostError::CaUnreachable { url, detail } => {
                write!(f, "cannot reach the CA at {url}: {detail}")
            }
            HostError::SyncRefused(m) => write!(f, "sync refused: {m}"),
            HostError::Stale(m) => write!(f, "stale: {m}"),
            HostError::CheckinRefused(m) => write!(f, "check-in refused: {m}"),
            HostError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for HostError {}
