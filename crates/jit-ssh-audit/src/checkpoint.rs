//! Signed checkpoints and offline verification of an export.
//!
//! The chain alone shows that nothing in the middle was edited, removed
//! or reordered; it cannot show that nothing was cut off the end or
//! appended by someone who recomputed the hashes. A checkpoint is the CA
//! key's SSHSIG over `(seq, hash)` of the chain head, stored as a record
//! in the chain itself. Anyone holding only the CA public key can then
//! check an export: every link, every checkpoint signature, and that every
//! record is vouched for by a checkpoint at or after it.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, Read};

use ssh_key::{PublicKey, SshSig};

use crate::chain::{self, ChainHead};
use crate::record::{AuditRecord, Event, Hash};

/// SSHSIG namespace of checkpoint signatures.
pub const NAMESPACE: &str = "jit-ssh-audit@jit-ssh";

/// How far back (in records) a checkpoint may point and still be checked
/// against the export: checkpoints sign the head as it was a moment before
/// they were appended, so only concurrent appends lie between.
const WINDOW: usize = 65_536;

/// What a checkpoint signs.
pub fn message(seq: u64, hash: &Hash) -> Vec<u8> {
    format!("jit-ssh-audit-checkpoint-v1\n{seq}\n{hash}\n").into_bytes()
}

/// Who signed a checkpoint, as far as the trusted keys can tell.
enum Signer {
    /// One of the trusted keys, and the signature verifies.
    Trusted,
    /// A key not among them (its fingerprint): nothing is known of it.
    Other(String),
}

/// Checks a checkpoint's signature against the trusted CA keys.
pub fn check_signature(
    cp: &crate::record::Checkpoint,
    trusted: &[PublicKey],
) -> Result<(), String> {
    match signer(cp, trusted)? {
        Signer::Trusted => Ok(()),
        Signer::Other(who) => Err(format!(
            "it is signed by {who}, which is not a trusted CA key"
        )),
    }
}

/// Which key signed `cp`; an error when a trusted key's signature does
/// not verify or the checkpoint names another key than its signer.
fn signer(cp: &crate::record::Checkpoint, trusted: &[PublicKey]) -> Result<Signer, String> {
    let sig =
        SshSig::from_pem(&cp.signature).map_err(|e| format!("its signature is unreadable: {e}"))?;
    let msg = message(cp.seq, &cp.hash);
    let Some(signer) = trusted.iter().find(|k| k.key_data() == sig.public_key()) else {
        let who = PublicKey::from(sig.public_key().clone()).fingerprint(ssh_key::HashAlg::Sha256);
        return Ok(Signer::Other(who.to_string()));
    };
    signer
        .verify(NAMESPACE, &msg, &sig)
        .map_err(|_| "its signature does not verify (the checkpoint was altered)".to_owned())?;
    // The signature does not cover `ca_fingerprint`: it must name the
    // key that signed, or a copied checkpoint could name another.
    let by = signer.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    if cp.ca_fingerprint != by {
        return Err(format!(
            "it names CA key {} but is signed by {by}",
            cp.ca_fingerprint
        ));
    }
    Ok(Signer::Trusted)
}

/// The first thing wrong with an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportProblem {
    /// 1-based line of the export.
    pub line: u64,
    /// The record's sequence number, when the line could be read.
    pub seq: Option<u64>,
    pub what: String,
}

impl fmt::Display for ExportProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "record {seq} (line {}): {}", self.line, self.what),
            None => write!(f, "line {}: {}", self.line, self.what),
        }
    }
}

/// What checking an export found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportReport {
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Checkpoints whose signature verified against a trusted key.
    pub checkpoints: u64,
    /// Every record up to this sequence number is vouched for.
    pub signed_through: u64,
    /// The time of record `signed_through`, the newest record a
    /// checkpoint's signature covers: records after it could have been
    /// cut off unseen, so a stale one is worth a question. Not the time
    /// of the checkpoint record itself, which its signature does not
    /// cover: a checkpoint copied onto the end of a cut export, dated
    /// now, must not make it look fresh.
    pub signed_at: Option<time::OffsetDateTime>,
    pub problem: Option<ExportProblem>,
}

struct Seen {
    seq: u64,
    hash: Hash,
    time: time::OffsetDateTime,
    line: u64,
    /// A checkpoint a trusted key signed: it needs no other to vouch
    /// for it.
    checkpoint: bool,
    /// For a checkpoint signed by a key that is not trusted (a CA key
    /// rotated out, say), that key's fingerprint: it vouches for nothing
    /// and is vouched for, like any record, by a later trusted one.
    other_signer: Option<Box<str>>,
}

