//! Reopening a sled database this process just dropped, in tests.
//!
//! sled's background threads may hold a dropped database's file lock a
//! moment longer, so an immediate reopen in the same process can fail with
//! "could not acquire lock" (seen in about 3 runs in 20, and once in CI).

use std::time::{Duration, Instant};

/// Calls `open` until it succeeds, for up to 10 s.
pub(crate) fn until_unlocked<T, E: std::fmt::Display>(mut open: impl FnMut() -> Result<T, E>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open() {
            Ok(db) => return db,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("reopening the sled database: {e}"),
        }
    }
}
