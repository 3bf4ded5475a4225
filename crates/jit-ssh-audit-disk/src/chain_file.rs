//! The chain on disk: an append-only file of records (the sealed JSON, one
//! per line, exactly what an export holds) and a file of their end offsets
//! (8 bytes big-endian per record), so record `seq` is one positional
//! read and an export is one sequential read.
//!
//! Appends write both files and sync both before returning. A crash may
//! leave a torn tail (a partial offset, offsets past the data, data past
//! the last offset); none of it was ever acknowledged, so opening cuts it
//! off.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) const DATA_FILE: &str = "chain.jsonl";
pub(crate) const OFFSETS_FILE: &str = "chain.offsets";

pub(crate) struct ChainFile {
    data: File,
    offsets: File,
    /// Records durable and readable: 1..=count.
    count: AtomicU64,
    /// End of the last durable record in `data`.
    end: AtomicU64,
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

impl ChainFile {
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let data = open_rw(&dir.join(DATA_FILE))?;
        let offsets = open_rw(&dir.join(OFFSETS_FILE))?;
        let data_len = data.metadata()?.len();
        let mut count = offsets.metadata()?.len() / 8;
        // Drop offsets that point past the data (their data never
        // reached the disk).
        let mut end = 0;
        while count > 0 {
            let e = read_u64(&offsets, (count - 1) * 8)?;
            if e <= data_len {
                end = e;
                break;
            }
            count -= 1;
        }
        offsets.set_len(count * 8)?;
        data.set_len(end)?;
        offsets.sync_all()?;
        data.sync_all()?;
        Ok(Self {
            data,
            offsets,
            count: AtomicU64::new(count),
            end: AtomicU64::new(end),
        })
    }

    /// How many records are durable.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Appends records (each without its newline) and syncs. Only one
    /// writer at a time (the audit log's chain lock).
    pub(crate) fn append(&self, records: &[Vec<u8>]) -> io::Result<()> {
        let start = self.end.load(Ordering::SeqCst);
        let count = self.count();
        let mut bytes = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
        let mut ends = Vec::with_capacity(records.len() * 8);
        for r in records {
            bytes.extend_from_slice(r);
            bytes.push(b'\n');
            ends.extend_from_slice(&(start + bytes.len() as u64).to_be_bytes());
        }
        self.data.write_all_at(&bytes, start)?;
        self.offsets.write_all_at(&ends, count * 8)?;
        self.data.sync_data()?;
        self.offsets.sync_data()?;
        self.end.store(start + bytes.len() as u64, Ordering::SeqCst);
        self.count
            .store(count + records.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    fn bounds(&self, seq: u64) -> io::Result<(u64, u64)> {
        let start = if seq <= 1 {
            0
        } else {
            read_u64(&self.offsets, (seq - 2) * 8)?
        };
        Ok((start, read_u64(&self.offsets, (seq - 1) * 8)?))
    }

    /// Record `seq` without its newline, if it is durable.
    pub(crate) fn read(&self, seq: u64) -> io::Result<Option<Vec<u8>>> {
        if seq == 0 || seq > self.count() {
            return Ok(None);
        }
        let (start, end) = self.bounds(seq)?;
        let len = end
            .checked_sub(start)
            .and_then(|l| usize::try_from(l).ok())
            .filter(|l| *l > 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "offsets out of order"))?;
        let mut buf = vec![0; len];
        self.data.read_exact_at(&mut buf, start)?;
        buf.pop();
        Ok(Some(buf))
    }

    /// Records `from..=to` (clamped to what is durable), in order, each
    /// without its newline, read sequentially.
    pub(crate) fn scan(
        &self,
        from: u64,
        to: u64,
    ) -> io::Result<impl Iterator<Item = io::Result<Vec<u8>>> + '_> {
        let to = to.min(self.count());
        let from = from.max(1);
        let (start, stop) = if from > to {
            (0, 0)
        } else {
            (self.bounds(from)?.0, self.bounds(to)?.1)
        };
        let mut file = self.data.try_clone()?;
        file.seek(SeekFrom::Start(start))?;
        let mut reader = BufReader::with_capacity(1 << 20, file.take(stop - start));
        Ok(std::iter::from_fn(move || {
            let mut line = Vec::new();
            match io::BufRead::read_until(&mut reader, b'\n', &mut line) {
                Ok(0) => None,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    Some(Ok(line))
                }
                Err(e) => Some(Err(e)),
            }
        }))
    }

    /// Test support: replaces the whole chain with these records.
    #[cfg(test)]
    pub(crate) fn rewrite(dir: &Path, records: &[Vec<u8>]) -> io::Result<()> {
        for f in [DATA_FILE, OFFSETS_FILE] {
            File::create(dir.join(f))?;
        }
        ChainFile::open(dir)?.append(records)
    }
}

fn read_u64(f: &File, at: u64) -> io::Result<u64> {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, at)?;
    Ok(u64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn recs(n: u64) -> Vec<Vec<u8>> {
        (1..=n)
            .map(|i| format!("{{\"seq\":{i}}}").into_bytes())
            .collect()
    }

    #[test]
    fn appends_read_back_by_position_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = ChainFile::open(dir.path()).unwrap();
        f.append(&recs(3)).unwrap();
        f.append(&recs(5)[3..]).unwrap();
        assert_eq!(f.count(), 5);
        assert_eq!(f.read(4).unwrap().unwrap(), b"{\"seq\":4}");
        assert_eq!(f.read(6).unwrap(), None);
        let all: Vec<Vec<u8>> = f.scan(2, 4).unwrap().map(Result::unwrap).collect();
        assert_eq!(all, recs(4)[1..].to_vec());
        assert_eq!(f.scan(4, 100).unwrap().count(), 2);
        assert_eq!(f.scan(6, 9).unwrap().count(), 0);
    }

    #[test]
    fn a_torn_tail_is_cut_off_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let f = ChainFile::open(dir.path()).unwrap();
            f.append(&recs(4)).unwrap();
        }
        // A crash mid-append: data for a 5th record, half an offset, and
        // an offset pointing past the data.
        let mut data = OpenOptions::new()
            .append(true)
            .open(dir.path().join(DATA_FILE))
            .unwrap();
        data.write_all(b"{\"seq\":5").unwrap();
        let mut offs = OpenOptions::new()
            .append(true)
            .open(dir.path().join(OFFSETS_FILE))
            .unwrap();
        offs.write_all(&9_999u64.to_be_bytes()).unwrap();
        offs.write_all(&[0, 0, 1]).unwrap();
        let f = ChainFile::open(dir.path()).unwrap();
        assert_eq!(f.count(), 4);
        assert_eq!(f.read(4).unwrap().unwrap(), b"{\"seq\":4}");
        f.append(&recs(5)[4..]).unwrap();
        assert_eq!(f.scan(1, 5).unwrap().count(), 5);
        assert_eq!(f.read(5).unwrap().unwrap(), b"{\"seq\":5}");
    }
}
