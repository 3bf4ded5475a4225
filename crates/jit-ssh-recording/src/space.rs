//! Room where recordings are kept: the host recorder's spool and the CA's
//! recordings store each keep a free-space floor on their filesystem, so
//! recordings never take the last of a disk that other work needs (the
//! host's /var, the CA's audit log).

use std::path::Path;
use std::sync::Arc;

/// A filesystem's room, as `statvfs` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsSpace {
    /// Bytes an unprivileged process may still write (`f_bavail`): root's
    /// reserved blocks are left for root's other work.
    pub avail: u64,
    /// The filesystem's size.
    pub total: u64,
    /// Files (inodes) an unprivileged process may still make
    /// (`f_favail`): a disk with bytes to spare but no inode left takes
    /// no new file either, the audit log's included.
    pub files_avail: u64,
    /// The filesystem's inodes (`f_files`); 0 where it has no fixed
    /// number (btrfs, some network filesystems): then only bytes count.
    pub files_total: u64,
}

/// Reads the room of the filesystem holding a path; injectable so tests
/// can run out of room without filling a disk.
pub type Probe = Arc<dyn Fn(&Path) -> std::io::Result<FsSpace> + Send + Sync>;

/// The real probe: `statvfs(2)`.
pub fn statvfs(path: &Path) -> std::io::Result<FsSpace> {
    let s = rustix::fs::statvfs(path)?;
    Ok(FsSpace {
        avail: s.f_bavail.saturating_mul(s.f_frsize),
        total: s.f_blocks.saturating_mul(s.f_frsize),
        files_avail: s.f_favail,
        files_total: s.f_files,
    })
}

/// The room a filesystem must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floor {
    pub min_free: u64,
    /// Percent of the filesystem (the larger floor of the two applies).
    pub min_free_percent: u8,
}

impl Floor {
    /// The floor in bytes on a filesystem of `total` bytes.
    pub fn bytes(&self, total: u64) -> u64 {
        self.of(total)
    }

    /// The floor out of `total` of anything (bytes, inodes): the larger
    /// of `min_free` and `min_free_percent` of `total`.
    pub fn of(&self, total: u64) -> u64 {
        self.min_free
            .max(total / 100 * u64::from(self.min_free_percent.min(100)))
    }
}
