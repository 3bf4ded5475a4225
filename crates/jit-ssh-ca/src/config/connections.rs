//! `[connections]`: how long a client may take and how many connections
//! the CA holds at once. Without these a few thousand half-sent requests
//! hold a file descriptor each for ever (slowloris).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Collector;

/// The checked limits; see [`ConnectionsFile`] for what each one means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Connections held at once from one client address (IPv6: one /64).
    pub max_per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_per_address: 64,
        }
    }
}

/// The `[connections]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsFile {
    /// Time for a request's headers to arrive, from the connection's start
    /// (TLS handshake included) or from the end of the previous response
    /// on a kept-alive connection (default "10s"). A connection that sends
    /// no complete request head in this time is closed.
    pub header_timeout: Option<Spanned<String>>,
    /// Time for a request body to arrive in full once its headers are in
    /// (default "10s"; bodies are at most 16 KiB). The request is answered
    /// 408 `request_timeout` and the connection closed.
    pub body_timeout: Option<Spanned<String>>,
    /// A connection with no request being handled for this long is closed,
    /// whatever bytes trickle in; so is one whose client stops reading a
    /// response for this long (default "30s"). Long polls are requests
    /// being handled, so they are not cut.
    pub idle_timeout: Option<Spanned<String>>,
    /// Most connections held at once (default 512); beyond it new
    /// connections are closed at once. Keep it well below the process's
    /// open-file limit (`ulimit -n`, systemd `LimitNOFILE`).
    pub max: Option<Spanned<u64>>,
    /// Most connections held at once from one client address, an IPv6
    /// /64 counting as one (default 64), so one busy client cannot take
    /// every slot. Behind a reverse proxy every client has the proxy's
    /// address: raise it to `max` there.
    pub max_per_address: Option<Spanned<u64>>,
}

pub(super) fn limits(f: &ConnectionsFile, c: &mut Collector<'_>) -> ConnectionLimits {
    let d = ConnectionLimits::default();
    let mut dur = |v: &Option<Spanned<String>>, name: &str, default: Duration| {
        let Some(s) = v else { return default };
        match c.duration(s, &format!("connections.{name}")) {
            Some(t) if t.is_zero() => {
                c.at(
                    s.span(),
                    format!("connections.{name}: must be more than 0s"),
                );
                default
            }
            Some(t) => t,
            None => default,
        }
    };
    let header_timeout = dur(&f.header_timeout, "header_timeout", d.header_timeout);
    let body_timeout = dur(&f.body_timeout, "body_timeout", d.body_timeout);
    let idle_timeout = dur(&f.idle_timeout, "idle_timeout", d.idle_timeout);
    let mut count = |v: &Option<Spanned<u64>>, name: &str, default: usize| match v {
        Some(m) if *m.get_ref() == 0 || *m.get_ref() > 1_000_000 => {
            c.at(
                m.span(),
                format!("connections.{name}: must be between 1 and 1000000"),
            );
            default
        }
        Some(m) => usize::try_from(*m.get_ref()).unwrap_or(default),
        None => default,
    };
    let max_connections = count(&f.max, "max", d.max_connections);
    let max_per_address = count(&f.max_per_address, "max_per_address", d.max_per_address);
    ConnectionLimits {
        header_timeout,
        body_timeout,
        idle_timeout,
        max_connections,
        max_per_address,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    use crate::config::TEST_BASE as BASE;

    #[test]
    fn defaults_apply_without_the_section_and_values_are_read() {
        let c = crate::config::parse(BASE, "t").unwrap();
        assert_eq!(c.connections, ConnectionLimits::default());
        let text = format!(
            "{BASE}[connections]\nheader_timeout = \"2s\"\nbody_timeout = \"3s\"\nidle_timeout = \"1m\"\nmax = 64\nmax_per_address = 8\n"
        );
        let c = crate::config::parse(&text, "t").unwrap();
        assert_eq!(
            c.connections,
            ConnectionLimits {
                header_timeout: Duration::from_secs(2),
                body_timeout: Duration::from_secs(3),
                idle_timeout: Duration::from_secs(60),
                max_connections: 64,
                max_per_address: 8,
            }
        );
    }

    #[test]
    fn zero_or_nonsense_limits_are_problems() {
        let text = format!(
            "{BASE}[connections]\nheader_timeout = \"0s\"\nbody_timeout = \"soon\"\nmax = 0\n"
        );
        let e = crate::config::parse(&text, "t").unwrap_err().to_string();
        for want in [
            "connections.header_timeout: must be more than 0s",
            "connections.body_timeout",
            "connections.max: must be between 1 and 1000000",
        ] {
            assert!(e.contains(want), "missing {want:?} in {e}");
        }
    }
}
