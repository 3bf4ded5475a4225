//! One group of appends as one transaction: lock the head row, seal
//! every record onto it (the chain code of `jit-ssh-audit`, so the stored
//! JSON and hashes are the embedded log's), insert them with their index
//! columns in one statement each, move the head, commit.
//!
//! The head row lock (`SELECT … FOR UPDATE`) is what makes several
//! replicas one chain: a second replica's group waits for the first to
//! commit and then reads the head it left, so each record's `prev_hash`
//! is the record really before it, with no gap and no fork.

use super::super::prepared::Conn;
use super::head_lock::HeadLocked;
use time::OffsetDateTime;

use jit_ssh_audit::chain::{self, ChainHead};
use jit_ssh_audit::record::{Actor, AuditRecord, Event, Hash};

use super::{nanos, PgAuditError};

/// Also forces `synchronous_commit` back on for this transaction should
/// the role or database have turned it off: `append` promises the record
/// is durable when it returns (a stronger setting such as `remote_apply`
/// is left as it is).
pub(super) const LOCK_HEAD: &str = "SELECT seq, hash, time_ns, \
     set_config('synchronous_commit', \
        CASE current_setting('synchronous_commit') WHEN 'off' THEN 'on' \
        ELSE current_setting('synchronous_commit') END, true) \
     FROM audit_head FOR UPDATE";

const INSERT_RECORDS: &str = "INSERT INTO audit_records \
     (seq, time_ns, kind, user_name, host, account, grant_id, record) \
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], \
                          $5::text[], $6::text[], $7::text[], $8::text[])";

/// A group's rows and the new head in one statement (data-modifying
/// `WITH` parts always run to completion): with BEGIN, the head lock and
/// COMMIT, four round trips while the head row is held, whatever the
/// group size.
const WRITE_GROUP: &str = "WITH records AS (
       INSERT INTO audit_records (seq, time_ns, kind, user_name, host, account, grant_id, record)
       SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                            $5::text[], $6::text[], $7::text[], $8::text[])
     ), serials AS (
       INSERT INTO audit_serials (serial, seq) SELECT * FROM unnest($9::bigint[], $10::bigint[])
     )
     UPDATE audit_head SET seq = $11, hash = $12, time_ns = $13";

const INSERT_SERIALS: &str = "INSERT INTO audit_serials (serial, seq) \
     SELECT * FROM unnest($1::bigint[], $2::bigint[])";

/// The columns of one group, as arrays (one round trip per table).
#[derive(Default)]
pub(super) struct Columns {
    seq: Vec<i64>,
    time_ns: Vec<i64>,
    kind: Vec<&'static str>,
    user: Vec<Option<String>>,
    host: Vec<Option<String>>,
    account: Vec<Option<String>>,
    grant: Vec<Option<String>>,
    record: Vec<String>,
    serial: Vec<i64>,
    serial_seq: Vec<i64>,
}

impl Columns {
    pub(super) fn push(&mut self, rec: &AuditRecord, json: Vec<u8>) -> Result<(), PgAuditError> {
        let seq = seq_col(rec.seq);
        let e = &rec.event;
        self.seq.push(seq);
        self.time_ns.push(nanos(rec.time));
        self.kind.push(e.kind());
        self.user.push(e.user().map(str::to_owned));
        self.host.push(e.host().map(str::to_owned));
        self.account.push(e.account().map(str::to_owned));
        self.grant.push(e.grant().map(str::to_owned));
        self.record
            .push(String::from_utf8(json).map_err(|_| PgAuditError::NotUtf8)?);
        let mut serials: Vec<u64> = e.serials().to_vec();
        serials.sort_unstable();
        serials.dedup();
        for s in serials {
            self.serial.push(super::super::serial_col(s));
            self.serial_seq.push(seq);
        }
        Ok(())
    }
}

impl Columns {
    pub(super) fn len(&self) -> usize {
        self.seq.len()
    }

    /// Inserts the rows gathered so far and starts afresh.
    pub(super) fn insert(
        &mut self,
        tx: &mut postgres::Transaction<'_>,
    ) -> Result<(), PgAuditError> {
        let cols = std::mem::take(self);
        tx.execute(
            INSERT_RECORDS,
            &[
                &cols.seq,
                &cols.time_ns,
                &cols.kind,
                &cols.user,
                &cols.host,
                &cols.account,
                &cols.grant,
                &cols.record,
            ],
        )?;
        if !cols.serial.is_empty() {
            tx.execute(INSERT_SERIALS, &[&cols.serial, &cols.serial_seq])?;
        }
        Ok(())
    }
}

/// Moves the head row to `head` (whose record was written at `time`).
pub(super) fn set_head(
    tx: &mut postgres::Transaction<'_>,
    head: ChainHead,
    time: OffsetDateTime,
) -> Result<(), PgAuditError> {
    tx.execute(
        "UPDATE audit_head SET seq = $1, hash = $2, time_ns = $3",
        &[&seq_col(head.seq), &head.hash.to_string(), &nanos(time)],
    )?;
    Ok(())
}

pub(super) fn seq_col(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Seals and commits `jobs` after the head in the database; returns the
/// records and the new head once committed.
pub(super) fn commit_group(
    c: &mut Conn,
    jobs: Vec<(Actor, Event)>,
) -> Result<(Vec<AuditRecord>, ChainHead), PgAuditError> {
    // Prepared before the transaction (once per connection), so the head
    // row is held for no parse or plan.
    let write_group = c.prepared(WRITE_GROUP)?;
    let (mut tx, held) = HeadLocked::begin(c)?;
    let (mut head, mut last) = (held.head, held.time);
    let mut cols = Columns::default();
    let mut records = Vec::with_capacity(jobs.len());
    for (actor, event) in jobs {
        // Never before the record it follows, whichever replica wrote it
        // and however its clock differs: time ranges stay seq ranges.
        let time = OffsetDateTime::now_utc().max(last);
        let (rec, json) =
            chain::seal_json(head, time, actor, event).map_err(PgAuditError::Encode)?;
        cols.push(&rec, json)?;
        head = ChainHead {
            seq: rec.seq,
            hash: rec.hash,
        };
        last = time;
        records.push(rec);
    }
    let (head_seq, head_hash, head_time) = (seq_col(head.seq), head.hash.to_string(), nanos(last));
    postgres::Client::execute(
        tx.conn(),
        &write_group,
        &[
            &cols.seq,
            &cols.time_ns,
            &cols.kind,
            &cols.user,
            &cols.host,
            &cols.account,
            &cols.grant,
            &cols.record,
            &cols.serial,
            &cols.serial_seq,
            &head_seq,
            &head_hash,
            &head_time,
        ],
    )?;
    tx.commit()?;
    Ok((records, head))
}

pub(super) fn parse_hash(hex_text: &str) -> Result<Hash, PgAuditError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).map_err(|_| PgAuditError::Head)?;
    Ok(Hash(out))
}
