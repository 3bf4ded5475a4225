//! The end of a watched login, enforced from the root side: 2 s after the
//! certificate's `valid_before` (unless its force-command says
//! `--keep-after-expiry`) or after the host's KRL revoked it, whatever
//! still runs below the login's sshd session processes, and in the kernel
//! sessions seen there, is ended. The wrapper ends the session itself
//! first, with its notice; this is for a login whose wrapper cannot (a
//! stopped wrapper under `record = "off"`, which no recording session
//! watches) or never ran (`ssh -N`, a process inside the grace).
//!
//! What the login's processes used is kept after sshd's session process
//! is gone, for as long as a process of it still runs: a wrapper killed
//! from inside (`kill -9 $PPID; sleep 600`) leaves the rest of the
//! command, reparented away from sshd, and sshd closes the connection.
//! Under `record = "off"` nothing tells the recorder whether a wrapper
//! was killed or ended (it never speaks to the recorder), so what is
//! left is ended at the certificate's `valid_before` itself (no wrapper
//! remains to end it first) or at once when the KRL revokes it: the
//! certificate's end, as for the rest of the login.
//!
//! A login with a cgroup of its own ([`super::login_cgroup`]) is kept as
//! long as that cgroup holds a process, whichever session it is in, and
//! its end ends the whole cgroup.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ssh_key::Certificate;

use super::peer::{session_of, start_time};
use super::pid_reuse::Mark;
use super::reap::{ProcessTable, Watched};
use super::watched_logins::{SavedSession, SavedSid};
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

    /// The same, ending the login's own cgroup too (a process a startup
    /// file double-forked away before the wrapper should have run).
    pub fn in_cgroup(mut self, cgroup: Option<&Path>) -> Ending {
        self.watched = self.watched.with_cgroup(cgroup.map(Path::to_path_buf));
        self
    }
}

