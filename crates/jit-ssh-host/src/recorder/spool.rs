//! The recorder's spool: every chunk is on disk, fsynced, before it is
//! uploaded, so a recorder restart or a CA that cannot be reached loses
//! nothing. Root-only (directories 0700, files 0600): the recorded user
//! cannot read, edit or delete what was already recorded.
//!
//! ```text
//! SPOOL/                 0700
//!   SESSION/             0700
//!     header             0600  the exact header line
//!     chunks             0600  append-only: u32 length, stored chunk …
//!     sent               0600  how many chunks the CA acknowledged
//!     ended              0600  present once the end chunk is in `chunks`
//! ```

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use jit_ssh_recording::{Chunk, SessionId};

#[derive(Debug, thiserror::Error)]
#[error("spool {path}: {source}")]
pub struct SpoolError {
    path: String,
    #[source]
    source: std::io::Error,
}

fn err(path: &Path) -> impl Fn(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError {
        path: path.display().to_string(),
        source,
    }
}

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// One session's files, open for appending.
pub struct SessionSpool {
    dir: PathBuf,
    chunks: File,
    /// Appended since the last fsync.
    dirty: bool,
}

/// What one session's spool holds, for the uploader.
#[derive(Debug)]
pub struct Pending {
    pub dir: PathBuf,
    pub session: String,
    pub header: String,
    /// The index of `chunks[0]`.
    pub first: usize,
    /// Stored chunks from `first` on, in order.
    pub chunks: Vec<Vec<u8>>,
    pub sent: usize,
    pub ended: bool,
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err(&tmp))?;
    f.write_all(bytes).map_err(err(&tmp))?;
    f.sync_all().map_err(err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(err(path))
}

