//! Sessions through a real private sshd on 127.0.0.1, in one run, each row
//! the same measurements (issue 15, Proof: the benchmark):
//!
//! - **plain**: sshd alone (a certificate without force-command);
//! - **wrapper**: the jit-ssh session wrapper as the certificate's
//!   force-command (record off);
//! - **wrapper + recorder**: the real host recorder (`jit-ssh-host
//!   recorder`, run as root on a socket in the temp dir, signing with the
//!   sshd's host key, trusting the bench CA) and the wrapper recording
//!   output to it (`--record output --recorder-socket …`). Not root: the
//!   row is left out, loudly;
//! - **second pty, minimal C copy**: `sessions/pty_copy.c`, compiled
//!   here with `cc`, as the force-command: what any wrapper that
//!   interposes a pty must at least cost (no `cc`: left out, loudly);
//! - **tlog**: Debian's `tlog-rec-session` in the session's place (a
//!   force-command shim runs it as the login shell would, with
//!   `-c "$SSH_ORIGINAL_COMMAND"`), writing JSON to a file in the temp dir.
//!
//! Measured: keystroke echo latency over a pty (`ssh -tt`, remote `stty
//! raw -echo; cat`: one byte out, time until it comes back through every
//! pty in the path); bulk output throughput (`cat` of a file over the pty
//! to the client, counted from the first byte to the end, so login time
//! is not in it); bytes stored per MB of terminal output (tlog's JSON file
//! vs the same output encoded by `jit_ssh_recording::Encoder`); CPU time
//! of the interposed process (wrapper or tlog) per session, from
//! `/proc/PID/stat` sampled every 20 ms while it runs, and for the
//! recorder row the recorder's CPU from before the session to its end in
//! the spool, and the bytes its spool holds for the session.
//!
//! `cargo bench -p jit-ssh-e2e --bench sessions` prints markdown tables.
//! Environment: `JIT_SSH_BENCH_BYTES` (the cat size, default 256 MiB; the
//! issue's target uses 1 GiB), `JIT_SSH_BENCH_SAMPLES` (echo samples,
//! default 500), `JIT_SSH_BENCH_ROUNDS` (cat runs per row, interleaved;
//! default 3), `JIT_SSH_BENCH_WRAPPER` (the wrapper's force-command;
//! `{dir}` is replaced by the host directory; default `JIT_SSH_HOST
//! session --dir {dir} --record off`), `JIT_SSH_HOST` (the jit-ssh-host
//! binary, wrapper and recorder; default target/release/jit-ssh-host if
//! built, else target/debug/).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "sessions/measure.rs"]
mod measure;
#[path = "sessions/recorder.rs"]
mod recorder;
#[path = "sessions/storage.rs"]
mod storage;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use jit_ssh_e2e::{keygen, login_name, run_ok, Sshd, SSH_KEYGEN};

const TLOG: &str = "/usr/bin/tlog-rec-session";

/// One way of running a session.
pub struct Row {
    pub name: String,
    /// The certificate's force-command (`None`: plain sshd).
    pub force: Option<String>,
    /// `/proc/PID/comm` of the interposed process whose CPU is counted.
    pub comm: Option<&'static str>,
    pub cert: PathBuf,
    /// The recorder this row's wrapper records to.
    pub recorder: Option<Rc<recorder::Recorder>>,
}

