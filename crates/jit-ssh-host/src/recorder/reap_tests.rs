//! Tests of [`super`]: what the recorder finds of a login, and what it
//! costs.

use super::*;

#[test]
fn descendants_are_found_through_generations() {
    let t = HashMap::from([(10, (1, 10)), (11, (10, 11)), (12, (11, 12)), (20, (1, 20))]);
    let mut d = descendants(&t, 10);
    d.sort();
    assert_eq!(d, vec![11, 12]);
}

/// This test process stands for sshd's; the tables are made up.
fn watching() -> (Watched, i32) {
    let me = i32::try_from(std::process::id()).unwrap();
    let w = Watched {
        sshd_pid: me,
        sshd_start: start_time(me),
        sids: BTreeSet::new(),
        since: BTreeMap::new(),
        spare_sids: BTreeSet::from([0, 5]),
        scope: None,
        cgroup: None,
    };
    (w, me)
}

#[test]
fn a_zombie_is_not_in_the_process_table() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while crate::proc_stat::read(pid).is_some_and(|s| crate::proc_stat::field(&s, 0) != Some("Z"))
        && std::time::Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Not reaped yet: a zombie, whose pid and session are still taken.
    assert!(crate::proc_stat::read(pid).is_some());
    let me = i32::try_from(std::process::id()).unwrap();
    assert!(!table().contains_key(&pid));
    assert!(!subtree(me).contains_key(&pid));
    let _ = child.wait();
}

#[test]
fn a_session_id_reused_after_its_session_ended_is_not_hung_up() {
    // sshd (in sshd's session 5); the user's job 11 calls setsid.
    let (mut w, s) = watching();
    w.refresh_from(&HashMap::from([(s, (1, 5)), (11, (s, 11)), (12, (11, 11))]));
    assert!(w.sids.contains(&11));
    // The job ends; later pid 11 is another user's new session leader.
    w.refresh_from(&HashMap::from([(s, (1, 5))]));
    let t = HashMap::from([(s, (1, 5)), (11, (1, 11)), (30, (11, 11))]);
    let m = w.members_from(&t);
    assert!(!m.contains(&11) && !m.contains(&30), "{m:?}");
}

#[test]
fn what_a_killed_wrapper_left_in_a_seen_session_is_still_hung_up() {
    let (mut w, s) = watching();
    w.refresh_from(&HashMap::from([(s, (1, 5)), (11, (s, 11)), (12, (11, 11))]));
    // 11 died; 12 was reparented to init, still in session 11.
    let t = HashMap::from([(s, (1, 5)), (12, (1, 11))]);
    w.refresh_from(&t);
    assert!(w.members_from(&t).contains(&12));
}

/// A user's job that leaves a kept session with `setsid` once sshd
/// is gone (`ssh host 'kill -9 $PPID; setsid sleep 600'`): nothing
/// runs below sshd any more, but the job is a child of a process of
/// a session the login used.
#[test]
fn a_job_that_leaves_a_kept_session_after_sshd_is_gone_is_still_found() {
    let (mut w, s) = watching();
    w.refresh_from(&HashMap::from([(s, (1, 5)), (11, (s, 11))]));
    // sshd's session process is gone (its pid is another process's).
    w.sshd_start = w.sshd_start.map(|t| t.saturating_sub(1));
    // 11, reparented to init, runs `setsid sleep`: 12 leads session 12.
    let t = HashMap::from([(11, (1, 11)), (12, (11, 12)), (13, (12, 12))]);
    w.refresh_from(&t);
    let m = w.members_from(&t);
    assert!(m.contains(&12) && m.contains(&13), "{m:?}");
    // Once 11 is gone, session 12 is still the login's.
    let t = HashMap::from([(12, (1, 12))]);
    w.refresh_from(&t);
    assert_eq!(w.members_from(&t), vec![12]);
}

