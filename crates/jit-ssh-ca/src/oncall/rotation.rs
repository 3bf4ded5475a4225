//! A rotation declared in the config: members take turns, each for one
//! shift, handing off at a fixed local time. Shifts that are whole days
//! are counted in the zone's calendar, so a 09:00 hand-off stays at 09:00
//! across DST changes; shorter shifts are fixed lengths of time.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Span;

use super::ical::{Occurrence, TimeError};

#[derive(Debug, Clone)]
pub struct Rotation {
    pub members: Vec<String>,
    /// Shift length in seconds.
    pub shift_secs: i64,
    /// The first hand-off: when `members[0]` starts.
    pub handoff: DateTime,
    pub tz: TimeZone,
}

const DAY: i64 = 86_400;

impl Rotation {
    fn start_of(&self, n: i64) -> Result<i64, TimeError> {
        let civil = if self.shift_secs % DAY == 0 {
            self.handoff
                .checked_add(Span::new().days(n * (self.shift_secs / DAY)))
        } else {
            self.handoff
                .checked_add(Span::new().seconds(n * self.shift_secs))
        }
        .map_err(|e| TimeError::new(format!("shift {n} after the hand-off"), e))?;
        civil
            .to_zoned_datetime(self.tz.clone())
            .map(|z| z.timestamp().as_second())
            .map_err(|e| TimeError::new(format!("{civil} in the rotation's zone"), e))
    }

    /// Who is on shift at `at`, and that shift. Nobody before the first
    /// hand-off, or when the rotation has no members.
    pub fn at(&self, at: i64) -> Result<Option<(String, Occurrence)>, TimeError> {
        if self.members.is_empty() || self.shift_secs <= 0 {
            return Ok(None);
        }
        let first = self.start_of(0)?;
        if at < first {
            return Ok(None);
        }
        // A first guess from the plain length, then corrected for DST
        // shifts of an hour either way.
        let mut n = (at - first) / self.shift_secs;
        while n > 0 && self.start_of(n)? > at {
            n -= 1;
        }
        while self.start_of(n + 1)? <= at {
            n += 1;
        }
        let member = &self.members[usize::try_from(n).unwrap_or(0) % self.members.len()];
        Ok(Some((
            member.clone(),
            Occurrence {
                start: self.start_of(n)?,
                end: self.start_of(n + 1)?,
            },
        )))
    }
}