pub struct Host {
    pub root: PathBuf,
    pub sshd: Sshd,
    pub account: String,
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The jit-ssh-host binary: `JIT_SSH_HOST`, else the release build beside
/// this bench if there is one, else the debug build.
fn jit_ssh_host() -> (PathBuf, &'static str) {
    if let Some(p) = std::env::var_os("JIT_SSH_HOST") {
        return (PathBuf::from(p), "as given by JIT_SSH_HOST");
    }
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_owned();
    let release = target.join("release/jit-ssh-host");
    if release.exists() {
        return (release, "release");
    }
    (target.join("debug/jit-ssh-host"), "debug")
}

/// An OpenSSH user CA (ssh-keygen: this bench signs its own certificates,
/// no jit-ssh CA needed), an empty KRL, principals, and sshd.
fn host(root: &Path) -> (Host, PathBuf, PathBuf) {
    let ca = keygen(root, "ca");
    let dir = root.join("etc-ssh-jit-ssh");
    std::fs::create_dir_all(dir.join("principals")).unwrap();
    std::fs::copy(ca.with_extension("pub"), dir.join("ca-keys")).unwrap();
    run_ok(
        Command::new(SSH_KEYGEN)
            .args(["-q", "-k", "-f"])
            .arg(dir.join("revoked.krl")),
    );
    let account = login_name();
    std::fs::write(
        dir.join("principals").join(&account),
        format!("{account}@bench.test\n"),
    )
    .unwrap();
    let sshd = Sshd::start_with(
        root,
        &dir.join("ca-keys"),
        &dir.join("revoked.krl"),
        &dir.join("principals"),
        "ExposeAuthInfo yes\nSubsystem sftp internal-sftp\n",
    );
    (
        Host {
            root: root.to_owned(),
            sshd,
            account,
        },
        ca,
        dir,
    )
}

fn certificate(h: &Host, ca: &Path, name: &str, force: Option<&str>) -> PathBuf {
    let key = keygen(&h.root, &format!("user-{name}"));
    let mut c = Command::new(SSH_KEYGEN);
    c.args(["-q", "-s"])
        .arg(ca)
        .args(["-I", &format!("jit-ssh:bench:g-{name}:7"), "-z", "7"])
        .args(["-n", &format!("{}@bench.test", h.account), "-V", "-1m:+2h"]);
    if let Some(f) = force {
        c.args(["-O", &format!("force-command={f}")]);
    }
    run_ok(c.arg(key.with_extension("pub")));
    PathBuf::from(format!("{}-cert.pub", key.display()))
}

/// The tlog shim and its configuration: JSON to `tlog.log` in the temp
/// dir, no rate limit (every byte logged), no notice line.
fn tlog_shim(root: &Path) -> (PathBuf, PathBuf) {
    let log = root.join("tlog.log");
    let conf = root.join("tlog.json");
    std::fs::write(
        &conf,
        format!(
            r#"{{"shell":"/bin/bash","notice":"","writer":"file","file":{{"path":"{}"}},"limit":{{"action":"pass"}}}}"#,
            log.display()
        ),
    )
    .unwrap();
    let shim = root.join("tlog-session");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\nexport TLOG_REC_SESSION_CONF_FILE={}\n\
             if [ -n \"$SSH_ORIGINAL_COMMAND\" ]; then exec {TLOG} -c \"$SSH_ORIGINAL_COMMAND\"; fi\n\
             exec {TLOG}\n",
            conf.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    (shim, log)
}

/// `sessions/pty_copy.c` built into the temp dir, or `None` (said) when
/// there is no C compiler.
fn pty_copy(root: &Path) -> Option<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sessions/pty_copy.c");
    let bin = root.join("pty-copy");
    let built = Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&bin)
        .arg(&source)
        .arg("-lutil")
        .status();
    if built.is_ok_and(|s| s.success()) {
        return Some(bin);
    }
    eprintln!(
        "NOTE: no `cc` (or it failed on {}): the second-pty floor row is left out",
        source.display()
    );
    None
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it too:
    // only a bench run measures.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    for tool in [jit_ssh_e2e::SSHD, jit_ssh_e2e::SSH, SSH_KEYGEN, TLOG] {
        assert!(Path::new(tool).exists(), "{tool} is needed");
    }
    // tlog-rec-session keeps its lock files there.
    let _ = std::fs::create_dir_all("/var/run/tlog");
    // And a utmp file to add its login to: without one (a machine that
    // never ran a login service) it stops at "Failed setting up the I/O
    // tap".
    if !Path::new("/var/run/utmp").exists() {
        let _ = std::fs::write("/var/run/utmp", b"");
    }
    let bytes = env_num("JIT_SSH_BENCH_BYTES", 256 << 20);
    let samples = env_num("JIT_SSH_BENCH_SAMPLES", 500) as usize;
    let rounds = env_num("JIT_SSH_BENCH_ROUNDS", 3).max(1) as usize;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    let (h, ca, dir) = host(&root);
    let (wrapper_bin, profile) = jit_ssh_host();
    let wrapper = std::env::var("JIT_SSH_BENCH_WRAPPER")
        .unwrap_or_else(|_| {
            format!(
                "{} session --dir {{dir}} --record off",
                wrapper_bin.display()
            )
        })
        .replace("{dir}", &dir.display().to_string());
    let (shim, tlog_log) = tlog_shim(&root);
    let floor = pty_copy(&root);
    // Started before any row, stopped when the last row holding it is
    // dropped: at the end, or while a failed measurement unwinds.
    let rec =
        recorder::as_root().then(|| Rc::new(recorder::Recorder::start(&wrapper_bin, &root, &dir)));
    type Plan = (
        &'static str,
        Option<String>,
        Option<&'static str>,
        Option<Rc<recorder::Recorder>>,
    );
    let mut plan: Vec<Plan> = vec![
        ("plain sshd", None, None, None),
        (
            "jit-ssh wrapper (record off)",
            Some(wrapper),
            Some("jit-ssh-host"),
            None,
        ),
    ];
    if let Some(c) = floor {
        plan.push((
            "second pty, minimal C copy (floor)",
            Some(c.display().to_string()),
            Some("pty-copy"),
            None,
        ));
    }
    if let Some(r) = &rec {
        plan.push((
            "jit-ssh wrapper + recorder (record output)",
            Some(format!(
                "{} session --dir {} {}",
                wrapper_bin.display(),
                dir.display(),
                r.wrapper_args()
            )),
            Some("jit-ssh-host"),
            Some(r.clone()),
        ));
    }
    drop(rec);
    plan.push((
        "tlog-rec-session (file writer)",
        Some(shim.display().to_string()),
        Some("tlog-rec-sessio"),
        None,
    ));
    let rows: Vec<Row> = plan
        .into_iter()
        .enumerate()
        .map(|(i, (name, force, comm, recorder))| Row {
            cert: certificate(&h, &ca, &i.to_string(), force.as_deref()),
            name: name.to_owned(),
            force,
            comm,
            recorder,
        })
        .collect();

    let file = root.join("output.txt");
    let sample = storage::ls_lr_text(bytes as usize);
    std::fs::write(&file, &sample).unwrap();
    drop(sample);

    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_before = load();
    eprintln!(
        "jit-ssh-host: {} ({profile}); cat of {} MiB; {samples} echo samples",
        wrapper_bin.display(),
        bytes >> 20
    );
    let mut echoes = Vec::new();
    for row in &rows {
        eprintln!("echo through {}…", row.name);
        echoes.push(measure::echo(&h, row, samples));
    }
    // Rounds interleave the rows, so a burst of other work on the machine
    // lands on all of them; the table shows the median and the range.
    let mut bulks: Vec<Vec<measure::Bulk>> = rows.iter().map(|_| Vec::new()).collect();
    let mut logged = 0;
    for round in 0..rounds {
        for (i, row) in rows.iter().enumerate() {
            eprintln!("cat through {} (round {})…", row.name, round + 1);
            let before = std::fs::metadata(&tlog_log).map_or(0, |m| m.len());
            bulks[i].push(measure::throughput(&h, row, &file));
            if round == 0 && i == rows.len() - 1 {
                logged = std::fs::metadata(&tlog_log).map_or(0, |m| m.len()) - before;
            }
        }
    }
    let results: Vec<_> = echoes.into_iter().zip(bulks).collect();
    let tlog_row = results.len() - 1;
    let recorder_row = rows.iter().position(|r| r.recorder.is_some());
    let store = storage::compare(
        &h,
        &rows[tlog_row],
        recorder_row.map(|i| &rows[i]),
        &root,
        &tlog_log,
        &file,
        &results[tlog_row].1[0],
        logged,
        recorder_row.and_then(|i| measure::stored_per_mb(&results[i].1)),
    );

    println!(
        "\n### Sessions through sshd 9.2p1 on 127.0.0.1 ({}; jit-ssh-host {profile} build)\n",
        measure::today()
    );
    measure::print_table(&rows, &results, bytes, rounds);
    storage::print_table(&store);
    // Other work on the machine moves these figures: say how busy it was.
    println!(
        "\n{} CPUs; load average before: {}, after: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before.trim(),
        load().trim()
    );
    drop(rows);
    drop(h);
}