/// The longest line taken for a record. Records are about 1.5 KB; the
/// largest the CA writes (a user's revocation listing every unexpired
/// serial) stay far below this. Longer is refused without reading it
/// into memory: a planted export must not exhaust the auditor's.
pub const MAX_LINE: usize = 16 << 20;

/// One line of `input` without its line ending, read into `buf`, at
/// most [`MAX_LINE`] bytes of it; `Ok(false)` at the end of the input.
/// An over-long line is returned cut at `MAX_LINE + 1` bytes, the rest
/// unread.
fn read_line<R: BufRead>(input: &mut R, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    let limit = u64::try_from(MAX_LINE)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    if input.take(limit).read_until(b'\n', buf)? == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(true)
}

/// Checks an export (JSON lines, as `jit-ssh audit export` writes them)
/// with only the CA public keys. Stops at the first problem.
pub fn verify_export<R: BufRead>(input: R, trusted: &[PublicKey]) -> std::io::Result<ExportReport> {
    verify_export_each(input, trusted, |_| {})
}

/// [`verify_export`], handing `each` every record that links (in order)
/// as it is read: a caller that needs more from the records than the
/// verdict reads them in the same pass, never a second time (a file can
/// change between two reads). What `each` saw counts only if the report
/// has no problem.
pub fn verify_export_each<R: BufRead>(
    mut input: R,
    trusted: &[PublicKey],
    mut each: impl FnMut(&AuditRecord),
) -> std::io::Result<ExportReport> {
    let mut report = ExportReport::default();
    let mut recent: VecDeque<Seen> = VecDeque::with_capacity(WINDOW);
    let mut head: Option<ChainHead> = None;
    // The first record no checkpoint vouches for yet (not counting
    // checkpoints themselves, which carry their own signature).
    let mut uncovered: Option<(u64, u64)> = None;
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    while read_line(&mut input, &mut buf)? {
        line_no += 1;
        let problem = |seq: Option<u64>, what: String| ExportProblem {
            line: line_no,
            seq,
            what,
        };
        if buf.len() > MAX_LINE {
            report.problem = Some(problem(
                None,
                format!("longer than {} MiB: not an audit record", MAX_LINE >> 20),
            ));
            return Ok(report);
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let rec: AuditRecord = match serde_json::from_slice(&buf) {
            Ok(r) => r,
            Err(e) => {
                report.problem = Some(problem(None, format!("not an audit record: {e}")));
                return Ok(report);
            }
        };
        let seq = Some(rec.seq);
        if let Err(what) = link(head, &rec, &buf) {
            report.problem = Some(problem(seq, what));
            return Ok(report);
        }
        each(&rec);
        let mut other_signer = None;
        let trusted_checkpoint = match &rec.event {
            Event::Checkpoint(cp) => match signer(cp, trusted) {
                Ok(Signer::Trusted) => Some(cp),
                Ok(Signer::Other(who)) => {
                    other_signer = Some(who.into_boxed_str());
                    None
                }
                Err(what) => {
                    report.problem = Some(problem(seq, format!("checkpoint: {what}")));
                    return Ok(report);
                }
            },
            _ => None,
        };
        if let Some(cp) = trusted_checkpoint {
            match vouches_for(cp, &recent, report.first_seq.max(1)) {
                Err(what) => {
                    report.problem = Some(problem(seq, format!("checkpoint: {what}")));
                    return Ok(report);
                }
                Ok(covers) => {
                    report.checkpoints += 1;
                    if let Some(signed) = covers.filter(|s| s.seq > report.signed_through) {
                        report.signed_through = signed.seq;
                        report.signed_at = Some(signed.time);
                        uncovered = recent
                            .iter()
                            .find(|s| s.seq > signed.seq && !s.checkpoint)
                            .map(|s| (s.seq, s.line));
                    }
                }
            }
        } else if uncovered.is_none() {
            uncovered = Some((rec.seq, line_no));
        }
        if report.records == 0 {
            report.first_seq = rec.seq;
        }
        report.records += 1;
        report.last_seq = rec.seq;
        head = Some(ChainHead {
            seq: rec.seq,
            hash: rec.hash,
        });
        if recent.len() == WINDOW {
            recent.pop_front();
        }
        recent.push_back(Seen {
            seq: rec.seq,
            hash: rec.hash,
            time: rec.time,
            line: line_no,
            checkpoint: trusted_checkpoint.is_some(),
            other_signer,
        });
    }
    if let Some((seq, line)) = uncovered {
        // A checkpoint by an untrusted key among the records left
        // unvouched is the likelier story (the wrong key file): name it.
        let untrusted = recent
            .iter()
            .find(|s| s.seq >= seq && s.other_signer.is_some());
        report.problem = Some(match untrusted {
            Some(s) => ExportProblem {
                line: s.line,
                seq: Some(s.seq),
                what: format!(
                    "checkpoint: it is signed by {}, which is not a trusted CA key, \
                     and no checkpoint by a trusted key comes after it",
                    s.other_signer.as_deref().unwrap_or_default()
                ),
            },
            None => ExportProblem {
                line,
                seq: Some(seq),
                what: "no signed checkpoint vouches for this record or any after it \
                       (appended after the last checkpoint, or the checkpoint was removed)"
                    .into(),
            },
        });
    } else if report.records == 0 {
        report.problem = Some(ExportProblem {
            line: line_no,
            seq: None,
            what: "the export holds no records".into(),
        });
    }
    Ok(report)
}

/// Checks that `rec`, read from the bytes `line`, follows `head` (or may
/// start an export).
fn link(head: Option<ChainHead>, rec: &AuditRecord, line: &[u8]) -> Result<(), String> {
    // Over the bytes, not the parsed record: see `chain::stored_hash`.
    if chain::stored_hash(line) != Some(rec.hash) {
        return Err("altered: its hash does not match its contents".into());
    }
    match head {
        // An export may start mid-chain; only the very first record must
        // link to nothing. Later checkpoints vouch for the start.
        None if rec.seq == 1 && rec.prev_hash != Hash::default() => {
            Err("the first record of the chain links to a predecessor".into())
        }
        None => Ok(()),
        Some(h) if h.seq.checked_add(1) != Some(rec.seq) => Err(format!(
            "follows record {} (records were removed or reordered)",
            h.seq
        )),
        Some(h) if rec.prev_hash != h.hash => Err(format!(
            "does not link to record {}: its prev_hash differs",
            h.seq
        )),
        Some(_) => Ok(()),
    }
}

/// The record a valid checkpoint vouches for (with every one before
/// it), once its `(seq, hash)` is matched against that record.
fn vouches_for<'a>(
    cp: &crate::record::Checkpoint,
    recent: &'a VecDeque<Seen>,
    first_seq: u64,
) -> Result<Option<&'a Seen>, String> {
    if cp.seq < first_seq || recent.is_empty() {
        // Signs a record before this export starts: valid, vouches for
        // nothing here.
        return Ok(None);
    }
    let seen = recent.iter().find(|s| s.seq == cp.seq).ok_or_else(|| {
        format!(
            "it signs record {}, which is not before it in the export",
            cp.seq
        )
    })?;
    if seen.hash != cp.hash {
        return Err(format!(
            "it signs record {} with a hash that record does not have (records up to it were altered)",
            cp.seq
        ));
    }
    Ok(Some(seen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Actor, Checkpoint, RequestStep};
    use ssh_key::rand_core::OsRng;
    use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey};
    use time::OffsetDateTime;

    fn step(i: u64) -> Event {
        Event::MfaVerified(RequestStep {
            request: format!("r{i}"),
            user: "alice".into(),
            host: "db-1.prod".into(),
            detail: String::new(),
        })
    }

    fn signed(key: &PrivateKey, head: ChainHead) -> Event {
        let sig = key
            .sign(NAMESPACE, HashAlg::Sha512, &message(head.seq, &head.hash))
            .unwrap();
        Event::Checkpoint(Checkpoint {
            seq: head.seq,
            hash: head.hash,
            ca_fingerprint: key.public_key().fingerprint(HashAlg::Sha256).to_string(),
            signature: sig.to_pem(LineEnding::LF).unwrap(),
            trigger: "export".into(),
        })
    }

    /// `n` records with a checkpoint after every 4th and one at the end.
    fn export(key: &PrivateKey, n: u64) -> Vec<AuditRecord> {
        let mut head = ChainHead::default();
        let mut out = Vec::new();
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut push = |event: Event, head: &mut ChainHead| {
            let rec = chain::seal(*head, t, Actor::System, event).unwrap();
            *head = ChainHead {
                seq: rec.seq,
                hash: rec.hash,
            };
            out.push(rec);
        };
        for i in 1..=n {
            push(step(i), &mut head);
            if i % 4 == 0 || i == n {
                let cp = signed(key, head);
                push(cp, &mut head);
            }
        }
        out
    }

    fn check(recs: &[AuditRecord], trusted: &[PublicKey]) -> ExportReport {
        let text: String = recs
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        verify_export(text.as_bytes(), trusted).unwrap()
    }

    fn key() -> PrivateKey {
        PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap()
    }

    fn failing_seq(r: &ExportReport) -> Option<u64> {
        r.problem.as_ref().and_then(|p| p.seq)
    }

    #[test]
    fn an_untouched_export_verifies() {
        let k = key();
        let recs = export(&k, 10);
        let r = check(&recs, &[k.public_key().clone()]);
        assert_eq!(r.problem, None);
        assert_eq!((r.records, r.checkpoints), (13, 3));
        assert_eq!(r.signed_through, 12);
        // An export that starts mid-chain verifies too.
        assert_eq!(check(&recs[6..], &[k.public_key().clone()]).problem, None);
    }

    #[test]
    fn an_edited_record_is_named() {
        let k = key();
        let mut recs = export(&k, 10);
        recs[6].event = step(99);
        let r = check(&recs, &[k.public_key().clone()]);
        assert_eq!(failing_seq(&r), Some(7));
        assert!(r.problem.unwrap().what.contains("altered"));
    }

    #[test]
    fn an_edit_with_recomputed_hashes_fails_at_the_next_checkpoint() {
        let k = key();
        let mut recs = export(&k, 10);
        // Rewrite record 6 and re-seal everything after it, keeping the
        // old checkpoint records (the forger has no CA key).
        let mut head = ChainHead {
            seq: 5,
            hash: recs[4].hash,
        };
        for rec in recs.iter_mut().skip(5) {
            let event = if rec.seq == 6 {
                step(66)
            } else {
                rec.event.clone()
            };
            *rec = chain::seal(head, rec.time, rec.actor.clone(), event).unwrap();
            head = ChainHead {
                seq: rec.seq,
                hash: rec.hash,
            };
        }
        let r = check(&recs, &[k.public_key().clone()]);
        // Record 5 is the first checkpoint (after 4); the next one, 10,
        // signs record 9's old hash.
        assert_eq!(failing_seq(&r), Some(10));
    }

    #[test]
    fn a_deleted_record_is_named() {
        let k = key();
        let mut recs = export(&k, 10);
        recs.remove(2);
        assert_eq!(
            failing_seq(&check(&recs, &[k.public_key().clone()])),
            Some(4)
        );
    }

    #[test]
    fn reordered_records_are_named() {
        let k = key();
        let mut recs = export(&k, 10);
        recs.swap(2, 3);
        assert_eq!(
            failing_seq(&check(&recs, &[k.public_key().clone()])),
            Some(4)
        );
    }

    #[test]
    fn records_appended_without_a_signature_are_named() {
        let k = key();
        let mut recs = export(&k, 8);
        let last = recs.last().unwrap();
        let head = ChainHead {
            seq: last.seq,
            hash: last.hash,
        };
        let extra = chain::seal(head, last.time, Actor::System, step(50)).unwrap();
        let extra_seq = extra.seq;
        recs.push(extra);
        let r = check(&recs, &[k.public_key().clone()]);
        assert_eq!(failing_seq(&r), Some(extra_seq));
        assert!(r.problem.unwrap().what.contains("no signed checkpoint"));

        // Cutting off the final checkpoint leaves the records before it
        // unvouched for.
        let mut cut = export(&k, 6);
        cut.pop();
        assert_eq!(
            failing_seq(&check(&cut, &[k.public_key().clone()])),
            Some(6)
        );
    }

    #[test]
    fn a_checkpoint_by_another_key_is_refused() {
        let (k, other) = (key(), key());
        let recs = export(&k, 4);
        let r = check(&recs, &[other.public_key().clone()]);
        assert_eq!(failing_seq(&r), Some(5));
        assert!(r.problem.unwrap().what.contains("not a trusted CA key"));
    }

    #[test]
    fn garbage_is_named_by_line() {
        let k = key();
        let r = verify_export(&b"{\"seq\": 1}\n"[..], &[k.public_key().clone()]).unwrap();
        assert_eq!(r.problem.unwrap().line, 1);
    }
}
