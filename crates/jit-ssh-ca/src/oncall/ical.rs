//! The part of iCalendar (RFC 5545) that on-call feeds use: VEVENTs with
//! DTSTART/DTEND or DURATION (UTC, TZID or floating), daily and weekly
//! RRULEs (INTERVAL, COUNT, UNTIL, BYDAY), EXDATE, RECURRENCE-ID overrides
//! and cancelled instances. PagerDuty, Opsgenie and Grafana OnCall export
//! schedules this way. Anything else in an RRULE is refused with a reason
//! rather than guessed at.

use std::collections::BTreeMap;

use jiff::civil::{DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::Span;

pub use super::ical_error::{IcalError, IcalProblem, TimeError};

/// One event series (or a one-off event) as read from the feed.
#[derive(Debug, Clone)]
pub struct Event {
    pub uid: String,
    pub summary: String,
    pub categories: Vec<String>,
    /// Who is on call: ATTENDEE addresses and names; the SUMMARY when none.
    pub people: Vec<String>,
    start: When,
    end: End,
    rule: Option<Rule>,
    exdates: Vec<i64>,
    /// Set on an override: the original start (unix seconds) it replaces.
    recurrence_id: Option<i64>,
    cancelled: bool,
}

/// A start as written: civil time in a zone (for recurring in local time).
#[derive(Debug, Clone)]
struct When {
    civil: DateTime,
    tz: TimeZone,
}

#[derive(Debug, Clone)]
enum End {
    /// DTEND in the same zone: the civil length, kept across DST changes.
    Civil(Span),
    /// An absolute length (DURATION, or a DTEND in another zone).
    Seconds(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freq {
    Daily,
    Weekly,
}

#[derive(Debug, Clone)]
struct Rule {
    freq: Freq,
    interval: i64,
    count: Option<u64>,
    /// Unix seconds, inclusive.
    until: Option<i64>,
    by_day: Vec<Weekday>,
}

/// One concrete occurrence: who, from when to when (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub start: i64,
    pub end: i64,
}

/// Longest walk through a recurrence looking for the instant asked about:
/// a daily rule started ~270 years ago.
const MAX_STEPS: u32 = 100_000;

fn secs(civil: DateTime, tz: &TimeZone) -> Result<i64, TimeError> {
    civil
        .to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp().as_second())
        .map_err(|e| {
            TimeError::new(
                format!("{civil} in {}", tz.iana_name().unwrap_or("its zone")),
                e,
            )
        })
}

/// Unfolds continuation lines, keeping each logical line's first number.
fn unfold(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match (raw.strip_prefix([' ', '\t']), out.last_mut()) {
            (Some(rest), Some((_, last))) => last.push_str(rest),
            _ => out.push((i + 1, raw.to_owned())),
        }
    }
    out
}

/// `NAME;P=V;P="V":VALUE` → (NAME, params, VALUE).
fn property(line: &str) -> Option<(String, BTreeMap<String, String>, String)> {
    let mut in_quotes = false;
    let colon = line.char_indices().find_map(|(i, c)| {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        (c == ':' && !in_quotes).then_some(i)
    })?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let mut parts = head.split(';');
    let name = parts.next()?.to_ascii_uppercase();
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_ascii_uppercase(), v.trim_matches('"').to_owned()))
        .collect();
    Some((name, params, value.to_owned()))
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// A DATE or DATE-TIME value with its TZID, in the feed's default zone
/// when floating.
fn when(
    value: &str,
    params: &BTreeMap<String, String>,
    default: &TimeZone,
) -> Result<When, IcalProblem> {
    let v = value.trim();
    let (v, utc) = match v.strip_suffix('Z') {
        Some(v) => (v, true),
        None => (v, false),
    };
    let bad = || IcalProblem::DateTime(value.to_owned());
    let num = |s: &str| s.parse::<i16>().map_err(|_| bad());
    let date = v.get(0..8).ok_or_else(bad)?;
    let (y, m, d) = (num(&date[0..4])?, num(&date[4..6])?, num(&date[6..8])?);
    let (hh, mm, ss) = match v.get(8..) {
        Some("") | None => (0, 0, 0),
        Some(t) if t.len() == 7 && t.starts_with('T') => {
            (num(&t[1..3])?, num(&t[3..5])?, num(&t[5..7])?)
        }
        _ => return Err(bad()),
    };
    let civil = DateTime::new(y, m as i8, d as i8, hh as i8, mm as i8, ss as i8, 0)
        .map_err(|e| TimeError::new(format!("bad date-time {value:?}"), e))?;
    let tz = if utc {
        TimeZone::UTC
    } else if let Some(name) = params.get("TZID") {
        TimeZone::get(name).map_err(|source| IcalProblem::Zone {
            name: name.clone(),
            source,
        })?
    } else {
        default.clone()
    };
    Ok(When { civil, tz })
}