/// A login with thousands of processes, each in a kernel session of
/// its own (`for i in $(seq 10000); do setsid sleep 600 & done`): a
/// look at it runs in the once-a-second sweep (and the young-login
/// look) under the registry's lock, which every other login's
/// principals command waits for (5 s, then sshd refuses the login).
#[test]
fn a_look_at_a_login_with_thousands_of_sessions_stays_short() {
    let (mut w, s) = watching();
    const N: i32 = 10_000;
    // Above any pid_max (at most 2^22): no real process has these.
    let base = 1 << 23;
    let mut t: ProcessTable = (0..N).map(|i| (base + i, (s, base + i))).collect();
    t.insert(s, (1, 5));
    let started = std::time::Instant::now();
    w.refresh_from(&t);
    let anchors = w.anchors(&t);
    let members = w.members_from(&t);
    let mut young = w.clone();
    young.note_from(&t, Mark::now());
    let took = started.elapsed();
    eprintln!("a look at {N} processes in as many sessions: {took:?}");
    assert_eq!(w.sids.len(), N as usize);
    assert_eq!(members.len(), N as usize);
    // No process has those pids: none anchors its session.
    assert!(anchors.is_empty());
    // Well inside the principals command's 5 s, on a loaded machine too.
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn what_runs_below_a_reused_sshd_pid_is_not_hung_up() {
    let (mut w, s) = watching();
    let t = HashMap::from([(s, (1, 5)), (40, (s, 40))]);
    assert_eq!(w.members_from(&t), vec![40]);
    // sshd's process went away and its pid now belongs to another
    // process (a later start), with a child of its own.
    w.sshd_start = w.sshd_start.map(|t| t.saturating_sub(1));
    let t = HashMap::from([(s, (1, 77)), (41, (s, 77))]);
    assert_eq!(w.members_from(&t), Vec::<i32>::new());
    assert!(!w.sshd_alive());
}

#[test]
fn only_a_logind_session_scope_is_taken() {
    assert_eq!(
        session_scope("0::/user.slice/user-1000.slice/session-7.scope\n"),
        Some(v2_mount().join("user.slice/user-1000.slice/session-7.scope"))
    );
    for broad in [
        "0::/\n",
        "0::/system.slice/ssh.service\n",
        "0::/user.slice\n",
    ] {
        assert_eq!(session_scope(broad), None, "{broad}");
    }
}

/// What the quick look at a young login costs
/// (`expect::look_young`, every 10 ms for 5 s), against a pass over
/// all of /proc. `cargo test -p jit-ssh-host --lib
/// measure_a_look_at_a_young_login -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_a_look_at_a_young_login() {
    // A login's size: sshd's session process, the wrapper, the
    // command's shell and two jobs.
    let mut c = std::process::Command::new("sh")
        .arg("-c")
        .arg("sleep 30 & sleep 30 & (sleep 30 & wait) & wait")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = i32::try_from(c.id()).unwrap();
    let n = subtree(pid).len();
    let t = std::time::Instant::now();
    for _ in 0..1000 {
        let _ = subtree(pid);
    }
    let one = t.elapsed() / 1000;
    let t = std::time::Instant::now();
    for _ in 0..20 {
        let _ = table();
    }
    let all = t.elapsed() / 20;
    let _ = c.kill();
    let _ = c.wait();
    eprintln!(
        "a look at {n} processes: {one:?}; at all {} processes: {all:?}",
        table().len()
    );
}

/// A kept session whose processes all end, and whose id the kernel
/// hands to another session's leader before the next look: a user who
/// cycled the pids up to just below it (32,768 forks on this VM's
/// `pid_max`) and then ended their job, so that the next login's sshd
/// or a daemon that calls setsid gets it. Here root sets the kernel's
/// last pid instead of cycling. That session is not the login's.
#[test]
fn a_session_id_handed_out_again_between_two_looks_is_not_hung_up() {
    const LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";
    let (mut job, sid) = super::super::test_job::session_leader();
    // A login whose sshd is gone and which left that session.
    let mut w = Watched::restored(i32::MAX - 1, Some(1), BTreeSet::from([sid]));
    w.refresh_from(&table());
    assert!(w.sids.contains(&sid));
    let _ = job.kill();
    let _ = job.wait();
    // Other builds fork too: retry until the new leader has that pid.
    let mut victim = None;
    for _ in 0..50 {
        if std::fs::write(LAST_PID, (sid - 1).to_string()).is_err() {
            eprintln!("cannot write {LAST_PID} (not root?): nothing shown");
            return;
        }
        let (mut c, pid) = super::super::test_job::session_leader();
        if pid == sid {
            victim = Some(c);
            break;
        }
        let _ = c.kill();
        let _ = c.wait();
    }
    let Some(mut victim) = victim else {
        panic!("pid {sid} never came back: nothing shown");
    };
    let t = table();
    w.refresh_from(&t);
    let m = w.members_from(&t);
    let _ = victim.kill();
    let _ = victim.wait();
    assert!(
        !m.contains(&sid),
        "another session that got the kept id {sid} would be hung up: {m:?}"
    );
}

/// On a hybrid layout (cgroup2 at `/sys/fs/cgroup/unified`: this VM,
/// and many hosts with logind) a login's scope was looked for below
/// `/sys/fs/cgroup`, where no cgroup2 is: none of its processes was
/// found, and what left the login's sessions outlived its end. A real
/// scope-shaped cgroup with a process in it, where cgroup2 is mounted.
#[test]
fn a_logind_scope_is_found_where_cgroup2_is_mounted() {
    use super::super::login_cgroup::{mount_in, procs};
    let Some(mount) = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|t| mount_in(&t))
    else {
        return eprintln!("skipped: no cgroup2");
    };
    let me = std::process::id();
    let slice = mount.join("user.slice");
    let made_slice = std::fs::create_dir(&slice).is_ok();
    let user = slice.join(format!("user-review{me}.slice"));
    let scope = user.join(format!("session-review{me}.scope"));
    let cleanup = || {
        let _ = std::fs::remove_dir(&scope);
        let _ = std::fs::remove_dir(&user);
        if made_slice {
            let _ = std::fs::remove_dir(&slice);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&scope) {
        cleanup();
        return eprintln!("skipped: {e}");
    }
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let moved = std::fs::write(scope.join("cgroup.procs"), pid.to_string());
    let w = Watched::of_sshd(pid);
    let found = w.scope.as_deref().map(procs);
    let _ = child.kill();
    let _ = child.wait();
    cleanup();
    moved.unwrap();
    assert_eq!(found, Some(vec![pid]), "scope {:?}", w.scope);
}