impl Spool {
    /// Opens (creating) the spool at `dir`, mode 0700 whatever it was.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err(dir))?;
        Ok(Spool {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new session's directory with its header line.
    pub fn create(&self, id: &SessionId, header: &str) -> Result<SessionSpool, SpoolError> {
        let dir = self.dir.join(id.as_str());
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(err(&dir))?;
        write_file(&dir.join("header"), header.as_bytes())?;
        let path = dir.join("chunks");
        let chunks = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(err(&path))?;
        Ok(SessionSpool {
            dir,
            chunks,
            dirty: false,
        })
    }

    /// Every session in the spool, oldest name first.
    pub fn sessions(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        dirs.sort();
        dirs
    }
}

impl SessionSpool {
    /// Appends `chunks`; [`SessionSpool::sync`] makes them durable (the
    /// recorder syncs once a second and at the end, not per chunk: bulk
    /// output cuts a chunk every 256 KiB, and an fsync each made recording
    /// disk-bound).
    pub fn append(&mut self, chunks: &[Chunk]) -> Result<(), SpoolError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let path = self.dir.join("chunks");
        let mut buf = Vec::new();
        for c in chunks {
            let bytes = c.to_bytes();
            let len = u32::try_from(bytes.len())
                .map_err(|_| err(&path)(std::io::Error::other("chunk over 4 GiB")))?;
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(&bytes);
        }
        self.chunks.write_all(&buf).map_err(err(&path))?;
        self.dirty = true;
        Ok(())
    }

    /// Fsyncs what was appended, if anything.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if self.dirty {
            let path = self.dir.join("chunks");
            self.chunks.sync_data().map_err(err(&path))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Marks the session ended (its end chunk is appended already),
    /// after syncing it.
    pub fn mark_ended(&mut self) -> Result<(), SpoolError> {
        self.sync()?;
        write_file(&self.dir.join("ended"), b"")
    }
}

/// Reads a session's spool. A chunk cut short by a crash is left out
/// (it was never acknowledged, and its session gets no more chunks).
pub fn read_pending(dir: &Path) -> Result<Pending, SpoolError> {
    read_from(dir, 0, usize::MAX)
}

/// What the uploader needs of a session: the chunks from the first one
/// the CA has not acknowledged on, about `max_bytes` of them (at least
/// one). Acknowledged chunks are skipped, not read: a busy session's
/// spool grows to gigabytes, and reading all of it into memory at every
/// upload (every few seconds) ran the root recorder out of memory.
pub fn read_unsent(dir: &Path, max_bytes: usize) -> Result<Pending, SpoolError> {
    read_from(dir, read_sent(dir), max_bytes)
}

pub(crate) fn read_sent(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("sent"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn read_from(dir: &Path, skip: usize, max_bytes: usize) -> Result<Pending, SpoolError> {
    use std::io::{BufReader, ErrorKind};
    let header = std::fs::read_to_string(dir.join("header")).map_err(err(dir))?;
    let path = dir.join("chunks");
    let mut r = BufReader::new(File::open(&path).map_err(err(&path))?);
    let mut chunks = Vec::new();
    let mut bytes = 0usize;
    let mut index = 0usize;
    while chunks.is_empty() || bytes < max_bytes {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(err(&path)(e)),
        }
        let len = u32::from_be_bytes(len) as usize;
        if index < skip {
            r.seek_relative(len as i64).map_err(err(&path))?;
            index += 1;
            continue;
        }
        let mut chunk = Vec::new();
        (&mut r)
            .take(len as u64)
            .read_to_end(&mut chunk)
            .map_err(err(&path))?;
        if chunk.len() < len {
            break;
        }
        bytes += len;
        index += 1;
        chunks.push(chunk);
    }
    Ok(Pending {
        session: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        dir: dir.to_owned(),
        header,
        first: skip,
        chunks,
        sent: read_sent(dir),
        ended: dir.join("ended").exists(),
    })
}

/// Ends a session a previous recorder left open (it died or was
/// restarted; the session's wrapper then ended the session, since it
/// cannot go on unrecorded): bytes of a chunk cut short are dropped and a
/// signed `recorder-lost` end chunk continues the chain, so the CA closes
/// the recording instead of keeping it open for good. Output and input
/// byte counts died with the old recorder: they are 0 in its totals.
pub fn end_orphan(dir: &Path, key: &ssh_key::PrivateKey) -> Result<(), SpoolError> {
    use jit_ssh_recording::{ChunkBody, EndReason, EndRecord, Totals};
    let p = read_pending(dir)?;
    let path = dir.join("chunks");
    let bad = |why: String| err(&path)(std::io::Error::other(why));
    let mut chunks = Vec::new();
    for b in &p.chunks {
        chunks.push(Chunk::from_bytes(b).map_err(|e| bad(e.to_string()))?);
    }
    let kept: u64 = p.chunks.iter().map(|c| 4 + c.len() as u64).sum();
    let f = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(err(&path))?;
    f.set_len(kept).map_err(err(&path))?;
    if chunks.last().is_some_and(|c| c.body().end_record.is_some()) {
        return write_file(&dir.join("ended"), b"");
    }
    let header =
        jit_ssh_recording::Header::parse_line(&p.header).map_err(|e| bad(e.to_string()))?;
    let mut totals = Totals {
        data_chunks: chunks.len() as u64,
        ..Totals::default()
    };
    for c in &chunks {
        totals.events += c.body().events;
        totals.raw_bytes += c.body().raw_len;
        totals.stored_bytes += c.body().payload.len() as u64;
    }
    let at = chunks
        .last()
        .map_or(std::time::Duration::ZERO, |c| c.body().end);
    let body = ChunkBody {
        session_id: header.session.session_id,
        index: chunks.len() as u64,
        prev: chunks.last().map_or_else(
            || jit_ssh_recording::chain::header_hash(&p.header),
            Chunk::hash,
        ),
        start: at,
        end: at,
        events: 0,
        raw_len: 0,
        payload: Vec::new(),
        end_record: Some(EndRecord {
            reason: EndReason::RecorderLost,
            totals,
        }),
    };
    let end = Chunk::sign(body, key).map_err(|e| bad(e.to_string()))?;
    let mut s = SessionSpool {
        dir: dir.to_owned(),
        chunks: OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(err(&path))?,
        dirty: false,
    };
    s.append(&[end])?;
    s.mark_ended()
}

/// Records that the CA acknowledged `n` chunks.
pub fn set_sent(dir: &Path, n: usize) -> Result<(), SpoolError> {
    write_file(&dir.join("sent"), n.to_string().as_bytes())
}

/// Removes a session whose every chunk, the end one included, the CA
/// acknowledged.
pub fn remove(dir: &Path) -> Result<(), SpoolError> {
    std::fs::remove_dir_all(dir).map_err(err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jit_ssh_recording::{ChunkPolicy, Encoder, EndReason, Header, RecordMode, SessionInfo};
    use std::time::Duration;

    fn header(id: &str) -> Header {
        Header {
            width: 80,
            height: 24,
            timestamp: 1_790_000_000,
            env: Default::default(),
            session: SessionInfo {
                session_id: SessionId::try_from(id).unwrap(),
                key_id: "jit-ssh:alice:g:1".into(),
                serial: "1".into(),
                grant_id: "g".into(),
                user: "alice".into(),
                host: "web1".into(),
                account: "deploy".into(),
                record: RecordMode::Output,
            },
        }
    }

    #[test]
    fn chunks_are_kept_root_only_and_read_back_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(&tmp.path().join("spool")).unwrap();
        let h = header("s1");
        let key = ssh_key::PrivateKey::random(
            &mut ssh_key::rand_core::OsRng,
            ssh_key::Algorithm::Ed25519,
        )
        .unwrap();
        let public = key.public_key().clone();
        let mut enc = Encoder::new(&h, key, ChunkPolicy::default()).unwrap();
        let mut s = spool
            .create(&h.session.session_id, enc.header_line())
            .unwrap();
        enc.push_output(Duration::from_millis(5), b"hello\r\n")
            .unwrap();
        let first = enc.flush().unwrap().unwrap();
        s.append(std::slice::from_ref(&first)).unwrap();
        let done = enc.finish(Duration::from_secs(1), EndReason::Exit).unwrap();
        s.append(&done.chunks).unwrap();
        s.mark_ended().unwrap();
        drop(s);

        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(spool.dir()), 0o700);
        let dir = spool.sessions().pop().unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("chunks")), 0o600);
        assert_eq!(mode(&dir.join("header")), 0o600);

