//! A process for the recorder's unit tests to watch and end.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

/// `setsid sleep 30`: a process leading a kernel session of its own (its
/// pid is the session id), once it is — as the rest of a command is once
/// its wrapper was killed.
pub fn session_leader() -> (std::process::Child, i32) {
    let child = std::process::Command::new("setsid")
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while super::peer::session_of(pid) != Some(pid) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    (child, pid)
}
