//! A job that double-forks out of a login (`setsid -f job`) on a host
//! without logind session scopes: it is reparented to init in a kernel
//! session of its own between two of the recorder's looks, and the
//! recorder, which followed logins by kernel session id below sshd, never
//! found it: it outlived the certificate and its revocation. Now the
//! recorder puts each watched login's sshd monitor into a cgroup of its
//! own before sshd accepts the login, so every process of the login is
//! born there and cannot leave, and ending the login ends the cgroup
//! (docs/sessions.md, "Ending sessions from the root side").

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jit_ssh_e2e::recorder::{login_cgroups_in, Recorder};
use jit_ssh_e2e::run;
use jit_ssh_e2e::session_host::{ended_after, kill_marked, now_unix, process_running, SessionHost};

/// How late after its deadline a leftover may end (as in
/// sessions_unrecorded_leftovers_e2e.rs: seen under 1.1 s there).
const LATE: f64 = 5.0;

/// The command that double-forks a job marked `marker` away, past the
/// recorder's first 5 s of quick looks at a young login (so only its
/// once-a-second look could see it, for the milliseconds `setsid -f`
/// takes), then ends normally.
fn double_fork(marker: &str) -> String {
    format!("sleep 5.5; setsid -f {marker} </dev/null >/dev/null 2>&1; echo started")
}

fn skip() -> bool {
    !jit_ssh_e2e::have_recorder_tools("sessions_login_cgroup_e2e")
}

