//! Secondary indexes (user, host, grant, serial) as hashed posting files.
//!
//! Each index key (`tag ‖ value`) hashes to one of [`BUCKETS`] files under
//! `index/`; an entry is 16 bytes, `key tag (8) ‖ seq (8)`, big-endian,
//! appended in commit order, so every bucket lists its records in sequence
//! order. A lookup reads one bucket and keeps the entries with the key's
//! tag; the caller checks every record it reads against the query, so a
//! tag collision costs a read, never a wrong answer.
//!
//! The files are derived data. They are appended without syncing; every
//! so often the indexer syncs the buckets it touched and then records the
//! watermark (every record up to it is indexed on disk). On open, records
//! past the watermark are indexed again; the duplicates that leaves are
//! skipped on read (a bucket's sequence numbers only go up).
//!
//! (sled held these entries first: 4,000,000 of them, one million
//! records' worth, took 8–13 GB of memory.)

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use jit_ssh_audit::record::AuditRecord;

pub(crate) const USER: u8 = b'u';
pub(crate) const HOST: u8 = b'h';
pub(crate) const GRANT: u8 = b'g';
pub(crate) const SERIAL: u8 = b's';

/// Number of bucket files. At 10,000,000 records (40,000,000 entries) a
/// bucket is ~600 KiB: one read per lookup, and few enough files to sync.
const BUCKETS: u16 = 1024;
const ENTRY: usize = 16;
const WATERMARK_FILE: &str = "watermark";

/// The index key for a text value.
pub(crate) fn text_key(tag: u8, value: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + value.len());
    k.push(tag);
    k.extend_from_slice(value.as_bytes());
    k
}

pub(crate) fn u64_key(tag: u8, value: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(tag);
    k.extend_from_slice(&value.to_be_bytes());
    k
}

/// Every index key for `rec`.
pub(crate) fn keys(rec: &AuditRecord) -> Vec<Vec<u8>> {
    let e = &rec.event;
    let mut keys = Vec::with_capacity(4);
    keys.extend(e.user().map(|u| text_key(USER, u)));
    keys.extend(e.host().map(|h| text_key(HOST, h)));
    keys.extend(e.grant().map(|g| text_key(GRANT, g)));
    keys.extend(e.serials().iter().map(|s| u64_key(SERIAL, *s)));
    keys
}

/// Which bucket holds `key`, and the tag its entries carry.
fn locate(key: &[u8]) -> (u16, [u8; 8]) {
    let h = Sha256::digest(key);
    let bucket = u16::from_be_bytes([h[0], h[1]]) % BUCKETS;
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&h[2..10]);
    (bucket, tag)
}

pub(crate) struct PostingIndex {
    dir: PathBuf,
}

