//! How the CA logs: the operator's filter (`JIT_SSH_LOG`, default `info`)
//! for our own crates, and never more than `info` from dependencies,
//! whatever the filter says. Our code logs no secret at any level (tests
//! check it at `trace`); dependencies do at `debug` and `trace` —
//! webauthn-rs prints the registration state and the attestation, the
//! HTTP/2 layer the request path with its one-time enrollment token.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The environment variable holding the filter (`RUST_LOG` syntax).
pub const ENV: &str = "JIT_SSH_LOG";

/// Whether an event or span from `meta` may be logged at all: everything
/// from our crates (the operator's filter decides), `info` and above from
/// anyone else.
pub fn allowed(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("jit_ssh") || *meta.level() <= Level::INFO
}

/// The operator's filter from `JIT_SSH_LOG`, or `info`.
pub fn env_filter() -> EnvFilter {
    EnvFilter::try_from_env(ENV).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber: `filter`, capped by [`allowed`],
/// written to `writer` as text or JSON lines.
pub fn init<W>(filter: EnvFilter, json: bool, ansi: bool, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(filter_fn(allowed));
    if json {
        registry
            .with(tracing_subscriber::fmt::layer().json().with_writer(writer))
            .init();
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(writer),
            )
            .init();
    }
}
