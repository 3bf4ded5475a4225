//! Session recordings at the CA: an enrolled host uploads a session's
//! signed, hash-chained chunks in several requests; resends are accepted,
//! gaps and changed chunks are 409, a tampered chunk or one signed by
//! another key is refused naming it and stores nothing, a header naming
//! someone else's grant is refused; `session_started`/`session_ended`
//! land in the audit log with the final hash; auditors list and download
//! (engineers may not).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod recordings_common;

use recordings_common::*;

use std::time::Duration;

use axum::http::StatusCode;
use base64ct::{Base64, Encoding};
use serde_json::json;
use ssh_key::{HashAlg, PublicKey};

use jit_ssh_audit::Event;
use jit_ssh_recording::{
    bundle, verify, Chunk, ChunkPolicy, Encoder, EndReason, Header, SessionId,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_uploads_in_parts_resends_are_idempotent_and_the_audit_holds_the_final_hash() {
    let s = setup().await;
    let t = &s.t;
    let rec = record(&s.alice, "s-1", &s.host_key, 12);
    let n = rec.chunks.len();
    assert!(n > 6, "{n} chunks");

    let (st, v) = upload(t, "s-1", &rec.header, &rec.chunks[..3]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"next_index": 3, "ended": false}));
    assert_eq!(session_records(t, "session_started").len(), 1);
    // Chunks 1–2 again, with 3–4 new: the resend is accepted.
    let (st, v) = upload(t, "s-1", &rec.header, &rec.chunks[1..5]).await;
    assert_eq!(
        (st, v["next_index"].as_u64()),
        (StatusCode::OK, Some(5)),
        "{v}"
    );
    // A gap: 409 naming the index expected.
    let (st, v) = upload(t, "s-1", &rec.header, &rec.chunks[6..]).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(
        message(&v).contains("expected chunk index 5, found 6"),
        "{v}"
    );
    // Another chunk at a stored index: 409.
    let other = record_w(&s.alice, "s-1", &s.host_key, 12, 100);
    let (st, v) = upload(t, "s-1", &rec.header, &other.chunks[4..5]).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(message(&v).contains("chunk 4 differs"), "{v}");

    let (st, v) = upload(t, "s-1", &rec.header, &rec.chunks[5..]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"next_index": n, "ended": true}));
    // The whole recording again, after its end: still fine, nothing new.
    let before = t.audit_count();
    let (st, _) = upload(t, "s-1", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(t.audit_count(), before);

    assert_eq!(session_records(t, "session_started").len(), 1);
    let ended = session_records(t, "session_ended");
    let [Event::SessionEnded(e)] = &ended[..] else {
        panic!("{ended:?}")
    };
    assert_eq!(e.final_hash, rec.final_hash.to_string());
    assert_eq!((e.reason.as_str(), e.chunks), ("exit", n as u64));
    assert_eq!(e.subject.grant, s.alice.grant_id);
    assert_eq!(e.final_signature, rec.chunks[n - 1].signature());
    assert!(e.output_bytes > 12 * 900);

    // The auditor downloads it and it verifies against the audit's hash.
    let (st, d) = t.get("/v1/recordings/s-1", Some(&s.auditor)).await;
    assert_eq!(st, StatusCode::OK, "{d}");
    assert_eq!(d["final_hash"].as_str(), Some(&*rec.final_hash.to_string()));
    let bytes = Base64::decode_vec(d["bundle"].as_str().unwrap()).unwrap();
    let (header, chunks) = bundle::read(&bytes[..]).unwrap();
    assert_eq!(chunks, rec.chunks);
    let key = PublicKey::from_openssh(d["host_key"].as_str().unwrap()).unwrap();
    assert_eq!(&key, s.host_key.public_key());
    assert_eq!(
        d["host_key_fingerprint"].as_str(),
        Some(&*key.fingerprint(HashAlg::Sha256).to_string())
    );
    verify(&header, chunks, &key, Some(&rec.final_hash)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_free_space_floor_uploads_are_507_store_nothing_and_issuance_goes_on() {
    let mut s = setup_with_default_floor().await;
    let t = &s.t;
    // Room at first, whatever this machine's disk holds.
    t.ca.set_recordings_probe(disk_with(50 << 30));
    let rec = record(&s.alice, "s-full", &s.host_key, 12);
    let (st, _) = upload(t, "s-full", &rec.header, &rec.chunks[..3]).await;
    assert_eq!(st, StatusCode::OK);
    let other = record(&s.bob, "s-new", &s.host_key, 2);

    // 4 GiB free of 100: under the default floor (1 GiB or 5 %).
    t.ca.set_recordings_probe(disk_with(4 << 30));
    let before = t.audit_count();
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/recordings/s-full")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            json!({"header": rec.header, "chunks": rec.chunks[3..].iter().map(|c| Base64::encode_string(&c.to_bytes())).collect::<Vec<_>>()}).to_string(),
        ))
        .unwrap();
    let (st, headers, v) = t.send(req).await;
    assert_eq!(st, StatusCode::INSUFFICIENT_STORAGE, "{v}");
    assert_eq!(v["error"]["code"], "insufficient_storage");
    assert_eq!(
        message(&v),
        "the CA's recordings store is below its free-space floor (4.0 GiB free of 100.0 GiB, floor 5.0 GiB): nothing of this upload was stored; keep the chunks and retry later"
    );
    assert_eq!(headers["retry-after"], "60");
    // A session's first upload too: no session_started, nothing stored.
    let (st, _) = upload(t, "s-new", &other.header, &other.chunks).await;
    assert_eq!(st, StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(
        t.audit_count(),
        before,
        "a refused upload wrote audit records"
    );
    let (_, list) = t.get("/v1/recordings", Some(&s.auditor)).await;
    assert_eq!(list["recordings"].as_array().unwrap().len(), 1, "{list}");
    let (_, d) = t.get("/v1/recordings/s-full", Some(&s.auditor)).await;
    let bytes = Base64::decode_vec(d["bundle"].as_str().unwrap()).unwrap();
    assert_eq!(bundle::read(&bytes[..]).unwrap().1.len(), 3);
    // Chunks the CA already holds are still acknowledged (a host that
    // lost an answer learns where it stands).
    let (st, v) = upload(t, "s-full", &rec.header, &rec.chunks[..3]).await;
    assert_eq!((st, v["next_index"].as_u64()), (StatusCode::OK, Some(3)));

    // Issuance goes on: the room left is the audit log's.
    let g = grant(t, &mut s.alice_key, "alice", "db-1.dev").await;
    assert!(!g.serial.is_empty());
    assert!(t.audit_count() > before);

    // Room again: the host's retry stores the rest, and the end.
    t.ca.set_recordings_probe(disk_with(50 << 30));
    let (st, v) = upload(t, "s-full", &rec.header, &rec.chunks[3..]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ended"], true);
    let (_, d) = t.get("/v1/recordings/s-full", Some(&s.auditor)).await;
    assert_eq!(d["final_hash"].as_str(), Some(&*rec.final_hash.to_string()));

    // A free space that cannot be read refuses (fail closed).
    t.ca.set_recordings_probe(std::sync::Arc::new(|_: &std::path::Path| {
        Err(std::io::Error::other("no statvfs"))
    }));
    let (st, v) = upload(t, "s-new", &other.header, &other.chunks).await;
    assert_eq!(st, StatusCode::INSUFFICIENT_STORAGE, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_chunk_is_refused_naming_it_and_nothing_is_stored() {
    let s = setup().await;
    let t = &s.t;
    let rec = record(&s.alice, "s-2", &s.host_key, 12);
    let (st, _) = upload(t, "s-2", &rec.header, &rec.chunks[..2]).await;
    assert_eq!(st, StatusCode::OK);
    let before = t.audit_count();

    // Chunk 3 with one byte of its stored form changed inside the payload.
    let mut bytes = rec.chunks[3].to_bytes();
    let payload = &rec.chunks[3].body().payload;
    let at = bytes
        .windows(payload.len())
        .position(|w| w == &payload[..])
        .unwrap()
        + payload.len() / 2;
    bytes[at] ^= 1;
    let tampered = Chunk::from_bytes(&bytes).unwrap();
    let sent = [rec.chunks[2].clone(), tampered];
    let (st, v) = upload(t, "s-2", &rec.header, &sent).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(
        message(&v),
        "chunk 3: signature does not verify with the host key"
    );
    // Nothing of that upload was kept, chunk 2 included.
    assert_eq!(t.audit_count(), before);
    let (st, v) = upload(t, "s-2", &rec.header, &rec.chunks[2..3]).await;
    assert_eq!((st, v["next_index"].as_u64()), (StatusCode::OK, Some(3)));

    // Signed by another key (a host that is enrolled, but not this one's).
    let intruder = random_key();
    enroll_host(t, "db-2.dev", &intruder).await;
    let forged = record(&s.alice, "s-2", &intruder, 12);
    let (st, v) = upload(t, "s-2", &rec.header, &forged.chunks[3..4]).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(message(&v).starts_with("chunk 3: signature"), "{v}");

    // A header edited after the first upload.
    let edited = rec.header.replace("\"width\":80", "\"width\":81");
    let (st, v) = upload(t, "s-2", &edited, &rec.chunks[3..4]).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unenrolled_hosts_other_keys_and_other_peoples_grants_are_refused() {
    let s = setup().await;
    let t = &s.t;
    let before = t.audit_count();

    // A host that is not enrolled.
    let mut info = s.alice.clone();
    info.host = "ghost.dev".into();
    let rec = record(&info, "s-3", &random_key(), 2);
    let (st, v) = upload(t, "s-3", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(
        message(&v).contains("ghost.dev is not an enrolled host"),
        "{v}"
    );

    // The right host, signed by some other key.
    let rec = record(&s.alice, "s-4", &random_key(), 2);
    let (st, v) = upload(t, "s-4", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(message(&v).starts_with("chunk 0: signature"), "{v}");

    // Alice's session claiming Bob's grant (or a serial not its own).
    let mut info = s.alice.clone();
    info.grant_id = s.bob.grant_id.clone();
    let rec = record(&info, "s-5", &s.host_key, 2);
    let (st, v) = upload(t, "s-5", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(message(&v).contains("does not match grant"), "{v}");
    let mut info = s.alice.clone();
    info.serial = s.bob.serial.clone();
    let rec = record(&info, "s-6", &s.host_key, 2);
    let (st, v) = upload(t, "s-6", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let mut info = s.alice.clone();
    info.grant_id = "0".repeat(32);
    let rec = record(&info, "s-7", &s.host_key, 2);
    let (st, _) = upload(t, "s-7", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Bad input: a path that is not a session id, the header's session
    // not the path's, a chunk that is not base64.
    let rec = record(&s.alice, "s-8", &s.host_key, 2);
    let (st, _) = upload(t, "s-9", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = t
        .post(
            "/v1/recordings/s-8",
            &json!({"header": rec.header, "chunks": ["%%%"]}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    assert_eq!(t.audit_count(), before, "refusals store and audit nothing");
    let (st, list) = t.get("/v1/recordings", Some(&s.auditor)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["recordings"], json!([]));
}

/// A host's spool may hold a session longer than the CA keeps the
/// request's row (a CA down for days, uploads refused for space): the
/// grant is checked against its `certificate_issued` audit record, which
/// the CA keeps, with the same strictness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_uploaded_after_its_request_was_pruned_is_still_taken() {
    let s = setup().await;
    let t = &s.t;
    // Eight days on, past `state_retention` (a week): the rows are gone.
    let pruned = t.ca.prune_state(t.ca.now() + 8 * 86_400).unwrap();
    assert!(pruned.requests >= 2, "{pruned:?}");
    let rec = record(&s.alice, "s-late", &s.host_key, 3);
    let (st, v) = upload(t, "s-late", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(session_records(t, "session_ended").len(), 1);
    // Still Alice's grant with Alice's serial only.
    let mut info = s.alice.clone();
    info.serial = s.bob.serial.clone();
    let rec = record(&info, "s-late-2", &s.host_key, 2);
    let (st, v) = upload(t, "s-late-2", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let mut info = s.alice.clone();
    info.user = "bob".into();
    let rec = record(&info, "s-late-3", &s.host_key, 2);
    let (st, v) = upload(t, "s-late-3", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_list_and_filter_engineers_may_not() {
    let s = setup().await;
    let t = &s.t;
    for (info, id) in [(&s.alice, "s-a"), (&s.bob, "s-b")] {
        let rec = record(info, id, &s.host_key, 3);
        assert_eq!(
            upload(t, id, &rec.header, &rec.chunks).await.0,
            StatusCode::OK
        );
    }
    // An open one: no end chunk yet.
    let open = record(&s.alice, "s-open", &s.host_key, 3);
    let (st, _) = upload(t, "s-open", &open.header, &open.chunks[..1]).await;
    assert_eq!(st, StatusCode::OK);

    let (st, list) = t.get("/v1/recordings?user=alice", Some(&s.auditor)).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    let rows = list["recordings"].as_array().unwrap();
    let mut names: Vec<_> = rows
        .iter()
        .map(|r| r["session"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["s-a", "s-open"]);
    let a = rows.iter().find(|r| r["session"] == "s-a").unwrap();
    assert_eq!(a["reason"], "exit");
    assert_eq!(a["serial"].as_str(), Some(&*s.alice.serial));
    assert_eq!(a["grant"].as_str(), Some(&*s.alice.grant_id));
    let o = rows.iter().find(|r| r["session"] == "s-open").unwrap();
    assert!(o["ended_at"].is_null() && o["reason"].is_null(), "{o}");
    let (_, list) = t
        .get(
            &format!("/v1/recordings?grant={}", s.bob.grant_id),
            Some(&s.auditor),
        )
        .await;
    assert_eq!(list["recordings"].as_array().unwrap().len(), 1);
    let (_, d) = t.get("/v1/recordings/s-open", Some(&s.auditor)).await;
    assert!(d["final_hash"].is_null(), "{d}");

    for path in ["/v1/recordings", "/v1/recordings/s-a"] {
        let (st, v) = t.get(path, Some(&s.engineer)).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        let (st, _) = t.get(path, None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let (st, _) = t.get("/v1/recordings/nope", Some(&s.auditor)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_above_the_global_body_limit_is_accepted_on_this_route_only() {
    let s = setup().await;
    let t = &s.t;
    // Incompressible output: the upload is far above 16 KiB.
    let mut info = s.alice.clone();
    info.session_id = SessionId::try_from("s-big").unwrap();
    let header = Header {
        width: 80,
        height: 24,
        timestamp: now_unix(),
        env: Default::default(),
        session: info,
    };
    let mut enc = Encoder::new(&header, s.host_key.clone(), ChunkPolicy::default()).unwrap();
    let mut chunks = Vec::new();
    let mut raw = vec![0u8; 200_000];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    let noise: String = raw.iter().map(|b| char::from(b'!' + b % 90)).collect();
    chunks.extend(enc.push_output(Duration::ZERO, noise.as_bytes()).unwrap());
    let line = enc.header_line().to_owned();
    chunks.extend(
        enc.finish(Duration::from_secs(1), EndReason::Exit)
            .unwrap()
            .chunks,
    );
    let size: usize = chunks.iter().map(|c| c.to_bytes().len()).sum();
    assert!(size > 32 * 1024, "{size}");
    let (st, v) = upload(t, "s-big", &line, &chunks).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Over 4 MiB: refused naming this route's limit.
    let (st, v) = t
        .post(
            "/v1/recordings/s-big",
            &json!({ "header": line, "chunks": ["A".repeat(5 << 20)] }),
        )
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(message(&v).contains("limit 4194304 bytes"), "{v}");
    // Elsewhere the 16 KiB limit still holds.
    let (st, _) = t
        .post("/v1/requests", &json!({ "reason": "x".repeat(20_000) }))
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_past_retention_are_pruned_and_their_audit_records_stay() {
    let s = setup().await;
    let t = &s.t;
    let rec = record(&s.alice, "s-old", &s.host_key, 3);
    assert_eq!(
        upload(t, "s-old", &rec.header, &rec.chunks).await.0,
        StatusCode::OK
    );
    let dir = t.dir.path().join("recordings/s-old");
    assert!(dir.join("chunks").exists());
    let now = t.ca.now();
    // 89 days later: kept. 91 days later: gone (the default is 90d).
    t.ca.prune_state(now + 89 * 86_400).unwrap();
    assert!(dir.exists());
    t.ca.prune_state(now + 91 * 86_400).unwrap();
    assert!(!dir.exists());
    assert_eq!(session_records(t, "session_ended").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn measure_upload_throughput() {
    let s = setup().await;
    let t = &s.t;
    let mut info = s.alice.clone();
    info.session_id = SessionId::try_from("s-m").unwrap();
    let header = Header {
        width: 80,
        height: 24,
        timestamp: now_unix(),
        env: Default::default(),
        session: info,
    };
    let mut enc = Encoder::new(&header, s.host_key.clone(), ChunkPolicy::default()).unwrap();
    let mut chunks = Vec::new();
    let mut raw = 0usize;
    for i in 0..20_000u64 {
        let line =
            format!("-rw-r--r-- 1 root root {i:>8} Nov 29 17:00 /usr/share/doc/file-{i}.txt\r\n");
        raw += line.len();
        chunks.extend(
            enc.push_output(Duration::from_micros(i * 50), line.as_bytes())
                .unwrap(),
        );
    }
    let line = enc.header_line().to_owned();
    chunks.extend(
        enc.finish(Duration::from_secs(2), EndReason::Exit)
            .unwrap()
            .chunks,
    );
    let stored: usize = chunks.iter().map(|c| c.to_bytes().len()).sum();
    let start = std::time::Instant::now();
    for part in chunks.chunks(4) {
        let (st, v) = upload(t, "s-m", &line, part).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let took = start.elapsed();
    println!(
        "MEASURE {} chunks, {} raw output bytes, {} stored bytes, {} uploads in {:?} ({:.1} MB/s of output)",
        chunks.len(),
        raw,
        stored,
        chunks.len().div_ceil(4),
        took,
        raw as f64 / took.as_secs_f64() / 1e6
    );
}
