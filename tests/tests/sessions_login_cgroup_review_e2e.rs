//! What the recorder's login cgroups (docs/sessions.md, "Logins' own
//! cgroups") must not end: a process that is not the login's but was
//! started from inside it, on a host without systemd, where a daemon
//! restarted from a shell (`service … restart`) is born in that shell's
//! cgroup, and a login's end kills every process of its cgroup.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jit_ssh_e2e::recorder::{login_cgroups_in, Recorder};
use jit_ssh_e2e::session_host::{kill_marked, now_unix, process_running, SessionHost};

/// As in sessions_login_cgroup_e2e.rs.
const LATE: f64 = 5.0;

/// The first login cgroup the recorder said it made, waiting for it.
fn first_cgroup(rec: &Recorder, within: Duration) -> PathBuf {
    let until = Instant::now() + within;
    loop {
        let log = rec.log_text();
        if let Some(p) = login_cgroups_in(&log).into_iter().next() {
            return p;
        }
        assert!(Instant::now() < until, "no login cgroup:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An admin restarts the recorder from a shell of a watched login on a
/// host without systemd (`service jit-ssh-recorder restart`): the new
/// recorder is born in that login's cgroup. At the login's end it killed
/// that cgroup, and itself with it: every other login went unwatched and
/// no new one could get in.
#[test]
fn a_recorder_restarted_from_inside_a_login_outlives_that_login() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_login_cgroup_review_e2e") {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let mut rec = Recorder::start(&h, None);
    let (cert, _, valid_before) = h.certificate("14s", &rec.wrapper_args("off"));
    // A job of the login, left in its cgroup.
    let out = jit_ssh_e2e::run(
        h.ssh(&cert)
            .arg("setsid -f sleep 7391 </dev/null >/dev/null 2>&1; echo started"),
    );
    assert_eq!(out.stdout, b"started\n", "{out:?}");
    let cgroup = first_cgroup(&rec, Duration::from_secs(10));
    let started = process_running("sleep 7391");
    rec.stop();
    // Started by a process of that login: born in its cgroup.
    let script = h.root.join("recorder-from-the-login");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ > '{}/cgroup.procs' || exit 1\nexec '{}' \"$@\"\n",
            cgroup.display(),
            jit_ssh_e2e::bin("jit-ssh-host").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut rec = Recorder::start_program(&h, &script);
    let until = Instant::now() + Duration::from_secs(30);
    while process_running("sleep 7391") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let late = now_unix() - valid_before as f64;
    kill_marked("sleep 7391");
    std::thread::sleep(Duration::from_secs(3));
    let recorder_ran = rec.child.try_wait().unwrap().is_none();
    let log = rec.log_text();
    eprintln!("the login ended {late:.2} s after valid_before; log:\n{log}");
    assert!(started, "the login never ran: the test shows nothing");
    assert!(
        (-1.0..=LATE).contains(&late),
        "the login did not end at its certificate's end ({late:.2} s after it); log:\n{log}"
    );
    assert!(
        recorder_ran,
        "the recorder ended itself with the login it was started in; log:\n{log}"
    );
}

/// On a host with logind (`UsePAM yes`, pam_systemd) the login's own
/// cgroup is made when the principals command announces the login, and
/// then, at PAM's session start and before sshd forks anything of the
/// login, logind moves the monitor into its session scope: the login
/// runs outside that cgroup, which is left empty. A wrapper killed at
/// once must still leave nothing past the certificate's end (the 10 ms
/// look at a young login, skipped for a login with a cgroup). Here a
/// principals command stand-in does logind's move: once the real one
/// has answered, and before sshd reads that answer's end, it moves the
/// monitor into a cgroup of its own.
#[test]
fn a_wrapper_killed_at_once_leaves_nothing_when_logind_moved_the_login_out_of_its_cgroup() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_login_cgroup_review_e2e") {
        return;
    }
    let Some(mount) = cgroup2_mount() else {
        return eprintln!("skipped: no cgroup2");
    };
    let scope = mount.join(format!("jit-ssh-review-logind-{}", std::process::id()));
    std::fs::create_dir(&scope).unwrap();
    let moved_log =
        std::env::temp_dir().join(format!("jit-ssh-review-moved-{}", std::process::id()));
    // The background part holds sshd's end of the pipe open (sshd reads
    // the answer to its end before it goes on) until the real command
    // has exited, then moves the monitor and lets sshd go on.
    let (h, _bin) = host_with_stand_in(&format!(
        "(\n  while grep -q '^State:.*[RSD]' /proc/$$/status 2>/dev/null; do sleep 0.01; done\n  echo $m > '{}/cgroup.procs' && echo $m >> '{}'\n) &\n",
        scope.display(),
        moved_log.display(),
    ));
    let rec = Recorder::start(&h, None);
    let (cert, _, valid_before) = h.certificate("10s", &rec.wrapper_args("off"));
    let out = jit_ssh_e2e::run(
        h.ssh(&cert)
            .arg("kill -9 $PPID; exec sleep 7393 </dev/null >/dev/null 2>&1"),
    );
    let moved = std::fs::read_to_string(&moved_log).unwrap_or_default();
    let _ = std::fs::remove_file(&moved_log);
    let left = process_running("sleep 7393");
    let until = Instant::now() + Duration::from_secs(25);
    while process_running("sleep 7393") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let late = now_unix() - valid_before as f64;
    kill_marked("sleep 7393");
    let log = rec.log_text();
    let _ = std::fs::write(scope.join("cgroup.kill"), "1");
    std::thread::sleep(Duration::from_millis(300));
    for e in std::fs::read_dir(&scope).unwrap().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir(e.path());
        }
    }
    let _ = std::fs::remove_dir(&scope);
    eprintln!("what the killed wrapper left ended {late:.2} s after valid_before; moved {moved:?}; {out:?}");
    assert!(
        left && !moved.trim().is_empty(),
        "nothing was left outside the login's cgroup: the test shows nothing; moved {moved:?}; {out:?}; log:\n{log}"
    );
    assert!(
        (-1.0..=LATE).contains(&late),
        "what the killed wrapper left did not end at the certificate's end ({late:.2} s after it); log:\n{log}"
    );
}

