use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

const GIB: u64 = 1 << 30;

/// A probe whose free space the test sets.
fn fake(total: u64, free: Arc<AtomicU64>) -> Probe {
    Arc::new(move |_: &Path| {
        Ok(FsSpace {
            avail: free.load(Ordering::SeqCst),
            total,
            ..FsSpace::default()
        })
    })
}

fn session_file(spool: &Path, id: &str, bytes: usize) {
    std::fs::create_dir_all(spool.join(id)).unwrap();
    std::fs::write(spool.join(id).join("chunks"), vec![7u8; bytes]).unwrap();
}

#[test]
fn the_real_statvfs_reads_the_temp_dirs_filesystem() {
    let tmp = tempfile::tempdir().unwrap();
    let s = statvfs(tmp.path()).unwrap();
    assert!(s.total > 0 && s.avail <= s.total, "{s:?}");
    // What df calls available, to within what others wrote meanwhile.
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let df: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(s.avail.abs_diff(df) < 256 << 20, "statvfs {s:?}, df {df}");
    assert!(statvfs(&tmp.path().join("missing")).is_err());
}

#[test]
fn below_the_floor_the_spool_takes_nothing_and_takes_again_once_room_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let free = Arc::new(AtomicU64::new(10 * GIB));
    let g = Guard::with_probe(tmp.path(), Limits::default(), fake(100 * GIB, free.clone()));
    assert_eq!(g.check_now(), Ok(()));
    // 4 GiB free of 100: above the 1 GiB floor, below 5 %.
    free.store(4 * GIB, Ordering::SeqCst);
    let e = g.check_now().unwrap_err();
    assert_eq!(
        e,
        Short::Floor {
            free: 4 * GIB,
            total: 100 * GIB,
            floor: 5 * GIB
        }
    );
    assert_eq!(
        e.to_string(),
        "this host's recording spool is full: its filesystem has 4.0 GiB free of 100.0 GiB, below the floor of 5.0 GiB; recorded sessions wait until uploads to the CA free room"
    );
    // On a small disk the byte floor is the larger one.
    let small = Arc::new(AtomicU64::new(GIB - 1));
    let g2 = Guard::with_probe(tmp.path(), Limits::default(), fake(8 * GIB, small));
    assert!(matches!(g2.check_now(), Err(Short::Floor { floor, .. }) if floor == GIB));
    free.store(6 * GIB, Ordering::SeqCst);
    assert_eq!(g.check_now(), Ok(()));
}

/// Many small sessions (a directory and four files each) use up a
/// filesystem's inodes with bytes to spare: then no session file can be
/// made, nor anything else on the host's /var.
#[test]
fn below_the_inode_floor_the_spool_takes_nothing_though_bytes_are_free() {
    let tmp = tempfile::tempdir().unwrap();
    let inodes = Arc::new(AtomicU64::new(400_000));
    let seen = inodes.clone();
    let probe: Probe = Arc::new(move |_: &Path| {
        Ok(FsSpace {
            avail: 50 * GIB,
            total: 100 * GIB,
            files_avail: seen.load(Ordering::SeqCst),
            files_total: 6_553_600,
        })
    });
    let g = Guard::with_probe(tmp.path(), Limits::default(), probe);
    assert_eq!(g.check_now(), Ok(()));
    // The floor: 5 % of the inodes beats 10,000.
    inodes.store(300_000, Ordering::SeqCst);
    let e = g.check_now().unwrap_err();
    assert_eq!(
        e,
        Short::Inodes {
            free: 300_000,
            total: 6_553_600,
            floor: 327_680
        }
    );
    assert_eq!(
        e.to_string(),
        "this host's recording spool is full: its filesystem has 300000 inodes free of 6553600, below the floor of 327680; recorded sessions wait until uploads to the CA free room"
    );
    inodes.store(400_000, Ordering::SeqCst);
    assert_eq!(g.check_now(), Ok(()));
    // No fixed number of inodes (btrfs): bytes alone.
    let btrfs: Probe = Arc::new(|_: &Path| {
        Ok(FsSpace {
            avail: 50 * GIB,
            total: 100 * GIB,
            ..FsSpace::default()
        })
    });
    let g = Guard::with_probe(tmp.path(), Limits::default(), btrfs);
    assert_eq!(g.check_now(), Ok(()));
}

#[test]
fn at_its_cap_the_spool_takes_nothing_and_takes_again_once_uploads_drained_it() {
    let tmp = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_spool: Some(64 * 1024),
        ..Limits::default()
    };
    let roomy = fake(100 * GIB, Arc::new(AtomicU64::new(50 * GIB)));
    let g = Guard::with_probe(tmp.path(), limits, roomy);
    session_file(tmp.path(), "s1", 40 * 1024);
    assert_eq!(g.check_now(), Ok(()));
    session_file(tmp.path(), "s2", 30 * 1024);
    assert_eq!(
        g.check_now(),
        Err(Short::Cap {
            used: 70 * 1024,
            cap: 64 * 1024
        })
    );
    // The answer is kept for half a second: frames do not walk the spool.
    std::fs::remove_dir_all(tmp.path().join("s2")).unwrap();
    assert!(g.check().is_err());
    std::thread::sleep(MEASURE_EVERY);
    assert_eq!(g.check(), Ok(()));
}

#[test]
fn a_free_space_that_cannot_be_read_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let broken: Probe = Arc::new(|_: &Path| Err(std::io::Error::other("no statvfs")));
    let g = Guard::with_probe(tmp.path(), Limits::default(), broken);
    assert_eq!(g.check_now(), Err(Short::Unknown("no statvfs".into())));
}

#[test]
fn the_options_take_sizes_and_refuse_guesses() {
    assert_eq!(parse_size("1GiB"), Ok(GIB));
    assert!(parse_size("1GB")
        .unwrap_err()
        .contains("invalid size \"1GB\""));
}
