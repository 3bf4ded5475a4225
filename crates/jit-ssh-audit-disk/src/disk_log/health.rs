//! Whether the log can take appends, checked without writing a record:
//! its own state (no earlier write failure, the indexer alive) and a probe
//! that its directory takes writes (a file created and removed, no sync).
//!
//! A failed probe makes the log refuse appends, without poisoning it: the
//! next append probes again first and goes ahead once the directory takes
//! writes. A directory that stopped taking writes is storage in trouble,
//! and an append through the files already open would only find out at
//! its sync, or not at all (a permission change does not reach open
//! files): the CA stops issuing at once instead.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

use jit_ssh_audit::StoreError;

use super::DiskAuditLog;

/// Created and removed by each probe.
pub(super) const PROBE_FILE: &str = "ready.probe";

/// Called with the number of records in each committed group.
pub(super) type GroupObserver = Box<dyn Fn(usize) + Send + Sync>;

fn probe(dir: &Path) -> io::Result<()> {
    let path = dir.join(PROBE_FILE);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    match std::fs::remove_file(&path) {
        // Another probe removed it first.
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl DiskAuditLog {
    /// Probes the directory and remembers the outcome for appends.
    pub(super) fn probe_directory(&self) -> Result<(), StoreError> {
        let outcome = probe(&self.dir);
        self.unwritable.store(outcome.is_err(), Ordering::SeqCst);
        outcome.map_err(StoreError::Unwritable)
    }

    /// Before an append: refuses while the last probe failed, unless the
    /// directory takes writes again.
    pub(super) fn check_writable(&self) -> Result<(), StoreError> {
        if self.unwritable.load(Ordering::SeqCst) {
            self.probe_directory()?;
        }
        Ok(())
    }

    /// Calls `observe` with the size of every group committed from now on
    /// (for metrics; the log itself has no use for it). Set once; a second
    /// call is ignored.
    pub fn observe_group_sizes(&self, observe: impl Fn(usize) + Send + Sync + 'static) {
        let _ = self.group_observer.set(Box::new(observe));
    }

    pub(super) fn group_committed(&self, records: usize) {
        if let Some(observe) = self.group_observer.get() {
            observe(records);
        }
    }

    /// [`jit_ssh_audit::AuditLog::ready`]: no earlier write failure, the
    /// indexer alive, and the directory takes writes.
    pub(super) fn check_ready(&self) -> Result<(), StoreError> {
        let poisoned = self.chain.lock().map_or(true, |c| c.poisoned);
        if poisoned || self.indexer.failed.load(Ordering::SeqCst) {
            return Err(StoreError::Poisoned);
        }
        self.probe_directory()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use jit_ssh_audit::record::{Actor, Event, RequestStep};
    use jit_ssh_audit::{AuditLog, StoreError};

    use super::{DiskAuditLog, PROBE_FILE};

    fn event(i: u64) -> Event {
        Event::RequestExpired(RequestStep {
            request: format!("r{i}"),
            user: "alice".into(),
            host: "h".into(),
            detail: String::new(),
        })
    }

    #[test]
    fn every_group_commit_is_reported_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(DiskAuditLog::open(dir.path()).unwrap());
        let (records, groups) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        {
            let (records, groups) = (records.clone(), groups.clone());
            log.observe_group_sizes(move |n| {
                records.fetch_add(n as u64, Ordering::SeqCst);
                groups.fetch_add(1, Ordering::SeqCst);
            });
        }
        let writers: Vec<_> = (0..8u64)
            .map(|w| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        log.append(Actor::System, event(w * 100 + i)).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(records.load(Ordering::SeqCst), 200);
        let g = groups.load(Ordering::SeqCst);
        assert!((1..=200).contains(&g), "{g} groups");
    }

    /// A directory that takes no writes: the probe fails (as it does for
    /// any user, root included, when a directory sits where the probe
    /// file goes; a read-only directory does it for everyone but root).
    #[test]
    fn a_directory_that_takes_no_writes_refuses_appends_until_it_does() {
        let dir = tempfile::tempdir().unwrap();
        let log = DiskAuditLog::open(dir.path()).unwrap();
        log.append(Actor::System, event(1)).unwrap();
        assert!(log.ready().is_ok());

        let blocker = dir.path().join(PROBE_FILE);
        std::fs::create_dir(&blocker).unwrap();
        assert!(matches!(log.ready(), Err(StoreError::Unwritable(_))));
        assert!(log.append(Actor::System, event(2)).is_err());
        assert_eq!(log.head().seq, 1, "nothing appended");

        // Back: the next append probes again and goes ahead, unpoisoned.
        std::fs::remove_dir(&blocker).unwrap();
        assert_eq!(log.append(Actor::System, event(3)).unwrap().seq, 2);
        assert!(log.ready().is_ok());
        assert!(log.verify().unwrap().first_break.is_none());
        assert!(!blocker.exists(), "the probe leaves no file behind");
    }
}
