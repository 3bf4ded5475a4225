//! Wakeups across replicas: every change to a stored request that a
//! long poll can see sends `NOTIFY jit_ssh_request, '<id>'` in the
//! statement that makes it (so it is delivered only if that commits), and each CA process keeps one
//! connection of its own that `LISTEN`s and wakes its long polls. A
//! client waiting on replica A then hears at once that replica B issued.
//!
//! The connection is outside the pool: a LISTEN belongs to one session.
//! When it is lost (PostgreSQL restarted), notifications sent meanwhile
//! are lost too, so after reconnecting every waiter is woken to read
//! again; a long poll never waits past its own deadline either way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;

use super::connect::Connector;
use crate::store::RequestChanged;

/// The channel request changes are sent on.
pub(super) const REQUEST_CHANNEL: &str = "jit_ssh_request";

/// Who a change to a request is told to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Notify {
    /// Every replica's listener (and so its long polls).
    Replicas,
    /// Nobody: the change shows nothing a long poll answers with.
    Nobody,
}

/// How long one wait for a notification lasts before the stop flag and
/// the connection are looked at again.
const POLL: Duration = Duration::from_millis(500);
/// How often an idle connection is checked (a dead peer sends nothing).
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// The pause between attempts while the database cannot be reached.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Stops the listening thread when dropped (within [`POLL`]).
pub(super) struct Listener {
    stop: Arc<AtomicBool>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Starts the thread that listens and calls `changed`.
pub(super) fn listen(connector: Connector, changed: RequestChanged) -> Listener {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("pg-listen".into())
        .spawn(move || run(&connector, &changed, &flag));
    if let Err(e) = spawned {
        // Long polls still end at their deadline and read then.
        tracing::error!(error = %e, "could not start the PostgreSQL listener; long polls will not be woken by other replicas");
    }
    Listener { stop }
}

fn run(connector: &Connector, changed: &RequestChanged, stop: &AtomicBool) {
    let mut failing = false;
    while !stop.load(Ordering::SeqCst) {
        match listen_once(connector, changed, stop, &mut failing) {
            Ok(()) => return,
            Err(e) => {
                // Said once per outage, not every second of it.
                if !failing {
                    tracing::warn!(error = %e, "PostgreSQL listener lost its connection; reconnecting");
                }
                failing = true;
                std::thread::sleep(RECONNECT_AFTER);
            }
        }
    }
}

/// One connection's life: LISTEN, wake everyone (what was missed before),
/// then pass on notifications until `stop` (Ok) or the connection fails.
fn listen_once(
    connector: &Connector,
    changed: &RequestChanged,
    stop: &AtomicBool,
    failing: &mut bool,
) -> Result<(), postgres::Error> {
    let mut client = connector.connect()?;
    client.batch_execute(&format!("LISTEN {REQUEST_CHANNEL}"))?;
    if *failing {
        tracing::info!("PostgreSQL listener connected again");
        *failing = false;
    }
    changed(None);
    let mut checked = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        {
            let mut incoming = client.notifications();
            let mut waiting = incoming.timeout_iter(POLL);
            while let Some(n) = waiting.next()? {
                if n.channel() == REQUEST_CHANNEL {
                    changed(Some(n.payload()));
                }
            }
        }
        if checked.elapsed() >= CHECK_EVERY {
            client.simple_query("")?;
            checked = Instant::now();
        }
    }
    Ok(())
}