#[test]
fn a_job_double_forked_out_of_a_login_ends_at_the_certificates_end() {
    if skip() {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let rec = Recorder::start(&h, None);
    // Not the login's: the recorder must leave it alone.
    let mut bystander = std::process::Command::new("setsid")
        .args(["sleep", "7379"])
        .spawn()
        .unwrap();
    let runs: Vec<(&str, &str, u64)> = std::thread::scope(|s| {
        let all: Vec<_> = [("off", "sleep 7370"), ("output", "sleep 7371")]
            .into_iter()
            .map(|(mode, marker)| {
                let (cert, _, valid_before) = h.certificate("14s", &rec.wrapper_args(mode));
                let h = &h;
                s.spawn(move || {
                    let out = run(h.ssh(&cert).arg(double_fork(marker)));
                    assert_eq!(out.stdout, b"started\n", "{mode}: {out:?}");
                    (mode, marker, valid_before)
                })
            })
            .collect();
        all.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let outlived: Vec<bool> = runs.iter().map(|r| process_running(r.1)).collect();
    let mut lates = Vec::new();
    for (&(mode, marker, valid_before), outlived) in runs.iter().zip(outlived) {
        let late = ended_after(marker, valid_before as f64, Duration::from_secs(30));
        lates.push((mode, outlived, late));
    }
    std::thread::sleep(Duration::from_secs(3));
    let bystander_ran = bystander.try_wait().unwrap().is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    let log = rec.log_text();
    for (mode, outlived, late) in lates {
        eprintln!("record {mode}: a double-forked job ended {late:?} s after valid_before");
        assert!(
            outlived,
            "{mode}: the job did not outlive the connection: the test shows nothing"
        );
        assert!(
            late.is_some_and(|l| l <= LATE),
            "record {mode}: the double-forked job outlived the certificate ({late:?} s); recorder log:\n{log}"
        );
    }
    assert!(
        bystander_ran,
        "the recorder ended a process not of the login; recorder log:\n{log}"
    );
    // Each login had its own, one however many times sshd asked the
    // principals command, and none is left once the login ended.
    let mut cgroups = login_cgroups_in(&log);
    let told = cgroups.len();
    cgroups.sort();
    cgroups.dedup();
    eprintln!("{told} announcements, {} cgroups", cgroups.len());
    assert_eq!(cgroups.len(), 2, "{log}");
    for c in cgroups {
        assert!(!c.exists(), "{} is left; log:\n{log}", c.display());
    }
}

#[test]
fn a_job_double_forked_out_of_a_login_ends_when_the_certificate_is_revoked() {
    if skip() {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let rec = Recorder::start(&h, None);
    let (cert, serial, _) = h.certificate("10m", &rec.wrapper_args("off"));
    let out = run(h.ssh(&cert).arg(double_fork("sleep 7372")));
    assert_eq!(out.stdout, b"started\n", "{out:?}");
    std::thread::sleep(Duration::from_millis(1500));
    let left = process_running("sleep 7372");
    if !left {
        kill_marked("sleep 7372");
    }
    assert!(left, "nothing was left to end: the test shows nothing");
    h.install_krl(&format!("serial: {serial}\n"));
    let revoked = now_unix();
    let late = ended_after("sleep 7372", revoked, Duration::from_secs(15));
    eprintln!("after the KRL: the double-forked job ended {late:?} s later");
    assert!(
        late.is_some_and(|l| l <= LATE + 2.0),
        "a revoked login's double-forked job went on ({late:?} s); recorder log:\n{}",
        rec.log_text()
    );
}

#[test]
fn a_recorder_restart_does_not_free_a_double_forked_job() {
    if skip() {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let mut rec = Recorder::start(&h, None);
    let (cert, _, valid_before) = h.certificate("16s", &rec.wrapper_args("off"));
    let out = run(h.ssh(&cert).arg(double_fork("sleep 7373")));
    assert_eq!(out.stdout, b"started\n", "{out:?}");
    std::thread::sleep(Duration::from_millis(1500));
    let first_log = rec.log_text();
    rec.stop();
    let rec = Recorder::start(&h, None);
    let left = process_running("sleep 7373");
    let late = ended_after("sleep 7373", valid_before as f64, Duration::from_secs(30));
    eprintln!(
        "after a recorder restart, the double-forked job ended {late:?} s after valid_before"
    );
    assert!(left, "nothing was left to end: the test shows nothing");
    assert!(
        late.is_some_and(|l| l <= LATE),
        "the double-forked job outlived the certificate across a restart ({late:?} s); first recorder's log:\n{first_log}\nsecond's:\n{}",
        rec.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    for c in login_cgroups_in(&first_log) {
        assert!(!c.exists(), "{} is left", c.display());
    }
}

/// A host where no cgroup can be made (here: the recorder pointed at a
/// hierarchy that does not exist) lets logins in as before and says
/// which protection is missing.
#[test]
fn without_a_cgroup_hierarchy_logins_go_on_and_the_recorder_says_what_is_missing() {
    if skip() {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let rec = Recorder::start_with_args(&h, &["--cgroup-root", "/nonexistent/cgroup2"]);
    for mode in ["off", "output"] {
        let (cert, _, _) = h.certificate("1m", &rec.wrapper_args(mode));
        let out = run(h.ssh(&cert).arg("echo hi"));
        assert_eq!(out.stdout, b"hi\n", "{mode}: {out:?}\n{}", rec.log_text());
    }
    // Followed by kernel session as before (the 10 ms look at a young
    // login included): the rest of a command whose wrapper it killed at
    // once still ends at the certificate's end.
    let (cert, _, valid_before) = h.certificate("8s", &rec.wrapper_args("off"));
    let out = run(h.ssh(&cert).arg("kill -9 $PPID; sleep 7377; echo escaped"));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("escaped"),
        "{out:?}"
    );
    let left = process_running("sleep 7377");
    let late = ended_after("sleep 7377", valid_before as f64, Duration::from_secs(25));
    eprintln!("without a cgroup, what a killed wrapper left ended {late:?} s after valid_before");
    assert!(left, "nothing was left to end: the test shows nothing");
    assert!(
        late.is_some_and(|l| l <= LATE),
        "without a cgroup, the rest of the command outlived the certificate ({late:?} s); log:\n{}",
        rec.log_text()
    );
    let log = rec.log_text();
    assert_eq!(
        log.matches("no cgroup for logins (").count(),
        1,
        "the missing protection is said once:\n{log}"
    );
    assert!(
        log.contains("a process that double-forks out of one between two looks is not ended"),
        "{log}"
    );
    assert!(login_cgroups_in(&log).is_empty(), "{log}");
}

/// A startup file that double-forks a job away and then skips the
/// wrapper: the recorder ends the login after its grace, and with it,
/// now, the job (before: it ran on to the certificate's end, 10 min).
#[test]
fn a_job_a_startup_file_double_forked_ends_with_the_login_that_skipped_the_wrapper() {
    if skip() {
        return;
    }
    let h = SessionHost::start_with_principals_command_and("AcceptEnv BASH_ENV\n");
    let rec = Recorder::start(&h, None);
    let rc = h.root.join("startup.sh");
    std::fs::write(
        &rc,
        "setsid -f sleep 7374 </dev/null >/dev/null 2>&1; exec -a bash-7375 bash --norc -i\n",
    )
    .unwrap();
    let (cert, _, _) = h.certificate("10m", &rec.wrapper_args("off"));
    let started = now_unix();
    let mut ssh = h
        .ssh(&cert)
        .arg("-o")
        .arg(format!("SetEnv=BASH_ENV={}", rc.display()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ended = jit_ssh_e2e::session_host::exited_at(&mut ssh, Duration::from_secs(20));
    kill_marked("bash-7375");
    let job = ended_after("sleep 7374", started, Duration::from_secs(10));
    eprintln!(
        "the login ended {:?} s after ssh started, the job it double-forked {job:?} s after",
        ended.map(|e| e - started)
    );
    assert!(
        ended.is_some(),
        "the login went on; log:\n{}",
        rec.log_text()
    );
    // The login (under 1.5 s), the 2 s grace, a look, the hang-up.
    assert!(
        job.is_some_and(|j| j <= 8.0),
        "the double-forked job outlived the login that skipped the wrapper ({job:?} s); log:\n{}",
        rec.log_text()
    );
}

/// A later session over a multiplexed connection (`ControlMaster`)
/// whose wrapper is killed at once, past the login's first 5 s of quick
/// looks: the rest of its command is in the login's cgroup, and ends
/// with the certificate.
#[test]
fn what_a_killed_wrapper_of_a_multiplexed_session_left_ends_at_the_certificates_end() {
    if skip() {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let rec = Recorder::start(&h, None);
    let (cert, _, valid_before) = h.certificate("14s", &rec.wrapper_args("off"));
    let ctl = h.root.join("ctl");
    let mut master = h
        .ssh(&cert)
        .args(["-M", "-S"])
        .arg(&ctl)
        .arg("-N")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !ctl.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(6));
    let out = run(h
        .ssh(&cert)
        .arg("-S")
        .arg(&ctl)
        .arg("kill -9 $PPID; sleep 7376; echo escaped"));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("escaped"),
        "{out:?}"
    );
    let left = process_running("sleep 7376");
    let late = ended_after("sleep 7376", valid_before as f64, Duration::from_secs(30));
    let _ = master.kill();
    let _ = master.wait();
    eprintln!("a killed multiplexed session's command ended {late:?} s after valid_before");
    assert!(left, "nothing was left to end: the test shows nothing");
    // The connection's sshd still runs: its wrapper-less end comes 2 s
    // after valid_before.
    assert!(
        late.is_some_and(|l| l <= LATE),
        "the rest of the command outlived the certificate ({late:?} s); log:\n{}",
        rec.log_text()
    );
}

/// The recorder's CPU time in seconds (`/proc/PID/stat` utime + stime).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime: fields 14 and 15, the 12th and 13th after the name.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// The recorder's CPU per login (each running `sleep 6`), with a cgroup per login (no 10 ms look
/// at young logins) and without one (`--cgroup-root` pointing nowhere:
/// the look runs). `JIT_SSH_BENCH_BIN` names a release build to measure;
/// default the debug one. Ignored by default:
/// `cargo test -p jit-ssh-e2e --test sessions_login_cgroup_e2e -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_recorder_cpu_per_login() {
    if skip() {
        return;
    }
    let program = std::env::var_os("JIT_SSH_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| jit_ssh_e2e::bin("jit-ssh-host"));
    // The certificates' wrapper is the debug build's.
    let wrapper = jit_ssh_e2e::bin("jit-ssh-host").display().to_string();
    const LOGINS: u32 = 10;
    for round in 0..2 {
        for (name, extra) in [
            ("own cgroup", &["--wrapper", &wrapper][..]),
            (
                "no cgroup",
                &[
                    "--wrapper",
                    &wrapper,
                    "--cgroup-root",
                    "/nonexistent/cgroup2",
                ][..],
            ),
        ] {
            let h = SessionHost::start_with_principals_command();
            let rec = Recorder::start_program_with(&h, &program, extra);
            let pid = rec.child.id();
            std::thread::sleep(Duration::from_secs(2));
            let idle_from = cpu_seconds(pid);
            std::thread::sleep(Duration::from_secs(10));
            let idle = cpu_seconds(pid) - idle_from;
            let from = cpu_seconds(pid);
            let started = Instant::now();
            // Logins that last past their 5 s of quick looks, side by
            // side as on a busy host.
            let clients: Vec<_> = (0..LOGINS)
                .map(|_| {
                    let (cert, _, _) = h.certificate("1m", &rec.wrapper_args("off"));
                    h.ssh(&cert).arg("sleep 6").spawn().unwrap()
                })
                .collect();
            for mut c in clients {
                assert!(c.wait().unwrap().success());
            }
            // Past every login's 5 s of quick looks.
            std::thread::sleep(Duration::from_secs(6));
            let took = started.elapsed().as_secs_f64();
            let used = cpu_seconds(pid) - from - idle * took / 10.0;
            eprintln!(
                "round {round}, {name}: {:.0} ms of recorder CPU per login over {LOGINS} logins (idle {:.0} ms/s subtracted), {}",
                used * 1000.0 / f64::from(LOGINS),
                idle * 100.0,
                program.display()
            );
        }
    }
}

/// sshd checks that the certificate names a principal the principals
/// command printed after the command announced the login (and so got
/// it a cgroup): a certificate for a principal the account does not list
/// is refused then. Its monitor exits and the empty cgroup is removed,
/// not left behind for each refused try.
#[test]
fn a_login_sshd_refuses_after_the_announcement_leaves_no_cgroup_behind() {
    if skip() {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let rec = Recorder::start(&h, None);
    let (cert, _, _) = h.certificate("1m", &rec.wrapper_args("off"));
    // The account no longer lists the certificate's principal.
    let listed = h.dir.join("principals").join(&h.account);
    std::fs::write(&listed, "someone-else@db.test\n").unwrap();
    let out = run(h.ssh(&cert).arg("echo in"));
    assert_ne!(
        out.stdout, b"in\n",
        "a certificate of no listed principal got in"
    );
    let made = login_cgroups_in(&rec.log_text());
    assert!(
        !made.is_empty(),
        "no cgroup was made for the refused login: the test shows nothing; log:\n{}",
        rec.log_text()
    );
    let until = Instant::now() + Duration::from_secs(5);
    while made.iter().any(|c| c.exists()) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<_> = made.iter().filter(|c| c.exists()).collect();
    assert!(left.is_empty(), "{left:?} left; log:\n{}", rec.log_text());
}

/// A login that ends while no recorder runs leaves its cgroup empty:
/// the next recorder removes it when it starts.
#[test]
fn a_cgroup_whose_login_ended_while_the_recorder_was_down_is_removed_at_its_start() {
    if skip() {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let mut rec = Recorder::start(&h, None);
    let (cert, _, _) = h.certificate("1m", &rec.wrapper_args("off"));
    let mut ssh = h.ssh(&cert).arg("sleep 4").spawn().unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let made = loop {
        let made = login_cgroups_in(&rec.log_text());
        if !made.is_empty() || Instant::now() > until {
            break made;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // sshd asks the principals command again for the key that signs:
    // the recorder goes once the login is in.
    std::thread::sleep(Duration::from_millis(2000));
    rec.stop();
    assert!(ssh.wait().unwrap().success());
    assert!(
        !made.is_empty(),
        "no cgroup was made: the test shows nothing"
    );
    assert!(
        made.iter().all(|c| c.exists()),
        "removed without a recorder: the test shows nothing"
    );
    let rec = Recorder::start(&h, None);
    let until = Instant::now() + Duration::from_secs(5);
    while made.iter().any(|c| c.exists()) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<_> = made.iter().filter(|c| c.exists()).collect();
    assert!(left.is_empty(), "{left:?} left; log:\n{}", rec.log_text());
}
