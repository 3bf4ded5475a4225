//! Reading the audit log (signed-in users; engineers see only their own
//! records), exporting it (auditors), and signing checkpoints of its head.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use jit_ssh_audit::checkpoint::{self, NAMESPACE};
use jit_ssh_audit::{Actor, AuditQuery, Checkpoint, Event, EVENT_KINDS};
use jit_ssh_proto::api::{AuditPage, AuditParams};

use super::sessions::SignedIn;
use super::{Ca, ServiceError};
use crate::names::{AccountName, GrantId, HostName, UserName};

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

fn time_param(name: &str, v: Option<&str>) -> Result<Option<OffsetDateTime>, ServiceError> {
    v.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
            ServiceError::invalid(format!("{name}: not an RFC 3339 time ({e}): {s:?}"))
        })
    })
    .transpose()
}

/// An optional name checked by its domain type, kept as text.
fn name_param<T: std::fmt::Display, E: std::fmt::Display>(
    v: &Option<String>,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<String>, ServiceError> {
    v.as_deref()
        .map(|s| parse(s).map(|n| n.to_string()))
        .transpose()
        .map_err(ServiceError::invalid)
}

/// Checks every parameter and builds the store query.
fn query_of(p: &AuditParams) -> Result<AuditQuery, ServiceError> {
    let limit = p.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ServiceError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let kinds: Vec<String> = match &p.kind {
        None => vec![],
        Some(k) => k.split(',').map(|k| k.trim().to_owned()).collect(),
    };
    if let Some(bad) = kinds.iter().find(|k| !EVENT_KINDS.contains(&k.as_str())) {
        return Err(ServiceError::invalid(format!(
            "kind {bad:?} is not an event kind (kinds: {})",
            EVENT_KINDS.join(", ")
        )));
    }
    let cursor = p
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<u64>()
                .map_err(|_| ServiceError::invalid("cursor: use the next_cursor of a page"))
        })
        .transpose()?;
    Ok(AuditQuery {
        user: name_param(&p.user, UserName::parse)?,
        host: name_param(&p.host, HostName::parse)?,
        account: name_param(&p.account, AccountName::parse)?,
        serial: p.serial,
        grant: name_param(&p.grant, GrantId::parse)?,
        kinds,
        since: time_param("since", p.since.as_deref())?,
        until: time_param("until", p.until.as_deref())?,
        after_seq: cursor,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
    })
}

impl Ca {
    /// One page of records `who` may read.
    pub fn audit_page(&self, who: &SignedIn, p: &AuditParams) -> Result<AuditPage, ServiceError> {
        let mut q = query_of(p)?;
        if !who.reads_all_audit() {
            match &q.user {
                Some(u) if *u != who.user => {
                    return Err(ServiceError::Forbidden(format!(
                        "{} may read only their own audit records; reading {u}'s needs the auditor role",
                        who.user
                    )))
                }
                _ => q.user = Some(who.user.clone()),
            }
        }
        let records = self.audit.query(&q).map_err(super::audit_read_failed)?;
        let next_cursor = match records.last() {
            Some(last) if records.len() == q.limit => Some(last.seq.to_string()),
            _ => None,
        };
        let records = records
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()
            .map_err(|e| ServiceError::Internal(format!("encoding audit records: {e}")))?;
        Ok(AuditPage {
            records,
            next_cursor,
        })
    }

    /// Signs the chain head as a checkpoint record, unless the head is
    /// already a checkpoint (nothing new to vouch for). Returns the
    /// sequence number of the newest checkpoint. Under the log's
    /// checkpoint lock: replicas sharing one log take turns, so the
    /// second finds the first's checkpoint at the head and signs nothing.
    pub fn checkpoint(&self, actor: Actor, trigger: &str) -> Result<Option<u64>, ServiceError> {
        let mut actor = Some(actor);
        let mut outcome = Ok(None);
        self.audit
            .with_checkpoint_lock(&mut || {
                if let Some(actor) = actor.take() {
                    outcome = self.checkpoint_locked(actor, trigger);
                }
            })
            .map_err(super::audit_read_failed)?;
        outcome
    }

    fn checkpoint_locked(&self, actor: Actor, trigger: &str) -> Result<Option<u64>, ServiceError> {
        let head = self.audit.head();
        if head.seq == 0 {
            return Ok(None);
        }
        let last = self
            .audit
            .query(&AuditQuery {
                after_seq: Some(head.seq - 1),
                limit: 1,
                ..Default::default()
            })
            .map_err(super::audit_read_failed)?;
        if matches!(last.first().map(|r| &r.event), Some(Event::Checkpoint(_))) {
            return Ok(Some(head.seq));
        }
        self.sign_checkpoint(head, actor, trigger).map(Some)
    }

    /// Signs `head` and appends the checkpoint; returns its sequence number
    /// (records appended meanwhile lie between `head` and it).
    pub(super) fn sign_checkpoint(
        &self,
        head: jit_ssh_audit::ChainHead,
        actor: Actor,
        trigger: &str,
    ) -> Result<u64, ServiceError> {
        let signer = self.signer();
        let sig = signer
            .sign_detached(NAMESPACE, &checkpoint::message(head.seq, &head.hash))
            .map_err(|e| ServiceError::Internal(format!("signing a checkpoint: {e}")))?;
        let signature = sig
            .to_pem(ssh_key::LineEnding::LF)
            .map_err(|e| ServiceError::Internal(format!("encoding a checkpoint: {e}")))?;
        let seq = self.audit(
            actor,
            Event::Checkpoint(Checkpoint {
                seq: head.seq,
                hash: head.hash,
                ca_fingerprint: signer
                    .public_key()
                    .fingerprint(ssh_key::HashAlg::Sha256)
                    .to_string(),
                signature,
                trigger: trigger.to_owned(),
            }),
        )?;
        Ok(seq)
    }

    /// The range of an export for `who` (auditors, security, admins): from
    /// `since` to a checkpoint signed now, so the export verifies whole.
    pub fn export_range(
        &self,
        who: &SignedIn,
        since: Option<&str>,
    ) -> Result<(u64, u64), ServiceError> {
        if !who.reads_all_audit() {
            return Err(ServiceError::Forbidden(format!(
                "{} may not export the audit log; that needs the auditor role",
                who.user
            )));
        }
        let since = time_param("since", since)?;
        let actor = Actor::User {
            name: who.user.clone(),
        };
        let to = self.checkpoint(actor, "export")?.unwrap_or(0);
        let from = match since {
            Some(t) => self
                .audit
                .first_seq_at(t)
                .map_err(super::audit_read_failed)?,
            None => 1,
        };
        Ok((from, to))
    }

    /// Streams stored records `from..=to` to `sink` (see [`Self::export_range`]).
    pub fn export_records(
        &self,
        from: u64,
        to: u64,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<u64, ServiceError> {
        self.audit
            .export(from, to, sink)
            .map_err(super::audit_read_failed)
    }
}
