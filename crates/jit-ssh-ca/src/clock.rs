//! The CA's "now", as an input. The service reads its [`Clock`] once per
//! operation and passes `now` down, so one operation sees one time and
//! tests move time instead of sleeping past an expiry.
//!
//! Only wall-clock time (Unix seconds: expiries, certificate validity,
//! KRL dates) comes from here. Timeouts measured on tokio's monotonic
//! clock (connection and body deadlines, long-poll waits, rate-limit
//! windows, feed refresh timers) stay there: they bound how long a socket
//! or a task may take, not what a record says.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    /// Unix seconds.
    fn now_unix(&self) -> i64;
}

/// The system's wall clock: what the server runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// The system clock moved by a settable offset, for tests: it runs like
/// the real one until a test moves it on, and never goes back.
#[derive(Debug, Default)]
pub struct TestClock {
    offset: AtomicI64,
}

impl TestClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock `by` into the future (what sleeping would do).
    pub fn advance(&self, by: Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets the clock to `unix` if that is later than it reads now.
    pub fn set(&self, unix: i64) {
        let ahead = unix.saturating_sub(self.now_unix());
        if ahead > 0 {
            self.offset.fetch_add(ahead, Ordering::SeqCst);
        }
    }
}

impl Clock for TestClock {
    fn now_unix(&self) -> i64 {
        SystemClock
            .now_unix()
            .saturating_add(self.offset.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_moves_when_told_and_never_back() {
        let c = TestClock::new();
        let start = c.now_unix();
        assert!((start - SystemClock.now_unix()).abs() <= 1);
        c.advance(Duration::from_secs(3600));
        assert!(c.now_unix() >= start + 3600);
        c.set(start);
        assert!(c.now_unix() >= start + 3600, "set must not turn it back");
        c.set(start + 7200);
        assert!(c.now_unix() >= start + 7200);
        assert!(c.now_unix() <= SystemClock.now_unix() + 7200 + 1);
    }
}
