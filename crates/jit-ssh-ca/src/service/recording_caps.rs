//! How many sessions one grant may record (`[recordings]
//! max_sessions_per_grant`). The chunks' signatures prove only that the
//! host made the recording; a host holding its key (or compromised)
//! could otherwise open recordings without end under any grant issued
//! for it, each a directory and three files at the CA: its inodes, its
//! disk and auditors' listings. The count is the grant's
//! `session_started` audit records, which retention never prunes, so
//! pruning old recordings frees no room under a grant.

use super::ServiceError;

/// `Err` 403 when `others` sessions (not counting `session` itself) were
/// already recorded under `grant` and the cap allows no more. Logged:
/// the refusal is not audited (a host could write a record per try).
pub(super) fn grant_cap(
    session: &str,
    host: &str,
    grant: &str,
    others: u64,
    cap: u64,
) -> Result<(), ServiceError> {
    if others < cap {
        return Ok(());
    }
    tracing::warn!(
        session,
        host,
        grant,
        sessions = others,
        cap,
        "refused a recording: its grant holds the most sessions [recordings] max_sessions_per_grant allows"
    );
    Err(ServiceError::Forbidden(format!(
        "grant {grant} already has {others} recorded sessions, the most [recordings] max_sessions_per_grant ({cap}) allows: session {session} is not taken (the host keeps it in its spool)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_past_the_cap_is_refused_naming_the_grant_and_the_cap() {
        assert!(grant_cap("s-3", "db-1.dev", "g", 2, 3).is_ok());
        let e = grant_cap("s-4", "db-1.dev", "g", 3, 3).unwrap_err();
        assert!(matches!(e, ServiceError::Forbidden(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "grant g already has 3 recorded sessions, the most [recordings] max_sessions_per_grant (3) allows: session s-4 is not taken (the host keeps it in its spool)"
        );
    }
}
