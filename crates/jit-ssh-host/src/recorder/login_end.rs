//! The end of a watched login, enforced from the root side: 2 s after the
//! certificate's `valid_before` (unless its force-command says
//! `--keep-after-expiry`) or after the host's KRL revoked it, whatever
//! still runs below the login's sshd session processes, and in the kernel
//! sessions seen there, is ended. The wrapper ends the session itself
//! first, with its notice; this is for a login whose wrapper cannot (a
//! stopped wrapper under `record = "off"`, which no recording session
//! watches) or never ran (`ssh -N`, a process inside the grace).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ssh_key::Certificate;

use super::reap::{ProcessTable, Watched};
use crate::session::revocation::KrlWatch;

/// How long past `valid_before`, or after the KRL named the certificate,
/// the wrapper has to end the session itself (as for recorded sessions).
pub const END_GRACE: Duration = Duration::from_secs(2);

/// A login to end, and why (for the recorder's log).
pub struct Ending {
    pub watched: Watched,
    pub why: String,
}

impl Ending {
    pub fn below_sshd(sshd_pid: i32, why: String) -> Ending {
        Ending {
            watched: Watched::below_sshd(sshd_pid),
            why,
        }
    }
}

/// The deadline and revocation state of one login.
pub struct LoginEnd {
    /// `valid_before`, in Unix seconds, unless the policy keeps the
    /// session past it.
    deadline: Option<u64>,
    krl: KrlWatch,
    revoked_at: Option<Instant>,
    /// sshd session process → what was seen below it, so that what a
    /// killed or stopped wrapper left in its kernel sessions is found.
    watched: HashMap<i32, Watched>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl LoginEnd {
    pub fn new(cert: &Certificate, dir: &Path) -> LoginEnd {
        let keep = cert
            .critical_options()
            .get("force-command")
            .is_some_and(|fc| fc.split_whitespace().any(|w| w == "--keep-after-expiry"));
        LoginEnd {
            deadline: (!keep).then(|| cert.valid_before()),
            krl: KrlWatch::new(dir),
            revoked_at: None,
            watched: HashMap::new(),
        }
    }

    /// One look, with the process table `t`, at the login whose sshd
    /// session processes to end are `sessions`; `what` names the login
    /// in the log.
    pub fn look(
        &mut self,
        t: &ProcessTable,
        cert: &Certificate,
        sessions: &[i32],
        what: &str,
    ) -> Vec<Ending> {
        self.watched.retain(|s, _| sessions.contains(s));
        for &s in sessions {
            self.watched
                .entry(s)
                .or_insert_with(|| Watched::below_sshd(s))
                .refresh_from(t);
        }
        let why = if self
            .deadline
            .is_some_and(|d| now_unix() >= d.saturating_add(END_GRACE.as_secs()))
        {
            Some(format!(
                "{what}: its certificate expired and the session went on"
            ))
        } else {
            if self.revoked_at.is_none() {
                // An unreadable KRL is not a revocation (as for the
                // wrapper): the last good one stands.
                if let Ok(Some(r)) = self.krl.check(std::slice::from_ref(cert)) {
                    eprintln!("jit-ssh-host recorder: {what}: {r}");
                    self.revoked_at = Some(Instant::now());
                }
            }
            self.revoked_at
                .is_some_and(|at| at.elapsed() >= END_GRACE)
                .then(|| format!("{what}: its certificate was revoked and the session went on"))
        };
        let Some(why) = why else {
            return Vec::new();
        };
        self.watched
            .values()
            .map(|w| Ending {
                watched: w.clone(),
                why: why.clone(),
            })
            .collect()
    }
}
