//! `[recordings]`: how long the CA keeps session recordings it received
//! from hosts (`DATA/recordings/`, see docs/recordings.md), the free
//! space and inodes their filesystem must keep (for the audit log beside
//! them), and how many sessions one grant may record.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Collector;
pub use crate::recordings::space::Floor;

/// The default retention: 90 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// The default free-space floor: 1 GiB ...
pub const DEFAULT_MIN_FREE: u64 = 1 << 30;
/// ... or 5 % of the filesystem, whichever is larger.
pub const DEFAULT_MIN_FREE_PERCENT: u8 = 5;
/// The default inode floor: 10,000 files, or the same percent of the
/// filesystem's inodes, whichever is larger.
pub const DEFAULT_MIN_FREE_INODES: u64 = 10_000;
/// Sessions one grant may record by default. A certificate lives at most
/// an hour (`HARD_MAX_TTL`), and sessions start only while it is valid:
/// this is a new session every 0.36 s for the whole hour, which no person
/// on call comes near and a tight `ssh host cmd` loop barely does.
pub const DEFAULT_MAX_SESSIONS_PER_GRANT: u64 = 10_000;

/// The checked section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingsConfig {
    /// Recordings whose last upload is older than this are deleted by the
    /// retention loop (their `session_started`/`session_ended` audit
    /// records stay).
    pub retention: Duration,
    /// Below this much free space on the data directory's filesystem
    /// (the larger of the two), uploads are refused with 507.
    pub floor: Floor,
    /// The same for inodes: `min_free_inodes` or `min_free_percent` of
    /// the filesystem's inodes, the larger.
    pub inode_floor: Floor,
    /// Sessions recorded under one grant, at most: a host (holding its
    /// key, or compromised) could otherwise open recordings without end
    /// under any grant issued for it.
    pub max_sessions_per_grant: u64,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        RecordingsConfig {
            retention: DEFAULT_RETENTION,
            floor: Floor {
                min_free: DEFAULT_MIN_FREE,
                min_free_percent: DEFAULT_MIN_FREE_PERCENT,
            },
            inode_floor: Floor {
                min_free: DEFAULT_MIN_FREE_INODES,
                min_free_percent: DEFAULT_MIN_FREE_PERCENT,
            },
            max_sessions_per_grant: DEFAULT_MAX_SESSIONS_PER_GRANT,
        }
    }
}

/// The `[recordings]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingsFile {
    /// How long a recording is kept after its last chunk arrived (default
    /// "90d"). The audit records of the session are kept for good.
    pub retention: Option<Spanned<String>>,
    /// Free space the recordings' filesystem must keep, like "2GiB"
    /// (default "1GiB"): below it uploads are refused (507) and hosts
    /// keep their chunks, so the room left stays the audit log's.
    pub min_free: Option<Spanned<String>>,
    /// Percent of that filesystem that must stay free, of its bytes and
    /// of its inodes (default 5; the larger floor of the two applies).
    pub min_free_percent: Option<Spanned<u64>>,
    /// Free inodes (files) the recordings' filesystem must keep (default
    /// 10000): many small sessions run a filesystem out of inodes before
    /// bytes, and the audit log then can make no file either.
    pub min_free_inodes: Option<Spanned<u64>>,
    /// Sessions one grant may record (default 10000, at least 1): a first
    /// upload past it is refused (403), and the host keeps the session.
    pub max_sessions_per_grant: Option<Spanned<u64>>,
}

pub(super) fn recordings(f: &RecordingsFile, c: &mut Collector<'_>) -> RecordingsConfig {
    let retention = f
        .retention
        .as_ref()
        .and_then(|r| c.duration(r, "recordings.retention"))
        .unwrap_or(DEFAULT_RETENTION);
    let min_free = match &f.min_free {
        Some(v) => match jit_ssh_proto::parse_size(v.get_ref()) {
            Ok(b) => b,
            Err(e) => {
                c.at(v.span(), format!("recordings.min_free: {e}"));
                DEFAULT_MIN_FREE
            }
        },
        None => DEFAULT_MIN_FREE,
    };
    let min_free_percent = match &f.min_free_percent {
        Some(v) => match u8::try_from(*v.get_ref()) {
            Ok(p) if p <= 90 => p,
            _ => {
                c.at(
                    v.span(),
                    "recordings.min_free_percent: must be between 0 and 90",
                );
                DEFAULT_MIN_FREE_PERCENT
            }
        },
        None => DEFAULT_MIN_FREE_PERCENT,
    };
    let min_free_inodes = f
        .min_free_inodes
        .as_ref()
        .map_or(DEFAULT_MIN_FREE_INODES, |v| *v.get_ref());
    let max_sessions_per_grant = match &f.max_sessions_per_grant {
        Some(v) if *v.get_ref() == 0 => {
            c.at(
                v.span(),
                "recordings.max_sessions_per_grant: must be at least 1",
            );
            DEFAULT_MAX_SESSIONS_PER_GRANT
        }
        Some(v) => *v.get_ref(),
        None => DEFAULT_MAX_SESSIONS_PER_GRANT,
    };
    RecordingsConfig {
        retention,
        floor: Floor {
            min_free,
            min_free_percent,
        },
        inode_floor: Floor {
            min_free: min_free_inodes,
            min_free_percent,
        },
        max_sessions_per_grant,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    use crate::config::TEST_BASE as BASE;

    #[test]
    fn the_free_space_floor_defaults_to_1_gib_or_5_percent_and_is_checked() {
        let c = crate::config::parse(BASE, "t").unwrap();
        assert_eq!(
            c.recordings.floor,
            Floor {
                min_free: 1 << 30,
                min_free_percent: 5
            }
        );
        let text = format!("{BASE}[recordings]\nmin_free = \"20GiB\"\nmin_free_percent = 0\n");
        let c = crate::config::parse(&text, "t").unwrap();
        assert_eq!(
            c.recordings.floor,
            Floor {
                min_free: 20 << 30,
                min_free_percent: 0
            }
        );
        // Every problem is named, with its line.
        let text = format!("{BASE}[recordings]\nmin_free = \"20GB\"\nmin_free_percent = 95\n");
        let e = crate::config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("2 problem(s)"), "{e}");
        assert!(
            e.contains("line 7") && e.contains("recordings.min_free: invalid size \"20GB\""),
            "{e}"
        );
        assert!(
            e.contains("recordings.min_free_percent: must be between 0 and 90"),
            "{e}"
        );
    }

    #[test]
    fn the_inode_floor_and_the_sessions_per_grant_have_defaults_and_are_checked() {
        let c = crate::config::parse(BASE, "t").unwrap();
        assert_eq!(
            c.recordings.inode_floor,
            Floor {
                min_free: 10_000,
                min_free_percent: 5
            }
        );
        assert_eq!(c.recordings.max_sessions_per_grant, 10_000);
        let text = format!(
            "{BASE}[recordings]\nmin_free_inodes = 50000\nmin_free_percent = 2\nmax_sessions_per_grant = 200\n"
        );
        let c = crate::config::parse(&text, "t").unwrap();
        assert_eq!(
            c.recordings.inode_floor,
            Floor {
                min_free: 50_000,
                min_free_percent: 2
            }
        );
        assert_eq!(c.recordings.max_sessions_per_grant, 200);
        let text = format!("{BASE}[recordings]\nmax_sessions_per_grant = 0\n");
        let e = crate::config::parse(&text, "t").unwrap_err().to_string();
        assert!(
            e.contains("recordings.max_sessions_per_grant: must be at least 1"),
            "{e}"
        );
    }
}
