//! When a session ends and when its user is warned: pure arithmetic over
//! Unix seconds, so the tests need no clock.

use ssh_key::Certificate;

/// Warnings go out this many seconds before the end (largest first).
pub const NOTICES: [u64; 2] = [300, 60];

/// The end of the session: the earliest `valid_before` of its
/// certificates (sshd accepted all of them; the first to expire ends it).
pub fn session_end(certs: &[Certificate]) -> Option<u64> {
    certs.iter().map(Certificate::valid_before).min()
}

/// The notices for a session starting at `now` and ending at `end`: one
/// at once when it starts inside a notice window (saying how long is
/// left), then one at each later threshold. Times are Unix seconds.
pub fn notice_times(now: u64, end: u64) -> (bool, Vec<u64>) {
    let left = end.saturating_sub(now);
    let at_once = NOTICES.iter().any(|&t| left <= t) && left > 0;
    let later = NOTICES
        .iter()
        .filter(|&&t| left > t)
        .map(|&t| end - t)
        .collect();
    (at_once, later)
}

/// "4m 10s", "1m", "20s": how long is left, for a notice.
pub fn describe(secs: u64) -> String {
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m {s}s"),
    }
}

/// The one-line notice shown `left` seconds before the end at `end`.
pub fn notice(left: u64, end: u64) -> String {
    format!(
        "jit-ssh: this session ends in {} (at {} UTC), when its certificate expires; log in again to go on",
        describe(left),
        clock_time(end)
    )
}

/// HH:MM:SS of a Unix time, UTC.
pub fn clock_time(unix: u64) -> String {
    let s = unix % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_session_is_warned_at_five_and_one_minutes() {
        assert_eq!(notice_times(1000, 1000 + 3600), (false, vec![4300, 4540]));
    }

    #[test]
    fn a_short_session_is_warned_at_once_and_at_one_minute() {
        assert_eq!(notice_times(1000, 1000 + 240), (true, vec![1180]));
        // 20 s: one notice at the start, none later.
        assert_eq!(notice_times(1000, 1020), (true, vec![]));
        // Exactly at a threshold: warned at once, not again for it.
        assert_eq!(notice_times(1000, 1300), (true, vec![1240]));
    }

    #[test]
    fn an_already_ended_session_gets_no_notice() {
        assert_eq!(notice_times(1000, 900), (false, vec![]));
        assert_eq!(notice_times(1000, 1000), (false, vec![]));
    }

    #[test]
    fn the_end_is_the_first_certificate_to_expire() {
        use crate::session::auth_info::tests::cert;
        let certs = [cert(1, 2_000), cert(2, 1_500)];
        assert_eq!(session_end(&certs), Some(1_500));
        assert_eq!(session_end(&[]), None);
    }

    #[test]
    fn notices_say_how_long_and_until_when() {
        assert_eq!(describe(300), "5m");
        assert_eq!(describe(20), "20s");
        assert_eq!(describe(250), "4m 10s");
        assert_eq!(
            notice(60, 1_800_000_000),
            "jit-ssh: this session ends in 1m (at 08:00:00 UTC), when its certificate expires; log in again to go on"
        );
    }
}
