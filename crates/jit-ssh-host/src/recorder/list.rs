//! `jit-ssh-host recordings`: what the recorder's spool holds that the
//! CA has not stored yet, and why; `--retry SESSION` sends a session the
//! CA refused again (after the cause was fixed: a grant's session cap
//! raised, a host enrolled again). Nothing here deletes a recording.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use jit_ssh_recording::SessionId;

use super::refused::{self, Marker};
use super::spool::read_sent;
use crate::error::HostError;

/// One session in the spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spooled {
    pub session: String,
    /// `refused`, `ended` (waiting for the CA) or `open` (being recorded,
    /// or left by a recorder that the next start ends).
    pub state: &'static str,
    /// Chunks the CA acknowledged.
    pub sent: usize,
    /// Bytes of the spooled chunks.
    pub bytes: u64,
    /// The CA's refusal, for a refused session.
    pub refused: Option<Marker>,
}

/// Every session in the spool at `dir`, by name.
pub fn list(dir: &Path) -> Result<Vec<Spooled>, HostError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| HostError::Usage(format!("reading the spool {}: {e}", dir.display())))?;
    let mut out: Vec<Spooled> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let d = e.path();
            let refused = refused::read(&d);
            let state = if refused.is_some() {
                "refused"
            } else if d.join("ended").exists() {
                "ended"
            } else {
                "open"
            };
            Spooled {
                session: e.file_name().to_string_lossy().into_owned(),
                state,
                sent: read_sent(&d),
                bytes: std::fs::metadata(d.join("chunks")).map_or(0, |m| m.len()),
                refused,
            }
        })
        .collect();
    out.sort_by(|a, b| a.session.cmp(&b.session));
    Ok(out)
}

/// Clears `session`'s refusal: the recorder sends it again at its next
/// pass.
pub fn retry(dir: &Path, session: &str) -> Result<PathBuf, HostError> {
    let id = SessionId::try_from(session)
        .map_err(|e| HostError::Usage(format!("--retry {session:?}: {e}")))?;
    let d = dir.join(id.as_str());
    // `.` and `..` are session ids by their characters, not spool entries.
    if matches!(id.as_str(), "." | "..") || !d.is_dir() {
        return Err(HostError::Usage(format!(
            "--retry {id}: no such session in the spool {}",
            dir.display()
        )));
    }
    match refused::clear(&d) {
        Ok(true) => Ok(d),
        Ok(false) => Err(HostError::Usage(format!(
            "--retry {id}: the CA has not refused it (the recorder sends it by itself)"
        ))),
        Err(e) => Err(HostError::Other(anyhow::anyhow!(
            "clearing the refusal of {}: {e}",
            d.display()
        ))),
    }
}

/// One line per session, for a person.
pub fn line(s: &Spooled, now: u64) -> String {
    let size = jit_ssh_proto::format_size(s.bytes);
    match (&s.refused, s.state) {
        (Some(m), _) => format!(
            "{}  refused {} ago at chunk {} ({} {}): {}  [{size} kept; --retry {} sends it again]",
            s.session,
            jit_ssh_proto::format_duration(Duration::from_secs(now.saturating_sub(m.refused_at))),
            m.chunk,
            m.status,
            m.code,
            m.message,
            s.session
        ),
        (None, "ended") => format!(
            "{}  ended, waiting for the CA: {} chunk(s) acknowledged, {size} spooled",
            s.session, s.sent
        ),
        (None, _) => format!(
            "{}  open: {} chunk(s) acknowledged, {size} spooled",
            s.session, s.sent
        ),
    }
}

pub fn run(dir: &Path, retry_session: Option<&str>, json: bool) -> Result<(), HostError> {
    if let Some(session) = retry_session {
        let d = retry(dir, session)?;
        eprintln!(
            "{}: refusal cleared; the recorder sends it again at its next pass",
            d.display()
        );
        return Ok(());
    }
    let all = list(dir)?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&all).map_err(|e| HostError::Other(e.into()))?
        );
        return Ok(());
    }
    if all.is_empty() {
        println!(
            "the spool {} holds no session: every recording is stored at the CA",
            dir.display()
        );
    }
    let now = crate::sync::now_unix();
    for s in &all {
        println!("{}", line(s, now));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::Refusal;

    #[test]
    fn the_listing_says_which_sessions_the_ca_refused_and_why_and_retry_clears_it() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = tmp.path();
        for (id, ended) in [("s-a", true), ("s-b", false), ("s-c", true)] {
            std::fs::create_dir(spool.join(id)).unwrap();
            std::fs::write(spool.join(id).join("chunks"), vec![0u8; 2048]).unwrap();
            if ended {
                std::fs::write(spool.join(id).join("ended"), b"").unwrap();
            }
        }
        std::fs::write(spool.join("s-a").join("sent"), b"2").unwrap();
        let r = Refusal {
            status: reqwest::StatusCode::FORBIDDEN,
            code: Some("forbidden".into()),
            message: "grant g already has 3 recorded sessions".into(),
        };
        refused::mark(&spool.join("s-c"), &Marker::new(&r, 0, 1_000)).unwrap();
        let all = list(spool).unwrap();
        let states: Vec<_> = all.iter().map(|s| (s.session.as_str(), s.state)).collect();
        assert_eq!(
            states,
            [("s-a", "ended"), ("s-b", "open"), ("s-c", "refused")]
        );
        assert_eq!(
            line(&all[2], 1_000 + 7_200),
            "s-c  refused 2h ago at chunk 0 (403 forbidden): grant g already has 3 recorded sessions  [2.0 KiB kept; --retry s-c sends it again]"
        );
        assert_eq!(
            line(&all[0], 0),
            "s-a  ended, waiting for the CA: 2 chunk(s) acknowledged, 2.0 KiB spooled"
        );
        // Retry clears only a refusal, of a session id in the spool.
        assert!(retry(spool, "s-a").is_err());
        assert!(retry(spool, "../s-c").is_err());
        assert!(retry(spool, "..").is_err());
        assert!(retry(spool, "s-none").is_err());
        retry(spool, "s-c").unwrap();
        assert_eq!(list(spool).unwrap()[2].state, "ended");
        assert!(spool.join("s-c").join("chunks").exists());
    }
}
