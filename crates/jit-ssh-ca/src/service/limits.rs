//! Per-key request budgets (fixed one-minute windows), kept in memory: a
//! restart resets them, which is fine for slowing down guessing and floods.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Forget idle keys once the table gets this big.
const PRUNE_AT: usize = 10_000;

#[derive(Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// Counts one event for `key`; `Err(seconds until retry)` once more
    /// than `per_minute` happened in the current window.
    pub fn check(&self, key: &str, per_minute: u32) -> Result<(), u64> {
        let now = Instant::now();
        // A poisoned lock means a panic elsewhere: refuse rather than allow.
        let Ok(mut w) = self.windows.lock() else {
            return Err(60);
        };
        if w.len() > PRUNE_AT {
            w.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = w.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= per_minute {
            return Err((WINDOW.saturating_sub(now.duration_since(entry.0)))
                .as_secs()
                .max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_the_budget_per_key() {
        let r = RateLimiter::default();
        for _ in 0..3 {
            r.check("user:alice", 3).unwrap();
        }
        assert!(r.check("user:alice", 3).is_err());
        r.check("user:bob", 3).unwrap();
    }
}
