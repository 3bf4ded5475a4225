//! Who is on call: schedules from iCalendar feeds (a file or an https URL,
//! refreshed on an interval) and rotations declared in the config. A
//! schedule answers "which shifts cover this instant", each with its
//! layer (primary, secondary…), member and start/end; policy asks whether
//! the requester holds one of them in the layers a rule counts.
//!
//! Evaluation is pure over the loaded feed; loading is the only I/O. A
//! feed that cannot be loaded leaves its schedule empty — nobody is on
//! call, so requests fall back to approvers (fail closed) — and keeps the
//! last good copy when a refresh fails.

pub mod ical;
mod ical_error;
pub mod rotation;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use jiff::tz::TimeZone;

use self::ical::{Event, IcalError, TimeError};
use self::rotation::Rotation;

/// Why a schedule cannot say who is on call, or a feed was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("no schedule named {0:?}")]
    Unknown(String),
    #[error("schedule lock poisoned")]
    Poisoned,
    #[error("the feed did not load: {0}")]
    NotLoaded(String),
    #[error("the feed has not been loaded yet")]
    NotLoadedYet,
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Feed(#[from] IcalError),
    #[error(transparent)]
    Time(#[from] TimeError),
}

/// Where a schedule comes from.
#[derive(Debug, Clone)]
pub enum Source {
    IcalFile(PathBuf),
    IcalUrl(url::Url),
    Rotation(Rotation),
}

#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub source: Source,
    /// Layer name → text that marks an event of that layer in its SUMMARY
    /// or CATEGORIES (case-insensitive). Empty: every event is layer `all`.
    /// A rotation is the single layer named here (default `primary`).
    pub layers: BTreeMap<String, String>,
    /// The zone for floating times in a feed.
    pub tz: TimeZone,
    pub refresh: Duration,
}

/// One shift covering the instant asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    pub schedule: String,
    pub layer: String,
    pub member: String,
    /// Unix seconds.
    pub start: i64,
    pub end: i64,
}

impl fmt::Display for Shift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "schedule {}, layer {}: {} from {} to {}",
            self.schedule,
            self.layer,
            self.member,
            rfc3339(self.start),
            rfc3339(self.end)
        )
    }
}

pub fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).map_or_else(|_| unix.to_string(), |t| t.to_string())
}

enum Loaded {
    Events(Vec<Event>),
    /// Never loaded successfully: why.
    Failed(String),
}

/// The configured schedules and their loaded feeds.
pub struct Schedules {
    configs: BTreeMap<String, ScheduleConfig>,
    loaded: RwLock<BTreeMap<String, Loaded>>,
    health: RwLock<BTreeMap<String, FeedHealth>>,
}

/// How a schedule's feed has been loading (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedHealth {
    /// Unix seconds of the last good load.
    pub loaded_at: Option<i64>,
    /// Failed loads (fetch, read or parse) since the CA started.
    pub errors: u64,
}

