//! The state store as one file, `state.dump`: every sled tree's entries,
//! written while no write runs (the store's gate), read back into a fresh
//! sled database by `restore`. Independent of sled's on-disk files, which
//! cannot be copied while the server has them open.
//!
//! Layout: the header line, then per entry `tree name (u16 length ‖
//! bytes) ‖ key (u32 length ‖ bytes) ‖ value (u32 length ‖ bytes)`,
//! big-endian lengths. Integrity is the manifest's SHA-256, not this file's.

use std::io::{self, Read, Write};
use std::path::Path;

use crate::store::StoreError;

pub const FILE: &str = "state.dump";
const HEADER: &[u8] = b"jit-ssh-state-dump-v1\n";

/// Writes every tree of `db` to `out`; returns the number of entries.
/// The caller holds the store's gate exclusively.
pub(crate) fn write_db(db: &sled::Db, out: &mut dyn Write) -> Result<u64, StoreError> {
    let io = StoreError::Copy;
    out.write_all(HEADER).map_err(io)?;
    let mut n = 0;
    for name in db.tree_names() {
        let tree = db.open_tree(&name)?;
        let name_len = u16::try_from(name.len())
            .map_err(|_| StoreError::Copy(io::Error::other("a tree name over 64 KiB")))?;
        for item in tree.iter() {
            let (k, v) = item?;
            let (kl, vl) = match (u32::try_from(k.len()), u32::try_from(v.len())) {
                (Ok(k), Ok(v)) => (k, v),
                _ => return Err(StoreError::Copy(io::Error::other("an entry over 4 GiB"))),
            };
            out.write_all(&name_len.to_be_bytes()).map_err(io)?;
            out.write_all(&name).map_err(io)?;
            out.write_all(&kl.to_be_bytes()).map_err(io)?;
            out.write_all(&k).map_err(io)?;
            out.write_all(&vl.to_be_bytes()).map_err(io)?;
            out.write_all(&v).map_err(io)?;
            n += 1;
        }
    }
    out.flush().map_err(io)?;
    Ok(n)
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{FILE} is not a state dump (wrong first line)")]
    NotADump,
    #[error("{FILE} ends in the middle of entry {entry}")]
    Truncated { entry: u64 },
    #[error("reading {FILE}")]
    Read(#[source] io::Error),
    #[error("writing the state database")]
    Sled(#[from] sled::Error),
}

/// Reads `n` bytes, or `None` at a clean end of file (`n` bytes or none).
fn take(
    r: &mut impl Read,
    n: usize,
    entry: u64,
    at_start: bool,
) -> Result<Option<Vec<u8>>, ImportError> {
    let mut buf = vec![0; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 && at_start => return Ok(None),
            Ok(0) => return Err(ImportError::Truncated { entry }),
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ImportError::Read(e)),
        }
    }
    Ok(Some(buf))
}

fn field(r: &mut impl Read, len_bytes: usize, entry: u64) -> Result<Vec<u8>, ImportError> {
    let len = take(r, len_bytes, entry, false)?.unwrap_or_default();
    let len = len.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b));
    Ok(take(r, len, entry, false)?.unwrap_or_default())
}

/// Walks a dump; `each` gets (tree, key, value). Returns the entry count.
pub fn read(
    r: &mut impl Read,
    mut each: impl FnMut(&[u8], Vec<u8>, Vec<u8>) -> Result<(), ImportError>,
) -> Result<u64, ImportError> {
    let header = take(r, HEADER.len(), 0, false).map_err(|_| ImportError::NotADump)?;
    if header.as_deref() != Some(HEADER) {
        return Err(ImportError::NotADump);
    }
    let mut n = 0;
    loop {
        let Some(len) = take(r, 2, n + 1, true)? else {
            return Ok(n);
        };
        let name_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let name = take(r, name_len, n + 1, false)?.unwrap_or_default();
        let key = field(r, 4, n + 1)?;
        let value = field(r, 4, n + 1)?;
        each(&name, key, value)?;
        n += 1;
    }
}

/// Loads a dump into a new sled database at `path`; returns the entries.
pub fn import(dump: &Path, path: &Path) -> Result<u64, ImportError> {
    let file = std::fs::File::open(dump).map_err(ImportError::Read)?;
    let mut r = io::BufReader::with_capacity(1 << 20, file);
    let db = sled::open(path)?;
    let mut trees: std::collections::HashMap<Vec<u8>, sled::Tree> = Default::default();
    let n = read(&mut r, |name, k, v| {
        let tree = match trees.get(name) {
            Some(t) => t.clone(),
            None => {
                let t = db.open_tree(name)?;
                trees.insert(name.to_vec(), t.clone());
                t
            }
        };
        tree.insert(k, v)?;
        Ok(())
    })?;
    db.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_dump_loads_back_into_the_same_trees_and_a_cut_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("a")).unwrap();
        db.open_tree("requests")
            .unwrap()
            .insert("r1", "v1")
            .unwrap();
        db.open_tree("revoked")
            .unwrap()
            .insert([0u8; 8], &[1u8; 8])
            .unwrap();
        db.open_tree("meta").unwrap().insert("k", "").unwrap();
        let mut out = Vec::new();
        assert_eq!(write_db(&db, &mut out).unwrap(), 3);
        std::fs::write(dir.path().join(FILE), &out).unwrap();
        assert_eq!(
            import(&dir.path().join(FILE), &dir.path().join("b")).unwrap(),
            3
        );
        let b = crate::store::sled_reopen::until_unlocked(|| sled::open(dir.path().join("b")));
        assert_eq!(
            &*b.open_tree("requests").unwrap().get("r1").unwrap().unwrap(),
            b"v1"
        );
        assert_eq!(
            b.open_tree("meta")
                .unwrap()
                .get("k")
                .unwrap()
                .unwrap()
                .len(),
            0
        );
        drop(b);

        let cut = &out[..out.len() - 3];
        let e = read(&mut &cut[..], |_, _, _| Ok(())).unwrap_err();
        assert!(matches!(e, ImportError::Truncated { entry: 3 }), "{e}");
        let e = read(&mut &b"garbage"[..], |_, _, _| Ok(())).unwrap_err();
        assert!(matches!(e, ImportError::NotADump), "{e}");
    }
}
