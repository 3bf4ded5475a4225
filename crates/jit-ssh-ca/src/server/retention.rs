//! Prunes ended state on a timer while the server runs (see
//! `Ca::prune_state`); a failure is logged and retried next time.

use std::sync::Arc;
use std::time::Duration;

use crate::service::Ca;

/// Ended state may outlive its retention by up to this much.
const EVERY: Duration = Duration::from_secs(600);

pub fn start(ca: Arc<Ca>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let ca = ca.clone();
            match tokio::task::spawn_blocking(move || ca.prune_state(ca.now())).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "pruning ended state failed"),
                Err(e) => tracing::error!(error = %e, "pruning ended state failed"),
            }
        }
    });
}
