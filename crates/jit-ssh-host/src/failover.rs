//! Several CA replicas: a host (and the client) may name more than one CA
//! URL and moves to the next when one cannot be reached or answers with a
//! server error. Nothing else moves it on: a refused signature or a 4xx
//! from one replica is the answer, since every replica shares one state
//! and one signing key set, and trying another would only hide an attack.

use std::future::Future;

use reqwest::Url;

use crate::error::HostError;
use crate::fetch::check_ca_url;

/// Parses `--ca-url`: one URL, or several separated by commas (spaces
/// around them ignored), each https (or http to loopback). Order is
/// preference: the first is tried first.
pub fn parse_ca_urls(text: &str) -> Result<Vec<Url>, HostError> {
    let mut urls = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(HostError::Usage(format!(
                "--ca-url {text:?}: an empty URL in the list"
            )));
        }
        let url =
            Url::parse(part).map_err(|e| HostError::Usage(format!("--ca-url {part:?}: {e}")))?;
        check_ca_url(&url)?;
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    if urls.is_empty() {
        return Err(HostError::Usage("--ca-url: no URL given".into()));
    }
    Ok(urls)
}

/// The URLs as given, for messages: `https://a/, https://b/`.
pub fn list(urls: &[Url]) -> String {
    urls.iter().map(Url::as_str).collect::<Vec<_>>().join(", ")
}

/// Runs `attempt` against each URL in turn until one does not fail with
/// `CaUnreachable` (no connection, a timeout, a 5xx); returns its result.
/// When every URL is unreachable, the error names each one and why.
pub async fn first_answering<T, F, Fut>(urls: &[Url], mut attempt: F) -> Result<T, HostError>
where
    F: FnMut(Url) -> Fut,
    Fut: Future<Output = Result<T, HostError>>,
{
    let mut failures: Vec<String> = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        match attempt(url.clone()).await {
            Err(HostError::CaUnreachable { url: u, detail }) if i + 1 < urls.len() => {
                eprintln!("jit-ssh: cannot reach the CA at {u} ({detail}); trying the next");
                failures.push(format!("{u}: {detail}"));
            }
            Err(HostError::CaUnreachable { url: u, detail }) if !failures.is_empty() => {
                failures.push(format!("{u}: {detail}"));
                return Err(HostError::CaUnreachable {
                    url: list(urls),
                    detail: format!("no replica answered ({})", failures.join("; ")),
                });
            }
            other => return other,
        }
    }
    // `urls` is never empty (parse_ca_urls), but fail closed if it is.
    Err(HostError::Usage("no CA URL given".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_split_checked_and_deduplicated() {
        let urls = parse_ca_urls("https://a.example, https://b.example,https://a.example").unwrap();
        let got: Vec<&str> = urls.iter().map(Url::as_str).collect();
        assert_eq!(got, ["https://a.example/", "https://b.example/"]);
        assert!(parse_ca_urls("https://a.example,,https://b.example").is_err());
        assert!(parse_ca_urls("https://a.example, http://b.example").is_err());
        assert!(parse_ca_urls("").is_err());
    }

    fn unreachable(url: &Url) -> HostError {
        HostError::CaUnreachable {
            url: url.to_string(),
            detail: "connection refused".into(),
        }
    }

    #[tokio::test]
    async fn an_unreachable_replica_moves_on_and_a_refusal_does_not() {
        let urls = parse_ca_urls("https://a.example,https://b.example,https://c.example").unwrap();
        let got = first_answering(&urls, |u| async move {
            if u.host_str() == Some("a.example") {
                Err(unreachable(&u))
            } else {
                Ok(u.host_str().unwrap().to_owned())
            }
        })
        .await;
        assert_eq!(got.unwrap(), "b.example");

        let mut tried = Vec::new();
        let got = first_answering(&urls, |u| {
            tried.push(u.host_str().unwrap().to_owned());
            async move { Err::<(), _>(HostError::SyncRefused("bad signature".into())) }
        })
        .await;
        assert!(matches!(got, Err(HostError::SyncRefused(_))));
        assert_eq!(tried, ["a.example"], "a refusal is the answer");
    }

    #[tokio::test]
    async fn all_unreachable_names_each_replica() {
        let urls = parse_ca_urls("https://a.example,https://b.example").unwrap();
        let got = first_answering(&urls, |u| async move { Err::<(), _>(unreachable(&u)) }).await;
        let msg = got.unwrap_err().to_string();
        assert!(
            msg.contains("a.example") && msg.contains("b.example"),
            "{msg}"
        );
    }
}
