//! The host recorder's spool limits with a real sshd, ssh and the session
//! wrapper: a session that fills the spool past its cap (no CA to drain
//! it) is ended with the signed reason `spool-full`, keeping what was
//! recorded; the next recorded login is refused, saying why; a
//! free-space floor the filesystem is below refuses logins too.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use jit_ssh_e2e::recorder::{spooled, Recorder};
use jit_ssh_e2e::session_host::SessionHost;
use jit_ssh_e2e::sshd::host_key;
use jit_ssh_e2e::{have_recorder_tools, run};
use jit_ssh_recording::EndReason;

/// 20 MB of urandom as base64 (27 MB of output): far past a 256 KiB cap.
const FLOOD: &str = "head -c 20000000 /dev/urandom | base64 -w 76; echo flood-done";
const FLOOD_BYTES: usize = 27_000_000;

#[test]
fn a_session_filling_the_spool_is_ended_as_spool_full_and_the_next_login_is_refused() {
    if !have_recorder_tools("sessions_spool_full_e2e") {
        return;
    }
    let h = SessionHost::start();
    let rec = Recorder::start_with_args(&h, &["--spool-max", "256KiB"]);
    let (cert, serial, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let started = Instant::now();
    let out = h
        .ssh(&cert)
        .arg(FLOOD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = started.elapsed();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && !shown.contains("flood-done") && out.stdout.len() < FLOOD_BYTES,
        "the flood ran to its end ({} bytes shown, {:?}); recorder log:\n{}",
        out.stdout.len(),
        out.status,
        rec.log_text()
    );
    // The person is told why, not only that the connection closed.
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(
            "jit-ssh: the session recorder ended this session: this host's recording spool is full"
        ),
        "the session did not say why it ended: {said:?}"
    );
    eprintln!(
        "spool-full: the session ended after {:.2} s and {} bytes shown",
        took.as_secs_f64(),
        out.stdout.len()
    );
    // Ended in the spool with the signed reason, every chunk kept,
    // chained and verifying; what was shown before the end is in it.
    let dir = rec.wait_ended(Duration::from_secs(10));
    eprintln!(
        "spool-full: the spool holds {} bytes of chunks (cap 262144)",
        std::fs::metadata(dir.join("chunks")).unwrap().len()
    );
    let (header, chunks) = spooled(&dir);
    let v = jit_ssh_recording::verify(&header, chunks, &host_key(&h.root), None)
        .unwrap_or_else(|e| panic!("the spooled recording does not verify: {e}"));
    let end = v.end().unwrap();
    assert_eq!(
        end.reason,
        EndReason::SpoolFull,
        "recorder log:\n{}",
        rec.log_text()
    );
    assert!(end.totals.output_bytes > 256 * 1024, "{:?}", end.totals);
    // What the person saw is recorded: the wrapper sends each read to
    // the recorder before showing it, and what it had queued when the
    // recorder hung up is recorded too. Up to one read of the wrapper's
    // (64 KiB) may be shown after its end message and go unrecorded: the
    // wrapper's output pump races its end (session/io.rs, reported).
    let shown_len = out.stdout.len() as u64;
    assert!(
        end.totals.output_bytes + 64 * 1024 >= shown_len,
        "{shown_len} bytes shown, {} recorded; recorder log:\n{}",
        end.totals.output_bytes,
        rec.log_text()
    );
    eprintln!(
        "spool-full: {shown_len} bytes shown, {} recorded",
        end.totals.output_bytes
    );
    assert_eq!(v.header().session.serial, serial.to_string());
    let log = rec.log_text();
    assert!(
        log.contains("this host's recording spool is full: it holds")
            && log.contains("its cap is 256.0 KiB; recorded sessions wait until uploads to the CA free room: ended it ("),
        "{log}"
    );

    // The spool is still over its cap (no CA drains it): a new recorded
    // login is refused, and the person is told why.
    let (cert, _, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let out = run(h.ssh(&cert).arg("echo should-not-run"));
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("jit-ssh: login refused: recording is required by policy (record = output) but the recorder refused this session: this host's recording spool is full: it holds")
            && err.contains("its cap is 256.0 KiB"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    assert_eq!(
        rec.sessions().len(),
        1,
        "a refused login left a spool entry"
    );
}

#[test]
fn a_filesystem_below_the_floor_refuses_recorded_logins() {
    if !have_recorder_tools("sessions_spool_full_e2e") {
        return;
    }
    let h = SessionHost::start();
    // No test machine has 100 TiB free: the real statvfs is below it.
    let rec = Recorder::start_with_args(&h, &["--spool-min-free", "100TiB"]);
    let (cert, _, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let out = run(h.ssh(&cert).arg("echo should-not-run"));
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the recorder refused this session: this host's recording spool is full: its filesystem has")
            && err.contains("below the floor of 100.0 TiB"),
        "{err}"
    );
    assert!(rec.sessions().is_empty());
}
