//! The hash chain, as plain functions over records: sealing a new record
//! onto a head, and checking that a sequence of records is unbroken.
//!
//! `hash = SHA-256("jit-ssh-audit-v1\n" ‖ JSON{seq, time, actor, event, prev_hash})`
//! where the JSON is serde_json's encoding of those fields in that order
//! (all maps in records are ordered, so the encoding is deterministic).

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::record::{Actor, AuditRecord, Event, Hash};

const DOMAIN: &[u8] = b"jit-ssh-audit-v1\n";

/// The last record of a chain: what the next record links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainHead {
    /// 0 for an empty chain.
    pub seq: u64,
    pub hash: Hash,
}

#[derive(Serialize)]
struct Sealed<'a> {
    seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
    actor: &'a Actor,
    event: &'a Event,
    prev_hash: &'a Hash,
}

fn digest(
    seq: u64,
    time: OffsetDateTime,
    actor: &Actor,
    event: &Event,
    prev_hash: &Hash,
) -> Result<Hash, serde_json::Error> {
    let body = serde_json::to_vec(&Sealed {
        seq,
        time,
        actor,
        event,
        prev_hash,
    })?;
    Ok(hash_body(&body))
}

/// Makes the record that follows `head`, and its JSON encoding for
/// storage, serialising the record only once.
pub fn seal_json(
    head: ChainHead,
    time: OffsetDateTime,
    actor: Actor,
    event: Event,
) -> Result<(AuditRecord, Vec<u8>), serde_json::Error> {
    let seq = head.seq + 1;
    let mut json = serde_json::to_vec(&Sealed {
        seq,
        time,
        actor: &actor,
        event: &event,
        prev_hash: &head.hash,
    })?;
    let hash = hash_body(&json);
    // The stored form is the hashed object plus its hash: replace the
    // closing brace with one more field.
    json.pop();
    json.extend_from_slice(format!(",\"hash\":\"{hash}\"}}").as_bytes());
    let rec = AuditRecord {
        seq,
        time,
        actor,
        event,
        prev_hash: head.hash,
        hash,
    };
    Ok((rec, json))
}

fn hash_body(body: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(body);
    Hash(h.finalize().into())
}

/// `,"hash":"` + 64 hex digits + `"}`: how every stored record ends.
const HASH_TAIL: usize = 9 + 64 + 2;

/// The hash of a stored record (one line as [`seal_json`] writes it,
/// without its newline) computed over its bytes as they are: the line
/// minus its final `,"hash":"…"` field, closed again, is exactly the
/// JSON the CA hashed. `None` when the line does not end in that field,
/// in lowercase hex.
///
/// Checking this rather than [`rehash`] of the parsed record binds the
/// bytes themselves: a line with a field added that this version does
/// not read, a key spelled with `\u` escapes or a hash in capitals
/// parses to the same record, so its [`rehash`] still matches, yet other
/// tools reading the line (jq, a SIEM) would see what the CA never wrote.
pub fn stored_hash(line: &[u8]) -> Option<Hash> {
    let split = line.len().checked_sub(HASH_TAIL)?;
    let (body, tail) = line.split_at(split);
    let hex = tail.strip_prefix(b",\"hash\":\"")?.strip_suffix(b"\"}")?;
    if body.first() != Some(&b'{') || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(body);
    h.update(b"}");
    Some(Hash(h.finalize().into()))
}

/// Parses one stored record for [`verify`]. A record whose bytes are not
/// the ones its hash covers, although what they parse to is (a field
/// added that this version does not read, another spelling, see
/// [`stored_hash`]), is refused here as unreadable; one whose parsed
/// contents differ from its hash is left for [`verify`] to report as
/// altered at its `seq`.
pub fn parse_stored(line: &[u8]) -> Result<AuditRecord, String> {
    let rec: AuditRecord = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if stored_hash(line) != Some(rec.hash) && rehash(&rec).is_ok_and(|h| h == rec.hash) {
        return Err(
            "its stored bytes are not the ones its hash covers (written again in another form, or with a field added)"
                .into(),
        );
    }
    Ok(rec)
}

/// Makes the record that follows `head`.
pub fn seal(
    head: ChainHead,
    time: OffsetDateTime,
    actor: Actor,
    event: Event,
) -> Result<AuditRecord, serde_json::Error> {
    let seq = head.seq + 1;
    let hash = digest(seq, time, &actor, &event, &head.hash)?;
    Ok(AuditRecord {
        seq,
        time,
        actor,
        event,
        prev_hash: head.hash,
        hash,
    })
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("record at position {position} cannot be read: {reason}")]
    Unreadable { position: u64, reason: String },
    #[error("record at position {position} claims sequence number {found} (removed or reordered records)")]
    OutOfOrder { position: u64, found: u64 },
    #[error("record {seq} does not link to record {}: its prev_hash differs (a record before it was removed, replaced or reordered)", seq - 1)]
    BrokenLink { seq: u64 },
    #[error("record {seq} has been altered: its hash does not match its contents")]
    Altered { seq: u64 },
}

impl ChainBreak {
    /// The sequence position of the first bad record.
    pub fn position(&self) -> u64 {
        match self {
            ChainBreak::Unreadable { position, .. } | ChainBreak::OutOfOrder { position, .. } => {
                *position
            }
            ChainBreak::BrokenLink { seq } | ChainBreak::Altered { seq } => *seq,
        }
    }
}

/// What a walk of the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked before the first break (or all of them).
    pub records: u64,
    pub head: ChainHead,
    pub first_break: Option<ChainBreak>,
}

