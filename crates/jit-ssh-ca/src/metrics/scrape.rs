//! A scrape: gauges of state read now (KRL, hosts, on-call feeds,
//! connections), then the whole registry as Prometheus text. Blocking
//! (the KRL and host inventory come from the store): run it on the
//! blocking pool.

use super::{
    Metrics, CONNECTIONS_OPEN, FEED_AGE, FEED_ERRORS, FEED_LOADED, HOSTS_BEHIND_ON_KRL,
    HOSTS_ENROLLED, HOSTS_SILENT, KRL_BYTES, KRL_REVOKED, KRL_SIGNED_AGE, KRL_VERSION,
    RECORDINGS_BELOW_FLOOR, RECORDINGS_FLOOR, RECORDINGS_FLOOR_INODES, RECORDINGS_FREE,
    RECORDINGS_FREE_INODES, SCRAPE_ERRORS,
};
use crate::clock::{Clock, SystemClock};
use crate::recordings::space::judge;
use crate::service::Ca;

impl Metrics {
    /// The text exposition of every metric, with state gauges read now.
    pub fn render(&self, ca: &Ca) -> String {
        self.read_state(ca);
        self.handle.render()
    }

    fn read_state(&self, ca: &Ca) {
        // The CA's clock dates the KRL; feeds load in wall-clock time.
        let now = ca.now();
        let wall = SystemClock.now_unix();
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
        // As the inventory flags them (`[hosts] krl_behind_after`,
        // `silent_after`).
        match ca.hosts() {
            Ok(list) => {
                let count = |f: fn(&jit_ssh_proto::hosts::HostInfo) -> bool| {
                    list.hosts.iter().filter(|h| f(h)).count() as f64
                };
                self.gauge(HOSTS_ENROLLED, &[]).set(list.hosts.len() as f64);
                self.gauge(HOSTS_BEHIND_ON_KRL, &[])
                    .set(count(|h| h.behind_on_krl));
                self.gauge(HOSTS_SILENT, &[]).set(count(|h| h.silent));
            }
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
                    .set(wall.saturating_sub(at).max(0) as f64);
            }
        }
        let c = &ca.config.recordings;
        match ca.recordings_fs() {
            Ok(s) => {
                self.gauge(RECORDINGS_FREE, &[]).set(s.avail as f64);
                self.gauge(RECORDINGS_FLOOR, &[])
                    .set(c.floor.bytes(s.total) as f64);
                // A filesystem without a fixed number of inodes has no
                // inode floor.
                if s.files_total > 0 {
                    self.gauge(RECORDINGS_FREE_INODES, &[])
                        .set(s.files_avail as f64);
                    self.gauge(RECORDINGS_FLOOR_INODES, &[])
                        .set(c.inode_floor.of(s.files_total) as f64);
                }
                let below = judge(&s, c.floor, c.inode_floor).is_err();
                self.gauge(RECORDINGS_BELOW_FLOOR, &[])
                    .set(if below { 1.0 } else { 0.0 });
            }
            Err(_) => {
                self.counter(SCRAPE_ERRORS, &[("what", "recordings")])
                    .increment(1);
                self.gauge(RECORDINGS_BELOW_FLOOR, &[]).set(1.0);
            }
        }
        if let Some(open) = self.connections.get() {
            self.gauge(CONNECTIONS_OPEN, &[]).set(open() as f64);
        }
    }
}
