//! Why an iCalendar feed is refused, or a time in it cannot be placed.

/// A feed that does not parse: the first problem, on the line where its
/// property (or its VEVENT) starts.
#[derive(Debug, thiserror::Error)]
#[error("iCalendar line {line}: {problem}")]
pub struct IcalError {
    pub line: usize,
    pub problem: IcalProblem,
}

/// What is wrong with one property or event of a feed.
#[derive(Debug, thiserror::Error)]
pub enum IcalProblem {
    #[error("not a property line: {0:?}")]
    NotAProperty(String),
    #[error("VEVENT inside VEVENT")]
    NestedEvent,
    #[error("VEVENT is not closed (END:VEVENT missing)")]
    Unclosed,
    #[error("VEVENT without DTSTART")]
    NoStart,
    #[error("bad date-time {0:?}")]
    DateTime(String),
    #[error("unknown time zone {name:?}: {source}")]
    Zone {
        name: String,
        #[source]
        source: jiff::Error,
    },
    #[error("bad DURATION {0:?}")]
    Duration(String),
    #[error("bad RRULE part {0:?}")]
    RulePart(String),
    #[error("RRULE FREQ={0} is not supported (DAILY, WEEKLY)")]
    Freq(String),
    #[error("bad INTERVAL")]
    Interval,
    #[error("bad COUNT")]
    Count,
    #[error("BYDAY {0:?} is not supported (plain weekdays only)")]
    ByDay(String),
    #[error("RRULE part {0} is not supported")]
    UnsupportedPart(String),
    #[error("RRULE without FREQ")]
    NoFreq,
    #[error("BYDAY with FREQ=DAILY is not supported")]
    DailyByDay,
    #[error(transparent)]
    Time(#[from] TimeError),
}

/// A time the calendar cannot place: a civil time that does not exist in
/// its zone, or a recurrence step past the representable range.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct TimeError {
    what: String,
    #[source]
    source: jiff::Error,
}

impl TimeError {
    pub(super) fn new(what: impl Into<String>, source: jiff::Error) -> Self {
        Self {
            what: what.into(),
            source,
        }
    }

    /// For steps whose failure has nothing to add to jiff's own words.
    pub(super) fn step(source: jiff::Error) -> Self {
        Self::new("a recurrence step", source)
    }
}