impl fmt::Debug for Schedules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedules")
            .field("names", &self.configs.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Schedules {
    pub fn new(configs: BTreeMap<String, ScheduleConfig>) -> Self {
        Self {
            configs,
            loaded: RwLock::new(BTreeMap::new()),
            health: RwLock::new(BTreeMap::new()),
        }
    }

    /// Each schedule with a feed (file or URL), and how it has been loading.
    pub fn feed_health(&self) -> Vec<(String, FeedHealth)> {
        let health = self.health.read().map(|h| h.clone()).unwrap_or_default();
        self.configs
            .iter()
            .filter(|(_, c)| matches!(c.source, Source::IcalFile(_) | Source::IcalUrl(_)))
            .map(|(n, _)| (n.clone(), health.get(n).copied().unwrap_or_default()))
            .collect()
    }

    fn note_load(&self, name: &str, ok: bool) {
        if let Ok(mut h) = self.health.write() {
            let h = h.entry(name.to_owned()).or_default();
            if ok {
                // Wall-clock time: feeds are fetched in real time.
                h.loaded_at = Some(crate::clock::Clock::now_unix(&crate::clock::SystemClock));
            } else {
                h.errors += 1;
            }
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.configs.keys()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.configs.contains_key(name)
    }

    pub fn config(&self, name: &str) -> Option<&ScheduleConfig> {
        self.configs.get(name)
    }

    /// Feeds to fetch over HTTP: (schedule, URL).
    pub fn urls(&self) -> Vec<(String, url::Url, Duration)> {
        self.configs
            .iter()
            .filter_map(|(n, c)| match &c.source {
                Source::IcalUrl(u) => Some((n.clone(), u.clone(), c.refresh)),
                _ => None,
            })
            .collect()
    }

    /// Parses `text` as schedule `name`'s feed and keeps it; a feed that
    /// does not parse keeps the last good copy.
    pub fn set_feed(&self, name: &str, text: &str) -> Result<usize, ScheduleError> {
        let config = self
            .configs
            .get(name)
            .ok_or_else(|| ScheduleError::Unknown(name.to_owned()))?;
        let parsed = ical::parse(text, &config.tz);
        self.note_load(name, parsed.is_ok());
        let mut loaded = self.loaded.write().map_err(|_| ScheduleError::Poisoned)?;
        match parsed {
            Ok(events) => {
                let n = events.len();
                loaded.insert(name.to_owned(), Loaded::Events(events));
                Ok(n)
            }
            Err(e) => {
                loaded
                    .entry(name.to_owned())
                    .or_insert_with(|| Loaded::Failed(e.to_string()));
                Err(e.into())
            }
        }
    }

    /// (Re)reads every file feed; returns the failures.
    pub fn load_files(&self) -> Vec<(String, ScheduleError)> {
        let mut failures = Vec::new();
        for (name, c) in &self.configs {
            if let Source::IcalFile(path) = &c.source {
                let result = std::fs::read_to_string(path)
                    .map_err(|source| {
                        self.note_load(name, false);
                        ScheduleError::Read {
                            path: path.clone(),
                            source,
                        }
                    })
                    .and_then(|text| self.set_feed(name, &text));
                if let Err(e) = result {
                    failures.push((name.clone(), e));
                }
            }
        }
        failures
    }

    /// Marks a feed as failed to load, unless a good copy is held.
    pub fn feed_failed(&self, name: &str, why: String) {
        self.note_load(name, false);
        if let Ok(mut loaded) = self.loaded.write() {
            loaded.entry(name.to_owned()).or_insert(Loaded::Failed(why));
        }
    }

    /// Every shift of schedule `name` covering `at`.
    pub fn shifts(&self, name: &str, at: i64) -> Result<Vec<Shift>, ScheduleError> {
        let config = self
            .configs
            .get(name)
            .ok_or_else(|| ScheduleError::Unknown(name.to_owned()))?;
        let shift = |layer: &str, member: &str, o: &ical::Occurrence| Shift {
            schedule: name.to_owned(),
            layer: layer.to_owned(),
            member: member.to_owned(),
            start: o.start,
            end: o.end,
        };
        if let Source::Rotation(r) = &config.source {
            let layer = config
                .layers
                .keys()
                .next()
                .map_or("primary", String::as_str);
            return Ok(r
                .at(at)?
                .map(|(m, o)| shift(layer, &m, &o))
                .into_iter()
                .collect());
        }
        let loaded = self.loaded.read().map_err(|_| ScheduleError::Poisoned)?;
        let events = match loaded.get(name) {
            Some(Loaded::Events(e)) => e,
            Some(Loaded::Failed(why)) => return Err(ScheduleError::NotLoaded(why.clone())),
            None => return Err(ScheduleError::NotLoadedYet),
        };
        let mut out = Vec::new();
        for (event, occ) in ical::covering(events, at)? {
            for layer in layers_of(event, &config.layers) {
                for person in &event.people {
                    out.push(shift(&layer, person, &occ));
                }
            }
        }
        Ok(out)
    }

    /// The shift that puts someone known as any of `names` on call in
    /// schedule `name` at `at`, counting only `layers` (all when empty).
    pub fn on_call(&self, name: &str, layers: &[String], names: &[&str], at: i64) -> Option<Shift> {
        let shifts = match self.shifts(name, at) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(schedule = name, error = %e, "on-call schedule unavailable; nobody counts as on call");
                return None;
            }
        };
        shifts.into_iter().find(|s| {
            (layers.is_empty() || layers.contains(&s.layer))
                && names.iter().any(|n| n.eq_ignore_ascii_case(&s.member))
        })
    }
}

fn layers_of(event: &Event, layers: &BTreeMap<String, String>) -> Vec<String> {
    if layers.is_empty() {
        return vec!["all".into()];
    }
    let haystack: Vec<String> = std::iter::once(&event.summary)
        .chain(&event.categories)
        .map(|s| s.to_lowercase())
        .collect();
    layers
        .iter()
        .filter(|(_, mark)| {
            let mark = mark.to_lowercase();
            haystack.iter().any(|h| h.contains(&mark))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests;
