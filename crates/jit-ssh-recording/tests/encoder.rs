//! The streaming encoder: where it cuts, what it keeps out, and that what
//! comes back out is what went in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{header, host_key};
use jit_ssh_recording::{
    verify, Chunk, ChunkPolicy, Encoder, EndReason, Event, EventKind, RecordMode, Verified,
};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn encoder(record: RecordMode, policy: ChunkPolicy) -> (Encoder, ssh_key::PrivateKey) {
    let key = host_key();
    (
        Encoder::new(&header("enc-1", record), key.clone(), policy).unwrap(),
        key,
    )
}

fn close(enc: Encoder, mut chunks: Vec<Chunk>, key: &ssh_key::PrivateKey, t: Duration) -> Verified {
    let line = enc.header_line().to_owned();
    let done = enc.finish(t, EndReason::Exit).unwrap();
    chunks.extend(done.chunks);
    verify(&line, chunks, key.public_key(), Some(&done.final_hash)).unwrap()
}

fn events(v: &Verified) -> Vec<Event> {
    v.play(Default::default())
        .unwrap()
        .map(|f| f.unwrap().event)
        .collect()
}

#[test]
fn chunks_are_cut_at_the_size_bound() {
    let policy = ChunkPolicy {
        max_raw_bytes: 4096,
        ..ChunkPolicy::default()
    };
    let (mut enc, key) = encoder(RecordMode::Output, policy);
    let mut chunks = Vec::new();
    for i in 0..1000u64 {
        let line = format!("{i:06} some terminal output\r\n");
        chunks.extend(
            enc.push_output(Duration::from_millis(i), line.as_bytes())
                .unwrap(),
        );
    }
    assert!(chunks.len() >= 8, "{} chunks", chunks.len());
    for c in &chunks {
        let raw = c.body().raw_len;
        assert!((4096..4096 + 100).contains(&raw), "raw {raw}");
    }
    let v = close(enc, chunks, &key, secs(2.0));
    assert_eq!(events(&v).len(), 1000);
}

#[test]
fn no_chunk_spans_more_than_the_time_bound() {
    let policy = ChunkPolicy {
        max_span: Duration::from_secs(10),
        ..ChunkPolicy::default()
    };
    let (mut enc, key) = encoder(RecordMode::Output, policy);
    let mut chunks = Vec::new();
    for t in [0.0, 5.0, 9.9, 12.0, 19.0, 25.0] {
        chunks.extend(enc.push_output(secs(t), b"x").unwrap());
    }
    let spans: Vec<_> = chunks
        .iter()
        .map(|c| (c.body().start, c.body().end))
        .collect();
    assert_eq!(
        spans,
        vec![(secs(0.0), secs(9.9)), (secs(12.0), secs(19.0))]
    );
    // A quiet terminal: the caller's tick cuts the open chunk.
    assert!(enc.tick(secs(30.0)).unwrap().is_none());
    let cut = enc.tick(secs(35.0)).unwrap().unwrap();
    assert_eq!((cut.body().start, cut.body().events), (secs(25.0), 1));
    assert!(enc.tick(secs(99.0)).unwrap().is_none(), "nothing open");
    chunks.push(cut);
    close(enc, chunks, &key, secs(40.0));
}

#[test]
fn typing_is_not_recorded_under_the_output_policy_only_counted() {
    let (mut enc, key) = encoder(RecordMode::Output, ChunkPolicy::default());
    let mut chunks = enc.push_input(secs(1.0), b"hunter2\r").unwrap();
    chunks.extend(enc.push_output(secs(1.1), b"ok\r\n").unwrap());
    let v = close(enc, chunks, &key, secs(2.0));
    let ev = events(&v);
    assert!(ev.iter().all(|e| e.kind != EventKind::Input), "{ev:?}");
    assert_eq!(v.totals().input_bytes, 8);

    let (mut enc, key) = encoder(RecordMode::Full, ChunkPolicy::default());
    let chunks = enc.push_input(secs(1.0), b"ls\r").unwrap();
    let v = close(enc, chunks, &key, secs(2.0));
    assert_eq!(events(&v)[0].data, "ls\r");
    assert_eq!(events(&v)[0].kind, EventKind::Input);
}

#[test]
fn one_large_read_is_split_and_comes_back_whole() {
    let policy = ChunkPolicy {
        max_raw_bytes: 64 * 1024,
        ..ChunkPolicy::default()
    };
    let (mut enc, key) = encoder(RecordMode::Output, policy);
    // 300 KiB of multi-byte text, so splits must land between characters.
    let text: String = "é€😀 ls -lR /usr\r\n".repeat(300 * 1024 / 24);
    let chunks = enc.push_output(secs(1.0), text.as_bytes()).unwrap();
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    for c in &chunks {
        assert!(c.body().raw_len <= 2 * 64 * 1024, "{}", c.body().raw_len);
    }
    let v = close(enc, chunks, &key, secs(2.0));
    let back: String = events(&v).into_iter().map(|e| e.data).collect();
    assert_eq!(back, text);
}

#[test]
fn a_character_split_between_reads_and_one_left_at_the_end() {
    let (mut enc, key) = encoder(RecordMode::Output, ChunkPolicy::default());
    let euro = "€".as_bytes();
    let mut chunks = enc.push_output(secs(1.0), &euro[..1]).unwrap();
    chunks.extend(
        enc.push_output(secs(1.5), &[euro[1], euro[2], b'!', euro[0]])
            .unwrap(),
    );
    chunks.extend(enc.push_output(secs(1.7), b"\xff").unwrap());
    let v = close(enc, chunks, &key, secs(2.0));
    let data: Vec<String> = events(&v).into_iter().map(|e| e.data).collect();
    // The lone lead byte left at the end and the invalid byte: U+FFFD each.
    assert_eq!(data, vec!["€!", "\u{fffd}\u{fffd}"]);
}

#[test]
fn time_never_goes_back_and_resizes_are_cols_x_rows() {
    let (mut enc, key) = encoder(RecordMode::Output, ChunkPolicy::default());
    let mut chunks = enc.push_output(secs(5.0), b"a").unwrap();
    chunks.extend(enc.push_resize(secs(3.0), 132, 43).unwrap());
    let v = close(enc, chunks, &key, secs(1.0));
    let ev = events(&v);
    assert_eq!(ev[1].time, secs(5.0));
    assert_eq!(
        (ev[1].kind, ev[1].data.as_str()),
        (EventKind::Resize, "132x43")
    );
    assert!(v.end().unwrap().totals.events == 2);
}

#[test]
fn a_policy_outside_the_bounds_is_refused() {
    for p in [
        ChunkPolicy {
            max_raw_bytes: 10,
            ..ChunkPolicy::default()
        },
        ChunkPolicy {
            max_raw_bytes: 64 << 20,
            ..ChunkPolicy::default()
        },
        ChunkPolicy {
            zstd_level: 0,
            ..ChunkPolicy::default()
        },
    ] {
        assert!(Encoder::new(&header("p", RecordMode::Output), host_key(), p).is_err());
    }
}

#[test]
fn a_session_with_no_output_is_a_header_and_an_end_chunk() {
    let (enc, key) = encoder(RecordMode::Output, ChunkPolicy::default());
    let v = close(enc, Vec::new(), &key, secs(3.0));
    assert!(v.chunks().is_empty());
    assert_eq!(v.end().unwrap().totals, Default::default());
    let mut file = Vec::new();
    v.to_asciicast(&mut file).unwrap();
    assert_eq!(file, format!("{}\n", v.header_line()).into_bytes());
}