        let p = read_pending(&dir).unwrap();
        assert_eq!(p.session, "s1");
        assert_eq!(p.chunks.len(), 2);
        assert_eq!(p.chunks[0], first.to_bytes());
        assert!(p.ended);
        assert_eq!(p.sent, 0);
        set_sent(&dir, 2).unwrap();
        assert_eq!(read_pending(&dir).unwrap().sent, 2);
        // What the spool holds verifies as one recording.
        let chunks: Vec<Chunk> = p
            .chunks
            .iter()
            .map(|b| Chunk::from_bytes(b).unwrap())
            .collect();
        let v = jit_ssh_recording::verify(&p.header, chunks, &public, None).unwrap();
        assert_eq!(v.end().unwrap().reason, EndReason::Exit);
    }

    #[test]
    fn the_uploader_reads_only_a_window_of_unacknowledged_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(&tmp.path().join("spool")).unwrap();
        let h = header("s3");
        let key = ssh_key::PrivateKey::random(
            &mut ssh_key::rand_core::OsRng,
            ssh_key::Algorithm::Ed25519,
        )
        .unwrap();
        let mut enc = Encoder::new(&h, key, ChunkPolicy::default()).unwrap();
        let mut s = spool
            .create(&h.session.session_id, enc.header_line())
            .unwrap();
        let mut stored = Vec::new();
        for i in 0..40u64 {
            enc.push_output(Duration::from_millis(i), format!("line {i}\r\n").as_bytes())
                .unwrap();
            let c = enc.flush().unwrap().unwrap();
            stored.push(c.to_bytes());
            s.append(&[c]).unwrap();
        }
        s.sync().unwrap();
        drop(s);
        let dir = spool.sessions().pop().unwrap();
        // A crash cut the last chunk short.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("chunks"))
            .unwrap();
        f.write_all(&[0, 0, 1, 0, 7, 7]).unwrap();
        set_sent(&dir, 30).unwrap();
        let one = stored[30].len();
        let p = read_unsent(&dir, 3 * one).unwrap();
        assert_eq!(p.first, 30);
        assert_eq!(p.chunks, stored[30..33].to_vec());
        // At least one chunk, however small the window.
        assert_eq!(
            read_unsent(&dir, 1).unwrap().chunks,
            stored[30..31].to_vec()
        );
        // To the end, without the piece cut short.
        let p = read_unsent(&dir, usize::MAX).unwrap();
        assert_eq!(p.chunks, stored[30..].to_vec());
        set_sent(&dir, 40).unwrap();
        assert!(read_unsent(&dir, usize::MAX).unwrap().chunks.is_empty());
        assert_eq!(read_pending(&dir).unwrap().chunks, stored);
    }

    #[test]
    fn a_session_left_open_by_a_dead_recorder_is_ended_and_still_verifies() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(&tmp.path().join("spool")).unwrap();
        let key = ssh_key::PrivateKey::random(
            &mut ssh_key::rand_core::OsRng,
            ssh_key::Algorithm::Ed25519,
        )
        .unwrap();
        let public = key.public_key().clone();
        for (id, cut_short) in [("open1", false), ("open2", true), ("empty", false)] {
            let h = header(id);
            let mut enc = Encoder::new(&h, key.clone(), ChunkPolicy::default()).unwrap();
            let mut s = spool
                .create(&h.session.session_id, enc.header_line())
                .unwrap();
            if id != "empty" {
                enc.push_output(Duration::from_millis(5), b"before the crash\r\n")
                    .unwrap();
                s.append(&[enc.flush().unwrap().unwrap()]).unwrap();
                enc.push_output(Duration::from_millis(9), b"more\r\n")
                    .unwrap();
                s.append(&[enc.flush().unwrap().unwrap()]).unwrap();
            }
            s.sync().unwrap();
            drop(s);
            let dir = spool.dir().join(id);
            if cut_short {
                // A crash in the middle of writing a chunk.
                let mut f = OpenOptions::new()
                    .append(true)
                    .open(dir.join("chunks"))
                    .unwrap();
                f.write_all(&[0, 0, 1, 0, 7, 7]).unwrap();
            }
            end_orphan(&dir, &key).unwrap();
            let p = read_pending(&dir).unwrap();
            assert!(p.ended, "{id}");
            let chunks: Vec<Chunk> = p
                .chunks
                .iter()
                .map(|b| Chunk::from_bytes(b).unwrap())
                .collect();
            let v = jit_ssh_recording::verify(&p.header, chunks, &public, None)
                .unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(v.end().unwrap().reason, EndReason::RecorderLost, "{id}");
            // Ending it again changes nothing.
            let before = std::fs::read(dir.join("chunks")).unwrap();
            end_orphan(&dir, &key).unwrap();
            assert_eq!(std::fs::read(dir.join("chunks")).unwrap(), before, "{id}");
        }
    }
}
