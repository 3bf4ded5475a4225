//! Keeping on-call feeds fresh while the server runs: URL feeds fetched
//! on their refresh interval, file feeds re-read every minute. A failed
//! fetch keeps the last good copy and is logged.

use std::sync::Arc;
use std::time::Duration;

use crate::service::Ca;

const FILE_REREAD: Duration = Duration::from_secs(60);
/// A feed larger than this is not a schedule.
const MAX_FEED_BYTES: usize = 8 * 1024 * 1024;

pub fn start(ca: Arc<Ca>) {
    for (name, url, every) in ca.schedules.urls() {
        let ca = ca.clone();
        tokio::spawn(async move {
            let http = match crate::outbound::http_client(Duration::from_secs(20)) {
                Ok(h) => h,
                Err(e) => {
                    return tracing::error!(schedule = %name, error = %e, "no HTTP client for on-call feeds")
                }
            };
            loop {
                match fetch(&http, &url).await {
                    Ok(text) => match ca.schedules.set_feed(&name, &text) {
                        Ok(n) => {
                            tracing::info!(schedule = %name, events = n, "on-call feed loaded")
                        }
                        Err(e) => {
                            tracing::error!(schedule = %name, error = %e, "on-call feed refused; keeping the last good copy")
                        }
                    },
                    Err(e) => {
                        tracing::error!(schedule = %name, host = url.host_str().unwrap_or(""), error = %e, "fetching the on-call feed failed; keeping the last good copy");
                        ca.schedules.feed_failed(&name, e);
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(FILE_REREAD).await;
            let ca = ca.clone();
            let failures = tokio::task::spawn_blocking(move || ca.schedules.load_files()).await;
            for (name, e) in failures.unwrap_or_default() {
                tracing::error!(schedule = %name, error = %e, "re-reading the on-call feed failed; keeping the last good copy");
            }
        }
    });
}

async fn fetch(http: &reqwest::Client, url: &url::Url) -> Result<String, String> {
    let res = http.get(url.clone()).send().await.map_err(|e| {
        if e.is_timeout() {
            "timed out".to_owned()
        } else {
            "request failed".to_owned()
        }
    })?;
    if !res.status().is_success() {
        return Err(format!("HTTP {}", res.status().as_u16()));
    }
    let bytes = res
        .bytes()
        .await
        .map_err(|_| "reading the body failed".to_owned())?;
    if bytes.len() > MAX_FEED_BYTES {
        return Err(format!("the feed is over {MAX_FEED_BYTES} bytes"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| "the feed is not UTF-8".to_owned())
}
