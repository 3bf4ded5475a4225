//! Bytes stored per MB of terminal output: what tlog-rec-session wrote
//! (its JSON file) against the same output as jit-ssh-recording chunks
//! (encoded here with the crate's `Encoder`, stored form as the CA keeps
//! it: the bundle, `u32` length before each chunk).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use jit_ssh_recording::{
    bundle, ChunkPolicy, Encoder, EndReason, Header, RecordMode, SessionId, SessionInfo,
};
use ssh_key::{Algorithm, PrivateKey};

use super::measure::{throughput, Bulk};
use super::{Host, Row};

pub struct Stored {
    pub content: &'static str,
    /// Terminal output bytes (as the client received them).
    pub output: u64,
    pub tlog: u64,
    pub ours: u64,
    pub chunks: usize,
    /// What the real recorder stored in its spool, bytes per MB of output
    /// (`None`: no recorder row).
    pub spool: Option<f64>,
}

/// `ls -lR /usr` repeated to `size` bytes: what a terminal shows.
pub fn ls_lr_text(size: usize) -> Vec<u8> {
    let out = Command::new("ls")
        .args(["-lR", "/usr"])
        .stderr(Stdio::null())
        .output()
        .expect("ls -lR /usr");
    let once = out.stdout;
    let mut text = Vec::with_capacity(size);
    while text.len() < size {
        let take = (size - text.len()).min(once.len());
        text.extend_from_slice(&once[..take]);
    }
    text
}

/// Printable lines of random length and characters: output that hardly
/// compresses (the worst case for both).
fn random_text(size: usize) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut text = Vec::with_capacity(size);
    while text.len() < size {
        let len = rng.gen_range(0..120);
        text.extend((0..len).map(|_| rng.gen_range(0x20u8..0x7f)));
        text.push(b'\n');
    }
    text.truncate(size);
    text
}

struct Count(u64);

impl Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `text` as the pty shows it (`\n` → `\r\n`), read by the recorder in
/// 4 KiB pieces at the pace measured, encoded and stored.
fn encode(text: &[u8], secs: f64) -> (u64, usize) {
    let header = Header {
        width: 120,
        height: 40,
        timestamp: 1_795_000_000,
        env: Default::default(),
        session: SessionInfo {
            session_id: SessionId::try_from("bench-1").unwrap(),
            key_id: "jit-ssh:bench:g:7".into(),
            serial: "7".into(),
            grant_id: "g".into(),
            user: "bench".into(),
            host: "bench.test".into(),
            account: "bench".into(),
            record: RecordMode::Output,
        },
    };
    let key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).unwrap();
    let mut enc = Encoder::new(&header, key, ChunkPolicy::default()).unwrap();
    let mut chunks = Vec::new();
    let mut shown = Vec::with_capacity(text.len() + text.len() / 20);
    for &b in text {
        if b == b'\n' {
            shown.push(b'\r');
        }
        shown.push(b);
    }
    let per_byte = secs / shown.len().max(1) as f64;
    for (i, piece) in shown.chunks(4096).enumerate() {
        let t = Duration::from_secs_f64(i as f64 * 4096.0 * per_byte);
        chunks.extend(enc.push_output(t, piece).unwrap());
    }
    let line = enc.header_line().to_owned();
    let done = enc
        .finish(Duration::from_secs_f64(secs), EndReason::Exit)
        .unwrap();
    chunks.extend(done.chunks);
    let mut n = Count(0);
    bundle::write(&mut n, &line, &chunks).unwrap();
    (n.0, chunks.len())
}

/// The cat file (already through tlog and the recorder in the throughput
/// run: `spool` is what the recorder stored per MB) and a random-text file
/// run through tlog and the recorder here.
#[allow(clippy::too_many_arguments)]
pub fn compare(
    h: &Host,
    tlog_row: &Row,
    recorder_row: Option<&Row>,
    root: &Path,
    tlog_log: &Path,
    file: &Path,
    measured: &Bulk,
    logged: u64,
    spool: Option<f64>,
) -> Vec<Stored> {
    let text = std::fs::read(file).unwrap();
    let (ours, chunks) = encode(&text, measured.secs);
    let mut out = vec![Stored {
        content: "`ls -lR /usr` text",
        output: measured.bytes,
        tlog: logged,
        ours,
        chunks,
        spool,
    }];
    drop(text);
    let size = std::env::var("JIT_SSH_BENCH_RANDOM_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32usize << 20);
    let random = random_text(size);
    let path = root.join("random.txt");
    std::fs::write(&path, &random).unwrap();
    let before = std::fs::metadata(tlog_log).map_or(0, |m| m.len());
    let bulk = throughput(h, tlog_row, &path);
    let tlog = std::fs::metadata(tlog_log).map_or(0, |m| m.len()) - before;
    let (ours, chunks) = encode(&random, bulk.secs);
    let spool = recorder_row.map(|row| {
        let b = throughput(h, row, &path);
        b.recorded.unwrap().stored as f64 / (b.bytes as f64 / 1e6)
    });
    out.push(Stored {
        content: "random printable lines",
        output: bulk.bytes,
        tlog,
        ours,
        chunks,
        spool,
    });
    out
}

pub fn print_table(rows: &[Stored]) {
    println!("\n| terminal output | MB out | tlog JSON (bytes/MB) | jit-ssh chunks, encoded here (bytes/MB) | jit-ssh / tlog | chunks | recorder's spool, measured (bytes/MB) | spool / tlog |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let mb = r.output as f64 / 1e6;
        let tlog = r.tlog as f64 / mb;
        let (spool, ratio) = r.spool.map_or(("—".into(), "—".into()), |s| {
            (format!("{s:.0}"), format!("1/{:.1}", tlog / s))
        });
        println!(
            "| {} | {:.1} | {:.0} | {:.0} | 1/{:.1} | {} | {spool} | {ratio} |",
            r.content,
            mb,
            tlog,
            r.ours as f64 / mb,
            r.tlog as f64 / r.ours as f64,
            r.chunks
        );
    }
}
