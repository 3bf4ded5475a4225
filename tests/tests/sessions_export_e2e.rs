//! An auditor exports the audit chain with the session recordings
//! (`jit-ssh audit export --sessions`) from the real CA, and checks it
//! offline with only the CA public key (`jit-ssh audit verify DIR`): an
//! enrolled host's recording of a real grant's session verifies; an
//! edited, dropped or reordered chunk, or a recording re-signed with a key
//! the chain does not vouch for, is refused naming the problem.
//!
//! The host recorder is not built yet, so the test uploads the recording
//! as a recorder would: chunks from the recording crate's `Encoder`,
//! signed with the enrolled host key, `POST /v1/recordings/{session}`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use base64ct::{Base64, Encoding};
use jit_ssh_e2e::world::{ok_json, World};
use jit_ssh_e2e::{bin, have_login_tools, keygen, run, run_ok};
use jit_ssh_recording::{
    bundle, Chunk, ChunkPolicy, Encoder, EndReason, Header, RecordMode, SessionId, SessionInfo,
};
use ssh_key::PrivateKey;

const SESSION: &str = "e2e-session-1";

fn recording(key: &PrivateKey, info: SessionInfo) -> (String, Vec<Chunk>) {
    let header = Header {
        width: 80,
        height: 24,
        // Now: the CA takes a session only within its certificate's
        // validity (docs/recordings.md).
        timestamp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        env: Default::default(),
        session: info,
    };
    let policy = ChunkPolicy {
        max_raw_bytes: 1024,
        ..ChunkPolicy::default()
    };
    let mut enc = Encoder::new(&header, key.clone(), policy).unwrap();
    let mut chunks = Vec::new();
    for i in 0..24u64 {
        let out = format!("$ echo {i}\r\n{}\r\n", "y".repeat(600));
        chunks.extend(
            enc.push_output(Duration::from_millis(100 * i), out.as_bytes())
                .unwrap(),
        );
    }
    let line = enc.header_line().to_owned();
    chunks.extend(
        enc.finish(Duration::from_secs(3), EndReason::Exit)
            .unwrap()
            .chunks,
    );
    (line, chunks)
}

fn upload(root: &Path, url: &str, header: &str, chunks: &[Chunk]) -> String {
    let body = serde_json::json!({
        "header": header,
        "chunks": chunks.iter().map(|c| Base64::encode_string(&c.to_bytes())).collect::<Vec<_>>(),
    });
    let file = root.join("upload.json");
    std::fs::write(&file, body.to_string()).unwrap();
    run_ok(
        Command::new("curl")
            .args(["-sS", "-X", "POST", "-H", "content-type: application/json"])
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!("{url}/v1/recordings/{SESSION}")),
    )
}

