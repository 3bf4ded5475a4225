//! What one host can make the CA keep: at most `[recordings]
//! max_sessions_per_grant` sessions under one grant, and nothing once
//! the store's filesystem is below its inode floor (many small sessions
//! run a disk out of inodes long before bytes, and the audit log beside
//! them then can make no file either).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod recordings_common;

use axum::http::StatusCode;

use common::TestCa;
use recordings_common::*;

fn listed(v: &serde_json::Value) -> Vec<String> {
    v["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["session"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_records_at_most_its_cap_of_sessions_and_others_go_on() {
    let s = setup_with(TestCa::with_policy(
        "",
        "\n[recordings]\nmax_sessions_per_grant = 3\n",
    ))
    .await;
    let t = &s.t;
    t.ca.set_recordings_probe(disk_with(50 << 30));
    let mut recs = Vec::new();
    for id in ["s-1", "s-2", "s-3"] {
        let rec = record(&s.alice, id, &s.host_key, 2);
        let (st, v) = upload(t, id, &rec.header, &rec.chunks).await;
        assert_eq!(st, StatusCode::OK, "{id}: {v}");
        recs.push(rec);
    }
    // A fourth session under the same grant: refused, nothing kept.
    let before = t.audit_count();
    let rec = record(&s.alice, "s-4", &s.host_key, 2);
    let (st, v) = upload(t, "s-4", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    assert_eq!(
        message(&v),
        format!(
            "grant {} already has 3 recorded sessions, the most [recordings] max_sessions_per_grant (3) allows: session s-4 is not taken (the host keeps it in its spool)",
            s.alice.grant_id
        )
    );
    assert_eq!(t.audit_count(), before, "a refused session was audited");
    let (_, list) = t.get("/v1/recordings", Some(&s.auditor)).await;
    assert!(!listed(&list).contains(&"s-4".to_owned()), "{list}");

    // A session already counted is still taken again (a lost answer).
    let (st, v) = upload(t, "s-3", &recs[2].header, &recs[2].chunks).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Another grant on the same host is not held back.
    let rec = record(&s.bob, "s-b1", &s.host_key, 2);
    let (st, v) = upload(t, "s-b1", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_inode_floor_uploads_are_507_and_store_nothing() {
    let s = setup_with_default_floor().await;
    let t = &s.t;
    // 50 GiB free of 100, and 5,000 inodes free of a million: the
    // default inode floor is 10,000 or 5 % (50,000).
    let inodes = |files_avail: u64| -> jit_ssh_ca::recordings::space::Probe {
        std::sync::Arc::new(move |_: &std::path::Path| {
            Ok(jit_ssh_ca::recordings::space::FsSpace {
                avail: 50 << 30,
                total: 100 << 30,
                files_avail,
                files_total: 1_000_000,
            })
        })
    };
    t.ca.set_recordings_probe(inodes(5_000));
    let before = t.audit_count();
    let rec = record(&s.alice, "s-many", &s.host_key, 2);
    let (st, v) = upload(t, "s-many", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::INSUFFICIENT_STORAGE, "{v}");
    assert_eq!(
        message(&v),
        "the CA's recordings store is below its free-inode floor (5000 files free of 1000000, floor 50000): nothing of this upload was stored; keep the chunks and retry later"
    );
    assert_eq!(t.audit_count(), before);
    // Inodes back: the retry is taken.
    t.ca.set_recordings_probe(inodes(500_000));
    let (st, v) = upload(t, "s-many", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}
