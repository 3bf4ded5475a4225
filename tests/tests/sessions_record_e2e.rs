//! The host recorder with a real sshd, ssh and the session wrapper: what a
//! person types and sees is recorded, signed by the host key, and plays in
//! stock asciinema; the recorded user cannot touch the spool; killing the
//! wrapper from inside the session does not escape it; no recorder, no
//! login; a recorder that dies ends the session; commands and scp work
//! unchanged under `record = "output"`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, Instant};

use jit_ssh_e2e::recorder::{spooled, Recorder};
use jit_ssh_e2e::session_host::{process_running, SessionHost, Terminal};
use jit_ssh_e2e::{have_tools, run};
use jit_ssh_recording::EndReason;

const ASCIINEMA: &str = "/usr/bin/asciinema";

/// A spooled session's end reason and its asciicast, once its chain and
/// host signatures verify.
fn verified(h: &SessionHost, dir: &std::path::Path) -> (EndReason, String) {
    let (header, chunks) = spooled(dir);
    let v = jit_ssh_recording::verify(&header, chunks, &jit_ssh_e2e::sshd::host_key(&h.root), None)
        .unwrap_or_else(|e| panic!("{} does not verify: {e}", dir.display()));
    let mut cast = Vec::new();
    v.to_asciicast(&mut cast).unwrap();
    (
        v.end().unwrap().reason,
        String::from_utf8_lossy(&cast).into_owned(),
    )
}

#[test]
fn a_typed_command_and_its_output_are_recorded_signed_and_play_in_asciinema() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_record_e2e") {
        return;
    }
    let h = SessionHost::start();
    let rec = Recorder::start(&h, None);
    let (cert, serial, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let mut t = Terminal::open(h.ssh(&cert));
    t.type_line("echo recorded-$((6*7))");
    t.wait_for("recorded-42", Duration::from_secs(15));
    t.type_line("exit");
    assert!(
        t.wait_exit(Duration::from_secs(10)).is_some(),
        "{}",
        t.text()
    );
    let dir = rec.wait_ended(Duration::from_secs(10));

    // Signed by the host key, chained, ended by the shell's exit.
    let (header, chunks) = spooled(&dir);
    let v = jit_ssh_recording::verify(&header, chunks, &jit_ssh_e2e::sshd::host_key(&h.root), None)
        .unwrap_or_else(|e| panic!("the spooled recording does not verify: {e}"));
    assert_eq!(
        v.end().unwrap().reason,
        EndReason::Exit,
        "recorder log:\n{}",
        rec.log_text()
    );
    let s = &v.header().session;
    assert_eq!(s.serial, serial.to_string());
    assert_eq!(s.account, h.account);
    assert_eq!(s.host, "db.test");
    assert_eq!(s.user, "alice");
    let cast = h.root.join("session.cast");
    v.to_asciicast(std::fs::File::create(&cast).unwrap())
        .unwrap();
    let text = std::fs::read_to_string(&cast).unwrap();
    // The typed command (echoed by the pty) and its output.
    assert!(text.contains("echo recorded-$((6*7))"), "{text}");
    assert!(text.contains("recorded-42"), "{text}");

    if std::path::Path::new(ASCIINEMA).exists() {
        // asciinema cat reads /dev/tty: give it a terminal.
        let out = run(Command::new("script")
            .args(["-q", "-e", "-c"])
            .arg(format!("{ASCIINEMA} cat {}", cast.display()))
            .arg("/dev/null"));
        assert!(out.status.success(), "{out:?}");
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(shown.contains("recorded-42"), "{shown}");
    } else {
        eprintln!("!!!!!!!! {ASCIINEMA} missing: asciinema cat not checked !!!!!!!!");
    }

    // Anyone may connect (0666) to a socket in a directory only root
    // can change (0755): who connected is checked with SO_PEERCRED.
    let m = std::fs::metadata(&rec.socket).unwrap();
    assert_eq!(m.mode() & 0o777, 0o666);
    let m = std::fs::metadata(rec.socket.parent().unwrap()).unwrap();
    assert_eq!((m.mode() & 0o777, m.uid()), (0o755, 0));
    // The spool is root's alone: directories 0700, files 0600.
    for p in [rec.spool.clone(), dir.clone()] {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.mode() & 0o777, m.uid()), (0o700, 0), "{}", p.display());
    }
    for f in ["header", "chunks", "ended"] {
        let m = std::fs::metadata(dir.join(f)).unwrap();
        assert_eq!((m.mode() & 0o777, m.uid()), (0o600, 0), "{f}");
    }
    // Another user (nobody), with every directory above the spool open
    // to them, can neither append to, truncate nor delete the chunks.
    std::fs::set_permissions(&h.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let chunks = dir.join("chunks");
    let before = std::fs::read(&chunks).unwrap();
    for attempt in [
        format!("echo forged >> {}", chunks.display()),
        format!(": > {}", chunks.display()),
        format!("rm -rf {}", dir.display()),
        format!("mv {} {}/gone", dir.display(), h.root.display()),
    ] {
        let out = run(Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "sh",
                "-c",
            ])
            .arg(&attempt));
        assert!(!out.status.success(), "nobody could: {attempt}");
    }
    assert_eq!(std::fs::read(&chunks).unwrap(), before);
}

