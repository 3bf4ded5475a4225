//! `[metrics]`: where Prometheus scrapes `/metrics`. With `listen` the
//! metrics have a listener of their own (plain HTTP, for a management
//! network or loopback) and the main listener does not serve them;
//! without it the main listener serves them only to a bearer token
//! (`token_file`). With neither, no listener serves them.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::Collector;

/// The checked section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
    pub token_file: Option<PathBuf>,
}

/// The `[metrics]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    /// A separate address for `/metrics` (and `/livez`, `/readyz`), e.g.
    /// `127.0.0.1:9722`: plain HTTP, so keep it off untrusted networks.
    pub listen: Option<Spanned<String>>,
    /// File (mode 0600) holding a bearer token that scrapers must send
    /// (`Authorization: Bearer …`; Prometheus: `authorization:
    /// credentials_file`). Required for `/metrics` on the main listener;
    /// optional on `listen`.
    pub token_file: Option<PathBuf>,
}

pub(super) fn metrics(f: &MetricsFile, c: &mut Collector<'_>) -> MetricsConfig {
    let listen = f.listen.as_ref().and_then(|l| match l.get_ref().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            c.at(
                l.span(),
                format!(
                    "metrics.listen: {:?} is not an address like 127.0.0.1:9722",
                    l.get_ref()
                ),
            );
            None
        }
    });
    MetricsConfig {
        listen,
        token_file: f.token_file.clone(),
    }
}
