//! A sessions export built the way the CA and a host recorder build one
//! (a sealed audit chain with a CA-signed checkpoint, a recording signed
//! by the host key), checked offline, then changed the ways an attacker
//! would change it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use jit_ssh_audit::chain::{seal_json, ChainHead};
use jit_ssh_audit::record::{Checkpoint, HostStep};
use jit_ssh_audit::session_record::{SessionEnded, SessionStarted, SessionSubject};
use jit_ssh_audit::{Actor, Event};
use jit_ssh_recording::{
    Chunk, ChunkPolicy, Encoder, EndReason, Header, RecordMode, SessionId, SessionInfo,
};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey};
use time::OffsetDateTime;

use super::*;

const SESSION: &str = "s-7";
const HOST: &str = "db-1.dev";

fn key() -> PrivateKey {
    PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).unwrap()
}

fn fp(k: &PrivateKey) -> String {
    k.public_key().fingerprint(HashAlg::Sha256).to_string()
}

/// A recording of `SESSION` signed by `host`: header line, chunks (the
/// end chunk last) and the final hash.
fn recording(host: &PrivateKey) -> (String, Vec<Chunk>, String) {
    let header = Header {
        width: 80,
        height: 24,
        timestamp: 1_795_000_000,
        env: Default::default(),
        session: SessionInfo {
            session_id: SessionId::try_from(SESSION).unwrap(),
            key_id: "jit-ssh:alice:g1:7".into(),
            serial: "7".into(),
            grant_id: "g1".into(),
            user: "alice".into(),
            host: HOST.into(),
            account: "oncall".into(),
            record: RecordMode::Output,
        },
    };
    let policy = ChunkPolicy {
        max_raw_bytes: 1024,
        ..ChunkPolicy::default()
    };
    let mut enc = Encoder::new(&header, host.clone(), policy).unwrap();
    let mut chunks = Vec::new();
    for i in 0..20u64 {
        let out = format!("$ echo {i}\r\n{}\r\n", "x".repeat(700));
        chunks.extend(
            enc.push_output(Duration::from_millis(100 * i), out.as_bytes())
                .unwrap(),
        );
    }
    let line = enc.header_line().to_owned();
    let done = enc.finish(Duration::from_secs(1), EndReason::Exit).unwrap();
    chunks.extend(done.chunks);
    (line, chunks, done.final_hash.to_string())
}

struct Chain {
    head: ChainHead,
    lines: Vec<u8>,
    ca: PrivateKey,
}

impl Chain {
    fn new(ca: PrivateKey) -> Chain {
        Chain {
            head: ChainHead::default(),
            lines: Vec::new(),
            ca,
        }
    }

    fn push(&mut self, event: Event) {
        let (rec, json) =
            seal_json(self.head, OffsetDateTime::now_utc(), Actor::System, event).unwrap();
        self.head = ChainHead {
            seq: rec.seq,
            hash: rec.hash,
        };
        self.lines.extend_from_slice(&json);
        self.lines.push(b'\n');
    }

    fn host(&mut self, kind: &str, host: &str, key_fp: &str) {
        let step = HostStep {
            host: host.into(),
            group: "db".into(),
            token: "t".into(),
            detail: String::new(),
            host_key_fingerprint: key_fp.into(),
            serial: 1,
            valid_before: 1_900_000_000,
            aliases: vec![],
        };
        self.push(match kind {
            "enrolled" => Event::HostEnrolled(step),
            "renewed" => Event::HostRenewed(step),
            _ => Event::HostRemoved(step),
        });
    }

    fn session(&mut self, key_fp: &str, final_hash: Option<&str>) {
        let subject = SessionSubject {
            session: SESSION.into(),
            user: "alice".into(),
            host: HOST.into(),
            account: "oncall".into(),
            serial: 7,
            key_id: "jit-ssh:alice:g1:7".into(),
            grant: "g1".into(),
        };
        self.push(Event::SessionStarted(SessionStarted {
            subject: subject.clone(),
            record: "output".into(),
            host_key_fingerprint: key_fp.into(),
            started_at: 1_795_000_000,
        }));
        if let Some(h) = final_hash {
            self.push(Event::SessionEnded(SessionEnded {
                subject,
                reason: "exit".into(),
                output_bytes: 1,
                input_bytes: 0,
                chunks: 9,
                duration_secs: 1,
                final_hash: h.into(),
                final_signature: String::new(),
            }));
        }
    }