#[test]
fn killing_the_wrapper_from_inside_a_command_ends_what_it_left() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_record_e2e") {
        return;
    }
    let h = SessionHost::start();
    let rec = Recorder::start(&h, None);
    let (cert, _, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let started = Instant::now();
    // $PPID of the command's shell is the wrapper.
    let out = run(h.ssh(&cert).arg("kill -9 $PPID; sleep 7303; echo escaped"));
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("escaped"), "{stdout}");
    // ssh returned: sshd's session was ended, not left for 7303 s.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let until = Instant::now() + Duration::from_secs(5);
    while process_running("sleep 7303") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !process_running("sleep 7303"),
        "the command outlived its killed wrapper; recorder log:\n{}",
        rec.log_text()
    );
    let dir = rec.wait_ended(Duration::from_secs(10));
    assert_eq!(verified(&h, &dir).0, EndReason::RecorderLost);
    eprintln!("ssh returned {took:?} after the wrapper was killed");
}

#[test]
fn killing_the_wrapper_from_an_interactive_shell_ends_the_session() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_record_e2e") {
        return;
    }
    let h = SessionHost::start();
    let rec = Recorder::start(&h, None);
    let (cert, _, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let mut t = Terminal::open(h.ssh(&cert));
    t.type_line("echo ready-$((2*3))");
    t.wait_for("ready-6", Duration::from_secs(15));
    // A job in a kernel session of its own (setsid, not forked away
    // from its parent), then the wrapper.
    t.type_line("bash -c 'setsid sleep 7304; true' & sleep 1.5; kill -9 $PPID");
    assert!(
        t.wait_exit(Duration::from_secs(15)).is_some(),
        "the session outlived its killed wrapper:\n{}",
        t.text()
    );
    let dir = rec.wait_ended(Duration::from_secs(10));
    assert_eq!(verified(&h, &dir).0, EndReason::RecorderLost);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !process_running("sleep 7304"),
        "a setsid job seen by the recorder outlived the session; log:\n{}",
        rec.log_text()
    );
}

#[test]
fn no_recorder_no_login_and_a_recorder_that_dies_ends_the_session() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_record_e2e") {
        return;
    }
    let h = SessionHost::start();
    let mut rec = Recorder::start(&h, None);
    let (cert, _, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let mut t = Terminal::open(h.ssh(&cert));
    t.type_line("echo up-$((3*3))");
    t.wait_for("up-9", Duration::from_secs(15));
    // What the recorder holds in memory (at most --chunk-seconds, here 1 s,
    // plus a tick) dies with it; what it spooled does not.
    std::thread::sleep(Duration::from_millis(2500));
    rec.stop();
    assert!(
        t.wait_exit(Duration::from_secs(10)).is_some(),
        "the session went on unrecorded:\n{}",
        t.text()
    );
    assert!(
        t.text().contains("the session recorder went away"),
        "{}",
        t.text()
    );
    // The recorder is down: the next login is refused, saying why.
    for record in ["output", "full"] {
        let (cert, _, _) = h.certificate("10m", &rec.wrapper_args(record));
        let out = run(h.ssh(&cert).arg("echo should-not-run"));
        assert_eq!(out.status.code(), Some(255));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "jit-ssh: login refused: recording is required by policy (record = {record}) but no recorder is reachable at {}",
                rec.socket.display()
            )),
            "{err}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    }
    // The session the dead recorder left open: a new recorder ends it
    // (recorder-lost), keeping what was recorded, signed and chained.
    let rec = Recorder::start(&h, None);
    let dir = rec.wait_ended(Duration::from_secs(10));
    let (reason, cast) = verified(&h, &dir);
    assert_eq!(reason, EndReason::RecorderLost);
    assert!(cast.contains("up-9"));
    assert!(rec.log_text().contains("left open by a previous recorder"));
}