/// Where cgroup2 is mounted, from mountinfo.
fn cgroup2_mount() -> Option<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()?
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .map(|l| PathBuf::from(l.split(' ').nth(4).unwrap()))
}

/// A host whose sshd runs a principals command stand-in: `prelude` (sh;
/// `$m` is sshd's monitor), then the real command, exec'd so that its
/// parent is still the monitor. The directory it lives in goes with the
/// second value.
fn host_with_stand_in(prelude: &str) -> (SessionHost, tempfile::TempDir) {
    // sshd runs a principals command only from root's directories.
    let bin_dir = tempfile::Builder::new()
        .prefix("jit-ssh-review-")
        .tempdir_in("/run")
        .unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let real = bin_dir.path().join("jit-ssh-host");
    std::fs::copy(jit_ssh_e2e::bin("jit-ssh-host"), &real).unwrap();
    let args = bin_dir.path().join("args");
    let script = bin_dir.path().join("principals-stand-in");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nPATH=/usr/bin:/bin\nm=$PPID\n{prelude}exec '{}' $(cat '{}') \"$@\"\n",
            real.display(),
            args.display()
        ),
    )
    .unwrap();
    for f in [&real, &script] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let h = SessionHost::start_with_principals_command_and(&format!(
        // sshd takes the last of these: the harness's own lines, after
        // these, go into a block that matches no login.
        "AuthorizedPrincipalsCommand {} %u %T %k\nAuthorizedPrincipalsCommandUser root\nMatch User no-such-account-jit-ssh-review\n",
        script.display()
    ));
    std::fs::write(
        &args,
        format!(
            "principals --dir {} --recorder-socket {}",
            h.dir.display(),
            h.root.join("run-jit-ssh").join("recorder.sock").display()
        ),
    )
    .unwrap();
    (h, bin_dir)
}

/// sshd started by hand from an admin's logind session, with `UsePAM
/// no`: its listener, and so every connection's monitor, is in that
/// session's scope when the principals command announces a login. That
/// scope is the admin's, not the login's: the login's end must end
/// nothing else there (the admin's shell, sshd's listener). Here the
/// stand-in puts the monitor into a scope-shaped cgroup holding a
/// bystander before the real command runs.
#[test]
fn a_login_whose_sshd_runs_in_someone_elses_logind_scope_ends_nothing_else_there() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_login_cgroup_review_e2e") {
        return;
    }
    let Some(mut scope) = FakeScope::make("review", "7396") else {
        return eprintln!("skipped: no cgroup2");
    };
    let (h, _bin) = host_with_stand_in(&format!("echo $m > '{}'\n", scope.procs().display()));
    let rec = Recorder::start(&h, None);
    let (cert, _, valid_before) = h.certificate("8s", &rec.wrapper_args("off"));
    let out = jit_ssh_e2e::run(h.ssh(&cert).arg("sleep 7395"));
    let ended = now_unix() - valid_before as f64;
    std::thread::sleep(Duration::from_secs(3));
    let bystander_ran = scope.bystander_runs();
    let login_left = process_running("sleep 7395");
    kill_marked("sleep 7395");
    let log = rec.log_text();
    eprintln!("the login ended {ended:.2} s after valid_before; {out:?}");
    assert!(
        !login_left && (-1.0..=LATE).contains(&ended),
        "the login did not end at its certificate's end ({ended:.2} s); log:\n{log}"
    );
    assert!(
        bystander_ran,
        "the login's end ended another process of the scope its sshd ran in; log:\n{log}"
    );
}

