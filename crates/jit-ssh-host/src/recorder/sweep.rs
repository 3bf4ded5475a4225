//! The recorder's once-a-second look at the logins the principals
//! command announced ([`super::expect::sweep`]), and ending those it
//! finds overdue.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::expect;
use super::login_end::Ending;

/// Once a second: watched logins whose sshd started something other
/// than their wrapper, or whose certificate ended, are ended.
pub async fn run(registry: expect::Shared, wrapper: PathBuf) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let ender = Ender::default();
    loop {
        tick.tick().await;
        let (r, w) = (registry.clone(), wrapper.clone());
        let bad = tokio::task::spawn_blocking(move || expect::sweep(&r, &w))
            .await
            .unwrap_or_default();
        ender.end_all(bad);
    }
}

/// Starts looking at young logins many times a second, on a thread of
/// its own ([`expect::look_young`]): a wrapper killed as soon as it
/// started is gone from below sshd within milliseconds, and with it what
/// the once-a-second look would have seen of the login.
pub fn start_young(registry: expect::Shared) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("young-logins".into())
        .spawn(move || loop {
            expect::look_young(&registry);
            std::thread::sleep(expect::YOUNG_EVERY);
        })
        .map(drop)
}

/// Hangs logins up beside the sweep, not inside it: a hang-up takes up
/// to 2.2 s (SIGKILL 2 s after the SIGHUP, then sshd's), and the sweep
/// waiting for each in turn let a user with a few logins that ignore
/// SIGHUP hold up every other login's check for as long as they liked.
#[derive(Default)]
pub struct Ender {
    /// sshd session processes (pid, start time) being hung up: the next
    /// looks find them overdue again and must not start a second one.
    busy: Arc<Mutex<HashSet<SshdId>>>,
}

/// An sshd session process: its pid and start time ([`Watched::id`]),
/// and the login's own cgroup: what is left of two logins in their
/// cgroups alone, their sshd gone, has no sshd process to tell them
/// apart.
///
/// [`Watched::id`]: super::reap::Watched::id
type SshdId = ((i32, Option<u64>), Option<PathBuf>);

impl Ender {
    /// Starts ending each of `bad` not already being ended; returns at
    /// once. One login's endings (its overdue process, its certificate's
    /// end: each with the kernel sessions it knows of) run in turn, as
    /// one hang-up.
    pub fn end_all(&self, bad: Vec<Ending>) {
        let mut by_login: Vec<(SshdId, Vec<Ending>)> = Vec::new();
        for ending in bad {
            let id = (
                ending.watched.id(),
                ending.watched.cgroup().map(std::path::Path::to_path_buf),
            );
            match by_login.iter_mut().find(|(i, _)| *i == id) {
                Some((_, all)) => all.push(ending),
                None => by_login.push((id, vec![ending])),
            }
        }
        for (id, endings) in by_login {
            if !lock(&self.busy).insert(id.clone()) {
                continue;
            }
            let done = Done(self.busy.clone(), id);
            tokio::task::spawn_blocking(move || {
                let _done = done;
                for ending in endings {
                    let did = ending.watched.hang_up();
                    eprintln!(
                        "jit-ssh-host recorder: {}: ended the login ({did})",
                        ending.why
                    );
                }
            });
        }
    }
}

/// Takes a login off the busy list when its hang-up is over, however it
/// ended (a hang-up that panicked must not leave the login exempt).
struct Done(Arc<Mutex<HashSet<SshdId>>>, SshdId);

impl Drop for Done {
    fn drop(&mut self) {
        lock(&self.0).remove(&self.1);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A stand-in for an sshd session process whose login ignores SIGHUP
    /// (`trap '' HUP` in a startup file): its children die only at the
    /// SIGKILL 2 s after the hang-up.
    fn stubborn_login() -> std::process::Child {
        std::process::Command::new("sh")
            .arg("-c")
            .arg("trap '' HUP; sleep 60 & sleep 60 & wait")
            .spawn()
            .unwrap()
    }

    /// Each login that ignores SIGHUP costs its hang-up 2 s before the
    /// SIGKILL. Ended one after the other, inside the sweep, N such
    /// logins held every other login's check for 2.2·N s: a user with a
    /// few of them ran a shell that skipped the wrapper (unrecorded,
    /// past its certificate) far longer than the documented 2–3 s.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_login_ignoring_the_hang_up_does_not_hold_up_the_others() {
        let mut logins: Vec<_> = (0..4).map(|_| stubborn_login()).collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let bad = logins
            .iter()
            .map(|c| {
                let pid = i32::try_from(c.id()).unwrap();
                Ending::below_sshd(pid, format!("test login {pid}"))
            })
            .collect();
        let started = Instant::now();
        Ender::default().end_all(bad);
        let mut left = logins.len();
        while left > 0 && started.elapsed() < Duration::from_secs(15) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            left = logins
                .iter_mut()
                .map(|c| c.try_wait().unwrap().is_none())
                .filter(|&running| running)
                .count();
        }
        let took = started.elapsed();
        for c in &mut logins {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert_eq!(left, 0, "logins still running after {took:?}");
        assert!(
            took < Duration::from_millis(3500),
            "4 logins ignoring SIGHUP took {took:?} to end (one hang-up takes about 2.2 s)"
        );
    }
}
