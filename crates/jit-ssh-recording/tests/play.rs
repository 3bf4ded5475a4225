//! Playing: speed and idle limit as `jit-ssh audit play --speed N
//! --idle-limit S` will pass them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{header, host_key};
use jit_ssh_recording::{
    verify, ChunkPolicy, Encoder, EndReason, PlayOptions, RecordMode, Verified,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Output at 0 s, 0.5 s, 10.5 s and 11 s.
fn recording() -> Verified {
    let key = host_key();
    let mut enc = Encoder::new(
        &header("play-1", RecordMode::Output),
        key.clone(),
        ChunkPolicy::default(),
    )
    .unwrap();
    let mut chunks = Vec::new();
    for (t, s) in [(0, "a"), (500, "b"), (10_500, "c"), (11_000, "d")] {
        chunks.extend(enc.push_output(ms(t), s.as_bytes()).unwrap());
    }
    let line = enc.header_line().to_owned();
    let done = enc.finish(ms(11_000), EndReason::Expiry).unwrap();
    chunks.extend(done.chunks);
    verify(&line, chunks, key.public_key(), Some(&done.final_hash)).unwrap()
}

fn times(v: &Verified, options: PlayOptions) -> Vec<Duration> {
    v.play(options).unwrap().map(|f| f.unwrap().at).collect()
}

#[test]
fn frames_come_at_the_recorded_times() {
    assert_eq!(
        times(&recording(), PlayOptions::default()),
        vec![ms(0), ms(500), ms(10_500), ms(11_000)]
    );
}

#[test]
fn speed_divides_every_time() {
    let o = PlayOptions {
        speed: 2.0,
        idle_limit: None,
    };
    assert_eq!(
        times(&recording(), o),
        vec![ms(0), ms(250), ms(5_250), ms(5_500)]
    );
}

#[test]
fn the_idle_limit_shortens_long_pauses_before_speed() {
    let o = PlayOptions {
        speed: 1.0,
        idle_limit: Some(ms(1_000)),
    };
    assert_eq!(
        times(&recording(), o),
        vec![ms(0), ms(500), ms(1_500), ms(2_000)]
    );
    let o = PlayOptions {
        speed: 4.0,
        idle_limit: Some(ms(1_000)),
    };
    assert_eq!(
        times(&recording(), o),
        vec![ms(0), ms(125), ms(375), ms(500)]
    );
}

#[test]
fn a_speed_that_is_not_positive_is_refused() {
    let v = recording();
    for speed in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let o = PlayOptions {
            speed,
            idle_limit: None,
        };
        assert!(v.play(o).is_err(), "{speed}");
    }
}
