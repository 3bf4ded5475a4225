//! Long polls: a client waiting on a request is woken when it changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Waiters {
    /// The notifier for request `id` (made on first use).
    pub fn get(&self, id: &str) -> Arc<Notify> {
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

    /// Drops the entry for `id` when no waiter holds it any more.
    pub fn release(&self, id: &str, mine: Arc<Notify>) {
        if let Ok(mut m) = self.map.lock() {
            // One reference in the map, one here: nobody else waits.
            if Arc::strong_count(&mine) <= 2 {
                m.remove(id);
            }
        }
    }
}
