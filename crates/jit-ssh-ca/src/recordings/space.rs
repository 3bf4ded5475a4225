//! The recordings store's free-space floor (`[recordings] min_free`,
//! `min_free_percent`, `min_free_inodes`). Recordings and the audit log
//! usually share the data directory's filesystem; a full disk stops the
//! audit log, and with it all issuance. A disk is full when it has no
//! byte left, or no inode: each session is a directory and three files,
//! so many small sessions run a filesystem out of inodes long before
//! bytes. Below either floor the CA refuses uploads (507, nothing
//! stored), so the room left stays the audit log's; hosts keep their
//! chunks and retry.

use std::path::Path;

use jit_ssh_proto::format_size;
pub use jit_ssh_recording::space::{statvfs, Floor, FsSpace, Probe};

/// Why the store takes no more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Short {
    #[error("the CA's recordings store is below its free-space floor ({} free of {}, floor {})", format_size(*free), format_size(*total), format_size(*floor))]
    Floor { free: u64, total: u64, floor: u64 },
    #[error("the CA's recordings store is below its free-inode floor ({free} files free of {total}, floor {floor})")]
    Inodes { free: u64, total: u64, floor: u64 },
    #[error("the CA cannot read the free space of its recordings store")]
    Unknown(String),
}

/// Whether the filesystem holding `dir` is above both floors (bytes,
/// and inodes where the filesystem counts them); an unreadable free
/// space fails closed.
pub fn check(probe: &Probe, dir: &Path, bytes: Floor, inodes: Floor) -> Result<FsSpace, Short> {
    let s = probe(dir).map_err(|e| Short::Unknown(e.to_string()))?;
    judge(&s, bytes, inodes)?;
    Ok(s)
}

/// The decision on figures read: below the byte floor, or (on a
/// filesystem with a fixed number of inodes) below the inode floor.
pub fn judge(s: &FsSpace, bytes: Floor, inodes: Floor) -> Result<(), Short> {
    let floor = bytes.bytes(s.total);
    if s.avail < floor {
        return Err(Short::Floor {
            free: s.avail,
            total: s.total,
            floor,
        });
    }
    if s.files_total > 0 {
        let floor = inodes.of(s.files_total);
        if s.files_avail < floor {
            return Err(Short::Inodes {
                free: s.files_avail,
                total: s.files_total,
                floor,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::Arc;

    const GIB: u64 = 1 << 30;

    /// The default inode floor: 10,000 files or 5 %.
    const INODES: Floor = Floor {
        min_free: 10_000,
        min_free_percent: 5,
    };

    #[test]
    fn the_larger_floor_applies_and_the_real_statvfs_reads_a_temp_dir() {
        let floor = Floor {
            min_free: GIB,
            min_free_percent: 5,
        };
        assert_eq!(floor.bytes(100 * GIB), 5 * GIB);
        assert_eq!(floor.bytes(4 * GIB), GIB);
        let at = |avail| -> Probe {
            Arc::new(move |_: &Path| {
                Ok(FsSpace {
                    avail,
                    total: 100 * GIB,
                    ..FsSpace::default()
                })
            })
        };
        let dir = tempfile::tempdir().unwrap();
        assert!(check(&at(6 * GIB), dir.path(), floor, INODES).is_ok());
        let e = check(&at(4 * GIB), dir.path(), floor, INODES).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the CA's recordings store is below its free-space floor (4.0 GiB free of 100.0 GiB, floor 5.0 GiB)"
        );
        let real: Probe = Arc::new(statvfs);
        let none = Floor {
            min_free: 0,
            min_free_percent: 0,
        };
        let s = check(&real, dir.path(), none, none).unwrap();
        assert!(s.total > 0 && s.avail <= s.total, "{s:?}");
        assert!(matches!(
            check(&real, &dir.path().join("missing"), floor, INODES),
            Err(Short::Unknown(_))
        ));
    }

    /// A filesystem with bytes to spare and its inodes nearly gone (many
    /// small sessions: a directory and three files each) takes no new
    /// file, the audit log's neither: uploads stop at the inode floor.
    #[test]
    fn below_the_inode_floor_uploads_stop_though_bytes_are_free() {
        let bytes = Floor {
            min_free: GIB,
            min_free_percent: 5,
        };
        let fs = |files_avail, files_total| FsSpace {
            avail: 50 * GIB,
            total: 100 * GIB,
            files_avail,
            files_total,
        };
        // 6.5 M inodes (ext4's default on 100 GiB): the floor is 5 %.
        assert_eq!(judge(&fs(400_000, 6_553_600), bytes, INODES), Ok(()));
        let e = judge(&fs(300_000, 6_553_600), bytes, INODES).unwrap_err();
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
            "the CA's recordings store is below its free-inode floor (300000 files free of 6553600, floor 327680)"
        );
        // A small filesystem: the count is the larger floor.
        assert!(matches!(
            judge(&fs(9_999, 100_000), bytes, INODES),
            Err(Short::Inodes { floor: 10_000, .. })
        ));
        // No fixed number of inodes (btrfs reports 0): bytes alone count.
        assert_eq!(judge(&fs(0, 0), bytes, INODES), Ok(()));
        // Bytes are judged first, and still refuse.
        let mut low = fs(400_000, 6_553_600);
        low.avail = GIB / 2;
        assert!(matches!(
            judge(&low, bytes, INODES),
            Err(Short::Floor { .. })
        ));
    }

    /// What the real `statvfs` reads is what `df -i` shows.
    #[test]
    fn the_real_statvfs_reads_the_inodes_df_shows() {
        let dir = tempfile::tempdir().unwrap();
        let s = statvfs(dir.path()).unwrap();
        let out = std::process::Command::new("df")
            .args(["--output=itotal,iavail"])
            .arg(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let figures: Vec<u64> = text
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        assert_eq!(s.files_total, figures[0], "{s:?} / df: {text}");
        // Others make and remove files meanwhile.
        assert!(
            s.files_avail.abs_diff(figures[1]) < 10_000,
            "{s:?} / df: {text}"
        );
        assert!(s.files_avail <= s.files_total, "{s:?}");
    }
}
