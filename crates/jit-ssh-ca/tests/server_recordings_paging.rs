//! `GET /v1/recordings` answers in pages: at most `limit` recordings
//! (100 by default, 1000 at most), newest first, and a `next` cursor
//! that the following page starts after, so a CA holding many sessions
//! never builds one answer of them all. Filters apply before paging.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod recordings_common;

use recordings_common::*;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

fn sessions(v: &Value) -> Vec<String> {
    v["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["session"].as_str().unwrap().to_owned())
        .collect()
}

/// Every page of `query` at `limit` a page; the sessions in order.
async fn all_pages(s: &Setup, query: &str, limit: usize) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut pages = 0;
    let mut after: Option<String> = None;
    loop {
        let cursor = after
            .as_deref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let (st, v) =
            s.t.get(
                &format!("/v1/recordings?limit={limit}{query}{cursor}"),
                Some(&s.auditor),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let got = sessions(&v);
        assert!(got.len() <= limit, "{v}");
        pages += 1;
        out.extend(got);
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => return (out, pages),
        }
        assert!(pages < 100, "no end to the pages");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_comes_in_pages_newest_first_and_the_cursor_misses_nothing() {
    let s = setup().await;
    let t = &s.t;
    // Seven sessions: two received in the same second (the session id
    // orders them), the others a minute apart.
    let ids = ["s-a", "s-b", "s-c", "s-d", "s-e", "s-f", "s-g"];
    for (k, id) in ids.iter().enumerate() {
        let who = if k % 2 == 0 { &s.alice } else { &s.bob };
        let rec = record(who, id, &s.host_key, 1);
        let (st, v) = upload(t, id, &rec.header, &rec.chunks[..1]).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        if k != 2 {
            t.clock.advance(Duration::from_secs(60));
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().map(|s| s.to_string()).collect();

    let (got, pages) = all_pages(&s, "", 3).await;
    assert_eq!(got, newest_first);
    assert_eq!(pages, 3);
    let (got, pages) = all_pages(&s, "", 7).await;
    assert_eq!((got, pages), (newest_first.clone(), 1));

    // Filters first, then pages: Bob's three, one a page.
    let (got, pages) = all_pages(&s, "&user=bob", 1).await;
    assert_eq!(got, ["s-f", "s-d", "s-b"]);
    assert_eq!(pages, 3);

    // A session received after the first page was read comes before
    // the cursor: the pages still hold every older one, once.
    let (_, first) = t.get("/v1/recordings?limit=2", Some(&s.auditor)).await;
    let next = first["next"].as_str().unwrap().to_owned();
    t.clock.advance(Duration::from_secs(60));
    let rec = record(&s.alice, "s-new", &s.host_key, 1);
    assert_eq!(
        upload(t, "s-new", &rec.header, &rec.chunks).await.0,
        StatusCode::OK
    );
    let (_, rest) = t
        .get(
            &format!("/v1/recordings?limit=10&after={next}"),
            Some(&s.auditor),
        )
        .await;
    assert_eq!(sessions(&rest), newest_first[2..]);
    assert!(rest.get("next").is_none_or(Value::is_null), "{rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_holds_100_by_default_and_limits_and_cursors_are_checked() {
    let s = setup().await;
    let t = &s.t;
    for k in 0..101 {
        let id = format!("s-{k:03}");
        let rec = record(&s.alice, &id, &s.host_key, 1);
        let (st, v) = upload(t, &id, &rec.header, &rec.chunks[..1]).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (st, v) = t.get("/v1/recordings", Some(&s.auditor)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(sessions(&v).len(), 100);
    let next = v["next"].as_str().unwrap();
    let (_, last) = t
        .get(&format!("/v1/recordings?after={next}"), Some(&s.auditor))
        .await;
    assert_eq!(sessions(&last), ["s-000"]);

    for (q, want) in [
        ("limit=0", "limit: 1 to 1000"),
        ("limit=1001", "limit: 1 to 1000"),
        ("after=nonsense", "after: not a cursor"),
        ("after=x:s-1", "after: not a cursor"),
    ] {
        let (st, v) = t
            .get(&format!("/v1/recordings?{q}"), Some(&s.auditor))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {v}");
        assert!(message(&v).starts_with(want), "{q}: {v}");
    }
}

#[test]
#[ignore = "measurement"]
fn measure_a_page_of_a_large_store() {
    use jit_ssh_ca::recordings::{LocalRecordings, RecordingMeta, RecordingStore};
    use jit_ssh_recording::SessionId;
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalRecordings::new(tmp.path().join("recordings"));
    let n: i64 = std::env::var("JIT_SSH_MEASURE_RECORDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    for k in 0..n {
        let meta = RecordingMeta {
            session: SessionId::try_from(format!("s-{k:06}")).unwrap(),
            user: "alice".into(),
            host: "db-1.dev".into(),
            account: "oncall".into(),
            grant: "g".repeat(32),
            serial: 7,
            key_id: "k".repeat(60),
            record: "output".into(),
            host_key: "ssh-ed25519 AAAA".repeat(5),
            host_key_fingerprint: "SHA256:x".into(),
            started_at: 1_796_000_000,
            received_at: 1_796_000_000 + k,
            updated_at: 1_796_000_000 + k,
            chunks: 0,
            chunk_bytes: 0,
            ended: None,
            chain: None,
            certificate: None,
        };
        store.begin(&meta, "{}").unwrap();
    }
    let t = std::time::Instant::now();
    let all = store.list().unwrap();
    let listed = t.elapsed();
    // The first page builds the index (a store an older CA made has
    // none; here each begin already appended its line).
    let t = std::time::Instant::now();
    let (page, more) = store.page(&|_| true, None, 100).unwrap();
    let paged = t.elapsed();
    assert_eq!((all.len(), page.len(), more), (n as usize, 100, true));
    // A page from the middle: the cursor is found in the index.
    let middle = &all[n as usize / 2];
    let t = std::time::Instant::now();
    let (deep, _) = store.page(&|_| true, Some(&middle.order()), 100).unwrap();
    let paged_deep = t.elapsed();
    assert_eq!(deep.len(), 100);
    println!(
        "MEASURE {n} recordings: the whole list {listed:?} (every state read: what each page cost before the index); the first page of 100 {paged:?}; a page of 100 from the middle {paged_deep:?}"
    );
}
