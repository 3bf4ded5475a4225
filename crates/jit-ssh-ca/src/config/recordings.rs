//! `[recordings]`: how long the CA keeps session recordings it received
//! from hosts (`DATA/recordings/`, see docs/recordings.md).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Collector;

/// The default retention: 90 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// The checked section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingsConfig {
    /// Recordings whose last upload is older than this are deleted by the
    /// retention loop (their `session_started`/`session_ended` audit
    /// records stay).
    pub retention: Duration,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        RecordingsConfig {
            retention: DEFAULT_RETENTION,
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
}

pub(super) fn recordings(f: &RecordingsFile, c: &mut Collector<'_>) -> RecordingsConfig {
    let retention = f
        .retention
        .as_ref()
        .and_then(|r| c.duration(r, "recordings.retention"))
        .unwrap_or(DEFAULT_RETENTION);
    RecordingsConfig { retention }
}
