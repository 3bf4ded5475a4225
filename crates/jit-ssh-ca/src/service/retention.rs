//! Pruning ended state: requests, sign-ins, revocations and decisions
//! leave the state store `limits.state_retention` after they ended; the
//! audit log keeps their history. Expired ceremonies, enrollment links
//! and host challenges go at once (they are single-use secrets, worth nothing later).

use crate::store::{Cutoffs, Pruned};

use super::{Ca, ServiceError};

impl Ca {
    /// Prunes what had ended by `now` (Unix seconds; the server passes
    /// the clock, tests a time of their choosing).
    pub fn prune_state(&self, now: i64) -> Result<Pruned, ServiceError> {
        let keep = i64::try_from(self.config.limits.state_retention.as_secs()).unwrap_or(i64::MAX);
        let mut pruned = self.store.prune(Cutoffs {
            state: now.saturating_sub(keep),
            secrets: now,
        })?;
        pruned.host_challenges = self.store.prune_host_challenges(now)?;
        self.prune_recordings(now);
        if pruned.total() > 0 {
            tracing::info!(
                requests = pruned.requests,
                revocations = pruned.revocations,
                decisions = pruned.decisions,
                sessions = pruned.sessions,
                ceremonies = pruned.ceremonies,
                invites = pruned.invites,
                host_challenges = pruned.host_challenges,
                "pruned ended state"
            );
        }
        Ok(pruned)
    }
}
