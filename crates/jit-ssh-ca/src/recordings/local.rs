//! Recordings in a local directory: `ROOT/SESSION/` (0700) holding
//! `header` (the exact header line), `chunks` (append-only: `u32 length,
//! stored chunk` per chunk, as in a bundle) and `state.json` (the
//! [`RecordingMeta`], replaced atomically after the chunks are synced).
//! Files 0600. A crash between appending and the state's replacement
//! leaves bytes past `chunk_bytes`: they are cut off at the next append
//! and never read. `ROOT/@index/` orders the listing ([`super::index`]).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use jit_ssh_recording::{Chunk, SessionId};

use super::index::{self, Index};
use super::{
    OpenRecording, PageKey, RecordingMeta, RecordingStore, RecordingStoreError, StoredRecording,
};

const HEADER: &str = "header";
const CHUNKS: &str = "chunks";
const STATE: &str = "state.json";
/// `ROOT/@pruned/SESSION`: an empty file per recording retention pruned,
/// so its id is never recorded again. `@` is in no session id.
const PRUNED: &str = "@pruned";

pub struct LocalRecordings {
    root: PathBuf,
    index: Index,
    /// States read, for tests of what a page costs.
    #[cfg(test)]
    reads: std::sync::atomic::AtomicU64,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RecordingStoreError {
    let path = path.display().to_string();
    move |source| RecordingStoreError::Io { what, path, source }
}

impl LocalRecordings {
    /// Recordings under `root` (created 0700 on first write).
    pub fn new(root: PathBuf) -> Self {
        LocalRecordings {
            index: Index::new(&root),
            root,
            #[cfg(test)]
            reads: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A session id is `A-Z a-z 0-9 . _ -` (checked by its type); `.` and
    /// `..` alone are the only ids that are not plain file names.
    fn dir(&self, session: &SessionId) -> Result<PathBuf, RecordingStoreError> {
        if matches!(session.as_str(), "." | "..") {
            return Err(RecordingStoreError::Damaged {
                session: session.clone(),
                why: "not a usable directory name".into(),
            });
        }
        Ok(self.root.join(session.as_str()))
    }

    fn read_meta(&self, dir: &Path) -> Result<Option<RecordingMeta>, RecordingStoreError> {
        #[cfg(test)]
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(STATE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading", &path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RecordingStoreError::Io {
                what: "parsing",
                path: path.display().to_string(),
                source: std::io::Error::other(e),
            })
    }

    fn write_meta(&self, dir: &Path, meta: &RecordingMeta) -> Result<(), RecordingStoreError> {
        let path = dir.join(STATE);
        let json = serde_json::to_vec_pretty(meta).map_err(|e| RecordingStoreError::Io {
            what: "encoding",
            path: path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        crate::atomic_file::write(&path, &json, 0o600).map_err(io("writing", &path))
    }

    /// Every stored recording's state, read one at a time (the pruned
    /// marks and the index are not recordings: `@` is in no session id;
    /// no directory yet is none).
    fn states(
        &self,
    ) -> Result<
        impl Iterator<Item = Result<RecordingMeta, RecordingStoreError>> + '_,
        RecordingStoreError,
    > {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => Some(e),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("listing", &self.root)(e)),
        };
        Ok(entries
            .into_iter()
            .flatten()
            .filter_map(|entry| match entry {
                Err(e) => Some(Err(io("listing", &self.root)(e))),
                Ok(e) if e.file_name().to_string_lossy().contains('@') => None,
                Ok(e) => self.read_meta(&e.path()).transpose(),
            }))
    }
}

impl LocalRecordings {
    /// Every stored recording's place in the listing (to build the index).
    fn every_key(&self) -> std::io::Result<Vec<PageKey>> {
        self.states()
            .and_then(|s| s.map(|m| m.map(|m| m.order())).collect())
            .map_err(std::io::Error::other)
    }

