//! Review finding: `store::database_unavailable` calls every PostgreSQL
//! error without a SQLSTATE "unreachable" (`None => e.as_db_error().is_none()`),
//! so a query that returned the wrong number of rows, a column that does
//! not decode, or a parameter that does not encode is answered 503
//! "unavailable, retry" instead of 500. Here the audit chain's head row
//! is gone (someone with write access to the database deleted it): the
//! append fails with tokio-postgres' RowCount error, an integrity
//! problem that retrying on another replica will never fix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg;

use jit_ssh_audit::{Actor, AuditLog};
use jit_ssh_ca::store::{database_unavailable, PgAuditLog};

#[test]
fn a_deleted_audit_head_row_is_not_reported_as_an_outage() {
    let Some(cluster) = pg::cluster("a_deleted_audit_head_row_is_not_reported_as_an_outage") else {
        return;
    };
    let cfg = cluster.database();
    let log = PgAuditLog::open(&cfg).unwrap();
    cluster.sql(&pg::db_name(&cfg), "DELETE FROM audit_head");
    let e = log
        .append(
            Actor::System,
            jit_ssh_audit::Event::CertificateIssued(jit_ssh_audit::CertificateIssued {
                serial: 7,
                key_id: "jit-ssh:alice:g:7".into(),
                user: "alice".into(),
                host: "db-1.prod".into(),
                account: "postgres".into(),
                principals: vec!["postgres@db-1.prod".into()],
                valid_after: 1_800_000_000,
                valid_before: 1_800_000_600,
                public_key_fingerprint: "SHA256:7OS6Dx+OHABorl8BixVaEKG77cEZBBmPYu9cRAgjbeY".into(),
                ca_fingerprint: "SHA256:8gqd8KkC/AvRXQT0Q5lWEjooI+ncnxIErOaFz571DQ0".into(),
                grant: "g".into(),
                reason: "r".into(),
                critical_options: vec![],
                extensions: vec![],
                via: jit_ssh_audit::IssuedVia::Server,
                session: None,
            }),
        )
        .expect_err("an append with no head row must fail");
    assert!(
        !database_unavailable(&e),
        "a missing head row is reported as 'database unavailable' (503, retry): {:#}",
        anyhow::Error::from(e)
    );
}
