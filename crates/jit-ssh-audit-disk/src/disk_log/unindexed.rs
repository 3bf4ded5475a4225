//! The index entries of committed records whose entries the indexer has
//! not yet written to the posting files, kept in memory so that a keyed
//! query finds them without reading and parsing every such record.
//!
//! The indexer falls behind whenever it syncs its buckets (once a second,
//! up to a thousand fsyncs): measured under issuance load, up to 1,900
//! records. Before this, every keyed query read and parsed all of them
//! (`serial_issued` before each certificate too): half of an embedded
//! CA's CPU per certificate went there (perf, 2026-11-30).
//!
//! `indexed` lives under the same lock as the entries: a query reads both
//! at once, so the records the indexer moves from here to the posting
//! files between two reads are never missed.

use std::collections::{HashMap, VecDeque};

pub(super) struct Unindexed {
    /// Every record up to this sequence number has its entries written to
    /// the posting files (not necessarily synced: the watermark is).
    indexed: u64,
    /// Entries of the records after `indexed`, in sequence order.
    pending: VecDeque<(u64, Vec<Vec<u8>>)>,
    /// Key → the sequence numbers in `pending` with an entry under it,
    /// in order.
    by_key: HashMap<Vec<u8>, VecDeque<u64>>,
}

impl Unindexed {
    pub(super) fn new(indexed: u64) -> Self {
        Self {
            indexed,
            pending: VecDeque::new(),
            by_key: HashMap::new(),
        }
    }

    pub(super) fn indexed(&self) -> u64 {
        self.indexed
    }

    /// A committed group's entries, in sequence order, before the indexer
    /// is handed them.
    pub(super) fn add(&mut self, entries: &[(u64, Vec<Vec<u8>>)]) {
        for (seq, keys) in entries {
            for key in keys {
                let seqs = self.by_key.entry(key.clone()).or_default();
                // A record with the same key twice (two serials alike)
                // is one candidate.
                if seqs.back() != Some(seq) {
                    seqs.push_back(*seq);
                }
            }
            self.pending.push_back((*seq, keys.clone()));
        }
    }

    /// The indexer has written the entries of every record up to `seq`.
    pub(super) fn written_up_to(&mut self, seq: u64) {
        self.indexed = self.indexed.max(seq);
        while self.pending.front().is_some_and(|(s, _)| *s <= seq) {
            let Some((s, keys)) = self.pending.pop_front() else {
                break;
            };
            for key in keys {
                if let Some(seqs) = self.by_key.get_mut(&key) {
                    while seqs.front().is_some_and(|x| *x <= s) {
                        seqs.pop_front();
                    }
                    if seqs.is_empty() {
                        self.by_key.remove(&key);
                    }
                }
            }
        }
    }

    /// Sequence numbers in `from..to`, past `indexed`, with an entry under
    /// `key`, in order.
    pub(super) fn lookup(&self, key: &[u8], from: u64, to: u64) -> Vec<u64> {
        let from = from.max(self.indexed + 1);
        self.by_key.get(key).map_or_else(Vec::new, |seqs| {
            seqs.iter()
                .copied()
                .filter(|s| (from..to).contains(s))
                .collect()
        })
    }

    /// How many records wait for the indexer.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn finds_what_is_past_the_indexer_and_forgets_what_it_wrote() {
        let mut u = Unindexed::new(3);
        u.add(&[
            (4, vec![key("alice"), key("s1")]),
            (5, vec![key("bob")]),
            (6, vec![key("alice"), key("s1"), key("s1")]),
        ]);
        assert_eq!(u.lookup(b"alice", 1, 100), vec![4, 6]);
        assert_eq!(u.lookup(b"s1", 1, 100), vec![4, 6]);
        assert_eq!(u.lookup(b"alice", 5, 100), vec![6]);
        assert_eq!(u.lookup(b"alice", 1, 6), vec![4]);
        assert!(u.lookup(b"carol", 1, 100).is_empty());

        u.written_up_to(4);
        assert_eq!(u.indexed(), 4);
        assert_eq!(u.lookup(b"alice", 1, 100), vec![6]);
        assert_eq!(u.len(), 2);
        u.written_up_to(6);
        assert!(u.lookup(b"alice", 1, 100).is_empty());
        assert!(u.by_key.is_empty() && u.pending.is_empty());
        // Never backwards.
        u.written_up_to(2);
        assert_eq!(u.indexed(), 6);
    }
}
