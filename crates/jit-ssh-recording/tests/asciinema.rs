//! The plain file a verified recording writes is asciicast v2 that
//! Debian's asciinema 2.2.0 plays: `asciinema cat` and `asciinema play`
//! print exactly the terminal output recorded, characters split across
//! reads included. Skipped (loudly) without asciinema and util-linux
//! `script` (asciinema opens /dev/tty, so it runs under `script`'s pty),
//! unless JIT_SSH_REQUIRE_E2E=1, which makes their absence a failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{header, host_key};
use jit_ssh_recording::{verify, ChunkPolicy, Encoder, EndReason, RecordMode};

fn tools_present() -> bool {
    let ok = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let present = ok("asciinema", "--version") && ok("script", "--version");
    if !present {
        if std::env::var("JIT_SSH_REQUIRE_E2E").as_deref() == Ok("1") {
            panic!("asciinema or script is missing and JIT_SSH_REQUIRE_E2E=1 (apt-get install asciinema)");
        }
        eprintln!("SKIPPED: asciinema or script (util-linux) not installed");
    }
    present
}

/// What `asciinema ARGS FILE` prints, run under a pty it puts in raw mode.
fn asciinema(args: &str, file: &Path) -> Vec<u8> {
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("asciinema {args} '{}'", file.display()),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "asciinema {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A recording whose output reads split characters, holds an invalid byte
/// and an escape sequence, with typing and a resize between.
fn cast_file(dir: &Path) -> (std::path::PathBuf, String) {
    let key = host_key();
    let policy = ChunkPolicy {
        max_raw_bytes: 1024,
        ..ChunkPolicy::default()
    };
    let mut enc = Encoder::new(&header("cast-1", RecordMode::Full), key.clone(), policy).unwrap();
    let mut chunks = Vec::new();
    let reads: Vec<Vec<u8>> = vec![
        b"$ ".to_vec(),
        "caf\u{e9} \u{20ac}".as_bytes()[..5].to_vec(), // ends inside é
        "caf\u{e9} \u{20ac}".as_bytes()[5..8].to_vec(), // ends inside €
        "caf\u{e9} \u{20ac}".as_bytes()[8..].to_vec(),
        b" \xff \x1b[1;31mred\x1b[0m\r\n".to_vec(),
    ];
    let mut t = Duration::ZERO;
    for (i, r) in reads.iter().enumerate() {
        t += Duration::from_millis(30);
        chunks.extend(enc.push_output(t, r).unwrap());
        if i == 1 {
            chunks.extend(enc.push_input(t, b"x").unwrap());
            chunks.extend(enc.push_resize(t, 100, 30).unwrap());
        }
    }
    for i in 0..200 {
        t += Duration::from_millis(5);
        let line = format!("{i:04} \u{1f600} drwxr-xr-x 2 root root 4096 usr\r\n");
        chunks.extend(enc.push_output(t, line.as_bytes()).unwrap());
    }
    let header_line = enc.header_line().to_owned();
    let done = enc.finish(t, EndReason::Exit).unwrap();
    chunks.extend(done.chunks);
    assert!(chunks.len() > 3, "several chunks: {}", chunks.len());
    let v = verify(
        &header_line,
        chunks,
        key.public_key(),
        Some(&done.final_hash),
    )
    .unwrap();
    let expected: String = v
        .play(Default::default())
        .unwrap()
        .map(|f| f.unwrap().event)
        .filter(|e| e.kind == jit_ssh_recording::EventKind::Output)
        .map(|e| e.data)
        .collect();
    assert!(expected.starts_with("$ caf\u{e9} \u{20ac} \u{fffd} \u{1b}[1;31mred"));
    let path = dir.join("session.cast");
    v.to_asciicast(std::fs::File::create(&path).unwrap())
        .unwrap();
    (path, expected)
}

#[test]
fn asciinema_cat_prints_exactly_the_recorded_output() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, expected) = cast_file(dir.path());
    assert_eq!(
        String::from_utf8(asciinema("cat", &path)).unwrap(),
        expected
    );
}

#[test]
fn asciinema_play_plays_it() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, expected) = cast_file(dir.path());
    let shown = asciinema("play -s 50 -i 0.01", &path);
    assert_eq!(String::from_utf8(shown).unwrap(), expected);
}
