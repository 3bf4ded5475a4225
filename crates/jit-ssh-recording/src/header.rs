//! The asciicast v2 header line, with what ties the recording to the
//! grant and certificate that let the session in under `"jit_ssh"`
//! (nested, so a future asciicast field cannot collide with ours).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The most bytes a header line may have.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The most characters of a session id.
pub const MAX_SESSION_ID_CHARS: usize = 64;

/// What the session policy records (`off` sessions have no recording).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordMode {
    /// Terminal output and window size only.
    Output,
    /// Output and what the person typed (passwords too: opt-in).
    Full,
}

/// Names one recorded session: 1 to [`MAX_SESSION_ID_CHARS`] of
/// `A-Z a-z 0-9 . _ -`, so it is safe in a file name and a log line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(String);

#[derive(Debug, thiserror::Error)]
#[error("a session id is 1 to {MAX_SESSION_ID_CHARS} characters of A-Z a-z 0-9 . _ -")]
pub struct BadSessionId;

impl SessionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SessionId {
    type Error = BadSessionId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let ok = !s.is_empty()
            && s.len() <= MAX_SESSION_ID_CHARS
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(SessionId(s))
        } else {
            Err(BadSessionId)
        }
    }
}

impl TryFrom<&str> for SessionId {
    type Error = BadSessionId;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        SessionId::try_from(s.to_owned())
    }
}

impl From<SessionId> for String {
    fn from(id: SessionId) -> String {
        id.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose session this is and what let it in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionInfo {
    pub session_id: SessionId,
    /// The certificate's key id.
    pub key_id: String,
    /// The certificate's serial, a decimal string (as every serial).
    pub serial: String,
    /// The grant the certificate was issued for.
    pub grant_id: String,
    /// The person (the grant's requester).
    pub user: String,
    /// The host's enrolled name.
    pub host: String,
    /// The account logged in to.
    pub account: String,
    /// The session policy's record mode.
    pub record: RecordMode,
}

/// An asciicast v2 header (`version` is always 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Initial terminal columns.
    pub width: u16,
    /// Initial terminal rows.
    pub height: u16,
    /// Unix seconds at the start of the session.
    pub timestamp: u64,
    /// Captured environment (asciicast records `TERM` and `SHELL`).
    pub env: BTreeMap<String, String>,
    pub session: SessionInfo,
}

/// The line as JSON, field order fixed so one header has one line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    version: u8,
    width: u16,
    height: u16,
    timestamp: u64,
    env: BTreeMap<String, String>,
    jit_ssh: SessionInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("the header line is over {MAX_HEADER_BYTES} bytes")]
    TooLong,
    #[error("the header is not one line")]
    NotOneLine,
    #[error("the header is not an asciicast v2 header with jit_ssh fields: {0}")]
    Json(#[source] serde_json::Error),
    #[error("asciicast version {0}, expected 2")]
    Version(u8),
    #[error("serial {0:?} is not a decimal number")]
    Serial(String),
}

impl Header {
    /// The exact JSON line (no newline) that is recorded and hashed.
    pub fn to_line(&self) -> Result<String, HeaderError> {
        check_serial(&self.session.serial)?;
        let line = serde_json::to_string(&Line {
            version: 2,
            width: self.width,
            height: self.height,
            timestamp: self.timestamp,
            env: self.env.clone(),
            jit_ssh: self.session.clone(),
        })
        .map_err(HeaderError::Json)?;
        if line.len() > MAX_HEADER_BYTES {
            return Err(HeaderError::TooLong);
        }
        Ok(line)
    }

    /// Parses a header line strictly (unknown fields are refused).
    pub fn parse_line(line: &str) -> Result<Header, HeaderError> {
        if line.len() > MAX_HEADER_BYTES {
            return Err(HeaderError::TooLong);
        }
        if line.contains(['\n', '\r']) {
            return Err(HeaderError::NotOneLine);
        }
        let l: Line = serde_json::from_str(line).map_err(HeaderError::Json)?;
        if l.version != 2 {
            return Err(HeaderError::Version(l.version));
        }
        check_serial(&l.jit_ssh.serial)?;
        Ok(Header {
            width: l.width,
            height: l.height,
            timestamp: l.timestamp,
            env: l.env,
            session: l.jit_ssh,
        })
    }
}

fn check_serial(s: &str) -> Result<(), HeaderError> {
    if s.len() <= 20 && s.parse::<u64>().is_ok() && !s.starts_with('+') {
        Ok(())
    } else {
        Err(HeaderError::Serial(s.to_owned()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(id: &str, record: RecordMode) -> Header {
        Header {
            width: 80,
            height: 24,
            timestamp: 1_790_000_000,
            env: BTreeMap::from([("TERM".into(), "xterm-256color".into())]),
            session: SessionInfo {
                session_id: SessionId::try_from(id).unwrap(),
                key_id: "alice@grant-7".into(),
                serial: "42".into(),
                grant_id: "grant-7".into(),
                user: "alice".into(),
                host: "web1".into(),
                account: "deploy".into(),
                record,
            },
        }
    }

    #[test]
    fn a_header_line_round_trips_and_is_asciicast_v2() {
        let h = sample("s1", RecordMode::Output);
        let line = h.to_line().unwrap();
        assert!(line.starts_with("{\"version\":2,\"width\":80,\"height\":24,"));
        assert_eq!(Header::parse_line(&line).unwrap(), h);
    }

    #[test]
    fn strict_parsing_refuses_what_a_recorder_never_writes() {
        let line = sample("s1", RecordMode::Full).to_line().unwrap();
        let v3 = line.replace("\"version\":2", "\"version\":3");
        assert!(matches!(
            Header::parse_line(&v3),
            Err(HeaderError::Version(3))
        ));
        let extra = line.replacen('{', "{\"title\":\"x\",", 1);
        assert!(matches!(
            Header::parse_line(&extra),
            Err(HeaderError::Json(_))
        ));
        assert!(matches!(
            Header::parse_line(&format!("{line}\n")),
            Err(HeaderError::NotOneLine)
        ));
        let bad_serial = line.replace("\"serial\":\"42\"", "\"serial\":\"-1\"");
        assert!(matches!(
            Header::parse_line(&bad_serial),
            Err(HeaderError::Serial(_))
        ));
    }

    #[test]
    fn session_ids_are_safe_names() {
        assert!(SessionId::try_from("ab-1_2.c").is_ok());
        for bad in ["", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(SessionId::try_from(bad).is_err(), "{bad:?}");
        }
    }
}
