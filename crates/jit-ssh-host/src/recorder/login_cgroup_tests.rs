#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::time::{Duration, Instant};

const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

#[test]
fn the_cgroup2_mount_is_found_in_mountinfo_wherever_it_is() {
    assert_eq!(
        mount_in(HYBRID),
        Some(PathBuf::from("/sys/fs/cgroup/unified"))
    );
    let pure = "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    assert_eq!(mount_in(pure), Some(PathBuf::from("/sys/fs/cgroup")));
    let spaced = "41 31 0:38 / /mnt/my\\040cgroups rw - cgroup2 none rw\n";
    assert_eq!(mount_in(spaced), Some(PathBuf::from("/mnt/my cgroups")));
    // Only cgroup v1 (or nothing): none.
    assert_eq!(
        mount_in(&HYBRID.replace("cgroup2 cgroup2", "cgroup cgroup")),
        None
    );
    assert_eq!(mount_in(""), None);
}

#[test]
fn only_a_plain_absolute_v2_path_is_taken() {
    assert_eq!(v2_path("0::/\n"), Some("/"));
    assert_eq!(
        v2_path("9:name=systemd:/\n0::/system.slice/ssh.service\n"),
        Some("/system.slice/ssh.service")
    );
    assert_eq!(v2_path("0::/a/../b\n"), None);
    assert_eq!(v2_path("0::relative\n"), None);
    assert_eq!(v2_path("0::/gone (deleted)\n"), None);
    assert_eq!(v2_path("9:name=systemd:/\n"), None);
}

#[test]
fn a_login_cgroup_goes_below_the_monitors_own_and_never_anywhere_broader() {
    let h = Hierarchy::unchecked(Path::new("/sys/fs/cgroup/unified"));
    let name = name_of(7, 4242, 99);
    assert_eq!(name, "jit-ssh-login-7-4242-99");
    // No logind, no systemd: the root cgroup.
    assert_eq!(
        h.target("0::/\n", 7, 4242, 99).unwrap(),
        (PathBuf::from("/sys/fs/cgroup/unified").join(&name), true)
    );
    // systemd without logind: inside ssh.service's subtree.
    assert_eq!(
        h.target("0::/system.slice/ssh.service\n", 7, 4242, 99)
            .unwrap(),
        (
            PathBuf::from(
                "/sys/fs/cgroup/unified/system.slice/ssh.service/jit-ssh-login-7-4242-99"
            ),
            true
        )
    );
    // A second principals call of the same connection: the same cgroup.
    let ours = "0::/system.slice/ssh.service/jit-ssh-login-7-4242-99\n";
    assert_eq!(
        h.target(ours, 8, 4242, 99).unwrap(),
        (
            PathBuf::from(
                "/sys/fs/cgroup/unified/system.slice/ssh.service/jit-ssh-login-7-4242-99"
            ),
            false
        )
    );
    // Another login's cgroup (an sshd started from inside a login): a
    // cgroup of its own beside the outermost such one, not that one nor
    // below it (whose end would take it along).
    assert_eq!(
        h.target("0::/jit-ssh-login-7-4242-99\n", 9, 5000, 100)
            .unwrap(),
        (
            PathBuf::from("/sys/fs/cgroup/unified/jit-ssh-login-9-5000-100"),
            true
        )
    );
    assert_eq!(
        h.target(
            "0::/system.slice/ssh.service/jit-ssh-login-7-4242-99/x/jit-ssh-login-8-1-2\n",
            9,
            5000,
            100
        )
        .unwrap(),
        (
            PathBuf::from(
                "/sys/fs/cgroup/unified/system.slice/ssh.service/jit-ssh-login-9-5000-100"
            ),
            true
        )
    );
    // A logind scope before the principals command's answer is the
    // listener's (someone's session), not this login's: one of its own
    // below it all the same.
    assert_eq!(
        h.target("0::/user.slice/user-1000.slice/session-4.scope\n", 7, 1, 2)
            .unwrap(),
        (
            PathBuf::from(
                "/sys/fs/cgroup/unified/user.slice/user-1000.slice/session-4.scope/jit-ssh-login-7-1-2"
            ),
            true
        )
    );
    assert!(matches!(
        h.target("0::/a/../../etc\n", 7, 1, 2),
        Err(CgroupError::BadPath(1, _))
    ));
}

#[test]
fn nothing_but_a_login_cgroup_below_the_mount_is_one() {
    let h = Hierarchy::unchecked(Path::new("/sys/fs/cgroup/unified"));
    let yes = |p: &str| h.is_login_cgroup(Path::new(p));
    assert!(yes("/sys/fs/cgroup/unified/jit-ssh-login-7-1-2"));
    assert!(yes(
        "/sys/fs/cgroup/unified/system.slice/ssh.service/jit-ssh-login-7-1-2"
    ));
    assert!(!yes("/sys/fs/cgroup/unified"), "the root");
    assert!(!yes("/sys/fs/cgroup/unified/"), "the root");
    assert!(!yes("/sys/fs/cgroup/unified/system.slice"));
    assert!(!yes("/sys/fs/cgroup/unified/jit-ssh-login-"));
    assert!(!yes("/sys/fs/cgroup/unified/x/../jit-ssh-login-7-1-2"));
    assert!(!yes("/sys/fs/cgroup/unified/jit-ssh-login-7-1-2/.."));
    assert!(!yes("/sys/fs/cgroup/jit-ssh-login-7-1-2"), "another mount");
    assert!(!yes("/tmp/jit-ssh-login-7-1-2"));
}

