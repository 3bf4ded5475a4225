//! Durations as people write them: `90s`, `10m`, `1h30m`, `2d`.
//! Units: `s`, `m`, `h`, `d`; at least one part; no sign, no fractions.
//! A compound duration names its units from largest to smallest, each at
//! most once (`1h30m`, `2d12h`): `30m30m` or `30m1h` are errors, not sums,
//! so a value always reads the way it parses.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration (write it like 90s, 10m or 1h30m)")]
    Empty,
    #[error("invalid duration {0:?}: write it like 90s, 10m or 1h30m (units s, m, h, d)")]
    Invalid(String),
    #[error("invalid duration {0:?}: name each unit once, largest first (like 1h30m)")]
    UnitOrder(String),
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses `"1h30m"` and friends. A bare number is refused: the unit is
/// what makes `10` unambiguous.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let invalid = || DurationError::Invalid(text.to_owned());
    let overflow = || DurationError::Overflow(text.to_owned());
    let mut total: u64 = 0;
    // The last unit seen: the next must be strictly smaller.
    let mut last_unit = u64::MAX;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(invalid()),
        };
        if digits.is_empty() {
            return Err(invalid());
        }
        if unit >= last_unit {
            return Err(DurationError::UnitOrder(text.to_owned()));
        }
        last_unit = unit;
        let n: u64 = digits.parse().map_err(|_| overflow())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(overflow)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(invalid());
    }
    Ok(Duration::from_secs(total))
}

/// Formats whole seconds the way [`parse_duration`] reads them: `1h30m`.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, name) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if secs >= unit {
            out.push_str(&(secs / unit).to_string());
            out.push(name);
            secs %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        for (text, secs) in [
            ("90s", 90),
            ("10m", 600),
            ("1h30m", 5400),
            ("2d", 172_800),
            ("2d12h", 216_000),
            ("1h0m5s", 3605),
            (" 1h ", 3600),
        ] {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_secs(secs),
                "{text}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(61)), "1m1s");
    }

    #[test]
    fn refuses_ambiguous_or_broken_input() {
        for text in ["", "10", "m", "1x", "-5m", "1.5h", "10m5"] {
            assert!(parse_duration(text).is_err(), "{text:?} accepted");
        }
        // One number per unit, largest unit first: never a silent sum.
        for text in ["30m30m", "30m1h", "1s1s", "5m1h", "1d2d", "1h30m1h"] {
            assert!(
                matches!(parse_duration(text), Err(DurationError::UnitOrder(_))),
                "{text:?}: {:?}",
                parse_duration(text)
            );
        }
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
    }
}