fn verify(w: &World, dir: &Path) -> (Output, String) {
    let out = run(Command::new(bin("jit-ssh"))
        .args(["audit", "verify"])
        .arg(dir)
        .arg("--ca-key")
        .arg(w.ca.ca_public_key()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// A copy of the export whose recording has `chunks` (and host key `key`).
fn altered(dir: &Path, name: &str, chunks: &[Chunk], key: Option<&PrivateKey>) -> PathBuf {
    let copy = dir.with_file_name(name);
    run_ok(Command::new("cp").arg("-a").arg(dir).arg(&copy));
    let rec = copy.join(format!("sessions/{SESSION}.recording"));
    let (header, _) = bundle::read(std::fs::File::open(&rec).unwrap()).unwrap();
    let mut b = Vec::new();
    bundle::write(&mut b, &header, chunks).unwrap();
    std::fs::write(&rec, b).unwrap();
    if let Some(k) = key {
        std::fs::write(
            copy.join(format!("sessions/{SESSION}.host-key.pub")),
            k.public_key().to_openssh().unwrap(),
        )
        .unwrap();
    }
    copy
}

#[test]
fn a_sessions_export_verifies_offline_and_tampered_recordings_are_named() {
    if !have_login_tools("sessions_export_e2e") {
        return;
    }
    // A test machine's disk may be fuller than the default 5 % floor
    // allows: the CA would refuse the uploads with 507.
    let w = World::start_with("[recordings]\nmin_free = \"16MiB\"\nmin_free_percent = 0\n");
    // db-1.dev enrolls: the CA signs its host certificate and records
    // host_enrolled with the host key's fingerprint.
    let key_path = keygen(&w.root, "ssh_host_ed25519_key");
    let token = run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["host-token", "--group", "dev", "--dev-dir"])
            .arg(&w.ca.dev_dir),
    );
    let drop_ins = w.root.join("sshd_config.d");
    std::fs::create_dir(&drop_ins).unwrap();
    run_ok(
        Command::new(bin("jit-ssh-host"))
            .args(["enroll", "--ca-url", &w.ca.url, "--token", token.trim()])
            .args(["--name", "db-1.dev", "--key"])
            .arg(&key_path)
            .arg("--dir")
            .arg(w.root.join("etc-ssh-jit-ssh"))
            .arg("--sshd-config-dir")
            .arg(&drop_ins),
    );
    // A real grant, and its session's recording, uploaded by the host.
    let cert = ok_json(&w.login("db-1.dev", "10m"));
    let (serial, grant) = (
        cert["serial"].as_str().unwrap().to_owned(),
        cert["request"].as_str().unwrap().to_owned(),
    );
    let host_key = PrivateKey::read_openssh_file(&key_path).unwrap();
    let info = SessionInfo {
        session_id: SessionId::try_from(SESSION).unwrap(),
        key_id: format!("jit-ssh:{}:{grant}:{serial}", w.account),
        serial: serial.clone(),
        grant_id: grant,
        user: w.account.clone(),
        host: "db-1.dev".into(),
        account: w.account.clone(),
        record: RecordMode::Output,
    };
    let (header, chunks) = recording(&host_key, info.clone());
    assert!(chunks.len() >= 8, "{} chunks", chunks.len());
    let answer = upload(&w.root, &w.ca.url, &header, &chunks);
    assert!(answer.contains("\"ended\":true"), "{answer}");

    // The auditor exports (one touch) and checks offline.
    let dir = w.root.join("export");
    let out = run(w
        .jit_ssh()
        .args(["audit", "export", "--sessions", "-o"])
        .arg(&dir)
        .args(["--timeout", "60s"]));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("1 session recording(s)"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.with_extension("partial").exists());
    // A second export never mixes into the first.
    let again = run(w
        .jit_ssh()
        .args(["audit", "export", "--sessions", "-o"])
        .arg(&dir)
        .args(["--timeout", "60s"]));
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    let (ok, text) = verify(&w, &dir);
    assert!(ok.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "session {SESSION}: OK, {} chunks",
            chunks.len() - 1
        )) && text.contains("host key of db-1.dev"),
        "{text}"
    );

    // Each change is refused (exit 8), naming the chunk or the key.
    let stored = {
        let f = std::fs::File::open(dir.join(format!("sessions/{SESSION}.recording"))).unwrap();
        bundle::read(f).unwrap().1
    };
    let mut edited = stored.clone();
    let mut bytes = edited[2].to_bytes();
    let at = 4 + edited[2].signed_bytes().len() - 5;
    bytes[at] ^= 0x20;
    edited[2] = Chunk::from_bytes(&bytes).unwrap();
    let mut dropped = stored.clone();
    dropped.remove(3);
    let mut reordered = stored.clone();
    reordered.swap(4, 5);
    let other = PrivateKey::read_openssh_file(&keygen(&w.root, "forger")).unwrap();
    let (_, forged) = recording(&other, info);
    for (name, chunks, key, want) in [
        (
            "edited",
            &edited,
            None,
            "chunk 2: signature does not verify with the host key".to_owned(),
        ),
        (
            "dropped",
            &dropped,
            None,
            "chunk 3: expected index 3, found 4".to_owned(),
        ),
        (
            "reordered",
            &reordered,
            None,
            "chunk 4: expected index 4, found 5".to_owned(),
        ),
        (
            "re-signed",
            &forged,
            Some(&other),
            format!(
                "the host key in the export is {}",
                other.public_key().fingerprint(ssh_key::HashAlg::Sha256)
            ),
        ),
    ] {
        let (out, text) = verify(&w, &altered(&dir, name, chunks, key));
        assert_eq!(out.status.code(), Some(8), "{name}: {text}");
        assert!(
            text.contains(&format!("session {SESSION}: FAILED: {want}")),
            "{name}: {text}"
        );
    }
}
