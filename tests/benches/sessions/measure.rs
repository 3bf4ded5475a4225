//! Echo latency, throughput and the interposed process's CPU time, each
//! through a real `ssh -tt` session.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::recorder::Recorded;
use super::{Host, Row};

pub struct Echo {
    pub samples: Vec<Duration>,
    /// CPU seconds of the interposed process in this session.
    pub cpu: Option<f64>,
    /// What the session cost the recorder (the recorder row).
    pub recorded: Option<Recorded>,
}

pub struct Bulk {
    /// Bytes the client received (the pty turns `\n` into `\r\n`).
    pub bytes: u64,
    /// From the first byte to the end of the stream.
    pub secs: f64,
    pub cpu: Option<f64>,
    pub recorded: Option<Recorded>,
}

fn ssh(h: &Host, row: &Row, command: &str) -> Child {
    let shown = row.cert.display().to_string();
    let key = shown.strip_suffix("-cert.pub").unwrap_or(&shown).to_owned();
    jit_ssh_e2e::ssh_command(h.sshd.port())
        .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
        .arg("-o")
        .arg(format!("CertificateFile={shown}"))
        .args(["-i", &key, "-tt"])
        .arg(format!("{}@127.0.0.1", h.account))
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting ssh")
}

fn read_until(r: &mut impl Read, marker: &[u8]) {
    let mut seen = Vec::new();
    let mut b = [0u8; 1024];
    while !seen.windows(marker.len()).any(|w| w == marker) {
        let n = r.read(&mut b).expect("reading the session");
        assert!(
            n > 0,
            "the session ended before {:?}: {}",
            String::from_utf8_lossy(marker),
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&b[..n]);
    }
}

