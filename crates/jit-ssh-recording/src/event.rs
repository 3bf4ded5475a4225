//! asciicast v2 events: one JSON array per line, `[time, code, data]`,
//! time in seconds since the session started (written with microsecond
//! precision), code `o` (output), `i` (input) or `r` (resize, data
//! `"COLSxROWS"`), data a JSON string.

use std::time::Duration;

/// The kinds of event a recording holds (asciicast's marker `m` is not
/// one: a recorder never writes it, and a chunk holding it is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Output,
    Input,
    Resize,
}

impl EventKind {
    pub fn code(self) -> &'static str {
        match self {
            EventKind::Output => "o",
            EventKind::Input => "i",
            EventKind::Resize => "r",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Since the session started.
    pub time: Duration,
    pub kind: EventKind,
    pub data: String,
}

/// What is wrong with a chunk's payload.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("does not decompress: {0}")]
    Decompress(#[source] std::io::Error),
    #[error("decompresses to {found} bytes, the chunk says {expected}")]
    RawLength { expected: u64, found: u64 },
    #[error("is not UTF-8")]
    NotUtf8,
    #[error("does not end with a newline")]
    Unterminated,
    #[error("event {event}: not an asciicast v2 event: {source}")]
    Json {
        event: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("event {event}: time {time} is not a time in seconds")]
    Time { event: u64, time: String },
    #[error("event {event}: unknown event code {code:?}")]
    Code { event: u64, code: String },
    #[error("event {event}: resize {data:?} is not COLSxROWS")]
    Resize { event: u64, data: String },
    #[error("event {event}: time goes backwards")]
    Backwards { event: u64 },
    #[error("event {event}: time {time:?} is outside the chunk's {start:?}..={end:?}")]
    OutsideChunk {
        event: u64,
        time: Duration,
        start: Duration,
        end: Duration,
    },
    #[error("holds {found} events, the chunk says {expected}")]
    Count { expected: u64, found: u64 },
}

/// Appends `[time, code, data]\n`.
pub(crate) fn write_line(buf: &mut Vec<u8>, time: Duration, kind: EventKind, data: &str) {
    buf.push(b'[');
    buf.extend_from_slice(format_time(time).as_bytes());
    buf.extend_from_slice(b", \"");
    buf.extend_from_slice(kind.code().as_bytes());
    buf.extend_from_slice(b"\", ");
    crate::json_str::write_json_str(buf, data);
    buf.extend_from_slice(b"]\n");
}

/// Seconds with six decimals: exact for a `Duration` in whole microseconds.
pub(crate) fn format_time(t: Duration) -> String {
    format!("{}.{:06}", t.as_secs(), t.subsec_micros())
}

/// The most seconds an event time may say (about 31 years).
const MAX_TIME_SECS: f64 = 1e9;

/// Parses one event line (without its newline); `event` numbers it in errors.
pub(crate) fn parse_line(line: &str, event: u64) -> Result<Event, PayloadError> {
    let (time, code, data): (serde_json::Number, String, String) =
        serde_json::from_str(line).map_err(|source| PayloadError::Json { event, source })?;
    let secs = time
        .as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < MAX_TIME_SECS)
        .ok_or_else(|| PayloadError::Time {
            event,
            time: time.to_string(),
        })?;
    let time = Duration::from_micros((secs * 1e6).round() as u64);
    let kind = match code.as_str() {
        "o" => EventKind::Output,
        "i" => EventKind::Input,
        "r" => EventKind::Resize,
        _ => return Err(PayloadError::Code { event, code }),
    };
    if kind == EventKind::Resize && parse_size(&data).is_none() {
        return Err(PayloadError::Resize { event, data });
    }
    Ok(Event { time, kind, data })
}

/// `"COLSxROWS"` → (cols, rows).
pub fn parse_size(data: &str) -> Option<(u16, u16)> {
    let (c, r) = data.split_once('x')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(c) || !digits(r) {
        return None;
    }
    Some((c.parse().ok()?, r.parse().ok()?))
}

/// Decodes a chunk's decompressed payload into its events.
pub(crate) fn parse_payload(raw: &[u8]) -> Result<Vec<Event>, PayloadError> {
    let text = std::str::from_utf8(raw).map_err(|_| PayloadError::NotUtf8)?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let body = text.strip_suffix('\n').ok_or(PayloadError::Unterminated)?;
    body.split('\n')
        .enumerate()
        .map(|(i, line)| parse_line(line, i as u64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_asciicast_v2_and_parse_back() {
        let mut buf = Vec::new();
        let t = Duration::from_micros(1_500_001);
        write_line(&mut buf, t, EventKind::Output, "a\u{1b}[0m\"\n é");
        write_line(&mut buf, t, EventKind::Resize, "100x40");
        let text = String::from_utf8(buf.clone()).unwrap();
        assert_eq!(
            text,
            "[1.500001, \"o\", \"a\\u001b[0m\\\"\\n é\"]\n[1.500001, \"r\", \"100x40\"]\n"
        );
        let events = parse_payload(&buf).unwrap();
        assert_eq!(events[0].time, t);
        assert_eq!(events[0].data, "a\u{1b}[0m\"\n é");
        assert_eq!(events[1].kind, EventKind::Resize);
    }

    #[test]
    fn bad_lines_are_named() {
        assert!(matches!(
            parse_payload(b"[1.0, \"o\", \"x\"]\n[1.0, \"m\", \"\"]\n"),
            Err(PayloadError::Code { event: 1, .. })
        ));
        assert!(matches!(
            parse_payload(b"[-1.0, \"o\", \"x\"]\n"),
            Err(PayloadError::Time { event: 0, .. })
        ));
        assert!(matches!(
            parse_payload(b"[1, \"r\", \"80 x 24\"]\n"),
            Err(PayloadError::Resize { .. })
        ));
        assert!(matches!(
            parse_payload(b"[1, \"o\", \"x\"]"),
            Err(PayloadError::Unterminated)
        ));
        assert!(matches!(
            parse_payload(b"[1, \"o\", \"x\", 4]\n"),
            Err(PayloadError::Json { .. })
        ));
    }
}