#[test]
fn a_recorder_told_to_stop_ends_its_sessions_with_everything_recorded() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_record_e2e") {
        return;
    }
    let h = SessionHost::start();
    // Chunks cut only at 256 KiB or 10 minutes: what the session printed
    // is all in the recorder's memory when it is told to stop.
    let mut rec = Recorder::start_with_args(&h, &["--chunk-seconds", "600"]);
    let (cert, _, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let mut t = Terminal::open(h.ssh(&cert));
    t.type_line("echo last-words-$((6*7))");
    t.wait_for("last-words-42", Duration::from_secs(15));
    // As systemd stops it (a restart, an upgrade, a shutdown).
    let status = rec.terminate(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "stopped: {status:?}; log:\n{}",
        rec.log_text()
    );
    // The session cannot go on unrecorded; the person reads why.
    assert!(
        t.wait_exit(Duration::from_secs(10)).is_some(),
        "the session went on unrecorded:\n{}",
        t.text()
    );
    assert!(
        t.text().contains("the host's session recorder is stopping"),
        "{}",
        t.text()
    );
    // Ended and signed by the recorder that stopped, with what it held.
    let dir = rec.wait_ended(Duration::from_secs(1));
    let (reason, cast) = verified(&h, &dir);
    assert_eq!(reason, EndReason::RecorderLost);
    assert!(cast.contains("last-words-42"));
}

