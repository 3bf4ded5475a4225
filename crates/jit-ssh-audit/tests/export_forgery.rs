//! An export in the hands of someone who wants to hide or change history
//! but does not hold the CA key: what `verify_export` must not let pass.
//! Each of these passed before (session 12's review of the audit trail).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufReader, Read};

use jit_ssh_audit::chain::{self, ChainHead};
use jit_ssh_audit::checkpoint::{message, verify_export, ExportReport, NAMESPACE};
use jit_ssh_audit::{Actor, AuditRecord, Checkpoint, Event, RequestStep};
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};
use time::{Duration, OffsetDateTime};

fn key() -> PrivateKey {
    PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap()
}

fn step(i: u64) -> Event {
    Event::MfaVerified(RequestStep {
        request: format!("r{i}"),
        user: "alice".into(),
        host: "db-1.prod".into(),
        detail: String::new(),
    })
}

fn checkpoint(key: &PrivateKey, head: ChainHead) -> Event {
    let sig = key
        .sign(NAMESPACE, HashAlg::Sha512, &message(head.seq, &head.hash))
        .unwrap();
    Event::Checkpoint(Checkpoint {
        seq: head.seq,
        hash: head.hash,
        ca_fingerprint: key.public_key().fingerprint(HashAlg::Sha256).to_string(),
        signature: sig.to_pem(LineEnding::LF).unwrap(),
        trigger: "interval".into(),
    })
}

fn start() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// A chain as the CA writes it (its stored lines), one record a minute:
/// four events, a checkpoint of the fourth (record 5), four more, a
/// checkpoint of the ninth (record 10).
struct Chain {
    lines: Vec<String>,
    records: Vec<AuditRecord>,
}

impl Chain {
    fn new(key: &PrivateKey) -> Self {
        let mut c = Chain {
            lines: vec![],
            records: vec![],
        };
        for i in 1..=8 {
            c.push(step(i));
            if i % 4 == 0 {
                let cp = checkpoint(key, c.head());
                c.push(cp);
            }
        }
        c
    }

    fn head(&self) -> ChainHead {
        self.records
            .last()
            .map_or(ChainHead::default(), |r| ChainHead {
                seq: r.seq,
                hash: r.hash,
            })
    }

    fn push_at(&mut self, time: OffsetDateTime, event: Event) {
        let (rec, json) = chain::seal_json(self.head(), time, Actor::System, event).unwrap();
        self.lines.push(String::from_utf8(json).unwrap());
        self.records.push(rec);
    }

    fn push(&mut self, event: Event) {
        let minutes = i64::try_from(self.records.len()).unwrap();
        self.push_at(start() + Duration::minutes(minutes), event);
    }

    fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }

    fn verify(&self, key: &PrivateKey) -> ExportReport {
        verify_export(self.text().as_bytes(), &[key.public_key().clone()]).unwrap()
    }
}

/// The tail of the log is what someone covering their tracks cuts: the
/// records after a checkpoint. The cut export still verifies (nothing
/// unsigned is left), and the freshness `verify` reports is all that
/// tells the auditor records may be missing. The checkpoint record's own
/// time is not signed, so a checkpoint copied onto the end, dated now,
/// must not move it.
#[test]
fn a_checkpoint_copied_onto_a_cut_export_does_not_make_it_look_fresh() {
    let k = key();
    let whole = Chain::new(&k);
    let r = whole.verify(&k);
    assert_eq!(r.problem, None);
    assert_eq!(r.signed_through, 9);
    assert_eq!(r.signed_at, Some(whole.records[8].time));

    // Cut after the first checkpoint (record 5, which signs record 4).
    let mut cut = Chain {
        lines: whole.lines[..5].to_vec(),
        records: whole.records[..5].to_vec(),
    };
    let honest = cut.verify(&k);
    assert_eq!(honest.problem, None);
    assert_eq!(honest.signed_at, Some(whole.records[3].time));

    // The same checkpoint again, a day later: its signature still
    // verifies (it signs record 4 as before).
    let copied = whole.records[4].event.clone();
    cut.push_at(start() + Duration::days(1), copied.clone());
    let r = cut.verify(&k);
    assert_eq!(r.problem, None);
    assert_eq!(r.signed_through, 4);
    assert_eq!(
        r.signed_at,
        Some(whole.records[3].time),
        "the copied checkpoint's unsigned date was reported as when the export was signed"
    );

    // Nor may a copy name another CA key than the one that signed it.
    let Event::Checkpoint(mut renamed) = copied else {
        unreachable!()
    };
    renamed.ca_fingerprint = key().public_key().fingerprint(HashAlg::Sha256).to_string();
    cut.push(Event::Checkpoint(renamed));
    let r = cut.verify(&k);
    let p = r.problem.expect("a checkpoint naming another key passed");
    assert_eq!(p.seq, Some(7));
    assert!(p.what.contains("names CA key"), "{}", p.what);
}

