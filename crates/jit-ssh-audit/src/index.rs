//! Key layout of the audit tree. Records and their secondary index entries
//! share one sled tree so that a record and its index entries are written
//! in one atomic batch.
//!
//! ```text
//! r ‖ seq                      → record JSON
//! u ‖ len16 ‖ user ‖ seq       → (empty)
//! h ‖ len16 ‖ host ‖ seq       → (empty)
//! g ‖ len16 ‖ grant ‖ seq      → (empty)
//! s ‖ serial ‖ seq             → (empty)
//! ```
//! All integers big-endian, so byte order is numeric order and each index
//! lists its records in sequence order. There is no time index: record
//! times never go backwards, so a time range is a binary search over `r`.

use crate::record::AuditRecord;

pub(crate) const RECORD: u8 = b'r';
pub(crate) const USER: u8 = b'u';
pub(crate) const HOST: u8 = b'h';
pub(crate) const GRANT: u8 = b'g';
pub(crate) const SERIAL: u8 = b's';

pub(crate) fn record_key(seq: u64) -> [u8; 9] {
    let mut k = [RECORD; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The prefix shared by all index entries for one value.
pub(crate) fn text_prefix(tag: u8, value: &str) -> Vec<u8> {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    let mut k = Vec::with_capacity(3 + value.len() + 8);
    k.push(tag);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(&value.as_bytes()[..usize::from(len)]);
    k
}

pub(crate) fn u64_prefix(tag: u8, value: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(tag);
    k.extend_from_slice(&value.to_be_bytes());
    k
}

pub(crate) fn with_seq(mut prefix: Vec<u8>, seq: u64) -> Vec<u8> {
    prefix.extend_from_slice(&seq.to_be_bytes());
    prefix
}

/// The sequence number at the end of an index key.
pub(crate) fn seq_of(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// Every index key for `rec`.
pub(crate) fn entries(rec: &AuditRecord) -> Vec<Vec<u8>> {
    let seq = rec.seq;
    let mut keys = Vec::with_capacity(4);
    if let Some(u) = rec.event.user() {
        keys.push(with_seq(text_prefix(USER, u), seq));
    }
    if let Some(h) = rec.event.host() {
        keys.push(with_seq(text_prefix(HOST, h), seq));
    }
    if let Some(g) = rec.event.grant() {
        keys.push(with_seq(text_prefix(GRANT, g), seq));
    }
    for s in rec.event.serials() {
        keys.push(with_seq(u64_prefix(SERIAL, *s), seq));
    }
    keys
}