/// One byte typed, timed until it comes back: `stty raw -echo; cat` echoes
/// it as an application (a shell's line editor) does, through every pty
/// in the path.
pub fn echo(h: &Host, row: &Row, samples: usize) -> Echo {
    let rec = row.recorder.as_ref().map(|r| r.before());
    let cpu = Cpu::start(row.comm, &h.root);
    let mut child = ssh(h, row, "stty raw -echo; printf READY; exec cat");
    let (mut input, mut output) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    read_until(&mut output, b"READY");
    let mut got = Vec::with_capacity(samples);
    let mut b = [0u8; 64];
    // The first few warm the path up and are not counted.
    for i in 0..samples + 10 {
        let t = Instant::now();
        input.write_all(b"x").unwrap();
        input.flush().unwrap();
        let n = output.read(&mut b).unwrap();
        assert!(n == 1 && b[0] == b'x', "echo: {:?}", &b[..n]);
        if i >= 10 {
            got.push(t.elapsed());
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Echo {
        samples: got,
        cpu: cpu.map(Cpu::stop),
        recorded: row.recorder.as_ref().zip(rec).map(|(r, b)| r.after(b)),
    }
}

/// `cat FILE` over the pty, read to the end as fast as the client can.
pub fn throughput(h: &Host, row: &Row, file: &Path) -> Bulk {
    let rec = row.recorder.as_ref().map(|r| r.before());
    let cpu = Cpu::start(row.comm, &h.root);
    let mut child = ssh(h, row, &format!("exec cat {}", file.display()));
    let input = child.stdin.take();
    let mut output = child.stdout.take().unwrap();
    let mut b = vec![0u8; 1 << 20];
    let (mut bytes, mut first) = (0u64, None);
    loop {
        let n = output.read(&mut b).unwrap();
        if n == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        bytes += n as u64;
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    drop(input);
    let _ = child.wait();
    Bulk {
        bytes,
        secs,
        cpu: cpu.map(Cpu::stop),
        recorded: row.recorder.as_ref().zip(rec).map(|(r, b)| r.after(b)),
    }
}

/// CPU seconds of the processes named `comm` that belong to this bench
/// (their command line or environment names `marker`, the temp dir) and
/// started after the measurement did (not the recorder, which is also
/// `jit-ssh-host` in the temp dir but runs for the whole bench: it is
/// measured apart), from `/proc/PID/stat`, sampled every 20 ms while they
/// run: the last sample before a process exits is what it used, less at
/// most 20 ms.
pub struct Cpu {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl Cpu {
    fn start(comm: Option<&'static str>, marker: &Path) -> Option<Cpu> {
        let comm = comm?;
        let marker = marker.display().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let running: std::collections::HashSet<u32> = pids().into_iter().collect();
        let thread = std::thread::spawn(move || {
            let mut used: HashMap<u32, u64> = HashMap::new();
            let mut round = 0u64;
            while !flag.load(Ordering::SeqCst) {
                if used.is_empty() || round.is_multiple_of(10) {
                    for pid in pids() {
                        if !used.contains_key(&pid)
                            && !running.contains(&pid)
                            && ours(pid, comm, &marker)
                        {
                            used.insert(pid, 0);
                        }
                    }
                }
                for (pid, ticks) in used.iter_mut() {
                    if let Some(t) = stat_ticks(*pid, comm) {
                        *ticks = t;
                    }
                }
                round += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            // USER_HZ is 100 on Linux.
            used.values().sum::<u64>() as f64 / 100.0
        });
        Some(Cpu { stop, thread })
    }

    fn stop(self) -> f64 {
        // Let the session's processes finish their last writes.
        std::thread::sleep(Duration::from_millis(100));
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn ours(pid: u32, comm: &str, marker: &str) -> bool {
    let read = |f: &str| std::fs::read(format!("/proc/{pid}/{f}")).unwrap_or_default();
    let has = |v: Vec<u8>| v.windows(marker.len()).any(|w| w == marker.as_bytes());
    String::from_utf8_lossy(&read("comm")).trim() == comm
        && (has(read("cmdline")) || has(read("environ")))
}

/// utime + stime of `pid`, while it is still `comm` (a forked child that
/// exec'd something else stops counting).
fn stat_ticks(pid: u32, comm: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (name, rest) = s.split_once(" (")?.1.rsplit_once(") ")?;
    if name != comm {
        return None;
    }
    // After the comm: state is field 3; utime and stime are 14 and 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn cpu(v: Option<f64>) -> String {
    v.map_or("—".into(), |s| format!("{s:.2} s"))
}

/// The interposed process's CPU, plus the recorder's when it recorded:
/// "total (wrapper + recorder)".
fn cpu_with(own: Option<f64>, recorder: Option<f64>) -> String {
    match (own, recorder) {
        (Some(o), Some(r)) => format!("{:.2} s ({o:.2} + {r:.2} recorder)", o + r),
        (o, _) => cpu(o),
    }
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// Median over the rounds of `f`, when every round has it.
fn median_of(bulks: &[Bulk], f: impl Fn(&Bulk) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = bulks.iter().filter_map(f).collect();
    (!v.is_empty()).then(|| median(v).0)
}

/// Bytes the recorder stored per MB of terminal output, median over the
/// rounds (`None`: not recorded).
pub fn stored_per_mb(bulks: &[Bulk]) -> Option<f64> {
    median_of(bulks, |b| {
        b.recorded.map(|r| r.stored as f64 / (b.bytes as f64 / 1e6))
    })
}

pub fn print_table(rows: &[Row], results: &[(Echo, Vec<Bulk>)], bytes: u64, rounds: usize) {
    struct Stat {
        p50: Duration,
        p99: Duration,
        /// Median, lowest, highest MB/s over the rounds.
        mbps: (f64, f64, f64),
        cpu: Option<f64>,
        recorder: Option<f64>,
    }
    let stats: Vec<Stat> = results
        .iter()
        .map(|(e, bulks)| {
            let mut s = e.samples.clone();
            s.sort();
            let mbps = median(
                bulks
                    .iter()
                    .map(|b| b.bytes as f64 / b.secs / 1e6)
                    .collect(),
            );
            Stat {
                p50: percentile(&s, 0.5),
                p99: percentile(&s, 0.99),
                mbps,
                cpu: median_of(bulks, |b| b.cpu),
                recorder: median_of(bulks, |b| b.recorded.map(|r| r.cpu)),
            }
        })
        .collect();
    let plain = &stats[0];
    // Each round's rate against plain sshd's in the same round: a burst
    // of other work lands on neighbouring rows alike.
    let rate = |b: &Bulk| b.bytes as f64 / b.secs;
    let per_round = |i: usize| {
        median(
            results[i]
                .1
                .iter()
                .zip(&results[0].1)
                .map(|(b, p)| rate(b) / rate(p) * 100.0)
                .collect(),
        )
    };
    println!(
        "| session | echo p50 (ms) | echo p99 (ms) | added p50 / p99 (ms) | `cat` {} MiB: MB/s, median of {rounds} (range) | of plain | of plain, round by round: median (range) | CPU per cat session: wrapper/tlog (+ recorder), median | CPU per echo session |",
        bytes >> 20
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let added =
        |a: Duration, b: Duration| format!("{:+.3}", (a.as_secs_f64() - b.as_secs_f64()) * 1000.0);
    for (i, row) in rows.iter().enumerate() {
        let s = &stats[i];
        let echo = &results[i].0;
        println!(
            "| {} | {} | {} | {} / {} | {:.1} ({:.1}–{:.1}) | {:.0}% | {:.0}% ({:.0}–{:.0}%) | {} | {} |",
            row.name,
            ms(s.p50),
            ms(s.p99),
            added(s.p50, plain.p50),
            added(s.p99, plain.p99),
            s.mbps.0,
            s.mbps.1,
            s.mbps.2,
            s.mbps.0 / plain.mbps.0 * 100.0,
            per_round(i).0,
            per_round(i).1,
            per_round(i).2,
            cpu_with(s.cpu, s.recorder),
            cpu_with(echo.cpu, echo.recorded.map(|r| r.cpu)),
        );
    }
    println!();
    for row in rows {
        if let Some(f) = row.force.as_deref() {
            println!("{} force-command: `{f}`  ", row.name);
        }
    }
}