#[test]
fn commands_and_scp_work_unchanged_when_recorded() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_record_e2e") {
        return;
    }
    let h = SessionHost::start();
    let rec = Recorder::start(&h, None);
    let (cert, _, _) = h.certificate("10m", &rec.wrapper_args("output"));
    assert_eq!(run(h.ssh(&cert).arg("false")).status.code(), Some(1));
    let out = run(h.ssh(&cert).arg("echo fine"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fine\n");

    let src = h.root.join("blob.bin");
    let bytes: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&src, &bytes).unwrap();
    let dst = h.root.join("copy.bin");
    let key = cert.display().to_string().replace("-cert.pub", "");
    let out = run(Command::new("scp")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
        ])
        .args([
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "IdentityAgent=none"])
        .arg("-o")
        .arg(format!("CertificateFile={}", cert.display()))
        .args(["-i", &key, "-P", &h.sshd.port().to_string()])
        .arg(&src)
        .arg(format!("{}@127.0.0.1:{}", h.account, dst.display())));
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read(&dst).unwrap() == bytes,
        "scp changed the file"
    );
    // Each of the three logins is a recorded session.
    let until = Instant::now() + Duration::from_secs(10);
    while rec
        .sessions()
        .iter()
        .filter(|d| d.join("ended").exists())
        .count()
        < 3
    {
        assert!(Instant::now() < until, "{}", rec.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    // A command's output is recorded; the sftp server's bytes (the file)
    // are not, only that the session ran.
    let mut seen = Vec::new();
    for dir in rec.sessions() {
        let (header, chunks) = spooled(&dir);
        let v =
            jit_ssh_recording::verify(&header, chunks, &jit_ssh_e2e::sshd::host_key(&h.root), None)
                .unwrap();
        let command = v
            .header()
            .env
            .get("SSH_ORIGINAL_COMMAND")
            .cloned()
            .unwrap_or_default();
        let mut cast = Vec::new();
        v.to_asciicast(&mut cast).unwrap();
        let cast = String::from_utf8(cast).unwrap();
        let out = v.end().unwrap().totals.output_bytes;
        if command == "echo fine" {
            assert!(cast.contains("\"fine\\n\""), "{cast}");
        } else if command.contains("sftp") {
            assert_eq!(out, 0, "sftp bytes recorded");
        }
        seen.push(command);
    }
    seen.sort();
    assert_eq!(seen, ["echo fine", "false", "internal-sftp"], "{seen:?}");
}

#[test]
fn a_socket_activated_recorder_records_on_the_socket_systemd_passes() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_record_e2e") {
        return;
    }
    if !have_tools("sessions_record_e2e", &[jit_ssh_e2e::recorder::ACTIVATE]) {
        return;
    }
    let h = SessionHost::start();
    let rec = Recorder::start_activated(&h);
    let (cert, _, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let out = run(h.ssh(&cert).arg("echo activated"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "activated\n",
        "{out:?}"
    );
    rec.wait_ended(Duration::from_secs(10));
    // It listened on what it was passed, not on a socket of its own.
    assert!(!h.root.join("not-bound").exists(), "{}", rec.log_text());
}

#[test]
fn a_stopped_wrapper_does_not_keep_a_session_past_expiry_or_revocation() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_record_e2e") {
        return;
    }
    let h = SessionHost::start();
    let rec = Recorder::start(&h, None);
    // Expiry: the wrapper, stopped from inside, cannot end the session;
    // the recorder does, shortly after valid_before.
    let (cert, _, valid_before) = h.certificate("6s", &rec.wrapper_args("output"));
    let mut ssh = h
        .ssh(&cert)
        .arg("kill -STOP $PPID; sleep 7306; echo overstayed")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ended = jit_ssh_e2e::session_host::exited_at(&mut ssh, Duration::from_secs(30));
    let late = ended.map(|t| t - valid_before as f64);
    eprintln!("a stopped wrapper's session ended {late:?} s after valid_before");
    assert!(
        late.is_some_and(|l| (0.0..=6.0).contains(&l)),
        "ended {late:?} s after expiry; recorder log:\n{}",
        rec.log_text()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!process_running("sleep 7306"));
    let dir = rec.wait_ended(Duration::from_secs(5));
    let (header, chunks) = spooled(&dir);
    let last_end = chunks.last().unwrap().body().end;
    let v = jit_ssh_recording::verify(&header, chunks, &jit_ssh_e2e::sshd::host_key(&h.root), None)
        .unwrap();
    assert_eq!(v.end().unwrap().reason, EndReason::Expiry);
    // The CA takes chunks recorded up to valid_before + 42 s
    // (docs/recordings.md): the recorder's own end must be well inside.
    let start = jit_ssh_recording::Header::parse_line(&header)
        .unwrap()
        .timestamp;
    let recorded_end = start as f64 + last_end.as_secs_f64();
    let past = recorded_end - valid_before as f64;
    eprintln!("the recorder's end chunk is recorded {past:.2} s after valid_before");
    assert!(past <= 42.0, "{past} s");
    std::fs::remove_dir_all(&dir).unwrap();

    // Revocation: the same, once the host's KRL names the serial.
    let (cert, serial, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let mut ssh = h
        .ssh(&cert)
        .arg("kill -STOP $PPID; sleep 7307; echo overstayed")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Logged in and recorded (the ssh client's own command line names
    // the sleep too, so the spool is what tells).
    let until = Instant::now() + Duration::from_secs(10);
    while rec.sessions().is_empty() {
        assert!(Instant::now() < until, "{}", rec.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    h.install_krl(&format!("serial: {serial}\n"));
    let revoked = Instant::now();
    assert!(
        jit_ssh_e2e::session_host::exited_at(&mut ssh, Duration::from_secs(10)).is_some(),
        "a stopped wrapper kept a revoked session; log:\n{}",
        rec.log_text()
    );
    eprintln!(
        "a stopped wrapper's revoked session ended {:?} after the KRL",
        revoked.elapsed()
    );
    let dir = rec.wait_ended(Duration::from_secs(5));
    let (header, chunks) = spooled(&dir);
    let v = jit_ssh_recording::verify(&header, chunks, &jit_ssh_e2e::sshd::host_key(&h.root), None)
        .unwrap();
    assert_eq!(v.end().unwrap().reason, EndReason::Revoked);
    assert!(!process_running("sleep 7307"));
}

#[test]
fn a_recorded_login_that_skips_the_wrapper_is_ended_by_the_recorder() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_record_e2e") {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    let rec = Recorder::start(&h, None);
    // A normal recorded login: the wrapper announces itself.
    let (cert, _, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let out = run(h.ssh(&cert).arg("echo wrapped"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "wrapped\n",
        "{out:?}\n{}",
        rec.log_text()
    );

    // What a shell startup file that exec's something else does: sshd
    // runs the certificate's force-command through the user's shell, and
    // the wrapper never starts (here the force-command itself skips it;
    // the shell reads the rest as a comment).
    let skip = format!(
        "exec sleep 7310 # {} session --dir {} {}",
        jit_ssh_e2e::bin("jit-ssh-host").display(),
        h.dir.display(),
        rec.wrapper_args("output")
    );
    let (cert, _, _) = h.certificate_forcing("10m", &skip);
    let started = Instant::now();
    let mut ssh = h
        .ssh(&cert)
        .arg("true")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ended = jit_ssh_e2e::session_host::exited_at(&mut ssh, Duration::from_secs(30));
    if ended.is_none() {
        let _ = ssh.kill();
    }
    assert!(
        ended.is_some(),
        "a recorded login without its wrapper went on; recorder log:\n{}",
        rec.log_text()
    );
    eprintln!(
        "an unwrapped recorded login ended {:?} after ssh started",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !process_running("sleep 7310"),
        "the unwrapped login's process survived"
    );
    assert!(
        rec.log_text()
            .contains("without a session wrapper announcing itself"),
        "{}",
        rec.log_text()
    );
}

#[test]
fn sshd_refuses_a_recorded_certificate_when_the_recorder_cannot_be_told() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_record_e2e") {
        return;
    }
    let h = SessionHost::start_with_principals_command();
    // No recorder at all.
    let socket = h.root.join("run-jit-ssh").join("recorder.sock");
    let args = format!("--record output --recorder-socket {}", socket.display());
    let (cert, _, _) = h.certificate("10m", &args);
    let out = run(h.ssh(&cert).arg("echo should-not-run"));
    let sshd_log = std::fs::read_to_string(h.root.join("sshd.log")).unwrap_or_default();
    assert_eq!(out.status.code(), Some(255), "{sshd_log}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}\n{sshd_log}"
    );
    // record = "off" runs the wrapper too: the recorder is what would end
    // its login should a startup file skip the wrapper, so it is refused
    // as well.
    let (cert, _, _) = h.certificate("10m", "--record off");
    let out = run(h.ssh(&cert).arg("echo unrecorded"));
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("unrecorded"));
    // A certificate that does not run the wrapper still logs in.
    let (cert, _, _) = h.certificate_forcing("10m", "/bin/echo unwrapped");
    let out = run(h.ssh(&cert).arg("true"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "unwrapped\n",
        "{out:?}"
    );
}

#[test]
fn the_recorder_takes_only_the_real_wrapper_with_nothing_preloaded() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_record_e2e") {
        return;
    }
    let h = SessionHost::start();
    let rec = Recorder::start(&h, None);
    // The same program from another file (what a user's own client of
    // the protocol would be), and the real one with a preload variable.
    let copy = h.root.join("my-wrapper");
    std::fs::copy(jit_ssh_e2e::bin("jit-ssh-host"), &copy).unwrap();
    let real = format!(
        "session --dir {} {}",
        h.dir.display(),
        rec.wrapper_args("output")
    );
    for (force, why) in [
        (
            format!("{} {real}", copy.display()),
            "does not run the session wrapper",
        ),
        (
            format!(
                "env LD_PRELOAD= {} {real}",
                jit_ssh_e2e::bin("jit-ssh-host").display()
            ),
            "was started with LD_PRELOAD set",
        ),
    ] {
        let (cert, _, _) = h.certificate_forcing("10m", &force);
        let out = run(h.ssh(&cert).arg("echo should-not-run"));
        assert_eq!(out.status.code(), Some(255), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("the recorder refused this session") && err.contains(why),
            "{err}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    }
}

#[test]
fn a_user_holding_idle_connections_delays_no_one_else() {
    if !jit_ssh_e2e::have_recorder_tools("sessions_record_e2e")
        || !have_tools(
            "sessions_record_e2e",
            &["/usr/bin/python3", "/usr/bin/setpriv"],
        )
    {
        return;
    }
    let h = SessionHost::start();
    let rec = Recorder::start(&h, None);
    // A recorder that may hold 256 descriptors, so the attempt below
    // would exhaust them.
    let limited = run(Command::new("prlimit").args([
        "--pid",
        &rec.child.id().to_string(),
        "--nofile=256:256",
    ]));
    assert!(limited.status.success(), "{limited:?}");
    std::fs::set_permissions(&h.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    // nobody opens 600 connections and says nothing.
    let mut hog = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c"])
        .arg(format!(
            "import resource,socket,time\nresource.setrlimit(resource.RLIMIT_NOFILE,(2048,2048))\nss=[]\nfor _ in range(600):\n s=socket.socket(socket.AF_UNIX)\n s.settimeout(0.05)\n try:\n  s.connect({:?})\n  ss.append(s)\n except OSError:\n  s.close()\nprint('held', len(ss), flush=True)\ntime.sleep(30)\n",
            rec.socket.display().to_string()
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(hog.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("held"), "{line}");
    eprintln!("nobody {}", line.trim());
    let (cert, _, _) = h.certificate("10m", &rec.wrapper_args("output"));
    let started = Instant::now();
    let out = run(h.ssh(&cert).arg("echo still-recorded"));
    let _ = hog.kill();
    let _ = hog.wait();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "still-recorded\n",
        "{out:?}\n{}",
        rec.log_text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        rec.log_text()
            .contains("connections that have not said hello"),
        "{}",
        rec.log_text()
    );
}