/// The deadline and revocation state of one login.
pub struct LoginEnd {
    /// `valid_before`, in Unix seconds, unless the policy keeps the
    /// session past it.
    deadline: Option<u64>,
    krl: KrlWatch,
    revoked_at: Option<Instant>,
    /// Per sshd session process (its pid and start time): what was seen
    /// below it, so that what a killed or stopped wrapper left in its
    /// kernel sessions is found; kept once that process is gone for as
    /// long as anything seen there still runs.
    watched: Vec<Watched>,
    /// What [`LoginEnd::saved`] returns, as of the last look.
    saved: Vec<SavedSession>,
    /// The login's own cgroup ([`super::login_cgroup`]), if it has one.
    cgroup: Option<std::path::PathBuf>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a login is due to end.
enum Due {
    Expired,
    Revoked,
}

impl Due {
    fn why(&self, what: &str, left: bool) -> String {
        let how = match self {
            Due::Expired => "its certificate expired",
            Due::Revoked => "its certificate was revoked",
        };
        if left {
            format!(
                "{what}: {how} and what the login left running went on after its connection closed"
            )
        } else {
            format!("{what}: {how} and the session went on")
        }
    }
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
            watched: Vec::new(),
            saved: Vec::new(),
            cgroup: None,
        }
    }

    /// Gives the login its own cgroup (before any look).
    pub fn set_cgroup(&mut self, cgroup: Option<std::path::PathBuf>) {
        for w in &mut self.watched {
            *w = w.clone().with_cgroup(cgroup.clone());
        }
        self.cgroup = cgroup;
    }

    /// The login's own cgroup, if it has one.
    pub fn cgroup(&self) -> Option<&std::path::Path> {
        self.cgroup.as_deref()
    }

    /// A login whose every sshd process and noted session is gone is
    /// still watched while its cgroup holds a process: a job that
    /// double-forked out of every session the recorder saw.
    fn keep_cgroup(&mut self) {
        if !self.watched.is_empty() {
            return;
        }
        if let Some(c) = self
            .cgroup
            .as_ref()
            .filter(|c| super::login_cgroup::populated(c))
        {
            self.watched.push(Watched::of_cgroup(c.clone()));
        }
    }

    /// The watch of sshd session process `s`, added (nothing noted yet)
    /// when new.
    fn of_session(&mut self, s: i32) -> &mut Watched {
        let id = (s, start_time(s));
        let i = match self.watched.iter().position(|w| w.id() == id) {
            Some(i) => i,
            None => {
                self.watched
                    .push(Watched::of_sshd(s).with_cgroup(self.cgroup.clone()));
                self.watched.len() - 1
            }
        };
        &mut self.watched[i]
    }

    /// Notes, from `t` (part of the process table), the kernel sessions
    /// below the login's sshd session processes `sessions`, forgetting
    /// none: the quick look at a young login, whose wrapper can be
    /// killed within milliseconds of starting.
    /// `mark` was read before `t`.
    pub fn note(&mut self, t: &ProcessTable, mark: Option<Mark>, sessions: &[i32]) {
        for &s in sessions {
            self.of_session(s).note_from(t, mark);
        }
    }

    /// Takes back what a previous recorder saw of the login
    /// ([`super::watched_logins`]): each sshd session process that is
    /// still the same process, and each kernel session whose oldest
    /// process then is still in it, or, that one gone, whose id was not
    /// handed out again since a look saw it or which holds a process
    /// older than that look (the named process can have ended within
    /// the second before the restart, the rest of the session not).
    pub fn restore(&mut self, saved: &[SavedSession]) {
        let now = Mark::now();
        let mut t: Option<ProcessTable> = None;
        for s in saved {
            let kept: Vec<SavedSid> = s
                .sids
                .iter()
                .filter(|k| {
                    if start_time(k.anchor) == Some(k.anchor_start)
                        && session_of(k.anchor) == Some(k.sid)
                    {
                        return true;
                    }
                    let (Some(seen), Some(now)) = (k.seen, now) else {
                        return false;
                    };
                    if !seen.same_boot(&now) {
                        return false;
                    }
                    let t = t.get_or_insert_with(super::reap::table);
                    let mut members = t.iter().filter(|(_, &(_, sid))| sid == k.sid);
                    if seen.may_hand_out(&now, k.sid) {
                        members.any(|(&p, _)| start_time(p).is_some_and(|st| st < seen.tick))
                    } else {
                        members.next().is_some()
                    }
                })
                .cloned()
                .collect();
            let sshd_same = s.sshd_start.is_some() && start_time(s.sshd) == s.sshd_start;
            if !kept.is_empty() || sshd_same {
                let sids = kept.iter().map(|k| k.sid).collect();
                self.watched.push(
                    Watched::restored(s.sshd, s.sshd_start, sids).with_cgroup(self.cgroup.clone()),
                );
                // Kept on as taken back, should this recorder end before
                // its first look.
                self.saved.push(SavedSession {
                    sids: kept,
                    ..s.clone()
                });
            }
        }
        self.keep_cgroup();
    }

    /// Whether nothing of the login is left to watch (sshd gone and
    /// nothing seen still running, nothing in its cgroup), as of the
    /// last look.
    pub fn is_over(&self) -> bool {
        self.watched.is_empty()
    }

    /// What to keep for a restarted recorder, as of the last look.
    pub fn saved(&self) -> &[SavedSession] {
        &self.saved
    }

    /// Whether the login is due to end: `(late, now)` for what still
    /// runs below sshd (whose wrapper has [`END_GRACE`] to end it first)
    /// and for what the login left once sshd was gone (no wrapper
    /// there: due at once).
    fn due(&mut self, cert: &Certificate, what: &str) -> (Option<Due>, Option<Due>) {
        let now = now_unix();
        if let Some(d) = self.deadline {
            if now >= d.saturating_add(END_GRACE.as_secs()) {
                return (Some(Due::Expired), Some(Due::Expired));
            }
            if now >= d {
                return (None, Some(Due::Expired));
            }
        }
        if self.revoked_at.is_none() {
            // An unreadable KRL is not a revocation (as for the
            // wrapper): the last good one stands.
            if let Ok(Some(r)) = self.krl.check(std::slice::from_ref(cert)) {
                eprintln!("jit-ssh-host recorder: {what}: {r}");
                self.revoked_at = Some(Instant::now());
            }
        }
        match self.revoked_at {
            Some(at) => (
                (at.elapsed() >= END_GRACE).then_some(Due::Revoked),
                Some(Due::Revoked),
            ),
            None => (None, None),
        }
    }

    /// One look, with the process table `t`, at the login whose sshd
    /// session processes now are `sessions` (none once the login's sshd
    /// is gone); those in `spared` have a recorded wrapper, whose
    /// session handler ends them. `what` names the login in the log.
    pub fn look(
        &mut self,
        t: &ProcessTable,
        mark: Option<Mark>,
        cert: &Certificate,
        sessions: &[i32],
        spared: &[i32],
        what: &str,
    ) -> Vec<Ending> {
        for &s in sessions {
            self.of_session(s);
        }
        for w in &mut self.watched {
            w.refresh_at(t, mark);
        }
        // An sshd process that is no longer one of the login's session
        // processes (the monitor, once its unprivileged child runs) is
        // not the login's to end; one that is gone is kept while
        // anything seen below it still runs, and so is every one of a
        // login whose monitor is gone (`sessions` empty).
        self.watched.retain(|w| {
            if sessions.is_empty() || !w.sshd_alive() {
                !w.is_over_in(t)
            } else {
                sessions.contains(&w.id().0)
            }
        });
        // A young login looked at before sshd forked its session
        // process has the same kernel sessions below the monitor and
        // below that child: once both are gone, one hang-up is enough.
        let mut covered: std::collections::BTreeSet<i32> = self
            .watched
            .iter()
            .filter(|w| w.sshd_alive())
            .flat_map(|w| w.sids().iter().copied())
            .collect();
        self.watched.retain(|w| {
            if w.sshd_alive() {
                return true;
            }
            let again = !w.sids().is_empty() && w.sids().is_subset(&covered);
            covered.extend(w.sids());
            !again
        });
        self.keep_cgroup();
        let saved: Vec<SavedSession> = self
            .watched
            .iter()
            .map(|w| SavedSession {
                sshd: w.id().0,
                sshd_start: w.id().1,
                sids: w
                    .anchors(t)
                    .into_iter()
                    .map(|(sid, anchor, anchor_start)| SavedSid {
                        sid,
                        anchor,
                        anchor_start,
                        seen: w.seen(sid),
                    })
                    .collect(),
            })
            .collect();
        // A newer look alone is no reason to write the file again.
        let unmarked = |v: &[SavedSession]| -> Vec<SavedSession> {
            let mut v = v.to_vec();
            v.iter_mut()
                .flat_map(|s| s.sids.iter_mut())
                .for_each(|k| k.seen = None);
            v
        };
        if unmarked(&saved) != unmarked(&self.saved) {
            self.saved = saved;
        }
        let (late, now) = self.due(cert, what);
        self.watched
            .iter()
            .filter_map(|w| {
                let due = if w.sshd_alive() {
                    late.as_ref().filter(|_| !spared.contains(&w.id().0))
                } else {
                    now.as_ref()
                };
                due.map(|d| Ending {
                    watched: w.clone(),
                    why: d.why(what, !w.sshd_alive()),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cert::forcing_until;

    const OFF: &str = "/usr/local/bin/jit-ssh-host session --record off --grant g";

    /// What a previous recorder kept of a login whose sshd process is
    /// gone (no process has pid `i32::MAX - 1`), with `sid`'s anchor.
    fn kept(sid: i32, anchor_start: u64) -> SavedSession {
        SavedSession {
            sshd: i32::MAX - 1,
            sshd_start: Some(1),
            sids: vec![SavedSid {
                sid,
                anchor: sid,
                anchor_start,
                seen: None,
            }],
        }
    }

    #[test]
    fn what_a_gone_sshd_left_ends_at_valid_before_itself_then_nothing_is_left() {
        let (mut child, sid) = super::super::test_job::session_leader();
        // valid_before is now: within the grace a live wrapper gets, past
        // the deadline for what no wrapper is left to end.
        let cert = forcing_until(OFF, now_unix());
        let mut end = LoginEnd::new(&cert, Path::new("/nonexistent"));
        end.restore(&[kept(sid, start_time(sid).unwrap())]);
        let due = end.look(
            &super::super::reap::table(),
            Mark::now(),
            &cert,
            &[],
            &[],
            "t",
        );
        assert_eq!(due.len(), 1);
        assert!(due[0].why.contains("left running"), "{}", due[0].why);
        assert_eq!(end.saved()[0].sids[0].sid, sid);
        due[0].watched.hang_up();
        let status = child.wait().unwrap();
        assert!(!status.success(), "the job was not ended: {status}");
        assert!(end
            .look(
                &super::super::reap::table(),
                Mark::now(),
                &cert,
                &[],
                &[],
                "t"
            )
            .is_empty());
        assert!(end.is_over());
    }

    /// The recorder restarts within a second of the oldest process of a
    /// kept session ending (the one it named), before it wrote the next
    /// oldest: a user who has their session's oldest process end every
    /// second keeps the file naming a gone process most of the time,
    /// and a payload younger than it in that session went free of the
    /// certificate's end at a restart.
    #[test]
    fn a_kept_session_whose_named_process_ended_just_before_a_restart_is_taken_back() {
        let leader = std::process::Command::new("setsid")
            .args(["sh", "-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let mut leader = leader;
        let sid = i32::try_from(leader.id()).unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        let payload = loop {
            let t = super::super::reap::table();
            let found = t
                .iter()
                .find(|(&p, &(_, s))| s == sid && p != sid)
                .map(|(&p, _)| p);
            if let Some(p) = found {
                break p;
            }
            assert!(Instant::now() < until, "no job in session {sid}");
            std::thread::sleep(Duration::from_millis(10));
        };
        // A look that saw the session the login's, then named its leader.
        std::thread::sleep(Duration::from_millis(30));
        let mut saved = kept(sid, start_time(sid).unwrap());
        saved.sids[0].seen = Mark::now();
        let _ = leader.kill();
        let _ = leader.wait();
        let cert = forcing_until(OFF, now_unix() + 600);
        // What another boot saw is not taken back.
        let mut other = saved.clone();
        other.sids[0].seen = saved.sids[0].seen.map(Mark::of_another_boot);
        let mut end = LoginEnd::new(&cert, Path::new("/nonexistent"));
        end.restore(&[other]);
        let other_boot_taken = !end.is_over();
        let mut end = LoginEnd::new(&cert, Path::new("/nonexistent"));
        end.restore(&[saved]);
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(payload).unwrap(),
            rustix::process::Signal::KILL,
        );
        assert!(
            !end.is_over(),
            "the payload {payload} still in session {sid} was not taken back"
        );
        assert!(!other_boot_taken, "another boot's session was taken back");
    }

    #[test]
    fn a_kept_session_whose_oldest_process_is_gone_is_not_taken_back() {
        let (mut child, sid) = super::super::test_job::session_leader();
        let cert = forcing_until(OFF, now_unix());
        let mut end = LoginEnd::new(&cert, Path::new("/nonexistent"));
        // Another process than the one kept holds that id now.
        end.restore(&[kept(sid, start_time(sid).unwrap() + 1)]);
        assert!(end.is_over());
        let _ = child.kill();
        let _ = child.wait();
    }

    /// What a previous recorder kept of a login whose sshd is gone and
    /// whose only process left is in no session it saw (a double fork):
    /// taken back by its cgroup, ended at `valid_before` with it, then
    /// over. Skipped where this machine has no writable cgroup2.
    #[test]
    fn what_is_left_in_a_logins_cgroup_alone_is_taken_back_and_ended() {
        use super::super::login_cgroup::{populated, remove, Hierarchy};
        let h = match Hierarchy::find() {
            Ok(h) => h,
            Err(e) => return eprintln!("skipped: {e}"),
        };
        let mut job = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = i32::try_from(job.id()).unwrap();
        let Ok(dir) = h.place(pid, start_time(pid).unwrap(), 1) else {
            let _ = job.kill();
            let _ = job.wait();
            return eprintln!("skipped: no cgroup could be made");
        };
        let cert = forcing_until(OFF, now_unix());
        let mut end = LoginEnd::new(&cert, Path::new("/nonexistent"));
        end.set_cgroup(Some(dir.clone()));
        end.restore(&[]);
        let taken_back = !end.is_over();
        let due = end.look(
            &super::super::reap::table(),
            Mark::now(),
            &cert,
            &[],
            &[],
            "t",
        );
        for d in &due {
            d.watched.hang_up();
        }
        let status = job.wait().unwrap();
        let still = populated(&dir);
        let over = end
            .look(
                &super::super::reap::table(),
                Mark::now(),
                &cert,
                &[],
                &[],
                "t",
            )
            .is_empty()
            && end.is_over();
        let _ = super::super::login_cgroup::kill(&dir);
        let _ = remove(&dir);
        assert!(
            taken_back,
            "a login whose cgroup holds a process was dropped"
        );
        assert_eq!(due.len(), 1);
        assert!(!status.success(), "the job was not ended: {status}");
        assert!(!still && over);
    }
}