/// `P1D`, `PT8H`, `P1W`, `P1DT12H30M`: seconds.
fn duration(v: &str) -> Result<i64, IcalProblem> {
    let bad = || IcalProblem::Duration(v.to_owned());
    let rest = v.strip_prefix('P').ok_or_else(bad)?;
    let (mut total, mut n, mut in_time) = (0i64, String::new(), false);
    for c in rest.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' => n.push(c),
            unit => {
                let k: i64 = n.parse().map_err(|_| bad())?;
                n.clear();
                total += k * match (unit, in_time) {
                    ('W', false) => 604_800,
                    ('D', false) => 86_400,
                    ('H', true) => 3_600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return Err(bad()),
                };
            }
        }
    }
    if !n.is_empty() || total <= 0 {
        return Err(bad());
    }
    Ok(total)
}

fn weekday(s: &str) -> Result<Weekday, IcalProblem> {
    Ok(match s {
        "MO" => Weekday::Monday,
        "TU" => Weekday::Tuesday,
        "WE" => Weekday::Wednesday,
        "TH" => Weekday::Thursday,
        "FR" => Weekday::Friday,
        "SA" => Weekday::Saturday,
        "SU" => Weekday::Sunday,
        other => return Err(IcalProblem::ByDay(other.to_owned())),
    })
}

fn rule(v: &str, default: &TimeZone) -> Result<Rule, IcalProblem> {
    let mut r = Rule {
        freq: Freq::Daily,
        interval: 1,
        count: None,
        until: None,
        by_day: vec![],
    };
    let mut freq = None;
    for part in v.split(';').filter(|p| !p.is_empty()) {
        let (k, val) = part
            .split_once('=')
            .ok_or_else(|| IcalProblem::RulePart(part.to_owned()))?;
        match k.to_ascii_uppercase().as_str() {
            "FREQ" => {
                freq = Some(match val {
                    "DAILY" => Freq::Daily,
                    "WEEKLY" => Freq::Weekly,
                    other => return Err(IcalProblem::Freq(other.to_owned())),
                })
            }
            "INTERVAL" => {
                r.interval = val
                    .parse()
                    .ok()
                    .filter(|i| *i > 0)
                    .ok_or(IcalProblem::Interval)?
            }
            "COUNT" => r.count = Some(val.parse().map_err(|_| IcalProblem::Count)?),
            "UNTIL" => {
                let w = when(val, &BTreeMap::new(), default)?;
                r.until = Some(secs(w.civil, &w.tz)?);
            }
            "BYDAY" => r.by_day = val.split(',').map(weekday).collect::<Result<_, _>>()?,
            "WKST" => {}
            other => return Err(IcalProblem::UnsupportedPart(other.to_owned())),
        }
    }
    r.freq = freq.ok_or(IcalProblem::NoFreq)?;
    if r.freq == Freq::Daily && !r.by_day.is_empty() {
        return Err(IcalProblem::DailyByDay);
    }
    Ok(r)
}

#[derive(Default)]
struct Draft {
    line: usize,
    uid: String,
    summary: String,
    categories: Vec<String>,
    attendees: Vec<String>,
    start: Option<When>,
    end: Option<When>,
    duration: Option<i64>,
    rule: Option<Rule>,
    exdates: Vec<i64>,
    recurrence_id: Option<i64>,
    cancelled: bool,
}

