//! On-call schedules and notification targets in the config.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::tz::TimeZone;
use jit_ssh_proto::DurationError;
use url::Url;

use super::{file, Collector};
use crate::notify::{MarkdownChat, NotifyEvent, NotifyKind, NotifyTarget};
use crate::oncall::rotation::Rotation;
use crate::oncall::{ScheduleConfig, Source};
use crate::policy::Policy;

const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// Why a URL of a schedule or notification target is refused.
#[derive(Debug, thiserror::Error)]
enum UrlProblem {
    #[error("{url:?} is not a URL ({source})")]
    Parse {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("{0:?} must be https (http only for localhost)")]
    NotHttps(String),
}

/// Why a schedule in the config is refused (reported against its line).
#[derive(Debug, thiserror::Error)]
enum ScheduleProblem {
    #[error(transparent)]
    Url(#[from] UrlProblem),
    #[error("time_zone {name:?}: {source}")]
    Zone {
        name: String,
        #[source]
        source: jiff::Error,
    },
    #[error("refresh: {0}")]
    Refresh(#[source] DurationError),
    #[error("refresh must be at least 10s")]
    RefreshTooShort,
    #[error("layers.{0}: the marking text is empty")]
    EmptyLayerMark(String),
    #[error("members is empty")]
    NoMembers,
    #[error("member {0:?} is not in [[users]]")]
    UnknownMember(String),
    #[error("shift: {0}")]
    Shift(#[source] DurationError),
    #[error("shift must be at least 1m")]
    ShiftTooShort,
    #[error("handoff {value:?}: not a local date-time like 2026-11-02T09:00:00 ({source})")]
    Handoff {
        value: String,
        #[source]
        source: jiff::Error,
    },
}

/// An https URL, or http for localhost only (tests, local relays).
fn web_url(s: &str) -> Result<Url, UrlProblem> {
    let u = Url::parse(s).map_err(|source| UrlProblem::Parse {
        url: s.to_owned(),
        source,
    })?;
    match (u.scheme(), u.host_str()) {
        ("https", _) => Ok(u),
        ("http", Some("localhost" | "127.0.0.1" | "[::1]")) => Ok(u),
        _ => Err(UrlProblem::NotHttps(s.to_owned())),
    }
}

fn zone(name: Option<&str>) -> Result<TimeZone, ScheduleProblem> {
    match name {
        None => Ok(TimeZone::UTC),
        Some(n) => TimeZone::get(n).map_err(|source| ScheduleProblem::Zone {
            name: n.to_owned(),
            source,
        }),
    }
}

pub(super) fn schedules(
    f: &file::ConfigFile,
    policy: &Policy,
    c: &mut Collector<'_>,
) -> BTreeMap<String, ScheduleConfig> {
    let mut out = BTreeMap::new();
    for (name, s) in &f.schedules {
        let span = s.span();
        let at = format!("schedules.{name}");
        let built = match s.get_ref() {
            file::ScheduleFile::Ical {
                source,
                refresh,
                time_zone,
                layers,
            } => (|| {
                let source = if source.contains("://") {
                    Source::IcalUrl(web_url(source)?)
                } else {
                    Source::IcalFile(source.into())
                };
                let refresh = match refresh {
                    None => DEFAULT_REFRESH,
                    Some(r) => match jit_ssh_proto::parse_duration(r) {
                        Ok(d) if d >= Duration::from_secs(10) => d,
                        Ok(_) => return Err(ScheduleProblem::RefreshTooShort),
                        Err(e) => return Err(ScheduleProblem::Refresh(e)),
                    },
                };
                if let Some((l, _)) = layers.iter().find(|(_, mark)| mark.trim().is_empty()) {
                    return Err(ScheduleProblem::EmptyLayerMark(l.clone()));
                }
                Ok(ScheduleConfig {
                    source,
                    layers: layers.clone(),
                    tz: zone(time_zone.as_deref())?,
                    refresh,
                })
            })(),
            file::ScheduleFile::Rotation {
                members,
                shift,
                handoff,
                time_zone,
                layer,
            } => (|| {
                if members.is_empty() {
                    return Err(ScheduleProblem::NoMembers);
                }
                if let Some(m) = members.iter().find(|m| !policy.users.contains_key(*m)) {
                    return Err(ScheduleProblem::UnknownMember(m.clone()));
                }
                let shift = jit_ssh_proto::parse_duration(shift)
                    .map_err(ScheduleProblem::Shift)
                    .and_then(|d| {
                        i64::try_from(d.as_secs())
                            .ok()
                            .filter(|s| *s >= 60)
                            .ok_or(ScheduleProblem::ShiftTooShort)
                    })?;
                let handoff = handoff.parse().map_err(|source| ScheduleProblem::Handoff {
                    value: handoff.clone(),
                    source,
                })?;
                let layer = layer.clone().unwrap_or_else(|| "primary".into());
                Ok(ScheduleConfig {
                    source: Source::Rotation(Rotation {
                        members: members.clone(),
                        shift_secs: shift,
                        handoff,
                        tz: zone(time_zone.as_deref())?,
                    }),
                    layers: [(layer, String::new())].into(),
                    tz: TimeZone::UTC,
                    refresh: DEFAULT_REFRESH,
                })
            })(),
        };
        match built {
            Ok(s) => {
                out.insert(name.clone(), s);
            }
            Err(e) => c.at(span, format!("{at}: {e}")),
        }
    }
    out
}

pub(super) fn notify(f: &file::ConfigFile, c: &mut Collector<'_>) -> Vec<NotifyTarget> {
    let mut out = Vec::new();
    for (i, n) in f.notify.iter().enumerate() {
        let span = n.span();
        let n = n.get_ref();
        let at = format!("notify[{i}]");
        let kind = match n.kind.as_str() {
            "webhook" => Some(NotifyKind::Webhook),
            "slack" => Some(NotifyKind::Slack),
            "mattermost" => Some(NotifyKind::Markdown(MarkdownChat::Mattermost)),
            "rocketchat" => Some(NotifyKind::Markdown(MarkdownChat::RocketChat)),
            other => {
                c.at(
                    span.clone(),
                    format!(
                        "{at}: kind {other:?} is not \"webhook\", \"slack\", \"mattermost\" or \"rocketchat\""
                    ),
                );
                None
            }
        };
        let url = web_url(&n.url)
            .map_err(|e| c.at(span.clone(), format!("{at}: url {e}")))
            .ok();
        let mut events = BTreeSet::new();
        for e in &n.events {
            match NotifyEvent::parse(e) {
                Ok(e) => {
                    events.insert(e);
                }
                Err(e) => c.at(span.clone(), format!("{at}: {e}")),
            }
        }
        if events.is_empty() {
            events = NotifyEvent::ALL.into_iter().collect();
        }
        // Break-glass is always notified.
        events.insert(NotifyEvent::BreakGlass);
        if let (Some(kind), Some(url)) = (kind, url) {
            out.push(NotifyTarget { kind, url, events });
        }
    }
    out
}
