//! How long a replica that stops answering may keep the others waiting.
//!
//! Replicas share locks: the audit head row (every append), the
//! checkpoint advisory lock, the KRL version row and a few others. A
//! replica that freezes while it holds one (a paused VM, a stopped
//! process, a partition that drops packets without a reset) closes no
//! socket, so without a limit PostgreSQL keeps its transaction, and the
//! lock, open: until the kernel's keepalive gives up on the peer (two
//! hours by default), or never for a stopped process on a unix socket.
//! Every other replica's next append would wait behind it, and none would
//! issue anything.
//!
//! So PostgreSQL ends any CA session left idle inside a transaction past
//! a limit (`idle_in_transaction_session_timeout`: the session is
//! terminated, its transaction rolled back, its locks released), and the
//! client gives up on a server it cannot reach (TCP keepalives and
//! `TCP_USER_TIMEOUT`, for TCP connections only). A frozen replica that
//! wakes finds its session gone: its commit fails, so it issues nothing
//! for the request it was serving (503), and its pool replaces the
//! connection.
//!
//! Fixed values, not settings: they bound an outage, and no legitimate
//! use comes near them.

use std::time::Duration;

/// The audit group's transaction (head row held): it normally lasts a
/// few milliseconds (BEGIN and the lock, sealing the group in memory,
/// one write, COMMIT). Five seconds is a thousand times that, enough for
/// a replica descheduled on a loaded machine, and it is how long the
/// other replicas wait for a frozen one before they issue again.
pub(super) const AUDIT_GROUP_IDLE: Duration = Duration::from_secs(5);

/// Every other CA transaction, as the session's default. The longest
/// legitimate wait inside one is a checkpoint, which signs (possibly on
/// an HSM, with a re-login) and appends while holding its lock, or an
/// import's batches read from the old audit files. Thirty seconds leaves
/// room for those and still frees state rows (the KRL version every
/// revocation bumps) within half a minute of a replica freezing.
pub(super) const SESSION_IDLE: Duration = Duration::from_secs(30);

/// TCP: probe a connection after this long without a byte from the
/// server (a statement waiting on a lock, say), every
/// [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_RETRIES`] times. A server that is
/// busy still answers probes (its kernel does), so a slow statement is
/// never cut off.
pub(super) const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
pub(super) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
pub(super) const KEEPALIVE_RETRIES: u32 = 3;

/// TCP: sent data unacknowledged (or probes unanswered) this long ends
/// the connection, rather than the kernel's ~15 minutes of
/// retransmissions: a replica cut off from PostgreSQL fails the request
/// (503, nothing issued) after about this long instead of hanging.
pub(super) const TCP_USER_TIMEOUT: Duration = Duration::from_secs(25);

/// `SET LOCAL` for the audit group's transaction, sent in the same simple
/// query as its BEGIN (no round trip of its own).
pub(super) fn audit_group_idle_sql() -> String {
    format!(
        "SET LOCAL idle_in_transaction_session_timeout = {}",
        AUDIT_GROUP_IDLE.as_millis()
    )
}

/// Connection options (the server's `-c` switches) for every CA session,
/// after any the url already has (the later setting wins).
pub(super) fn session_options(existing: Option<&str>) -> String {
    let ours = format!(
        "-c idle_in_transaction_session_timeout={}",
        SESSION_IDLE.as_millis()
    );
    match existing.map(str::trim) {
        Some(e) if !e.is_empty() => format!("{e} {ours}"),
        _ => ours,
    }
}

/// The client side, on a connection configuration.
pub(super) fn apply(pg: &mut postgres::Config) {
    let options = session_options(pg.get_options());
    pg.options(&options);
    pg.keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(TCP_USER_TIMEOUT);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_session_limit_follows_the_urls_own_options() {
        assert_eq!(
            session_options(None),
            "-c idle_in_transaction_session_timeout=30000"
        );
        assert_eq!(
            session_options(Some("-c search_path=jit")),
            "-c search_path=jit -c idle_in_transaction_session_timeout=30000"
        );
    }

    /// What the tests' unix-socket clusters cannot show: the TCP side is
    /// set on every connection the CA opens.
    #[test]
    fn connections_carry_the_tcp_limits_and_the_session_limit() {
        let mut pg: postgres::Config = "host=db.example port=5432 user=jit options='-c a=b'"
            .parse()
            .unwrap();
        apply(&mut pg);
        assert!(pg.get_keepalives());
        assert_eq!(pg.get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(pg.get_keepalives_interval(), Some(KEEPALIVE_INTERVAL));
        assert_eq!(pg.get_keepalives_retries(), Some(KEEPALIVE_RETRIES));
        assert_eq!(pg.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert_eq!(
            pg.get_options(),
            Some("-c a=b -c idle_in_transaction_session_timeout=30000")
        );
    }

    #[test]
    fn an_append_is_cut_off_sooner_than_any_other_transaction() {
        assert!(AUDIT_GROUP_IDLE < SESSION_IDLE);
        assert_eq!(
            audit_group_idle_sql(),
            "SET LOCAL idle_in_transaction_session_timeout = 5000"
        );
    }
}
