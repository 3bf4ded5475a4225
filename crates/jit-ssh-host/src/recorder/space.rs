//! How much room the spool may take: a free-space floor on the spool's
//! filesystem and an optional cap on the spool itself. A CA that is down
//! for long, or a session printing `base64 /dev/urandom` for hours, must
//! not fill the host's /var (its bytes, or its inodes: each session is a
//! directory and four files): below a floor or at the cap the recorder
//! refuses new recorded sessions and ends running ones (`spool-full`),
//! keeping every chunk already written. Uploads drain the spool and new
//! sessions are taken again.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jit_ssh_proto::format_size as human;
pub use jit_ssh_recording::space::{statvfs, Floor, FsSpace, Probe};

/// The recorder's limits (`--spool-min-free`, `--spool-min-free-percent`,
/// `--spool-min-free-inodes`, `--spool-max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Free bytes the spool's filesystem must keep.
    pub min_free: u64,
    /// Percent of the filesystem that must stay free, of its bytes and of
    /// its inodes (the larger floor of the two applies).
    pub min_free_percent: u8,
    /// Free inodes the spool's filesystem must keep.
    pub min_free_inodes: u64,
    /// The most bytes the spool may hold; `None`: only the floor.
    pub max_spool: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            min_free: 1 << 30,
            min_free_percent: 5,
            min_free_inodes: 10_000,
            max_spool: None,
        }
    }
}

/// Why the spool cannot take more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Short {
    /// The filesystem is below the floor.
    Floor { free: u64, total: u64, floor: u64 },
    /// The filesystem has fewer free inodes than its floor.
    Inodes { free: u64, total: u64, floor: u64 },
    /// The spool holds its cap or more.
    Cap { used: u64, cap: u64 },
    /// The free space cannot be read: fail closed.
    Unknown(String),
}

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Short::Floor { free, total, floor } => write!(
                f,
                "this host's recording spool is full: its filesystem has {} free of {}, below the floor of {}; recorded sessions wait until uploads to the CA free room",
                human(*free),
                human(*total),
                human(*floor)
            ),
            Short::Inodes { free, total, floor } => write!(
                f,
                "this host's recording spool is full: its filesystem has {free} inodes free of {total}, below the floor of {floor}; recorded sessions wait until uploads to the CA free room"
            ),
            Short::Cap { used, cap } => write!(
                f,
                "this host's recording spool is full: it holds {}, its cap is {}; recorded sessions wait until uploads to the CA free room",
                human(*used),
                human(*cap)
            ),
            Short::Unknown(e) => write!(
                f,
                "this host's recording spool cannot tell its free space ({e}); recorded sessions are refused"
            ),
        }
    }
}

/// `--spool-min-free` and `--spool-max`: sizes like `1GiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    jit_ssh_proto::parse_size(text).map_err(|e| e.to_string())
}

/// How often the spool is measured at most: every session asks at every
/// frame, and walking the spool each time would cost more than recording.
const MEASURE_EVERY: Duration = Duration::from_millis(500);

/// The spool's limits and its latest measurement.
pub struct Guard {
    dir: PathBuf,
    limits: Limits,
    probe: Probe,
    last: Mutex<Option<(Instant, Result<(), Short>)>>,
}

impl Guard {
    /// A guard over `dir` with the real `statvfs`.
    pub fn new(dir: &Path, limits: Limits) -> Guard {
        Guard::with_probe(dir, limits, Arc::new(statvfs))
    }

    pub fn with_probe(dir: &Path, limits: Limits, probe: Probe) -> Guard {
        Guard {
            dir: dir.to_owned(),
            limits,
            probe,
            last: Mutex::new(None),
        }
    }

    /// Whether the spool may take more, measured at most every 500 ms.
    pub fn check(&self) -> Result<(), Short> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, r)) = last.as_ref() {
            if at.elapsed() < MEASURE_EVERY {
                return r.clone();
            }
        }
        let r = self.measure();
        *last = Some((Instant::now(), r.clone()));
        r
    }

    /// Measures now (a session's start: no half-second-old answer).
    pub fn check_now(&self) -> Result<(), Short> {
        let r = self.measure();
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), r.clone()));
        r
    }

    fn measure(&self) -> Result<(), Short> {
        let l = &self.limits;
        if let Some(cap) = l.max_spool {
            let used = spool_bytes(&self.dir);
            if used >= cap {
                return Err(Short::Cap { used, cap });
            }
        }
        let s = (self.probe)(&self.dir).map_err(|e| Short::Unknown(e.to_string()))?;
        let floor = Floor {
            min_free: l.min_free,
            min_free_percent: l.min_free_percent,
        }
        .bytes(s.total);
        if s.avail < floor {
            return Err(Short::Floor {
                free: s.avail,
                total: s.total,
                floor,
            });
        }
        // A filesystem without a fixed number of inodes reports 0.
        if s.files_total > 0 {
            let floor = Floor {
                min_free: l.min_free_inodes,
                min_free_percent: l.min_free_percent,
            }
            .of(s.files_total);
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
}

/// Bytes of the files in the spool's session directories.
pub fn spool_bytes(dir: &Path) -> u64 {
    let files = |d: std::fs::DirEntry| {
        std::fs::read_dir(d.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|f| f.metadata().ok())
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len())
            .sum::<u64>()
    };
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(files)
        .sum()
}

#[cfg(test)]
#[path = "space_tests.rs"]
mod tests;