/// The same where no login cgroup can be made (no writable cgroup2): the
/// login is followed by kernel session, and the scope its processes are
/// in, the one sshd's listener runs in too, was taken as the login's own,
/// so its end signalled everything in it. Here the stand-in puts the
/// listener and the monitor into a scope-shaped cgroup holding a
/// bystander; the recorder is pointed at no cgroup hierarchy.
#[test]
fn without_a_cgroup_a_login_in_the_scope_sshd_runs_in_ends_nothing_else_there() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_login_cgroup_review_e2e") {
        return;
    }
    let Some(mut scope) = FakeScope::make("nocg", "7398") else {
        return eprintln!("skipped: no cgroup2");
    };
    let (h, _bin) = host_with_stand_in(&format!(
        "l=$(cut -d' ' -f4 /proc/$m/stat)\necho $l > '{p}'\necho $m > '{p}'\n",
        p = scope.procs().display()
    ));
    let rec = Recorder::start_with_args(&h, &["--cgroup-root", "/nonexistent/cgroup2"]);
    let (cert, _, valid_before) = h.certificate("8s", &rec.wrapper_args("off"));
    let out = jit_ssh_e2e::run(h.ssh(&cert).arg("sleep 7399"));
    let ended = now_unix() - valid_before as f64;
    std::thread::sleep(Duration::from_secs(3));
    let bystander_ran = scope.bystander_runs();
    // sshd's listener still takes logins.
    let (cert2, _, _) = h.certificate("1m", &rec.wrapper_args("off"));
    let again = jit_ssh_e2e::run(h.ssh(&cert2).arg("echo again"));
    let listener_ran = again.stdout == b"again\n";
    let login_left = process_running("sleep 7399");
    kill_marked("sleep 7399");
    let log = rec.log_text();
    eprintln!("the login ended {ended:.2} s after valid_before; {out:?}");
    assert!(
        bystander_ran && listener_ran,
        "the login's end ended other processes of the scope sshd runs in (bystander running: {bystander_ran}, a new login: {again:?}); log:\n{log}"
    );
    assert!(
        !login_left && (-1.0..=LATE).contains(&ended),
        "the login did not end at its certificate's end ({ended:.2} s); log:\n{log}"
    );
}

/// A scope-shaped cgroup as logind makes them
/// (`user.slice/user-X.slice/session-X.scope`) holding a bystander
/// `sleep MARK`. Dropped after the host (declared before it): what is
/// still in it or in a cgroup below it (sshd's listener, a login's
/// leftovers) goes back to the root cgroup, then the cgroups go.
struct FakeScope {
    mount: PathBuf,
    slice: PathBuf,
    made_slice: bool,
    user: PathBuf,
    scope: PathBuf,
    bystander: std::process::Child,
}

impl FakeScope {
    fn make(tag: &str, mark: &str) -> Option<FakeScope> {
        let mount = cgroup2_mount()?;
        let me = std::process::id();
        let slice = mount.join("user.slice");
        let made_slice = std::fs::create_dir(&slice).is_ok();
        let user = slice.join(format!("user-{tag}{me}.slice"));
        let scope = user.join(format!("session-{tag}{me}.scope"));
        std::fs::create_dir_all(&scope).unwrap();
        let bystander = std::process::Command::new("sleep")
            .arg(mark)
            .spawn()
            .unwrap();
        std::fs::write(scope.join("cgroup.procs"), bystander.id().to_string()).unwrap();
        Some(FakeScope {
            mount,
            slice,
            made_slice,
            user,
            scope,
            bystander,
        })
    }

    fn procs(&self) -> PathBuf {
        self.scope.join("cgroup.procs")
    }

    fn bystander_runs(&mut self) -> bool {
        self.bystander.try_wait().unwrap().is_none()
    }
}

impl Drop for FakeScope {
    fn drop(&mut self) {
        let _ = self.bystander.kill();
        let _ = self.bystander.wait();
        let root = self.mount.join("cgroup.procs");
        let until = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.scope).is_err() && Instant::now() < until {
            let below = std::fs::read_dir(&self.scope)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path());
            for dir in below.chain([self.scope.clone()]).collect::<Vec<_>>() {
                for pid in std::fs::read_to_string(dir.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                {
                    let _ = std::fs::write(&root, pid);
                }
                if dir != self.scope {
                    let _ = std::fs::remove_dir(&dir);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir(&self.user);
        if self.made_slice {
            let _ = std::fs::remove_dir(&self.slice);
        }
    }
}