impl Draft {
    fn finish(self) -> Result<Event, IcalError> {
        let line = self.line;
        let err = |problem: IcalProblem| IcalError { line, problem };
        let start = self.start.ok_or_else(|| err(IcalProblem::NoStart))?;
        let end = match (self.end, self.duration) {
            (Some(e), _) if e.tz.iana_name() == start.tz.iana_name() => {
                let span = start
                    .civil
                    .until(e.civil)
                    .map_err(|x| err(TimeError::new("DTSTART to DTEND", x).into()))?;
                End::Civil(span)
            }
            (Some(e), _) => End::Seconds(
                secs(e.civil, &e.tz).map_err(|x| err(x.into()))?
                    - secs(start.civil, &start.tz).map_err(|x| err(x.into()))?,
            ),
            (None, Some(d)) => End::Seconds(d),
            // A date-only start lasts the day; a timed one is an instant.
            (None, None) => End::Seconds(86_400),
        };
        let mut people = self.attendees;
        if people.is_empty() && !self.summary.is_empty() {
            people.push(self.summary.clone());
        }
        Ok(Event {
            uid: self.uid,
            summary: self.summary,
            categories: self.categories,
            people,
            start,
            end,
            rule: self.rule,
            exdates: self.exdates,
            recurrence_id: self.recurrence_id,
            cancelled: self.cancelled,
        })
    }
}

/// Parses a feed. `default` is the zone for floating times.
pub fn parse(text: &str, default: &TimeZone) -> Result<Vec<Event>, IcalError> {
    let mut events = Vec::new();
    let mut draft: Option<Draft> = None;
    for (line, l) in unfold(text) {
        let err = |problem: IcalProblem| IcalError { line, problem };
        if l.trim().is_empty() {
            continue;
        }
        let Some((name, params, value)) = property(&l) else {
            return Err(err(IcalProblem::NotAProperty(l.clone())));
        };
        match (
            name.as_str(),
            value.to_ascii_uppercase().as_str(),
            draft.as_mut(),
        ) {
            ("BEGIN", "VEVENT", None) => {
                draft = Some(Draft {
                    line,
                    ..Draft::default()
                })
            }
            ("BEGIN", "VEVENT", Some(_)) => return Err(err(IcalProblem::NestedEvent)),
            ("END", "VEVENT", Some(_)) => {
                if let Some(d) = draft.take() {
                    events.push(d.finish()?);
                }
            }
            (_, _, None) => {}
            (_, _, Some(d)) => match name.as_str() {
                "UID" => d.uid = value.trim().to_owned(),
                "SUMMARY" => d.summary = unescape(value.trim()),
                "CATEGORIES" => d
                    .categories
                    .extend(value.split(',').map(|c| unescape(c.trim()))),
                "ATTENDEE" => {
                    let addr = value.trim();
                    let addr = addr
                        .strip_prefix("mailto:")
                        .or_else(|| addr.strip_prefix("MAILTO:"))
                        .unwrap_or(addr);
                    d.attendees.push(addr.to_owned());
                    if let Some(cn) = params.get("CN") {
                        d.attendees.push(cn.clone());
                    }
                }
                "DTSTART" => d.start = Some(when(&value, &params, default).map_err(err)?),
                "DTEND" => d.end = Some(when(&value, &params, default).map_err(err)?),
                "DURATION" => d.duration = Some(duration(value.trim()).map_err(err)?),
                "RRULE" => d.rule = Some(rule(value.trim(), default).map_err(err)?),
                "EXDATE" => {
                    for v in value.split(',') {
                        let w = when(v, &params, default).map_err(err)?;
                        d.exdates
                            .push(secs(w.civil, &w.tz).map_err(|e| err(e.into()))?);
                    }
                }
                "RECURRENCE-ID" => {
                    let w = when(&value, &params, default).map_err(err)?;
                    d.recurrence_id = Some(secs(w.civil, &w.tz).map_err(|e| err(e.into()))?);
                }
                "STATUS" => d.cancelled = value.trim().eq_ignore_ascii_case("CANCELLED"),
                _ => {}
            },
        }
    }
    if let Some(d) = draft {
        return Err(IcalError {
            line: d.line,
            problem: IcalProblem::Unclosed,
        });
    }
    Ok(events)
}

