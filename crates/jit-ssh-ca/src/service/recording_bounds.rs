//! A recorded session lies within the certificate it ran under: sshd
//! lets a login in only while the certificate is valid, and the host's
//! session wrapper (or, after it, the recorder) ends the session at its
//! `valid_before`. So the CA refuses a recording whose header says it
//! started outside the certificate's validity, and a chunk whose recorded
//! time lies past `valid_before` by more than ending a session takes:
//! without this, a host holding its key could keep a session open for
//! ever and append to it whenever it liked.
//!
//! What is bounded is the *recorded* time (the header's start plus the
//! chunk's offset), never the time of the upload: a host uploads late
//! when the CA was down, and that is fine. Both are in the host's clock,
//! as is the deadline the wrapper enforces, so a host whose clock is off
//! by minutes still records within the window; [`CLOCK_SKEW`] covers the
//! host's clock being stepped during a session.

use std::time::Duration;

use jit_ssh_audit::CertificateIssued;
use jit_ssh_recording::{Chunk, Header};

use super::{rfc3339, ServiceError};
use crate::recordings::CertWindow;

/// How far a host's clock may be stepped while a session runs (an NTP
/// step; the start and the end are both the host's own clock).
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);

/// How long after `valid_before` a legitimate session's last chunk may be
/// recorded: the wrapper checks every 250 ms, hangs up and kills 2 s
/// later; if it is stopped, the recorder looks once a second, waits 2 s
/// past the deadline, hangs up, kills 2 s later and reads what is left
/// for 1 s more (docs/sessions.md): about 6 s, doubled.
pub const END_GRACE: Duration = Duration::from_secs(12);

/// The validity of `cert`, and whether its sessions end with it (as the
/// recorder decides: unless its force-command says `--keep-after-expiry`).
pub(super) fn window(cert: &CertificateIssued) -> CertWindow {
    let keeps = cert.critical_options.iter().any(|(name, cmd)| {
        name == "force-command" && cmd.split_whitespace().any(|w| w == "--keep-after-expiry")
    });
    CertWindow {
        valid_after: cert.valid_after,
        valid_before: cert.valid_before,
        ends_at_expiry: !keeps,
    }
}

fn at(unix: u64) -> String {
    rfc3339(i64::try_from(unix).unwrap_or(i64::MAX))
}

/// The header's start must lie in `valid_after ..= valid_before`, give or
/// take [`CLOCK_SKEW`].
pub(super) fn check_start(header: &Header, w: &CertWindow) -> Result<(), ServiceError> {
    let skew = CLOCK_SKEW.as_secs();
    let start = header.timestamp;
    if start.saturating_add(skew) >= w.valid_after && start <= w.valid_before.saturating_add(skew) {
        return Ok(());
    }
    Err(ServiceError::Forbidden(format!(
        "the recording's header says the session started at {}, outside the validity of certificate serial {} ({} to {}, with {skew} s allowed for clock skew): a session runs under a valid certificate",
        at(start),
        header.session.serial,
        at(w.valid_after),
        at(w.valid_before),
    )))
}

/// Every chunk must start and end by `valid_before` plus [`END_GRACE`]
/// and [`CLOCK_SKEW`] in recorded time, unless the certificate lets its
/// sessions outlive it. Events lie within their chunk (the verifier
/// checked), so a chunk's times bound them all.
pub(super) fn check_chunks(
    header: &Header,
    w: &CertWindow,
    chunks: &[Chunk],
) -> Result<(), ServiceError> {
    if !w.ends_at_expiry {
        return Ok(());
    }
    let allowed = END_GRACE + CLOCK_SKEW;
    let limit = Duration::from_secs(w.valid_before) + allowed;
    let start = Duration::from_secs(header.timestamp);
    for c in chunks {
        let b = c.body();
        let recorded = start.saturating_add(b.end.max(b.start));
        if recorded > limit {
            let late = recorded - Duration::from_secs(w.valid_before);
            return Err(ServiceError::Forbidden(format!(
                "chunk {} was recorded at {} ({:.1} s into the session), {} s after certificate serial {} expired at {}: a session ends with its certificate (allowed: {} s for ending it and clock skew); nothing of this upload was stored",
                b.index,
                at(recorded.as_secs()),
                b.end.max(b.start).as_secs_f64(),
                late.as_secs(),
                header.session.serial,
                at(w.valid_before),
                allowed.as_secs(),
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use jit_ssh_audit::IssuedVia;

    fn cert(force_command: Option<&str>) -> CertificateIssued {
        CertificateIssued {
            serial: 7,
            key_id: "k".into(),
            user: "alice".into(),
            host: "db-1.dev".into(),
            account: "oncall".into(),
            principals: vec!["oncall@db-1.dev".into()],
            valid_after: 1_000,
            valid_before: 1_600,
            public_key_fingerprint: String::new(),
            ca_fingerprint: String::new(),
            grant: "g".into(),
            reason: String::new(),
            critical_options: force_command
                .map(|c| ("force-command".to_owned(), c.to_owned()))
                .into_iter()
                .collect(),
            extensions: Vec::new(),
            via: IssuedVia::Server,
            session: None,
        }
    }

    #[test]
    fn only_a_force_command_that_keeps_sessions_after_expiry_lifts_the_end_bound() {
        let keep =
            "/usr/local/bin/jit-ssh-host session --record output --keep-after-expiry --grant g";
        let end = "/usr/local/bin/jit-ssh-host session --record output --grant g";
        assert!(!window(&cert(Some(keep))).ends_at_expiry);
        assert!(window(&cert(Some(end))).ends_at_expiry);
        // No force-command at all: the recorder's deadline is valid_before.
        let w = window(&cert(None));
        assert!(w.ends_at_expiry);
        assert_eq!((w.valid_after, w.valid_before), (1_000, 1_600));
    }
}
