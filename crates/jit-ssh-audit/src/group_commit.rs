//! Group commit: many writers wait for durability, one of them flushes for
//! all. A writer that finds a flush already running waits for it and, if
//! its record was not covered, for the next one, which then covers every
//! record written meanwhile. Durability costs one fsync per batch rather
//! than one per record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Default)]
struct State {
    /// Every sequence number up to this one is durable.
    durable: u64,
    flushing: bool,
    failed: bool,
}

/// Tracks which appended sequence numbers are durable.
#[derive(Default)]
pub struct GroupCommit {
    /// The highest sequence number fully written to the store (not yet
    /// necessarily durable).
    written: AtomicU64,
    state: Mutex<State>,
    flushed: Condvar,
}

/// A flush failed: nothing written since the last good flush is known to be
/// durable, and the log must stop accepting appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an earlier flush of the audit log failed")]
pub struct FlushFailed;

impl GroupCommit {
    /// Starts with everything up to `seq` durable (what was on disk at open).
    pub fn starting_at(seq: u64) -> Self {
        let gc = Self::default();
        gc.written.store(seq, Ordering::SeqCst);
        if let Ok(mut s) = gc.state.lock() {
            s.durable = seq;
        }
        gc
    }

    /// Called by the (single, serialised) appender once `seq` and all
    /// records before it are written to the store.
    pub fn mark_written(&self, seq: u64) {
        self.written.fetch_max(seq, Ordering::SeqCst);
    }

    /// Whether an earlier flush failed (the log is then fail-closed).
    pub fn has_failed(&self) -> bool {
        self.lock().map(|s| s.failed).unwrap_or(true)
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, FlushFailed> {
        // A writer that panicked while holding the lock leaves durability
        // unknown: treat it as a failed flush.
        self.state.lock().map_err(|_| FlushFailed)
    }

    /// Returns once `seq` is durable, calling `flush` (which must make
    /// every written record durable) when no other writer is flushing.
    pub fn wait_durable<E>(
        &self,
        seq: u64,
        flush: impl Fn() -> Result<(), E>,
    ) -> Result<(), FlushOutcome<E>> {
        let mut s = self.lock().map_err(FlushOutcome::Failed)?;
        loop {
            if s.failed {
                return Err(FlushOutcome::Failed(FlushFailed));
            }
            if s.durable >= seq {
                return Ok(());
            }
            if s.flushing {
                s = self
                    .flushed
                    .wait(s)
                    .map_err(|_| FlushOutcome::Failed(FlushFailed))?;
                continue;
            }
            s.flushing = true;
            let target = self.written.load(Ordering::SeqCst);
            drop(s);
            let result = flush();
            s = self.lock().map_err(FlushOutcome::Failed)?;
            s.flushing = false;
            let outcome = match result {
                Ok(()) => {
                    s.durable = s.durable.max(target);
                    None
                }
                Err(e) => {
                    s.failed = true;
                    Some(e)
                }
            };
            self.flushed.notify_all();
            if let Some(e) = outcome {
                return Err(FlushOutcome::Error(e));
            }
        }
    }
}

/// Why [`GroupCommit::wait_durable`] failed.
#[derive(Debug)]
pub enum FlushOutcome<E> {
    /// This writer's flush failed with `E`.
    Error(E),
    /// Another writer's flush failed earlier.
    Failed(FlushFailed),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_writers_share_flushes() {
        let gc = Arc::new(GroupCommit::default());
        let seq = Arc::new(Mutex::new(0u64));
        let flushes = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (gc, seq, flushes) = (gc.clone(), seq.clone(), flushes.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let mine = {
                            let mut s = seq.lock().unwrap();
                            *s += 1;
                            gc.mark_written(*s);
                            *s
                        };
                        gc.wait_durable(mine, || {
                            flushes.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_micros(200));
                            Ok::<(), ()>(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = flushes.load(Ordering::SeqCst);
        assert!(n < 3200, "{n} flushes for 3200 appends: no sharing");
    }

    #[test]
    fn a_failed_flush_fails_everyone_after() {
        let gc = GroupCommit::default();
        gc.mark_written(1);
        assert!(matches!(
            gc.wait_durable(1, || Err("disk gone")),
            Err(FlushOutcome::Error("disk gone"))
        ));
        gc.mark_written(2);
        assert!(matches!(
            gc.wait_durable(2, || Ok::<(), &str>(())),
            Err(FlushOutcome::Failed(_))
        ));
        assert!(gc.has_failed());
    }
}
