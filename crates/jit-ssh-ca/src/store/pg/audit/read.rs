//! Reading the chain: queries through the index columns, time ranges as
//! sequence ranges, export and verification in pages of [`PAGE`] records
//! (never the whole table in memory, never one long-held query).
//!
//! Every statement here is planned at each call with its values (an
//! unnamed statement, one round trip), never prepared. A pooled
//! connection keeps a prepared statement's plan until the table is next
//! analysed, and autovacuum analyses an append-only table only after it
//! grew by a tenth: plans made while the chain was short, for no value
//! in particular, read the whole chain for one serial check, one first
//! page of a user with few records, or each page of an export
//! (`tests/audit_pg_plans.rs`). Planning costs the database about
//! 0.2 ms a statement.

use postgres::types::{ToSql, Type};
use time::OffsetDateTime;

use jit_ssh_audit::chain::{self, VerifyReport};
use jit_ssh_audit::record::AuditRecord;
use jit_ssh_audit::AuditQuery;

use super::super::prepared::Conn;
use super::append::seq_col;
use super::{nanos, PgAuditError};

const PAGE: i64 = 5000;

fn parse(seq: u64, record: &str) -> Result<AuditRecord, PgAuditError> {
    serde_json::from_str(record).map_err(|source| PgAuditError::Corrupt { seq, source })
}

fn seq_val(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

/// Records matching `q`, in sequence order. Every filter is in the SQL
/// (the planner walks the user, host, grant or serial index in `seq`
/// order and stops at the limit); each record read is checked against
/// `q` again, so an index column edited by hand cannot add a record
/// that does not match.
pub(super) fn query(c: &mut Conn, q: &AuditQuery) -> Result<Vec<AuditRecord>, PgAuditError> {
    let mut from = q.after_seq.map_or(1, |s| s.saturating_add(1));
    if let Some(t) = q.since {
        from = from.max(first_seq_at(c, t)?);
    }
    let to = q.until.map(|t| first_seq_at(c, t)).transpose()?;
    let mut w = Where {
        sql: String::from("SELECT seq, record FROM audit_records WHERE seq >= $1"),
        params: vec![(Box::new(seq_col(from)), Type::INT8)],
    };
    if let Some(to) = to {
        w.and("seq < $?", seq_col(to), Type::INT8);
    }
    if let Some(u) = &q.user {
        w.and("user_name = $?", u.clone(), Type::TEXT);
    }
    if let Some(h) = &q.host {
        w.and("host = $?", h.clone(), Type::TEXT);
    }
    if let Some(a) = &q.account {
        w.and("account = $?", a.clone(), Type::TEXT);
    }
    if let Some(g) = &q.grant {
        w.and("grant_id = $?", g.clone(), Type::TEXT);
    }
    if !q.kinds.is_empty() {
        w.and("kind = ANY($?)", q.kinds.clone(), Type::TEXT_ARRAY);
    }
    if let Some(s) = q.serial {
        // The serial's few records first, fetched by their `seq`: as a
        // join, the planner could start from the chain's side, and a plan
        // made while the chain was short read every record of it, 64,000
        // rows per issuance's serial check by the end of a replicas bench
        // run (autovacuum had not analysed the table yet).
        w.and(
            "seq = ANY(ARRAY(SELECT seq FROM audit_serials WHERE serial = $?))",
            super::super::serial_col(s),
            Type::INT8,
        );
    }
    w.sql.push_str(" ORDER BY seq");
    if q.limit != 0 {
        let n = w.params.len() + 1;
        w.sql.push_str(&format!(" LIMIT ${n}"));
        w.params.push((
            Box::new(i64::try_from(q.limit).unwrap_or(i64::MAX)),
            Type::INT8,
        ));
    }
    let params: Vec<(&(dyn ToSql + Sync), Type)> =
        w.params.iter().map(|(p, t)| (&**p, t.clone())).collect();
    let rows = c.query_typed(&w.sql, &params)?;
    let mut out = Vec::new();
    for row in rows {
        let rec = parse(seq_val(row.get(0)), row.get(1))?;
        if q.matches(&rec) {
            out.push(rec);
        }
    }
    Ok(out)
}

/// A WHERE clause and its parameters with their types, built filter by
/// filter.
struct Where {
    sql: String,
    params: Vec<(Box<dyn ToSql + Sync>, Type)>,
}

impl Where {
    /// Adds `AND clause`, its `$?` standing for `value` of type `ty`.
    fn and(&mut self, clause: &str, value: impl ToSql + Sync + 'static, ty: Type) {
        self.params.push((Box::new(value), ty));
        let n = self.params.len();
        self.sql.push_str(" AND ");
        self.sql.push_str(&clause.replace("$?", &format!("${n}")));
    }
}

/// The first sequence number at or after `t` (one past the head when
/// none is): record times never go backwards.
pub(super) fn first_seq_at(c: &mut Conn, t: OffsetDateTime) -> Result<u64, PgAuditError> {
    let row = c.query_typed_one(
        "SELECT COALESCE(
             (SELECT seq FROM audit_records WHERE time_ns >= $1 ORDER BY time_ns, seq LIMIT 1),
             (SELECT seq + 1 FROM audit_head))",
        &[(&nanos(t), Type::INT8)],
    )?;
    Ok(seq_val(row.get(0)))
}

/// Up to [`PAGE`] stored records from `from` to `to` (inclusive), with
/// their `seq`.
pub(super) fn page(c: &mut Conn, from: u64, to: u64) -> Result<Vec<(u64, String)>, PgAuditError> {
    let rows = c.query_typed(
        "SELECT seq, record FROM audit_records WHERE seq >= $1 AND seq <= $2
         ORDER BY seq LIMIT $3",
        &[
            (&seq_col(from), Type::INT8),
            (&seq_col(to), Type::INT8),
            (&PAGE, Type::INT8),
        ],
    )?;
    Ok(rows.iter().map(|r| (seq_val(r.get(0)), r.get(1))).collect())
}

/// Walks the whole chain in `seq` order with the chain code's own
/// checks: a missing row is a record out of order at its position, an
/// edited one is altered at its `seq`.
pub(super) fn verify(c: &mut Conn) -> Result<VerifyReport, PgAuditError> {
    let mut failure = None;
    let mut after = 0i64;
    let mut page: std::vec::IntoIter<(i64, String)> = Vec::new().into_iter();
    let records = std::iter::from_fn(|| loop {
        if let Some((seq, record)) = page.next() {
            return Some(
                chain::parse_stored(record.as_bytes()).map_err(|e| format!("record {seq}: {e}")),
            );
        }
        if failure.is_some() {
            return None;
        }
        match c.query_typed(
            "SELECT seq, record FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[(&after, Type::INT8), (&PAGE, Type::INT8)],
        ) {
            Err(e) => {
                failure = Some(e);
                return None;
            }
            Ok(rows) if rows.is_empty() => return None,
            Ok(rows) => {
                let rows: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                after = rows.last().map_or(after, |r| r.0);
                page = rows.into_iter();
            }
        }
    });
    let report = chain::verify(records);
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(report),
    }
}