/// Other tools read an export too (jq, a SIEM): what `verify` vouches for
/// must be the bytes in the file, not only what this version parses out
/// of them.
#[test]
fn bytes_the_hash_does_not_cover_are_refused() {
    let k = key();
    let whole = Chain::new(&k);
    let line = &whole.lines[2];
    let prev = whole.records[1].hash.to_string();
    let edits = [
        (
            "a field this version does not read",
            line.replace(
                "\"kind\":\"mfa_verified\",",
                "\"kind\":\"mfa_verified\",\"approved_by\":\"ciso\",",
            ),
        ),
        (
            "a name spelled with an escape",
            line.replace("\"alice\"", "\"\\u0061lice\""),
        ),
        (
            "the previous hash in capitals",
            line.replace(&prev, &prev.to_uppercase()),
        ),
        ("a space", line.replace("\"seq\":3", "\"seq\": 3")),
    ];
    for (what, edited) in edits {
        assert_ne!(&edited, line, "{what}: the edit did not apply");
        let mut chain = Chain {
            lines: whole.lines.clone(),
            records: whole.records.clone(),
        };
        chain.lines[2] = edited;
        let p = chain
            .verify(&k)
            .problem
            .unwrap_or_else(|| panic!("{what}: verified"));
        assert_eq!(p.seq, Some(3), "{what}: {p}");
        assert!(p.what.contains("altered"), "{what}: {p}");
    }
}

/// Sequence numbers come from the file: the largest must be refused like
/// any other gap, not overflow (a panic in a debug build).
#[test]
fn a_sequence_number_at_the_end_of_the_range_is_refused_not_a_panic() {
    let last = ChainHead {
        seq: u64::MAX - 1,
        hash: chain::seal(ChainHead::default(), start(), Actor::System, step(0))
            .unwrap()
            .hash,
    };
    let (top, top_line) = chain::seal_json(last, start(), Actor::System, step(1)).unwrap();
    assert_eq!(top.seq, u64::MAX);
    let mut wrapped = AuditRecord {
        seq: 0,
        time: start(),
        actor: Actor::System,
        event: step(2),
        prev_hash: top.hash,
        hash: top.hash,
    };
    wrapped.hash = chain::rehash(&wrapped).unwrap();
    let text = format!(
        "{}\n{}\n",
        String::from_utf8(top_line).unwrap(),
        serde_json::to_string(&wrapped).unwrap()
    );
    let r = verify_export(text.as_bytes(), &[key().public_key().clone()]).unwrap();
    let p = r.problem.unwrap();
    assert_eq!((p.line, p.seq), (2, Some(0)), "{p}");
    assert!(p.what.contains("follows record"), "{p}");
}

/// Counts what is read from the inner reader.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// A planted export that is one line of 64 MiB (or endless) must not be
/// read into the auditor's memory whole.
#[test]
fn an_endless_line_is_refused_without_reading_it_whole() {
    let size = 64u64 << 20;
    let mut input = BufReader::new(Counted {
        inner: std::io::repeat(b'x').take(size),
        read: 0,
    });
    let trusted: [PublicKey; 1] = [key().public_key().clone()];
    let r = verify_export(&mut input, &trusted).unwrap();
    let p = r.problem.unwrap();
    assert_eq!((p.line, p.seq), (1, None), "{p}");
    let read = input.get_ref().read;
    assert!(read <= 20 << 20, "read {} MiB of a single line", read >> 20);
}

/// After a rotation the auditor passes only the current CA key: the old
/// key's checkpoints are vouched for by the later ones the current key
/// signed. Someone who stole the old key (why it was retired at once)
/// can sign a forged chain with it, but not with the current key, so an
/// auditor who no longer trusts the old key is not fooled. Before, every
/// checkpoint had to be signed by a key passed, so the docs told
/// auditors to pass the old key too, and with it the thief's forgery
/// verified.
#[test]
fn the_current_key_alone_verifies_across_a_rotation_and_the_old_keys_thief_forges_nothing() {
    let (old, new) = (key(), key());
    let mut c = Chain {
        lines: vec![],
        records: vec![],
    };
    for i in 1..=4 {
        c.push(step(i));
    }
    let cp = checkpoint(&old, c.head());
    c.push(cp);
    for i in 6..=9 {
        c.push(step(i));
    }
    let cp = checkpoint(&new, c.head());
    c.push(cp);
    let r = c.verify(&new);
    assert_eq!(r.problem, None, "the old key's checkpoint was refused");
    assert_eq!((r.checkpoints, r.signed_through), (1, 9));

    // With only the old key, the checkpoint it cannot check is named.
    let p = c.verify(&old).problem.unwrap();
    assert_eq!(p.seq, Some(10), "{p}");
    assert!(p.what.contains("not a trusted CA key"), "{p}");

    // The old key's thief rewrites record 7 and signs what follows.
    let mut forged = Chain {
        lines: c.lines[..6].to_vec(),
        records: c.records[..6].to_vec(),
    };
    for i in [70, 8, 9] {
        forged.push(step(i));
    }
    let cp = checkpoint(&old, forged.head());
    forged.push(cp);
    assert_eq!(forged.verify(&old).problem, None);
    let p = forged
        .verify(&new)
        .problem
        .expect("a chain only the old key signed passed with the current key");
    assert_eq!(p.seq, Some(5), "{p}");
    assert!(p.what.contains("not a trusted CA key"), "{p}");
}
