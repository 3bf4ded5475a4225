//! Group commit: concurrent writers queue their jobs; whichever writer
//! finds no commit running becomes the leader, takes the whole queue, and
//! commits it in one go (for the audit log: one atomic batch and one
//! flush). Every writer then gets its own result. Durability costs one
//! write and one fsync per group instead of one per record, and writes
//! stay in queue order.
//!
//! If a group's commit fails, every job in it fails with the same error.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

struct Inner<J, R, E> {
    queue: Vec<(u64, J)>,
    next_ticket: u64,
    results: HashMap<u64, Result<R, Arc<E>>>,
    leading: bool,
}

pub struct GroupCommit<J, R, E> {
    inner: Mutex<Inner<J, R, E>>,
    done: Condvar,
}

/// Why a job did not commit.
#[derive(Debug)]
pub enum GroupError<E> {
    /// The commit of this job's group failed.
    Commit(Arc<E>),
    /// A writer panicked while committing: the outcome is unknown.
    Poisoned,
}

impl<J, R, E> Default for GroupCommit<J, R, E> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                queue: Vec::new(),
                next_ticket: 0,
                results: HashMap::new(),
                leading: false,
            }),
            done: Condvar::new(),
        }
    }
}

impl<J, R, E> GroupCommit<Vec<J>, Vec<R>, E> {
    /// For jobs that are batches (the audit logs' records of one step):
    /// queues `batch` as one job; `commit` sees every batch of the group
    /// as one flat list (one transaction, one flush), and each batch gets
    /// its own results back, in order.
    pub fn submit_batch(
        &self,
        batch: Vec<J>,
        commit: impl Fn(Vec<J>) -> Result<Vec<R>, E>,
    ) -> Result<Vec<R>, GroupError<E>> {
        self.submit(batch, |batches| {
            let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
            let mut results = commit(batches.into_iter().flatten().collect())?.into_iter();
            Ok(sizes
                .into_iter()
                .map(|n| results.by_ref().take(n).collect())
                .collect())
        })
    }
}

/// What an audit log's append reports for a group that did not commit.
impl From<GroupError<jit_ssh_audit::StoreError>> for jit_ssh_audit::AppendError {
    fn from(e: GroupError<jit_ssh_audit::StoreError>) -> Self {
        match e {
            GroupError::Commit(e) => Self::Commit(e),
            GroupError::Poisoned => Self::Commit(Arc::new(jit_ssh_audit::StoreError::Poisoned)),
        }
    }
}

impl<J, R, E> GroupCommit<J, R, E> {
    fn lock(&self) -> Result<MutexGuard<'_, Inner<J, R, E>>, GroupError<E>> {
        self.inner.lock().map_err(|_| GroupError::Poisoned)
    }

    /// Queues `job` and returns its result once its group is committed.
    /// `commit` must return one result per job, in order, or fail whole.
    pub fn submit(
        &self,
        job: J,
        commit: impl Fn(Vec<J>) -> Result<Vec<R>, E>,
    ) -> Result<R, GroupError<E>> {
        let mut g = self.lock()?;
        let ticket = g.next_ticket;
        g.next_ticket += 1;
        g.queue.push((ticket, job));
        loop {
            if let Some(result) = g.results.remove(&ticket) {
                return result.map_err(GroupError::Commit);
            }
            if g.leading {
                g = self.done.wait(g).map_err(|_| GroupError::Poisoned)?;
                continue;
            }
            g.leading = true;
            let (tickets, jobs): (Vec<u64>, Vec<J>) =
                std::mem::take(&mut g.queue).into_iter().unzip();
            drop(g);
            let outcome = commit(jobs);
            g = self.lock()?;
            match outcome {
                Ok(results) => {
                    for (t, r) in tickets.into_iter().zip(results) {
                        g.results.insert(t, Ok(r));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for t in tickets {
                        g.results.insert(t, Err(e.clone()));
                    }
                }
            }
            g.leading = false;
            self.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn concurrent_jobs_share_commits_and_keep_order() {
        let gc: Arc<GroupCommit<u64, u64, ()>> = Arc::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let commits = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..16u64)
            .map(|w| {
                let (gc, log, commits) = (gc.clone(), log.clone(), commits.clone());
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let job = w * 1000 + i;
                        let pos = gc
                            .submit(job, |jobs| {
                                commits.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                let mut l = log.lock().unwrap();
                                Ok(jobs
                                    .into_iter()
                                    .map(|j| {
                                        l.push(j);
                                        l.len() as u64 - 1
                                    })
                                    .collect())
                            })
                            .unwrap();
                        assert_eq!(log.lock().unwrap()[pos as usize], job);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(log.lock().unwrap().len(), 3200);
        let n = commits.load(Ordering::SeqCst);
        assert!(n < 3200, "{n} commits for 3200 jobs: no grouping");
        // Each writer's jobs were committed in the order it submitted them.
        let l = log.lock().unwrap();
        for w in 0..16u64 {
            let mine: Vec<u64> = l.iter().copied().filter(|j| j / 1000 == w).collect();
            assert!(mine.windows(2).all(|p| p[0] < p[1]));
        }
    }

    #[test]
    fn a_failed_commit_fails_every_job_in_the_group() {
        let gc: GroupCommit<u8, u8, &str> = GroupCommit::default();
        let r = gc.submit(1, |_| Err("disk gone"));
        assert!(matches!(r, Err(GroupError::Commit(e)) if *e == "disk gone"));
        assert_eq!(gc.submit(2, Ok).unwrap(), 2);
    }
}
