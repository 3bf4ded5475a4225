//! The recordings store's free-space floor (`[recordings] min_free`,
//! `min_free_percent`). Recordings and the audit log usually share the
//! data directory's filesystem; a full disk stops the audit log, and with
//! it all issuance. Below the floor the CA refuses uploads (507, nothing
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
    #[error("the CA cannot read the free space of its recordings store")]
    Unknown(String),
}

/// Whether the filesystem holding `dir` is above `floor`; an unreadable
/// free space fails closed.
pub fn check(probe: &Probe, dir: &Path, floor: Floor) -> Result<FsSpace, Short> {
    let s = probe(dir).map_err(|e| Short::Unknown(e.to_string()))?;
    let bytes = floor.bytes(s.total);
    if s.avail < bytes {
        return Err(Short::Floor {
            free: s.avail,
            total: s.total,
            floor: bytes,
        });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::Arc;

    const GIB: u64 = 1 << 30;

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
                })
            })
        };
        let dir = tempfile::tempdir().unwrap();
        assert!(check(&at(6 * GIB), dir.path(), floor).is_ok());
        let e = check(&at(4 * GIB), dir.path(), floor).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the CA's recordings store is below its free-space floor (4.0 GiB free of 100.0 GiB, floor 5.0 GiB)"
        );
        let real: Probe = Arc::new(statvfs);
        let s = check(
            &real,
            dir.path(),
            Floor {
                min_free: 0,
                min_free_percent: 0,
            },
        )
        .unwrap();
        assert!(s.total > 0 && s.avail <= s.total, "{s:?}");
        assert!(matches!(
            check(&real, &dir.path().join("missing"), floor),
            Err(Short::Unknown(_))
        ));
    }
}
