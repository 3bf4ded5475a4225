//! Sessions the CA refused for good. Retrying every minute for ever a
//! session the CA will never take (outside its certificate, a used id, a
//! grant at its session cap, chunks other than those it holds) only
//! buries the one log line that matters; dropping it would delete
//! evidence. So a refusal that says something about the session itself
//! stops its uploads and leaves a `refused` file in its spool directory
//! with the CA's answer: `jit-ssh-host recordings` lists it, and
//! `--retry SESSION` sends it again once whatever was wrong is fixed.
//! A CA that cannot answer now (no connection, 5xx, 507, 429) is retried.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::spool::{write_file, SpoolError};
use crate::fetch::Refusal;

/// The marker's name in a session's spool directory.
pub const FILE: &str = "refused";

/// What to do after the CA refused an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The CA will not take this session as it is: stop, keep it, mark it.
    Permanent,
    /// Try again later, with backoff.
    Transient,
    /// The CA holds other chunks than this host noted it acknowledged (a
    /// replica without the session, a CA restored from a backup): send
    /// again from chunk 0, which the CA compares with what it holds.
    FromStart,
}

/// Judges a refusal of the batch starting at chunk `first`;
/// `restarted_at` is the chunk at which this session was last sent
/// again from the start, if it was.
pub fn judge(r: &Refusal, first: usize, restarted_at: Option<usize>) -> Verdict {
    // Only the CA's own refusal says something about the session; a
    // proxy's page (no JSON error) does not.
    if r.code.is_none() {
        return Verdict::Transient;
    }
    match r.status.as_u16() {
        // A 409 past chunk 0 may be a CA that holds fewer chunks than
        // acknowledged; once sent from the start, a 409 at or before
        // where it came last is the CA's answer on the session.
        409 if first > 0 && restarted_at.is_none_or(|k| first > k) => Verdict::FromStart,
        400 | 403 | 409 => Verdict::Permanent,
        // 404, 408, 413, 429 and the like: the CA's (or a proxy's)
        // setup or load, not this session.
        _ => Verdict::Transient,
    }
}

/// The `refused` file: the CA's answer, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Unix seconds.
    pub refused_at: u64,
    pub status: u16,
    pub code: String,
    /// The CA's message (escaped for a terminal).
    pub message: String,
    /// The first chunk of the refused upload.
    pub chunk: usize,
}

impl Marker {
    pub fn new(r: &Refusal, chunk: usize, now: u64) -> Marker {
        Marker {
            refused_at: now,
            status: r.status.as_u16(),
            code: r.code.clone().unwrap_or_default(),
            message: r.message.clone(),
            chunk,
        }
    }
}

/// Marks the session in `dir` refused (atomically, 0600).
pub fn mark(dir: &Path, m: &Marker) -> Result<(), SpoolError> {
    let json = serde_json::to_vec(m).unwrap_or_default();
    write_file(&dir.join(FILE), &json)
}

pub fn is_marked(dir: &Path) -> bool {
    dir.join(FILE).exists()
}

/// The marker, if any; one that does not parse still marks the session
/// refused (its message says so).
pub fn read(dir: &Path) -> Option<Marker> {
    let bytes = std::fs::read(dir.join(FILE)).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| Marker {
        refused_at: 0,
        status: 0,
        code: String::new(),
        message: format!("the refused marker does not parse ({e})"),
        chunk: 0,
    }))
}

/// Removes the marker: the recorder sends the session again at its next
/// pass. `Ok(false)`: the session was not marked.
pub fn clear(dir: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(dir.join(FILE)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn said(status: u16, code: Option<&str>) -> Refusal {
        Refusal {
            status: StatusCode::from_u16(status).unwrap(),
            code: code.map(str::to_owned),
            message: "m".into(),
        }
    }

    #[test]
    fn the_cas_refusals_of_the_session_are_permanent_and_the_rest_retried() {
        use Verdict::*;
        for (status, code) in [
            (403, "forbidden"),
            (400, "invalid_field"),
            (400, "invalid_request"),
            (409, "wrong_state"),
        ] {
            assert_eq!(
                judge(&said(status, Some(code)), 0, None),
                Permanent,
                "{status}"
            );
        }
        for (status, code) in [
            (429, Some("rate_limited")),
            (408, Some("request_timeout")),
            (404, Some("not_found")),
            (413, Some("payload_too_large")),
            // A proxy's own 403 page is not the CA's word.
            (403, None),
            (409, None),
        ] {
            assert_eq!(judge(&said(status, code), 0, None), Transient, "{status}");
        }
        // A 409 past chunk 0: sent again from the start once; a 409 at or
        // before the same chunk after that is the CA's answer.
        let conflict = said(409, Some("wrong_state"));
        assert_eq!(judge(&conflict, 40, None), FromStart);
        assert_eq!(judge(&conflict, 40, Some(40)), Permanent);
        assert_eq!(judge(&conflict, 12, Some(40)), Permanent);
        assert_eq!(judge(&conflict, 0, Some(40)), Permanent);
        // Past where it came last: another restart (a second failover).
        assert_eq!(judge(&conflict, 64, Some(40)), FromStart);
    }
}