impl PostingIndex {
    /// Opens `dir`, cutting any torn entry off the end of each bucket.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let index = Self {
            dir: dir.to_owned(),
        };
        for b in 0..BUCKETS {
            let path = index.bucket_path(b);
            if let Ok(meta) = std::fs::metadata(&path) {
                let whole = meta.len() - meta.len() % ENTRY as u64;
                if whole != meta.len() {
                    OpenOptions::new().write(true).open(&path)?.set_len(whole)?;
                }
            }
        }
        Ok(index)
    }

    fn bucket_path(&self, b: u16) -> PathBuf {
        self.dir.join(format!("{b:04}"))
    }

    /// Every record up to this sequence number has its entries on disk.
    pub(crate) fn watermark(&self) -> io::Result<u64> {
        match std::fs::read(self.dir.join(WATERMARK_FILE)) {
            Ok(b) => Ok(<[u8; 8]>::try_from(b.as_slice()).map_or(0, u64::from_be_bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Appends the entries of `records` (not synced); returns the buckets
    /// it wrote to.
    pub(crate) fn append(&self, records: &[(u64, Vec<Vec<u8>>)]) -> io::Result<Vec<u16>> {
        let mut by_bucket: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
        for (seq, keys) in records {
            for key in keys {
                let (b, tag) = locate(key);
                let buf = by_bucket.entry(b).or_default();
                buf.extend_from_slice(&tag);
                buf.extend_from_slice(&seq.to_be_bytes());
            }
        }
        for (b, buf) in &by_bucket {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.bucket_path(*b))?
                .write_all(buf)?;
        }
        Ok(by_bucket.into_keys().collect())
    }

    /// Syncs `buckets`, then records `watermark` durably.
    pub(crate) fn sync(
        &self,
        buckets: impl IntoIterator<Item = u16>,
        watermark: u64,
    ) -> io::Result<()> {
        for b in buckets {
            File::open(self.bucket_path(b))?.sync_data()?;
        }
        let tmp = self.dir.join("watermark.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&watermark.to_be_bytes())?;
        f.sync_data()?;
        std::fs::rename(&tmp, self.dir.join(WATERMARK_FILE))?;
        File::open(&self.dir)?.sync_all()
    }

    /// Sequence numbers in `from..to` with an entry under `key`, in order.
    pub(crate) fn lookup(&self, key: &[u8], from: u64, to: u64) -> io::Result<Vec<u64>> {
        let (b, tag) = locate(key);
        let file = match File::open(self.bucket_path(b)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let mut buf = vec![0u8; usize::try_from(len - len % ENTRY as u64).unwrap_or(0)];
        file.read_exact_at(&mut buf, 0)?;
        let mut out = Vec::new();
        let mut last = 0;
        for entry in buf.chunks_exact(ENTRY) {
            if entry[..8] != tag {
                continue;
            }
            let mut seq = [0u8; 8];
            seq.copy_from_slice(&entry[8..]);
            let seq = u64::from_be_bytes(seq);
            // Re-indexed duplicates after a crash come with smaller numbers.
            if seq <= last {
                continue;
            }
            last = seq;
            if seq >= to {
                break;
            }
            if seq >= from {
                out.push(seq);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_their_key_in_order_and_skip_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let ix = PostingIndex::open(dir.path()).unwrap();
        let alice = text_key(USER, "alice");
        let bob = text_key(USER, "bob");
        let rows: Vec<(u64, Vec<Vec<u8>>)> = (1..=10)
            .map(|s| {
                (
                    s,
                    vec![if s % 2 == 0 {
                        alice.clone()
                    } else {
                        bob.clone()
                    }],
                )
            })
            .collect();
        ix.append(&rows[..6]).unwrap();
        // A crash before the watermark moved: records 4..=10 indexed again.
        ix.append(&rows[3..]).unwrap();
        assert_eq!(ix.lookup(&alice, 1, 100).unwrap(), vec![2, 4, 6, 8, 10]);
        assert_eq!(ix.lookup(&alice, 3, 10).unwrap(), vec![4, 6, 8]);
        assert_eq!(ix.lookup(&bob, 1, 100).unwrap(), vec![1, 3, 5, 7, 9]);
        assert!(ix
            .lookup(&text_key(USER, "carol"), 1, 100)
            .unwrap()
            .is_empty());
        ix.sync([], 10).unwrap();
        assert_eq!(
            PostingIndex::open(dir.path()).unwrap().watermark().unwrap(),
            10
        );
    }

    #[test]
    fn a_torn_entry_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let ix = PostingIndex::open(dir.path()).unwrap();
        let k = u64_key(SERIAL, 7);
        let buckets = ix.append(&[(3, vec![k.clone()])]).unwrap();
        let path = ix.bucket_path(buckets[0]);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[1, 2, 3])
            .unwrap();
        let ix = PostingIndex::open(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16);
        ix.append(&[(9, vec![k.clone()])]).unwrap();
        assert_eq!(ix.lookup(&k, 1, 100).unwrap(), vec![3, 9]);
    }
}