impl Event {
    fn end_of(&self, start_civil: DateTime, start: i64) -> Result<i64, TimeError> {
        match &self.end {
            End::Seconds(s) => Ok(start + s),
            End::Civil(span) => {
                let end = start_civil.checked_add(*span).map_err(TimeError::step)?;
                secs(end, &self.start.tz)
            }
        }
    }

    /// The instances of this event's own rule (or itself) that cover
    /// `at`, ignoring overrides. At most a handful: shifts may overlap.
    fn instances_covering(&self, at: i64) -> Result<Vec<Occurrence>, TimeError> {
        let mut out = Vec::new();
        let Some(rule) = &self.rule else {
            let start = secs(self.start.civil, &self.start.tz)?;
            let end = self.end_of(self.start.civil, start)?;
            if start <= at && at < end {
                out.push(Occurrence { start, end });
            }
            return Ok(out);
        };
        let first = self.start.civil;
        let days_of_week: Vec<Weekday> = if rule.freq == Freq::Weekly && !rule.by_day.is_empty() {
            let mut d = rule.by_day.clone();
            d.sort_by_key(|w| w.to_monday_zero_offset());
            d
        } else {
            vec![]
        };
        // The Monday of the first week, for BYDAY.
        let week0 = first
            .date()
            .checked_sub(Span::new().days(i64::from(first.weekday().to_monday_zero_offset())))
            .map_err(TimeError::step)?;
        let mut emitted = 0u64;
        for step in 0..MAX_STEPS {
            let candidates: Vec<DateTime> = match rule.freq {
                Freq::Daily => vec![first
                    .checked_add(Span::new().days(i64::from(step) * rule.interval))
                    .map_err(TimeError::step)?],
                Freq::Weekly if days_of_week.is_empty() => vec![first
                    .checked_add(Span::new().weeks(i64::from(step) * rule.interval))
                    .map_err(TimeError::step)?],
                Freq::Weekly => {
                    let monday = week0
                        .checked_add(Span::new().weeks(i64::from(step) * rule.interval))
                        .map_err(TimeError::step)?;
                    days_of_week
                        .iter()
                        .map(|w| {
                            monday
                                .checked_add(Span::new().days(i64::from(w.to_monday_zero_offset())))
                                .map(|d| d.to_datetime(first.time()))
                                .map_err(TimeError::step)
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .into_iter()
                        .filter(|c| *c >= first)
                        .collect()
                }
            };
            for civil in candidates {
                let start = secs(civil, &self.start.tz)?;
                if rule.count.is_some_and(|c| emitted >= c)
                    || rule.until.is_some_and(|u| start > u)
                    || start > at
                {
                    return Ok(out);
                }
                emitted += 1;
                if self.exdates.contains(&start) {
                    continue;
                }
                let end = self.end_of(civil, start)?;
                if start <= at && at < end {
                    out.push(Occurrence { start, end });
                }
            }
        }
        Ok(out)
    }
}

/// The occurrences covering `at`, with the event each came from (its
/// override where one replaces the instance).
pub fn covering(events: &[Event], at: i64) -> Result<Vec<(&Event, Occurrence)>, TimeError> {
    let mut out = Vec::new();
    for e in events
        .iter()
        .filter(|e| e.recurrence_id.is_none() && !e.cancelled)
    {
        for occ in e.instances_covering(at)? {
            let overridden = events
                .iter()
                .any(|o| o.uid == e.uid && o.recurrence_id == Some(occ.start));
            if !overridden {
                out.push((e, occ));
            }
        }
    }
    // Overrides stand alone: their own start and end, unless cancelled.
    for o in events
        .iter()
        .filter(|e| e.recurrence_id.is_some() && !e.cancelled)
    {
        let start = secs(o.start.civil, &o.start.tz)?;
        let end = o.end_of(o.start.civil, start)?;
        if start <= at && at < end {
            out.push((o, Occurrence { start, end }));
        }
    }
    Ok(out)
}