/// Checks records in storage order, starting from an empty chain.
/// Each item is the record parsed from position `i + 1`, or why it could
/// not be parsed.
pub fn verify<I>(records: I) -> VerifyReport
where
    I: IntoIterator<Item = Result<AuditRecord, String>>,
{
    let mut head = ChainHead::default();
    let mut count = 0;
    for (i, item) in records.into_iter().enumerate() {
        let position = i as u64 + 1;
        let first_break = match item {
            Err(reason) => Some(ChainBreak::Unreadable { position, reason }),
            Ok(rec) => check_next(head, position, &rec).err().or_else(|| {
                head = ChainHead {
                    seq: rec.seq,
                    hash: rec.hash,
                };
                None
            }),
        };
        if first_break.is_some() {
            return VerifyReport {
                records: count,
                head,
                first_break,
            };
        }
        count += 1;
    }
    VerifyReport {
        records: count,
        head,
        first_break: None,
    }
}

/// The hash `rec` should carry, computed from its other fields.
pub fn rehash(rec: &AuditRecord) -> Result<Hash, serde_json::Error> {
    digest(rec.seq, rec.time, &rec.actor, &rec.event, &rec.prev_hash)
}

fn check_next(head: ChainHead, position: u64, rec: &AuditRecord) -> Result<(), ChainBreak> {
    if rec.seq != position {
        return Err(ChainBreak::OutOfOrder {
            position,
            found: rec.seq,
        });
    }
    let recomputed = rehash(rec).map_err(|e| ChainBreak::Unreadable {
        position,
        reason: e.to_string(),
    })?;
    if recomputed != rec.hash {
        return Err(ChainBreak::Altered { seq: rec.seq });
    }
    if rec.prev_hash != head.hash {
        return Err(ChainBreak::BrokenLink { seq: rec.seq });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{CertificateIssued, IssuedVia};
    use proptest::prelude::*;

    fn chain_of(n: u64) -> Vec<AuditRecord> {
        let mut head = ChainHead::default();
        (1..=n)
            .map(|i| {
                let event = Event::CertificateIssued(CertificateIssued {
                    serial: i,
                    key_id: format!("jit-ssh:u:g:{i}"),
                    user: "u".into(),
                    host: "h".into(),
                    account: "a".into(),
                    principals: vec!["a@h".into()],
                    valid_after: i,
                    valid_before: i + 60,
                    public_key_fingerprint: "SHA256:k".into(),
                    ca_fingerprint: "SHA256:c".into(),
                    grant: "g".into(),
                    reason: "r".into(),
                    critical_options: vec![],
                    extensions: vec![],
                    via: IssuedVia::Server,
                    session: None,
                });
                let t = OffsetDateTime::from_unix_timestamp(1_700_000_000 + i as i64).unwrap();
                let rec = seal(head, t, Actor::System, event).unwrap();
                head = ChainHead {
                    seq: rec.seq,
                    hash: rec.hash,
                };
                rec
            })
            .collect()
    }

    fn check(records: Vec<AuditRecord>) -> VerifyReport {
        verify(records.into_iter().map(Ok))
    }

    #[test]
    fn stored_json_is_the_record_and_verifies() {
        let rec = chain_of(1).remove(0);
        let (sealed, json) = seal_json(
            ChainHead::default(),
            rec.time,
            rec.actor.clone(),
            rec.event.clone(),
        )
        .unwrap();
        assert_eq!(sealed, rec);
        let parsed: AuditRecord = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed, rec);
        // The stored bytes carry their own hash, and are the record's
        // only encoding.
        assert_eq!(stored_hash(&json), Some(rec.hash));
        assert_eq!(serde_json::to_vec(&rec).unwrap(), json);
        let mut shouting = json.clone();
        let at = shouting.len() - 3;
        shouting[at] = b'A';
        assert_eq!(stored_hash(&shouting), None);
        assert_eq!(stored_hash(b"{\"hash\":\"00\"}"), None);
    }

    proptest! {
        #[test]
        fn an_untouched_chain_verifies(n in 0u64..40) {
            let report = check(chain_of(n));
            prop_assert_eq!(report.records, n);
            prop_assert!(report.first_break.is_none());
        }

        #[test]
        fn any_edit_is_found_at_the_edited_record(n in 2u64..40, at in 0usize..40, delta in 1u64..1000) {
            let mut recs = chain_of(n);
            let at = at % recs.len();
            let Event::CertificateIssued(c) = &mut recs[at].event else { unreachable!() };
            c.valid_before += delta;
            prop_assert_eq!(check(recs).first_break.map(|b| b.position()), Some(at as u64 + 1));
        }

        #[test]
        fn any_removal_is_found(n in 2u64..40, at in 0usize..39) {
            let mut recs = chain_of(n);
            let at = at % (recs.len() - 1); // removing the last record is truncation: see checkpoints
            recs.remove(at);
            prop_assert_eq!(check(recs).first_break.map(|b| b.position()), Some(at as u64 + 1));
        }

        #[test]
        fn any_reordering_is_found(n in 2u64..40, a in 0usize..40, b in 0usize..40) {
            let mut recs = chain_of(n);
            let (a, b) = (a % recs.len(), b % recs.len());
            prop_assume!(a != b);
            recs.swap(a, b);
            prop_assert_eq!(check(recs).first_break.map(|x| x.position()), Some(a.min(b) as u64 + 1));
        }
    }
}