/// A real child process (standing in for the monitor, which the caller
/// checks is a root sshd) placed into a login cgroup: what it forks
/// after is born there, and the cgroup's kill ends it all. Skipped
/// where this machine has no writable cgroup2 hierarchy.
#[test]
fn a_placed_process_and_what_it_forks_after_stay_in_the_cgroup_and_end_with_it() {
    let h = match Hierarchy::find() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let mut child = std::process::Command::new("sh")
        .args(["-c", "read x; setsid -f sleep 7391; sleep 30"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let start = start_time(pid).unwrap();
    // Not the process announced: refused, nothing made.
    assert!(matches!(
        h.place(pid, start + 1, 7),
        Err(CgroupError::NotMonitor(p)) if p == pid
    ));
    let placed = match h.place(pid, start, 7) {
        Ok(dir) => dir,
        other => {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("skipped: {other:?}");
            return;
        }
    };
    assert!(h.is_login_cgroup(&placed), "{}", placed.display());
    // Placed again (a second principals call): the same cgroup.
    assert_eq!(h.place(pid, start, 8).unwrap(), placed);
    // Now it double-forks a job away.
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while procs(&placed).len() < 3 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let members = procs(&placed);
    assert!(members.len() >= 2, "{members:?}");
    assert!(populated(&placed));
    kill(&placed).unwrap();
    let _ = child.wait();
    while populated(&placed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !populated(&placed),
        "the double-forked job outlived the kill"
    );
    remove(&placed).unwrap();
    assert!(!placed.exists());
}

/// Stale login cgroups (a previous recorder's, whose logins ended while
/// it was down) go; one a kept login names, one still holding
/// processes, and anything not a login cgroup stay. On a plain
/// directory tree standing in for the hierarchy: on the real one this
/// would remove other recorders' cgroups on this machine.
#[test]
fn only_empty_login_cgroups_no_login_names_are_removed_as_stale() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hierarchy::unchecked(dir.path());
    let stale = dir.path().join("a").join("jit-ssh-login-1-2-3");
    let kept = dir.path().join("jit-ssh-login-4-5-6");
    let busy = dir.path().join("b").join("jit-ssh-login-7-8-9");
    let other = dir.path().join("c").join("system.slice");
    for d in [&stale, &kept, &busy, &other] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(busy.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    assert_eq!(h.remove_stale(std::slice::from_ref(&kept)), 1);
    assert!(!stale.exists());
    assert!(kept.exists() && busy.exists() && other.exists());
}

/// An sshd started from inside login A (by an admin on a host without
/// systemd: `service ssh restart`) runs in A's cgroup, and so does the
/// monitor it forks for another person's login B. B's cgroup must not
/// be below A's: A's end (`cgroup.kill`, which takes every cgroup below
/// too) would end B's login with it. Skipped where this machine has no
/// writable cgroup2 hierarchy.
#[test]
fn another_logins_cgroup_does_not_end_with_the_login_its_sshd_was_started_in() {
    let h = match Hierarchy::find() {
        Ok(h) => h,
        Err(e) => return eprintln!("skipped: {e}"),
    };
    let spawn = || {
        std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn(), spawn());
    let pid = |c: &std::process::Child| i32::try_from(c.id()).unwrap();
    let Ok(dir_a) = h.place(pid(&a), start_time(pid(&a)).unwrap(), 1) else {
        for c in [&mut a, &mut b] {
            let _ = c.kill();
            let _ = c.wait();
        }
        return eprintln!("skipped: no cgroup could be made");
    };
    // B's monitor, forked by the listener that runs in A's cgroup.
    std::fs::write(dir_a.join("cgroup.procs"), pid(&b).to_string()).unwrap();
    let placed_b = h.place(pid(&b), start_time(pid(&b)).unwrap(), 2);
    // A's end.
    kill(&dir_a).unwrap();
    let _ = a.wait();
    std::thread::sleep(Duration::from_millis(200));
    let b_alive = b.try_wait().unwrap().is_none();
    let _ = b.kill();
    let _ = b.wait();
    if let Ok(dir_b) = &placed_b {
        let _ = remove(dir_b);
    }
    let _ = remove(&dir_a);
    let Ok(dir_b) = placed_b else {
        panic!("B got no cgroup: {placed_b:?}");
    };
    assert!(b_alive, "A's end killed B's login ({})", dir_b.display());
    assert!(h.is_login_cgroup(&dir_b), "{}", dir_b.display());
    assert!(
        !dir_b.starts_with(&dir_a),
        "B's cgroup {} is below A's",
        dir_b.display()
    );
}
