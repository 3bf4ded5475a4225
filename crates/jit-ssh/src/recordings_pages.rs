//! `jit-ssh audit sessions` reads the CA's listing a page at a time
//! (`GET /v1/recordings?limit=&after=`) and prints each page as it
//! comes: neither the CA nor this client ever holds every session.

use std::future::Future;

use jit_ssh_proto::recordings::{RecordingList, RecordingParams, MAX_LIST_LIMIT};

use crate::error::ClientError;

/// The page size asked for: the CA's most, so few requests are made.
pub const PAGE: usize = MAX_LIST_LIMIT;

/// Hands `first` and every page after it to `each`, in order, fetching
/// the next with `fetch` (the same filters, `after` the page's `next`)
/// until a page has no `next`. A CA that answers a cursor with the same
/// cursor again is an error, not an endless loop.
pub async fn each_page<F, Fut>(
    params: &RecordingParams,
    first: RecordingList,
    fetch: F,
    mut each: impl FnMut(&RecordingList) -> Result<(), ClientError>,
) -> Result<(), ClientError>
where
    F: Fn(RecordingParams) -> Fut,
    Fut: Future<Output = Result<RecordingList, ClientError>>,
{
    let mut asked = params.clone();
    let mut page = first;
    loop {
        each(&page)?;
        let Some(next) = page.next.take() else {
            return Ok(());
        };
        if asked.after.as_deref() == Some(next.as_str()) {
            return Err(ClientError::Other(anyhow::anyhow!(
                "the CA answered the page after {next:?} with the same cursor again; stopped listing"
            )));
        }
        asked.after = Some(next);
        page = fetch(asked.clone()).await?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::cell::RefCell;

    use jit_ssh_proto::recordings::RecordingSummary;

    use super::*;

    fn row(session: &str) -> RecordingSummary {
        RecordingSummary {
            session: session.into(),
            user: "alice".into(),
            host: "db-1.dev".into(),
            account: "oncall".into(),
            grant: "g".into(),
            serial: 7,
            key_id: "k".into(),
            record: "output".into(),
            started_at: "2026-11-30T10:00:00Z".into(),
            ended_at: None,
            reason: None,
            chunks: 1,
            stored_bytes: 1,
            output_bytes: None,
        }
    }

    fn page(rows: &[&str], next: Option<&str>) -> RecordingList {
        RecordingList {
            recordings: rows.iter().map(|s| row(s)).collect(),
            next: next.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn every_page_is_fetched_after_the_last_ones_cursor_with_the_same_filters() {
        let params = RecordingParams {
            user: Some("alice".into()),
            limit: Some(2),
            ..Default::default()
        };
        let asked = RefCell::new(Vec::new());
        let mut seen = Vec::new();
        each_page(
            &params,
            page(&["s-5", "s-4"], Some("9:s-4")),
            |p: RecordingParams| {
                asked.borrow_mut().push(p.clone());
                async move {
                    Ok(match p.after.as_deref() {
                        Some("9:s-4") => page(&["s-3", "s-2"], Some("7:s-2")),
                        Some("7:s-2") => page(&["s-1"], None),
                        other => panic!("asked after {other:?}"),
                    })
                }
            },
            |l| {
                seen.extend(l.recordings.iter().map(|r| r.session.clone()));
                Ok(())
            },
        )
        .await
        .unwrap();
        assert_eq!(seen, ["s-5", "s-4", "s-3", "s-2", "s-1"]);
        let asked = asked.into_inner();
        assert_eq!(asked.len(), 2);
        assert!(asked
            .iter()
            .all(|p| p.user.as_deref() == Some("alice") && p.limit == Some(2)));
    }

    #[tokio::test]
    async fn a_cursor_answered_with_itself_stops_the_listing() {
        let params = RecordingParams::default();
        let e = each_page(
            &params,
            page(&["s-2"], Some("9:s-2")),
            |_| async { Ok(page(&["s-2"], Some("9:s-2"))) },
            |_| Ok(()),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("same cursor again"), "{e}");
    }
}
