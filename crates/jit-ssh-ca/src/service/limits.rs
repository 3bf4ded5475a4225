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

/// The key one client's budget is kept under: its IPv4 address, or the /64
/// of its IPv6 address (one subscriber's prefix: rotating addresses within
/// it must not buy a fresh budget).
pub fn client_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod client_key_tests {
    #![allow(clippy::unwrap_used)]
    use super::client_key;

    #[test]
    fn an_ipv6_prefix_is_one_client() {
        let a = client_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = client_key("2001:db8:1:2:bbbb::7".parse().unwrap());
        let other = client_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(
            client_key("::ffff:192.0.2.1".parse().unwrap()),
            client_key("192.0.2.1".parse().unwrap())
        );
    }
}
