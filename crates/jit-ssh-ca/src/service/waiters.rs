//! Long polls: a client waiting on a request is woken when it changes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Waiters {
    /// Answers a long poll on request `id`: `read`s it at once, and again
    /// after each wakeup, until `done` holds for what was read, what was
    /// read differs from the first read (an approval too: the waiting
    /// engineer sees it at once), or `wait` is up. A wakeup that changed
    /// nothing visible (another replica's claim, a reconnected listener
    /// waking everyone) keeps waiting.
    pub async fn wait_for<T, E, Fut>(
        &self,
        id: &str,
        wait: Duration,
        done: impl Fn(&T) -> bool,
        mut read: impl FnMut() -> Fut,
    ) -> Result<T, E>
    where
        T: PartialEq,
        Fut: Future<Output = Result<T, E>>,
    {
        let deadline = tokio::time::Instant::now() + wait;
        let notify = self.get(id);
        let mut first: Option<T> = None;
        let result = loop {
            // Register interest before reading, so a change in between wakes us.
            let changed = notify.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let current = match read().await {
                Ok(s) => s,
                Err(e) => break Err(e),
            };
            let moved = first.as_ref().is_some_and(|f| *f != current);
            if done(&current) || moved || tokio::time::Instant::now() >= deadline {
                break Ok(current);
            }
            first.get_or_insert(current);
            // Timed out: read once more and answer that.
            let _ = tokio::time::timeout_at(deadline, changed).await;
        };
        self.release(id, notify);
        result
    }

    /// The notifier for request `id` (made on first use).
    fn get(&self, id: &str) -> Arc<Notify> {
        match self.map.lock() {
            Ok(mut m) => m.entry(id.to_owned()).or_default().clone(),
            // Without the map nobody is woken early; waiters still time out.
            Err(_) => Arc::new(Notify::new()),
        }
    }

    /// Wakes everyone waiting on `id`.
    pub fn wake(&self, id: &str) {
        if let Ok(m) = self.map.lock() {
            if let Some(n) = m.get(id) {
                n.notify_waiters();
            }
        }
    }

    /// Wakes every waiter (changes may have been missed): each reads again.
    pub fn wake_all(&self) {
        if let Ok(m) = self.map.lock() {
            for n in m.values() {
                n.notify_waiters();
            }
        }
    }

    /// Drops the entry for `id` when no waiter holds it any more.
    fn release(&self, id: &str, mine: Arc<Notify>) {
        if let Ok(mut m) = self.map.lock() {
            // One reference in the map, one here: nobody else waits.
            if Arc::strong_count(&mine) <= 2 {
                m.remove(id);
            }
        }
    }
}