    /// Ends with a checkpoint the CA key signs, as before every export.
    fn signed(mut self) -> Vec<u8> {
        let msg = jit_ssh_audit::checkpoint::message(self.head.seq, &self.head.hash);
        let sig = self
            .ca
            .sign(jit_ssh_audit::checkpoint::NAMESPACE, HashAlg::Sha512, &msg)
            .unwrap();
        self.push(Event::Checkpoint(Checkpoint {
            seq: self.head.seq,
            hash: self.head.hash,
            ca_fingerprint: fp(&self.ca),
            signature: sig.to_pem(LineEnding::LF).unwrap(),
            trigger: "export".into(),
        }));
        self.lines
    }
}

/// Writes an export directory; returns it (kept alive by the TempDir).
fn export(chain: Vec<u8>, host: &PrivateKey, header: &str, chunks: &[Chunk]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CHAIN_FILE), chain).unwrap();
    let s = dir.path().join(SESSIONS_DIR);
    std::fs::create_dir(&s).unwrap();
    let mut b = Vec::new();
    bundle::write(&mut b, header, chunks).unwrap();
    std::fs::write(s.join(format!("{SESSION}{RECORDING_EXT}")), b).unwrap();
    std::fs::write(
        s.join(format!("{SESSION}{HOST_KEY_EXT}")),
        host.public_key().to_openssh().unwrap(),
    )
    .unwrap();
    dir
}

/// The single session's outcome in a verified chain.
fn outcome(dir: &tempfile::TempDir, ca: &PrivateKey) -> Result<Checked, String> {
    let r = verify_dir(dir.path(), &[ca.public_key().clone()]).unwrap();
    assert!(r.chain.problem.is_none(), "{:?}", r.chain.problem);
    assert_eq!(r.sessions.len(), 1, "{:?}", r.sessions);
    r.sessions[0].outcome.clone()
}

fn good_chain(ca: &PrivateKey, host: &PrivateKey, final_hash: &str) -> Vec<u8> {
    let mut c = Chain::new(ca.clone());
    c.host("enrolled", HOST, &fp(host));
    c.session(&fp(host), Some(final_hash));
    c.signed()
}

#[test]
fn an_intact_export_verifies_every_chunk_against_the_enrolled_host_key() {
    let (ca, host) = (key(), key());
    let (header, chunks, final_hash) = recording(&host);
    let dir = export(good_chain(&ca, &host, &final_hash), &host, &header, &chunks);
    let ok = outcome(&dir, &ca).unwrap();
    assert_eq!(ok.chunks, chunks.len() - 1);
    assert_eq!(ok.final_hash.as_deref(), Some(&*final_hash));
    assert_eq!(ok.host, HOST);
}

#[test]
fn an_edited_chunk_is_refused_naming_it() {
    let (ca, host) = (key(), key());
    let (header, mut chunks, final_hash) = recording(&host);
    let mut bytes = chunks[3].to_bytes();
    let at = 4 + chunks[3].signed_bytes().len() - 5;
    bytes[at] ^= 0x20;
    chunks[3] = Chunk::from_bytes(&bytes).unwrap();
    let dir = export(good_chain(&ca, &host, &final_hash), &host, &header, &chunks);
    assert_eq!(
        outcome(&dir, &ca).unwrap_err(),
        "chunk 3: signature does not verify with the host key"
    );
}

#[test]
fn a_dropped_chunk_is_refused_naming_it() {
    let (ca, host) = (key(), key());
    let (header, mut chunks, final_hash) = recording(&host);
    chunks.remove(2);
    let dir = export(good_chain(&ca, &host, &final_hash), &host, &header, &chunks);
    assert_eq!(
        outcome(&dir, &ca).unwrap_err(),
        "chunk 2: expected index 2, found 3"
    );
    // The tail cut off (end chunk and all): the audit's final hash says so.
    let (header, mut chunks, final_hash) = recording(&host);
    chunks.truncate(4);
    let dir = export(good_chain(&ca, &host, &final_hash), &host, &header, &chunks);
    let e = outcome(&dir, &ca).unwrap_err();
    assert!(
        e.contains("stops after chunk 3 without its end chunk"),
        "{e}"
    );
}