    /// A page read through the index: the states of the page and of
    /// what `keep` passes over, newest first.
    fn page_by_index(
        &self,
        seconds: &mut index::Seconds,
        keep: &dyn Fn(&RecordingMeta) -> bool,
        limit: usize,
    ) -> Result<(Vec<RecordingMeta>, bool), RecordingStoreError> {
        let path = self.index.path();
        let mut out = Vec::new();
        while out.len() <= limit {
            let second = seconds.next_second().map_err(io("reading", path))?;
            if second.is_empty() {
                break;
            }
            for k in second {
                let Ok(dir) = SessionId::try_from(k.session.as_str())
                    .map_err(drop)
                    .and_then(|id| self.dir(&id).map_err(drop))
                else {
                    continue;
                };
                // Gone, or begun again later: that line is the one.
                match self.read_meta(&dir)? {
                    Some(m) if m.received_at == k.received_at && keep(&m) => out.push(m),
                    _ => {}
                }
            }
        }
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }
}

fn sync_dir(dir: &Path) -> Result<(), RecordingStoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", dir))
}

impl RecordingStore for LocalRecordings {
    fn begin(&self, meta: &RecordingMeta, header_line: &str) -> Result<(), RecordingStoreError> {
        let dir = self.dir(&meta.session)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(io("creating", &self.root))?;
        // In the index first: a crash before the directory leaves a line
        // whose recording is missing, which a page passes over.
        self.index
            .append(&meta.order(), &mut || self.every_key())
            .map_err(io("appending to", self.index.path()))?;
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // A directory without state is a begin cut short: take it over.
                if self.read_meta(&dir)?.is_some() {
                    return Err(RecordingStoreError::Exists(meta.session.clone()));
                }
            }
            Err(e) => return Err(io("creating", &dir)(e)),
        }
        crate::atomic_file::write(&dir.join(HEADER), header_line.as_bytes(), 0o600)
            .map_err(io("writing", &dir.join(HEADER)))?;
        let chunks = dir.join(CHUNKS);
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&chunks)
            .and_then(|f| f.sync_all())
            .map_err(io("creating", &chunks))?;
        let mut meta = meta.clone();
        meta.chunks = 0;
        meta.chunk_bytes = 0;
        self.write_meta(&dir, &meta)?;
        sync_dir(&dir)?;
        sync_dir(&self.root)
    }

    fn append(
        &self,
        meta: &RecordingMeta,
        chunks: &[Chunk],
    ) -> Result<RecordingMeta, RecordingStoreError> {
        let dir = self.dir(&meta.session)?;
        let stored = self
            .read_meta(&dir)?
            .ok_or_else(|| RecordingStoreError::Missing(meta.session.clone()))?;
        // Whatever a caller verified, the file holds chunks 0..stored in
        // order: an append that does not continue them is refused.
        if let Some(first) = chunks.first() {
            if first.body().index != stored.chunks {
                return Err(RecordingStoreError::NotNext {
                    session: meta.session.clone(),
                    stored: stored.chunks,
                    first: first.body().index,
                });
            }
        }
        let path = dir.join(CHUNKS);
        let mut f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        // Drop whatever a crashed append left past the last stored chunk.
        f.set_len(stored.chunk_bytes)
            .and_then(|()| f.seek(SeekFrom::End(0)).map(drop))
            .map_err(io("truncating", &path))?;
        let mut buf = Vec::new();
        for c in chunks {
            let bytes = c.to_bytes();
            buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            buf.extend_from_slice(&bytes);
        }
        f.write_all(&buf)
            .and_then(|()| f.sync_all())
            .map_err(io("appending to", &path))?;
        let mut next = meta.clone();
        next.chunks = stored.chunks + chunks.len() as u64;
        next.chunk_bytes = stored.chunk_bytes + buf.len() as u64;
        self.write_meta(&dir, &next)?;
        Ok(next)
    }

    fn meta(&self, session: &SessionId) -> Result<Option<RecordingMeta>, RecordingStoreError> {
        self.read_meta(&self.dir(session)?)
    }

    fn header_line(&self, session: &SessionId) -> Result<Option<String>, RecordingStoreError> {
        let dir = self.dir(session)?;
        if self.read_meta(&dir)?.is_none() {
            return Ok(None);
        }
        let header = dir.join(HEADER);
        fs::read_to_string(&header)
            .map(Some)
            .map_err(io("reading", &header))
    }

    fn read(&self, session: &SessionId) -> Result<Option<StoredRecording>, RecordingStoreError> {
        let dir = self.dir(session)?;
        let Some(meta) = self.read_meta(&dir)? else {
            return Ok(None);
        };
        let header = dir.join(HEADER);
        let header_line = fs::read_to_string(&header).map_err(io("reading", &header))?;
        let path = dir.join(CHUNKS);
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|f| f.take(meta.chunk_bytes).read_to_end(&mut bytes))
            .map_err(io("reading", &path))?;
        let damaged = |why: String| RecordingStoreError::Damaged {
            session: session.clone(),
            why,
        };
        if bytes.len() as u64 != meta.chunk_bytes {
            return Err(damaged(
                "the chunks file is shorter than its state says".into(),
            ));
        }
        let mut chunks = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let position = chunks.len();
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Err(damaged(format!("chunk {position}: cut short")));
            };
            let len = u32::from_be_bytes(*len) as usize;
            if tail.len() < len {
                return Err(damaged(format!("chunk {position}: cut short")));
            }
            let (one, tail) = tail.split_at(len);
            chunks.push(
                Chunk::from_bytes(one).map_err(|e| damaged(format!("chunk {position}: {e}")))?,
            );
            rest = tail;
        }
        if chunks.len() as u64 != meta.chunks {
            return Err(damaged(format!(
                "{} chunks stored, the state says {}",
                chunks.len(),
                meta.chunks
            )));
        }
        Ok(Some(StoredRecording {
            meta,
            header_line,
            chunks,
        }))
    }

    fn open(&self, session: &SessionId) -> Result<Option<OpenRecording>, RecordingStoreError> {
        let dir = self.dir(session)?;
        let Some(meta) = self.read_meta(&dir)? else {
            return Ok(None);
        };
        let header = dir.join(HEADER);
        let header_line = fs::read_to_string(&header).map_err(io("reading", &header))?;
        let path = dir.join(CHUNKS);
        let f = File::open(&path).map_err(io("reading", &path))?;
        let len = f.metadata().map_err(io("reading", &path))?.len();
        if len < meta.chunk_bytes {
            return Err(RecordingStoreError::Damaged {
                session: session.clone(),
                why: "the chunks file is shorter than its state says".into(),
            });
        }
        let chunks = Box::new(f.take(meta.chunk_bytes));
        Ok(Some(OpenRecording {
            meta,
            header_line,
            chunks,
        }))
    }

    fn read_chunks(
        &self,
        session: &SessionId,
        first: u64,
        count: usize,
    ) -> Result<Vec<Chunk>, RecordingStoreError> {
        let dir = self.dir(session)?;
        let Some(meta) = self.read_meta(&dir)? else {
            return Ok(Vec::new());
        };
        let path = dir.join(CHUNKS);
        let damaged = |why: String| RecordingStoreError::Damaged {
            session: session.clone(),
            why,
        };
        let mut f = File::open(&path).map_err(io("reading", &path))?;
        // Past the chunks before `first` by their lengths alone: a
        // resend costs a seek per stored chunk, not a read of each.
        let mut at = 0u64;
        let mut out = Vec::new();
        let mut position = 0u64;
        while position < meta.chunks && out.len() < count {
            if at + 4 > meta.chunk_bytes {
                return Err(damaged(format!("chunk {position}: cut short")));
            }
            let mut len = [0u8; 4];
            f.seek(SeekFrom::Start(at))
                .and_then(|_| f.read_exact(&mut len))
                .map_err(io("reading", &path))?;
            let len = u64::from(u32::from_be_bytes(len));
            if at + 4 + len > meta.chunk_bytes {
                return Err(damaged(format!("chunk {position}: cut short")));
            }
            if position >= first {
                let mut one = vec![0u8; len as usize];
                f.read_exact(&mut one).map_err(io("reading", &path))?;
                out.push(
                    Chunk::from_bytes(&one)
                        .map_err(|e| damaged(format!("chunk {position}: {e}")))?,
                );
            }
            at += 4 + len;
            position += 1;
        }
        Ok(out)
    }

    fn list(&self) -> Result<Vec<RecordingMeta>, RecordingStoreError> {
        let mut out = self.states()?.collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| {
            (b.received_at, b.session.as_str()).cmp(&(a.received_at, a.session.as_str()))
        });
        Ok(out)
    }

    fn page(
        &self,
        keep: &dyn Fn(&RecordingMeta) -> bool,
        after: Option<&PageKey>,
        limit: usize,
    ) -> Result<(Vec<RecordingMeta>, bool), RecordingStoreError> {
        if !self.root.exists() {
            return Ok((Vec::new(), false));
        }
        let seconds = self
            .index
            .before(after, &mut || self.every_key())
            .map_err(io("reading", self.index.path()))?;
        match seconds {
            Some(mut s) => self.page_by_index(&mut s, keep, limit),
            // Out of order (a clock stepped back): every state, as
            // before the index, until the next prune sorts it.
            None => super::page::newest(self.states()?, keep, after, limit),
        }
    }

    fn prune(&self, before: i64) -> Result<u64, RecordingStoreError> {
        let marks = self.root.join(PRUNED);
        let mut n = 0;
        let mut kept = Vec::new();
        for meta in self.list()? {
            if meta.updated_at >= before {
                kept.push(meta.order());
            } else {
                if n == 0 {
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(&marks)
                        .map_err(io("creating", &marks))?;
                }
                // The mark first, durable before the recording goes: a
                // crash in between leaves both, and the next run removes
                // the recording.
                let mark = marks.join(meta.session.as_str());
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .mode(0o600)
                    .open(&mark)
                    .map_err(io("creating", &mark))?;
                sync_dir(&marks)?;
                let dir = self.dir(&meta.session)?;
                fs::remove_dir_all(&dir).map_err(io("removing", &dir))?;
                n += 1;
            }
        }
        if n > 0 || (self.root.exists() && self.index.needs_rewrite()) {
            // The pruned lines out, and in order again.
            self.index
                .rewrite(&mut kept)
                .map_err(io("writing", self.index.path()))?;
        }
        if n > 0 {
            sync_dir(&self.root)?;
        }
        Ok(n)
    }

    fn retired(&self, session: &SessionId) -> Result<bool, RecordingStoreError> {
        let mark = self
            .root
            .join(PRUNED)
            .join(self.dir(session)?.file_name().unwrap_or_default());
        match fs::symlink_metadata(&mark) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("reading", &mark)(e)),
        }
    }
}

#[cfg(test)]
#[path = "local_index_tests.rs"]
mod index_tests;

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
