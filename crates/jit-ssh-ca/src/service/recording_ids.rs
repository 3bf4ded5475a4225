//! A session id is used once, for ever. Retention prunes a recording
//! but keeps its `session_started`/`session_ended` audit records; an
//! upload under that id afterwards would start a second session of the
//! same id, and `audit play` (online) and `audit verify` (offline) would
//! each read a different pair of records. So the CA refuses a first
//! upload under an id retention retired (under any grant) or one the
//! grant's audit records already started, and refuses to hand out a
//! recording whose id the audit log started more than once.

use jit_ssh_audit::session_record::SessionStarted;
use jit_ssh_audit::{AuditQuery, AuditRecord, Event};
use jit_ssh_recording::{ChainState, Header, SessionId};

use super::{Ca, ServiceError};

/// Session records of one grant read per audit query.
const SESSION_RECORDS_PAGE: usize = 10_000;

/// Which of a session's records the audit log already holds (so an
/// upload writes only the others).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Audited {
    pub started: bool,
    pub ended: bool,
}

/// What the audit log holds about one session id under one grant.
#[derive(Debug, Default)]
pub(super) struct SessionAudit {
    /// Every `session_started` record, in order (more than one only from
    /// a CA before ids were single-use).
    pub started: Vec<(u64, SessionStarted)>,
    /// The last `session_ended` record's seq and final hash.
    pub ended: Option<(u64, String)>,
    /// `session_started` records of the grant's other sessions.
    pub others: u64,
}

impl SessionAudit {
    /// `Err` when more than one record starts the id: no one recording
    /// is vouched for.
    pub fn single(&self, session: &str) -> Result<(), ServiceError> {
        if self.started.len() < 2 {
            return Ok(());
        }
        let seqs: Vec<String> = self.started.iter().map(|(s, _)| s.to_string()).collect();
        Err(ServiceError::WrongState(format!(
            "session {session} has {} session_started audit records (seq {}): its id was recorded more than once, and a session id is used once, so no one recording is vouched for; compare the records with jit-ssh audit",
            seqs.len(),
            seqs.join(", ")
        )))
    }
}

impl Ca {
    /// The session records of `session` among those of `grant`, paged:
    /// one grant may hold many sessions, and this one's may come after
    /// any number.
    pub(super) fn session_audit(
        &self,
        grant: &str,
        session: &str,
    ) -> Result<SessionAudit, ServiceError> {
        let mut out = SessionAudit::default();
        let mut after_seq = None;
        loop {
            let records: Vec<AuditRecord> = self
                .audit
                .query(&AuditQuery {
                    grant: Some(grant.to_owned()),
                    kinds: vec!["session_started".into(), "session_ended".into()],
                    after_seq,
                    limit: SESSION_RECORDS_PAGE,
                    ..Default::default()
                })
                .map_err(super::audit_read_failed)?;
            for r in &records {
                match &r.event {
                    Event::SessionStarted(s) if s.subject.session == session => {
                        out.started.push((r.seq, s.clone()));
                    }
                    Event::SessionStarted(_) => out.others += 1,
                    Event::SessionEnded(e) if e.subject.session == session => {
                        out.ended = Some((r.seq, e.final_hash.clone()));
                    }
                    _ => {}
                }
            }
            match records.last() {
                Some(last) if records.len() == SESSION_RECORDS_PAGE => after_seq = Some(last.seq),
                _ => return Ok(out),
            }
        }
    }

    /// On a session's first upload (nothing stored under its id): `Err`
    /// 409 if the id was used before. A first upload whose audit records
    /// landed but whose store failed is retried by the host: the same
    /// header (start, serial, host key) goes on without a second record
    /// (and, if its `session_ended` landed too, only with the same final
    /// hash, `after` being where this upload leaves the chain).
    pub(super) fn first_use(
        &self,
        header: &Header,
        fingerprint: &str,
        after: &ChainState,
    ) -> Result<Audited, ServiceError> {
        let i = &header.session;
        let id: &SessionId = &i.session_id;
        let retired = self.recordings.store.retired(id).map_err(|e| {
            tracing::error!(error = %e, "recording store failed");
            ServiceError::Internal("recording store".into())
        })?;
        if retired {
            return Err(ServiceError::WrongState(format!(
                "session {id} was recorded before and retention pruned its recording: a session id is used once; record a new session (under a new id)"
            )));
        }
        let audit = self.session_audit(&i.grant_id, id.as_str())?;
        if audit.started.is_empty() {
            // A new session, not the retry of one already counted.
            super::recording_caps::grant_cap(
                id.as_str(),
                &i.host,
                &i.grant_id,
                audit.others,
                self.config.recordings.max_sessions_per_grant,
            )?;
        }
        let same_end = match &audit.ended {
            None => Some(false),
            Some((_, h)) if after.end.is_some() && *h == after.prev.to_string() => Some(true),
            Some(_) => None,
        };
        match (&audit.started[..], same_end) {
            ([], _) => Ok(Audited::default()),
            ([(_, s)], Some(ended))
                if s.started_at == header.timestamp
                    && s.host_key_fingerprint == fingerprint
                    && s.subject.serial.to_string() == i.serial =>
            {
                Ok(Audited {
                    started: true,
                    ended,
                })
            }
            ([(seq, _), ..], _) => Err(ServiceError::WrongState(format!(
                "session {id} was recorded before (its session_started audit record (seq {seq}) stands) and no recording of it is stored: a session id is used once; record a new session (under a new id)"
            ))),
        }
    }
}
