//! Recording cost, printed as a table: encoder throughput (terminal MB/s
//! in, signed chunks out), bytes stored per MB of terminal output, and
//! verify throughput, on two inputs: `ls -lR /usr` as a terminal shows it
//! (LF → CRLF, as a pty's onlcr does) and random printable ASCII lines.
//! Against Debian's tlog (`tlog-rec` recording `cat` of the same bytes
//! through a pty, its JSON log to a file), measured in the same run when
//! `tlog-rec` and `script` are installed.
//!
//! `cargo bench -p jit-ssh-recording --bench throughput`
//! (RECORDING_BENCH_MB=N sets the input size, default 16;
//! RECORDING_BENCH_SKIP_TLOG=1 skips tlog)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jit_ssh_recording::{
    bundle, verify, ChunkPolicy, Encoder, EndReason, Header, RecordMode, SessionId, SessionInfo,
};
use rand::{Rng, SeedableRng};
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, PrivateKey};

/// A pty hands a reader at most this much at once.
const READ: usize = 4096;
const MB: f64 = 1_000_000.0;

fn header() -> Header {
    Header {
        width: 120,
        height: 40,
        timestamp: 1_790_000_000,
        env: BTreeMap::from([("TERM".into(), "xterm-256color".into())]),
        session: SessionInfo {
            session_id: SessionId::try_from("bench-1").unwrap(),
            key_id: "alice@grant-7".into(),
            serial: "42".into(),
            grant_id: "grant-7".into(),
            user: "alice".into(),
            host: "web1".into(),
            account: "deploy".into(),
            record: RecordMode::Output,
        },
    }
}

fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 40);
    for &b in bytes {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn ls_lr(size: usize) -> Option<Vec<u8>> {
    let out = Command::new("ls")
        .args(["-lR", "/usr"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let mut text = out.stdout;
    if text.is_empty() {
        return None;
    }
    while text.len() < size {
        let again = text.clone();
        text.extend_from_slice(&again);
    }
    text.truncate(size);
    Some(crlf(&text))
}

fn random_ascii(size: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut text = Vec::with_capacity(size);
    while text.len() < size {
        let len = rng.gen_range(0..120);
        text.extend((0..len).map(|_| rng.gen_range(0x20u8..0x7f)));
        text.extend_from_slice(b"\r\n");
    }
    text.truncate(size);
    text
}

struct Ours {
    encode: Duration,
    verify: Duration,
    stored: usize,
    chunks: usize,
}

fn ours(input: &[u8], key: &PrivateKey, policy: ChunkPolicy) -> Ours {
    let start = Instant::now();
    let mut enc = Encoder::new(&header(), key.clone(), policy).unwrap();
    let mut chunks = Vec::new();
    let mut t = Duration::ZERO;
    for read in input.chunks(READ) {
        t += Duration::from_micros(300);
        chunks.extend(enc.push_output(t, read).unwrap());
    }
    let line = enc.header_line().to_owned();
    let done = enc.finish(t, EndReason::Exit).unwrap();
    chunks.extend(done.chunks);
    let encode = start.elapsed();

    let mut stored = Vec::new();
    bundle::write(&mut stored, &line, &chunks).unwrap();
    let n = chunks.len();
    let start = Instant::now();
    verify(&line, chunks, key.public_key(), Some(&done.final_hash)).unwrap();
    Ours {
        encode,
        verify: start.elapsed(),
        stored: stored.len(),
        chunks: n,
    }
}

/// Bytes of tlog's JSON log for `cat` of `input` through a pty, or why not.
fn tlog(input: &[u8]) -> Result<(usize, Duration), String> {
    if std::env::var("RECORDING_BENCH_SKIP_TLOG").is_ok() {
        return Err("skipped (RECORDING_BENCH_SKIP_TLOG)".into());
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("input");
    let log = dir.path().join("tlog.json");
    std::fs::write(&data, input).unwrap();
    // tlog-rec refuses to start without its lock dir and a utmp file.
    let _ = std::fs::create_dir_all("/var/run/tlog");
    if !std::path::Path::new("/run/utmp").exists() {
        let _ = std::fs::write("/run/utmp", b"");
    }
    let cmd = format!(
        "tlog-rec -w file -o '{}' --limit-action=pass cat '{}'",
        log.display(),
        data.display()
    );
    let start = Instant::now();
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("script/tlog-rec not run: {e}"))?;
    let took = start.elapsed();
    let size = std::fs::metadata(&log)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    if !out.success() || size == 0 {
        return Err(format!("tlog-rec failed ({out}) or wrote nothing"));
    }
    Ok((size, took))
}

fn main() {
    let mb: usize = std::env::var("RECORDING_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let size = mb * 1_000_000;
    let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
    let mut inputs = Vec::new();
    match ls_lr(size) {
        Some(b) => inputs.push(("ls -lR /usr", b)),
        None => println!("ls -lR /usr: no output, input skipped"),
    }
    inputs.push(("random ASCII", crlf(&random_ascii(size))));

    println!(
        "{:<14} {:>7} {:>5} {:>7} {:>11} {:>10} {:>12} {:>11} {:>14}",
        "input",
        "MB",
        "zstd",
        "chunks",
        "encode MB/s",
        "verify MB/s",
        "stored/MB",
        "tlog/MB",
        "ours vs tlog"
    );
    for (name, input) in &inputs {
        let terminal_mb = input.len() as f64 / MB;
        let tlog = tlog(input);
        for level in [1, 3, 9] {
            let policy = ChunkPolicy {
                zstd_level: level,
                ..ChunkPolicy::default()
            };
            let o = ours(input, &key, policy);
            let per_mb = o.stored as f64 / terminal_mb;
            let (tlog_per_mb, ratio) = match &tlog {
                Ok((bytes, _)) => {
                    let t = *bytes as f64 / terminal_mb;
                    (format!("{t:.0}"), format!("1/{:.1}", t / per_mb))
                }
                Err(_) => ("-".into(), "-".into()),
            };
            println!(
                "{:<14} {:>7.1} {:>5} {:>7} {:>11.1} {:>10.1} {:>12.0} {:>11} {:>14}",
                name,
                terminal_mb,
                level,
                o.chunks,
                terminal_mb / o.encode.as_secs_f64(),
                terminal_mb / o.verify.as_secs_f64(),
                per_mb,
                tlog_per_mb,
                ratio
            );
        }
        match &tlog {
            Ok((bytes, took)) => println!(
                "{:<14} tlog-rec: {} bytes of JSON in {:.2} s (wall, incl. cat through the pty)",
                name,
                bytes,
                took.as_secs_f64()
            ),
            Err(why) => println!("{name:<14} tlog: {why}"),
        }
    }
    println!("stored/MB: bytes of the whole recording (bundle: header line and signed chunks) per MB of terminal output; {} KiB chunks (the default), 4 KiB reads", ChunkPolicy::default().max_raw_bytes / 1024);
}
