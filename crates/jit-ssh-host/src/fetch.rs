//! The host's HTTP client: what it will talk to and how much it reads.
//!
//! Signatures protect what is installed, but a host still must not be
//! steered or starved: plain HTTP only to loopback (where no one sits in
//! between), redirects only within the CA's own origin, and every body read
//! in pieces against a cap, so a hostile answer of gigabytes costs at most
//! the cap in memory.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::Url;

use crate::error::HostError;

/// Redirects followed within the CA's origin, at most.
const MAX_REDIRECTS: usize = 5;

fn refused(why: impl Into<String>) -> HostError {
    HostError::SyncRefused(why.into())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// https anywhere; http only to loopback.
pub fn check_ca_url(url: &Url) -> Result<(), HostError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(HostError::Usage(format!(
            "refusing plain http to {url}: host sync needs https unless the CA is on this machine (localhost, 127.0.0.1, ::1)"
        ))),
        other => Err(HostError::Usage(format!(
            "{url}: unsupported scheme {other:?}; use https"
        ))),
    }
}

/// A client that follows redirects only within `origin`'s scheme, host and port.
pub fn client(origin: &Url, extra_root: Option<&Path>) -> Result<reqwest::Client, HostError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let home = origin.origin();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if attempt.url().origin() == home {
            attempt.follow()
        } else {
            let to = attempt.url().origin().ascii_serialization();
            attempt.error(format!("redirect to another origin ({to}) refused"))
        }
    });
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(policy);
    if let Some(p) = extra_root {
        let pem = std::fs::read(p)
            .map_err(|e| HostError::Usage(format!("--ca-cert {}: {e}", p.display())))?;
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(&pem)
                .map_err(|e| HostError::Usage(format!("--ca-cert: {e}")))?,
        );
    }
    builder.build().map_err(|e| HostError::Other(e.into()))
}

/// GETs `url` and reads at most `cap` bytes of its body; more is refused
/// before it is read.
pub async fn get_capped(http: &reqwest::Client, url: &str, cap: u64) -> Result<Vec<u8>, HostError> {
    let failed = |e: reqwest::Error| {
        if e.is_redirect() {
            refused(format!("{url}: {}", error_chain(&e)))
        } else {
            HostError::CaUnreachable {
                url: url.to_owned(),
                detail: error_chain(&e),
            }
        }
    };
    let res = http.get(url).send().await.map_err(failed)?;
    if res.status().is_server_error() {
        return Err(server_error(url, res.status()));
    }
    if !res.status().is_success() {
        return Err(refused(format!("{url} answered {}", res.status())));
    }
    read_capped(res, url, cap, failed).await
}

/// Why a body was not read whole.
pub enum Unread {
    /// It is (or announced it would be) over the cap.
    OverCap,
    Broken(reqwest::Error),
}

/// Reads `res`'s body in pieces, refusing it (before reading, when it is
/// announced) once it passes `cap` bytes: whoever answers must not fill
/// this machine's memory with an endless body. The engineer's client
/// reads the CA's answers through it too.
pub async fn body_within(mut res: reqwest::Response, cap: u64) -> Result<Vec<u8>, Unread> {
    if res.content_length().is_some_and(|n| n > cap) {
        return Err(Unread::OverCap);
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(Unread::Broken)? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(Unread::OverCap);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn read_capped(
    res: reqwest::Response,
    url: &str,
    cap: u64,
    failed: impl Fn(reqwest::Error) -> HostError,
) -> Result<Vec<u8>, HostError> {
    body_within(res, cap).await.map_err(|e| match e {
        Unread::OverCap => refused(format!("{url}: the answer is over the {cap}-byte limit")),
        Unread::Broken(e) => failed(e),
    })
}

/// POSTs `body` as JSON and reads a JSON answer of at most `cap` bytes;
/// the CA's refusal (its JSON error) is passed on in its own words.
pub async fn post_capped<B: serde::Serialize, T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    body: &B,
    cap: u64,
) -> Result<T, HostError> {
    post_answer(http, url, body, cap)
        .await?
        .map_err(|r| refused(format!("the CA refused ({}): {}", r.status, r.message)))
}

/// A 4xx answer: the CA (or something before it) refused the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: reqwest::StatusCode,
    /// The CA's stable error code, when the answer was the CA's JSON
    /// error (a proxy's page has none).
    pub code: Option<String>,
    /// The CA's message (escaped for a terminal), or the status.
    pub message: String,
}

/// As [`post_capped`], with a 4xx answer given back as what it is, so a
/// caller can tell a refusal of this request from a CA it cannot reach
/// (`Err`: no connection, a 5xx, an unreadable answer).
pub async fn post_answer<B: serde::Serialize, T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    body: &B,
    cap: u64,
) -> Result<Result<T, Refusal>, HostError> {
    let failed = |e: reqwest::Error| HostError::CaUnreachable {
        url: url.to_owned(),
        detail: error_chain(&e),
    };
    let res = http.post(url).json(body).send().await.map_err(failed)?;
    let status = res.status();
    let bytes = read_capped(res, url, cap, failed).await?;
    let said = || serde_json::from_slice::<jit_ssh_proto::error::ErrorBody>(&bytes).ok();
    let words = |b: &jit_ssh_proto::error::ErrorBody| {
        jit_ssh_proto::text::escape_for_terminal(&b.error.message).into_owned()
    };
    if status.is_server_error() {
        // The CA's own words when it gave them (a recordings store below
        // its floor says so); the retry and failover are the same.
        return Err(match said() {
            Some(b) => HostError::CaUnreachable {
                url: url.to_owned(),
                detail: format!("answered {status}: {}", words(&b)),
            },
            None => server_error(url, status),
        });
    }
    if !status.is_success() {
        let body = said();
        return Ok(Err(Refusal {
            status,
            code: body.as_ref().map(|b| b.error.code.clone()),
            message: body.as_ref().map_or_else(|| status.to_string(), words),
        }));
    }
    serde_json::from_slice(&bytes)
        .map(Ok)
        .map_err(|e| refused(format!("{url}: unreadable answer: {e}")))
}

/// A 5xx: the CA (or a proxy before it) could not serve the request, which
/// is how a replica whose database is down answers; another may serve it.
fn server_error(url: &str, status: reqwest::StatusCode) -> HostError {
    HostError::CaUnreachable {
        url: url.to_owned(),
        detail: format!("answered {status}"),
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://ca.example.com",
            "http://localhost:8722",
            "http://127.0.0.1:1",
            "http://127.3.4.5",
            "http://[::1]:8722",
        ] {
            assert!(check_ca_url(&Url::parse(ok).unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "http://ca.example.com",
            "http://10.0.0.1",
            "http://localhost.evil.example",
            "http://[::2]",
            "ftp://localhost",
        ] {
            assert!(check_ca_url(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }
}
