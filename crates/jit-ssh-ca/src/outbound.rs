//! The CA's outgoing HTTP (on-call feeds, notifications): one client
//! shape, TLS through rustls on ring like the rest of the CA.

use std::time::Duration;

pub fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    // Another part of the process may have installed it already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("jit-ssh-ca/", env!("CARGO_PKG_VERSION")))
        .build()
}
