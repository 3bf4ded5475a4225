//! Measures (ignored by default; `cargo test -p jit-ssh-e2e --test
//! sessions_record_bench -- --ignored --nocapture`): bulk terminal output
//! through the wrapper with and without recording, the recorder's CPU
//! time, and the bytes it stored.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jit_ssh_e2e::recorder::Recorder;
use jit_ssh_e2e::session_host::SessionHost;
use jit_ssh_e2e::{have_tools, SSH, SSHD, SSH_KEYGEN};

/// CPU seconds (user + system) `pid` used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

const OUTPUT: &str = "head -c 30000000 /dev/zero | base64 -w 120";

fn timed(h: &SessionHost, cert: &std::path::Path) -> (Duration, usize) {
    let started = Instant::now();
    let out = h
        .ssh(cert)
        .arg("-tt")
        .arg(OUTPUT)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    (started.elapsed(), out.stdout.len())
}

#[test]
#[ignore = "a measurement, not a check"]
fn measure_recorded_terminal_output() {
    if !have_tools("sessions_record_bench", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let h = SessionHost::start();
    // JIT_SSH_BENCH_BIN: a jit-ssh-host (a release build) to measure, as
    // both wrapper and recorder; by default the debug build under test.
    let program = std::env::var_os("JIT_SSH_BENCH_BIN").map_or_else(
        || jit_ssh_e2e::bin("jit-ssh-host"),
        std::path::PathBuf::from,
    );
    println!("measuring {}", program.display());
    let rec = Recorder::start_program(&h, &program);
    let wrapper = |args: &str| {
        format!(
            "{} session --dir {} {args}",
            program.display(),
            h.dir.display()
        )
    };
    let (off, _, _) = h.certificate_forcing("10m", &wrapper("--record off"));
    let (output, _, _) = h.certificate_forcing("10m", &wrapper(&rec.wrapper_args("output")));
    for round in 0..3 {
        let (t_off, n_off) = timed(&h, &off);
        let before = cpu_seconds(rec.child.id());
        let (t_rec, n_rec) = timed(&h, &output);
        let dir = rec.wait_ended(Duration::from_secs(30));
        let cpu = cpu_seconds(rec.child.id()) - before;
        let stored = std::fs::metadata(dir.join("chunks")).unwrap().len();
        std::fs::remove_dir_all(&dir).unwrap();
        let mb = |n: usize| n as f64 / 1e6;
        println!(
            "round {round}: wrapper only {:.1} MB in {:.2} s ({:.1} MB/s); recorded {:.1} MB in {:.2} s ({:.1} MB/s, {:.0}% of wrapper only); recorder CPU {:.2} s; stored {:.0} KB ({:.1} KB per MB shown)",
            mb(n_off),
            t_off.as_secs_f64(),
            mb(n_off) / t_off.as_secs_f64(),
            mb(n_rec),
            t_rec.as_secs_f64(),
            mb(n_rec) / t_rec.as_secs_f64(),
            100.0 * (mb(n_rec) / t_rec.as_secs_f64()) / (mb(n_off) / t_off.as_secs_f64()),
            cpu,
            stored as f64 / 1e3,
            stored as f64 / 1e3 / mb(n_rec)
        );
    }
    let _ = Command::new("true").status();
}