#[test]
fn reordered_chunks_are_refused_naming_the_chunk() {
    let (ca, host) = (key(), key());
    let (header, mut chunks, final_hash) = recording(&host);
    chunks.swap(4, 5);
    let dir = export(good_chain(&ca, &host, &final_hash), &host, &header, &chunks);
    assert_eq!(
        outcome(&dir, &ca).unwrap_err(),
        "chunk 4: expected index 4, found 5"
    );
}

#[test]
fn a_host_key_the_chain_does_not_vouch_for_is_refused() {
    let (ca, host, forger) = (key(), key(), key());
    // A whole recording re-signed by another key, with that key in the
    // export: the session_started record names the host's key.
    let (header, chunks, final_hash) = recording(&forger);
    let dir = export(
        good_chain(&ca, &host, &final_hash),
        &forger,
        &header,
        &chunks,
    );
    let e = outcome(&dir, &ca).unwrap_err();
    assert!(
        e.contains(&format!("the host key in the export is {}", fp(&forger)))
            && e.contains(&format!("names {}", fp(&host))),
        "{e}"
    );

    // The session_started record names the forger's key, but the chain
    // enrolled another key for the host: not vouched for.
    let mut c = Chain::new(ca.clone());
    c.host("enrolled", HOST, &fp(&host));
    c.session(&fp(&forger), Some(&final_hash));
    let dir = export(c.signed(), &forger, &header, &chunks);
    let e = outcome(&dir, &ca).unwrap_err();
    assert!(
        e.contains(&format!("host key {} is not vouched for", fp(&forger))),
        "{e}"
    );

    // The right key, but the host was removed before the session began.
    let (header, chunks, final_hash) = recording(&host);
    let mut c = Chain::new(ca.clone());
    c.host("enrolled", HOST, &fp(&host));
    c.host("removed", HOST, &fp(&host));
    c.session(&fp(&host), Some(&final_hash));
    let dir = export(c.signed(), &host, &header, &chunks);
    assert!(outcome(&dir, &ca)
        .unwrap_err()
        .contains("is not vouched for"));

    // A renewal record vouches as enrollment does.
    let mut c = Chain::new(ca.clone());
    c.host("renewed", HOST, &fp(&host));
    c.session(&fp(&host), Some(&final_hash));
    let dir = export(c.signed(), &host, &header, &chunks);
    assert!(outcome(&dir, &ca).is_ok());
}

#[test]
fn missing_and_unvouched_recordings_and_a_forged_final_hash_are_refused() {
    let (ca, host) = (key(), key());
    let (header, chunks, final_hash) = recording(&host);
    // The audit record's final hash is another: the recording was
    // replaced as a whole (or the record is not this recording's).
    let dir = export(
        good_chain(&ca, &host, &"ab".repeat(32)),
        &host,
        &header,
        &chunks,
    );
    let e = outcome(&dir, &ca).unwrap_err();
    assert!(e.contains("final chain hash"), "{e}");

    // A recording removed from the export: named.
    let dir = export(good_chain(&ca, &host, &final_hash), &host, &header, &chunks);
    std::fs::remove_file(
        dir.path()
            .join(SESSIONS_DIR)
            .join(format!("{SESSION}{RECORDING_EXT}")),
    )
    .unwrap();
    let e = outcome(&dir, &ca).unwrap_err();
    assert!(e.contains("recording is not in the export"), "{e}");

    // A recording the chain knows nothing of: refused.
    let mut c = Chain::new(ca.clone());
    c.host("enrolled", HOST, &fp(&host));
    let dir = export(c.signed(), &host, &header, &chunks);
    let e = outcome(&dir, &ca).unwrap_err();
    assert!(e.contains("no session_started record"), "{e}");

    // An edited audit chain: nothing about sessions is trusted.
    let mut chain = good_chain(&ca, &host, &final_hash);
    let text = String::from_utf8(chain.clone()).unwrap();
    let at = text.find("alice").unwrap();
    chain[at] = b'A';
    let dir = export(chain, &host, &header, &chunks);
    let r = verify_dir(dir.path(), &[ca.public_key().clone()]).unwrap();
    assert!(r.chain.problem.is_some());
    assert!(r.sessions.is_empty());
}

