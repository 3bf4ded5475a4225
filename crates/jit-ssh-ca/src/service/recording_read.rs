//! Auditors list and read stored recordings (auditor, security, admin,
//! like `/v1/audit/export`). A download carries the host key the CA
//! verified the chunks with and the final hash from the `session_ended`
//! audit record, so `jit-ssh audit play` checks the recording against
//! the audit chain, not against this answer's say-so.

use std::io::Read;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use jit_ssh_proto::recordings::{
    RecordingDownload, RecordingList, RecordingParams, RecordingSummary, DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
};
use jit_ssh_recording::SessionId;

use super::sessions::SignedIn;
use super::{rfc3339, Ca, ServiceError};
use crate::recordings::{PageKey, RecordingMeta};

/// The `session_ended` record's seq and final hash; the host key
/// fingerprint `session_started` names.
type SessionRecords = (Option<(u64, String)>, Option<String>);

fn stored(e: crate::recordings::RecordingStoreError) -> ServiceError {
    tracing::error!(error = %e, "recording store failed");
    ServiceError::Internal("recording store".into())
}

/// A page's cursor: `RECEIVED_AT:SESSION` of its last recording (`:` is
/// in no session id).
fn cursor(k: &PageKey) -> String {
    format!("{}:{}", k.received_at, k.session)
}

fn parse_cursor(s: &str) -> Result<PageKey, ServiceError> {
    let bad = || {
        ServiceError::invalid(format!(
            "after: not a cursor from a previous page ({:?}); pass the `next` of the answer before",
            s.chars().take(80).collect::<String>()
        ))
    };
    let (at, session) = s.split_once(':').ok_or_else(bad)?;
    let received_at = at.parse::<i64>().map_err(|_| bad())?;
    let session = SessionId::try_from(session).map_err(|_| bad())?;
    Ok(PageKey {
        received_at,
        session: session.to_string(),
    })
}

fn summary(m: &RecordingMeta) -> RecordingSummary {
    RecordingSummary {
        session: m.session.to_string(),
        user: m.user.clone(),
        host: m.host.clone(),
        account: m.account.clone(),
        grant: m.grant.clone(),
        serial: m.serial,
        key_id: m.key_id.clone(),
        record: m.record.clone(),
        started_at: rfc3339(i64::try_from(m.started_at).unwrap_or(i64::MAX)),
        ended_at: m.ended.as_ref().map(|e| rfc3339(e.at)),
        reason: m.ended.as_ref().map(|e| e.reason.clone()),
        chunks: m.chunks,
        stored_bytes: m.chunk_bytes,
        output_bytes: m.ended.as_ref().map(|e| e.output_bytes),
    }
}

impl Ca {
    /// Deletes recordings whose last upload is older than
    /// `recordings.retention` (their audit records stay). A failure is
    /// logged; the next run tries again.
    pub(super) fn prune_recordings(&self, now: i64) {
        let keep = i64::try_from(self.config.recordings.retention.as_secs()).unwrap_or(i64::MAX);
        match self.recordings.prune(now.saturating_sub(keep)) {
            Ok(0) => {}
            Ok(n) => tracing::info!(recordings = n, "pruned session recordings past retention"),
            Err(e) => tracing::error!(error = %e, "pruning session recordings failed"),
        }
    }

    fn may_read_recordings(&self, who: &SignedIn) -> Result<(), ServiceError> {
        if who.reads_all_audit() {
            return Ok(());
        }
        Err(ServiceError::Forbidden(format!(
            "{} may not read session recordings; that needs the auditor role",
            who.user
        )))
    }

    pub fn recording_list(
        &self,
        who: &SignedIn,
        p: &RecordingParams,
    ) -> Result<RecordingList, ServiceError> {
        self.may_read_recordings(who)?;
        let since = p
            .since
            .as_deref()
            .map(|s| {
                OffsetDateTime::parse(s, &Rfc3339)
                    .map(|t| t.unix_timestamp())
                    .map_err(|e| {
                        ServiceError::invalid(format!("since: not an RFC 3339 time ({e})"))
                    })
            })
            .transpose()?;
        let limit = p.limit.unwrap_or(DEFAULT_LIST_LIMIT);
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            return Err(ServiceError::invalid(format!(
                "limit: 1 to {MAX_LIST_LIMIT} recordings a page (default {DEFAULT_LIST_LIMIT}); page on with after"
            )));
        }
        let after = p.after.as_deref().map(parse_cursor).transpose()?;
        let keep = |m: &RecordingMeta| {
            p.user.as_ref().is_none_or(|u| *u == m.user)
                && p.host.as_ref().is_none_or(|h| *h == m.host)
                && p.grant.as_ref().is_none_or(|g| *g == m.grant)
                && since.is_none_or(|t| i64::try_from(m.started_at).unwrap_or(i64::MAX) >= t)
        };
        let (page, more) = self
            .recordings
            .store
            .page(&keep, after.as_ref(), limit)
            .map_err(stored)?;
        let next = page.last().filter(|_| more).map(|m| cursor(&m.order()));
        Ok(RecordingList {
            recordings: page.iter().map(summary).collect(),
            next,
        })
    }

    /// The recording's summary and the audit's word on it (`bundle`
    /// left empty), and a reader of the bundle: a recording may be far
    /// larger than the CA's memory, so it is sent as it is read.
    pub fn recording_download(
        &self,
        who: &SignedIn,
        session: &str,
    ) -> Result<(RecordingDownload, Box<dyn Read + Send>), ServiceError> {
        self.may_read_recordings(who)?;
        let id = SessionId::try_from(session).map_err(|_| ServiceError::NotFound("recording"))?;
        let rec = self
            .recordings
            .store
            .open(&id)
            .map_err(stored)?
            .ok_or(ServiceError::NotFound("recording"))?;
        let mut prefix = Vec::new();
        jit_ssh_recording::bundle::write(&mut prefix, &rec.header_line, &[])
            .map_err(|e| ServiceError::Internal(format!("bundling a recording: {e}")))?;
        let (ended, started_fingerprint) = self.session_records(&rec.meta)?;
        let download = RecordingDownload {
            summary: summary(&rec.meta),
            host_key: rec.meta.host_key.clone(),
            // The audit's word, not the recording directory's: the
            // client checks the host key against it.
            host_key_fingerprint: started_fingerprint.unwrap_or_default(),
            final_hash: ended.as_ref().map(|(_, h)| h.clone()),
            session_ended_seq: ended.map(|(seq, _)| seq),
            bundle: String::new(),
        };
        Ok((
            download,
            Box::new(std::io::Cursor::new(prefix).chain(rec.chunks)),
        ))
    }

    /// The `session_ended` record of this session (its seq and final
    /// hash), and the host key fingerprint its `session_started` record
    /// names, from the audit log; `Err` 409 if the log starts the id more
    /// than once (offline `verify` refuses it too).
    fn session_records(&self, m: &RecordingMeta) -> Result<SessionRecords, ServiceError> {
        let audit = self.session_audit(&m.grant, m.session.as_str())?;
        audit.single(m.session.as_str())?;
        let started = audit
            .started
            .first()
            .map(|(_, s)| s.host_key_fingerprint.clone());
        Ok((audit.ended, started))
    }
}
