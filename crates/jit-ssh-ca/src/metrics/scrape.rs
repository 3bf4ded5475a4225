//! A scrape: gauges of state read now (KRL, hosts, on-call feeds,
//! connections), then the whole registry as Prometheus text. Blocking
//! (the KRL and host inventory come from the store): run it on the
//! blocking pool.

use super::{
    Metrics, CONNECTIONS_OPEN, FEED_AGE, FEED_ERRORS, FEED_LOADED, HOSTS_ENROLLED, KRL_BYTES,
    KRL_REVOKED, KRL_SIGNED_AGE, KRL_VERSION, SCRAPE_ERRORS,
};
use crate::service::{now_unix, Ca};

impl Metrics {
    /// The text exposition of every metric, with state gauges read now.
    pub fn render(&self, ca: &Ca) -> String {
        self.read_state(ca);
        self.handle.render()
    }

    fn read_state(&self, ca: &Ca) {
        let now = now_unix();
        match ca.krl() {
            Ok(krl) => {
                self.gauge(KRL_VERSION, &[]).set(krl.version as f64);
                self.gauge(KRL_BYTES, &[]).set(krl.bytes.len() as f64);
                // The published bytes are the truth hosts get: count and
                // date what they say.
                if let Ok(decoded) = jit_ssh_krl::Krl::decode(&krl.bytes) {
                    let revoked: u64 = decoded
                        .cert_sections()
                        .map(|(_, certs)| certs.serials.len())
                        .sum();
                    self.gauge(KRL_REVOKED, &[]).set(revoked as f64);
                    let signed = i64::try_from(decoded.generated_date).unwrap_or(i64::MAX);
                    self.gauge(KRL_SIGNED_AGE, &[])
                        .set(now.saturating_sub(signed).max(0) as f64);
                }
            }
            Err(_) => self.counter(SCRAPE_ERRORS, &[("what", "krl")]).increment(1),
        }
        match ca.hosts() {
            Ok(hosts) => self.gauge(HOSTS_ENROLLED, &[]).set(hosts.len() as f64),
            Err(_) => self
                .counter(SCRAPE_ERRORS, &[("what", "hosts")])
                .increment(1),
        }
        for (schedule, health) in ca.schedules.feed_health() {
            let labels = [("schedule", schedule.as_str())];
            self.counter(FEED_ERRORS, &labels).absolute(health.errors);
            self.gauge(FEED_LOADED, &labels)
                .set(if health.loaded_at.is_some() { 1.0 } else { 0.0 });
            if let Some(at) = health.loaded_at {
                self.gauge(FEED_AGE, &labels)
                    .set(now.saturating_sub(at).max(0) as f64);
            }
        }
        if let Some(open) = self.connections.get() {
            self.gauge(CONNECTIONS_OPEN, &[]).set(open() as f64);
        }
    }
}