#[test]
fn a_file_name_planted_in_an_export_cannot_talk_to_the_auditors_terminal() {
    // `audit verify` is run on exports that may have been tampered with:
    // a recording named with terminal escapes (a clipboard write, a
    // title) is refused, and the refusal names it escaped.
    let (ca, host) = (key(), key());
    let (header, chunks, final_hash) = recording(&host);
    let dir = export(good_chain(&ca, &host, &final_hash), &host, &header, &chunks);
    let planted = "\u{1b}]52;c;Y3VybCBldmlsIHwgc2gK\u{7}\u{1b}]0;all fine\u{7}";
    std::fs::write(
        dir.path()
            .join(SESSIONS_DIR)
            .join(format!("{planted}{RECORDING_EXT}")),
        b"x",
    )
    .unwrap();
    let ca_file = dir.path().join("ca.pub");
    std::fs::write(&ca_file, ca.public_key().to_openssh().unwrap()).unwrap();
    let e = crate::commands::audit_verify(dir.path(), &ca_file, false).unwrap_err();
    let shown = e.for_terminal();
    assert!(shown.contains("no session_started record"), "{shown}");
    assert!(
        !shown.contains(['\u{1b}', '\u{7}']),
        "printed with its escapes: {shown:?}"
    );
    assert!(shown.contains("\\u{001b}]52"), "{shown}");
}

#[test]
fn a_session_id_the_chain_starts_twice_is_refused_whichever_recording_is_exported() {
    // What a host could do once retention pruned a recording: upload
    // again under the same id. The CA refuses that now, but a chain from
    // before may hold it; online play read the last session_started,
    // offline verify the first: neither may pick one.
    let (ca, host) = (key(), key());
    let (header, chunks, final_hash) = recording(&host);
    let mut c = Chain::new(ca.clone());
    c.host("enrolled", HOST, &fp(&host));
    c.session(&fp(&host), Some(&final_hash));
    c.session(&fp(&host), Some(&final_hash));
    let dir = export(c.signed(), &host, &header, &chunks);
    let e = outcome(&dir, &ca).unwrap_err();
    assert!(
        e.contains("2 session_started records (seq 2, 4)")
            && e.contains("a session id is used once"),
        "{e}"
    );
}

/// Someone who can write in the export directory while the auditor runs
/// `verify DIR` swaps the chain file between two reads: the first read
/// (the chain's verdict) gets the real chain, a second read (what the
/// chain says of sessions) a forged one enrolling their own host key and
/// vouching for their own recording. A named pipe stands in for that
/// swap. The chain is read once, so the forged chain is never read
/// (session 12's review: it was read twice, and the forgery passed).
#[test]
fn the_chain_is_read_once_so_a_file_swapped_after_its_verdict_vouches_for_nothing() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::Instant;
    /// O_NONBLOCK on Linux: opening a pipe to write then fails at once
    /// while nobody reads it.
    const O_NONBLOCK: i32 = 0o4000;

    let (ca, host, forger) = (key(), key(), key());
    let (_, _, real_hash) = recording(&host);
    let genuine = good_chain(&ca, &host, &real_hash);
    let (header, chunks, forged_hash) = recording(&forger);
    let mut forged = Chain::new(key());
    forged.host("enrolled", HOST, &fp(&forger));
    forged.session(&fp(&forger), Some(&forged_hash));
    let forged = forged.signed();
    let dir = export(Vec::new(), &forger, &header, &chunks);
    let pipe = dir.path().join(CHAIN_FILE);
    std::fs::remove_file(&pipe).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .unwrap()
        .success());

    let writer = {
        let pipe = pipe.clone();
        std::thread::spawn(move || {
            std::fs::write(&pipe, &genuine).unwrap();
            // Give the first reader time to finish and close.
            std::thread::sleep(Duration::from_millis(500));
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                let open = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(O_NONBLOCK)
                    .open(&pipe);
                if let Ok(mut f) = open {
                    f.write_all(&forged).unwrap();
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            false
        })
    };
    let r = verify_dir(dir.path(), &[ca.public_key().clone()]).unwrap();
    let read_twice = writer.join().unwrap();
    assert!(r.chain.problem.is_none(), "{:?}", r.chain.problem);
    assert!(!read_twice, "the chain file was read a second time");
    let e = r.sessions[0].outcome.clone().unwrap_err();
    assert!(e.contains("the host key in the export is"), "{e}");
}
