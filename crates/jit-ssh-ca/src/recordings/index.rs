//! The listing's order, kept beside the recordings so that a page costs
//! the page, not the store: `ROOT/@index/order`, one line `RECEIVED_AT
//! SESSION` per recording begun, appended and synced before its directory
//! is made (a directory without `state.json`, which an older CA's listing
//! passes over, as it does `@pruned`). Lines come in the order the CA received sessions, so a page
//! (newest first) is read from the cursor back, the cursor found by
//! bisecting the file. Before, every page read every stored state.
//!
//! The index is a hint the states confirm, never a source of truth:
//! - a line whose recording is gone (pruned; a begin that failed after
//!   the line) or whose state names another first receipt (a begin cut
//!   short and retried) is passed over;
//! - the lines of one second come in arrival order: a second is read
//!   whole and sorted by session id;
//! - a clock stepped back appends a line older than the one before it:
//!   the index is marked unsorted (`@index/unsorted`) and pages read
//!   every state, as before, until the next prune writes it in order;
//! - a store without an index (an older CA's), or with a recording the
//!   index does not name (one an older CA began after a downgrade), gets
//!   one built from every state: checked once a process, by the names
//!   alone; a line a crash cut short is cut off before the next.

use std::collections::HashSet;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::PageKey;

/// `ROOT/@index/`: `@` is in no session id.
const DIR: &str = "@index";
/// Bytes read at a time, going back.
const BLOCK: u64 = 16 * 1024;

pub(super) struct Index {
    root: PathBuf,
    path: PathBuf,
    unsorted: PathBuf,
    /// The latest `received_at` in the file, once it was checked (made if
    /// missing, a torn tail cut) by this process.
    last: Mutex<Option<i64>>,
}

fn parse(line: &[u8]) -> Option<PageKey> {
    let text = std::str::from_utf8(line).ok()?;
    let (at, session) = text.split_once(' ')?;
    Some(PageKey {
        received_at: at.parse().ok()?,
        session: jit_ssh_recording::SessionId::try_from(session)
            .ok()?
            .to_string(),
    })
}

fn line(k: &PageKey) -> String {
    format!("{} {}\n", k.received_at, k.session)
}

impl Index {
    pub(super) fn new(root: &Path) -> Index {
        Index {
            root: root.to_owned(),
            path: root.join(DIR).join("order"),
            unsorted: root.join(DIR).join("unsorted"),
            last: Mutex::new(None),
        }
    }

    /// The file, for messages.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<i64>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the file usable once per process: built from `every` (the
    /// stored recordings' keys) when missing, a torn last line cut off.
    fn check(
        &self,
        last: &mut Option<i64>,
        every: &mut dyn FnMut() -> std::io::Result<Vec<PageKey>>,
    ) -> std::io::Result<i64> {
        if let Some(at) = *last {
            return Ok(at);
        }
        let held = match File::open(&self.path) {
            Ok(f) => Some(cut_torn_tail(f, &self.path)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let at = match held {
            Some(at) if self.names_every_recording()? => at,
            _ => {
                let mut keys = every()?;
                self.write_sorted(&mut keys)?
            }
        };
        *last = Some(at);
        Ok(at)
    }

    /// Whether every recording directory is named in the file (names
    /// only: no state is read).
    fn names_every_recording(&self) -> std::io::Result<bool> {
        let text = std::fs::read(&self.path)?;
        let named: HashSet<&[u8]> = text
            .split(|&b| b == b'\n')
            .filter_map(|l| l.splitn(2, |&b| b == b' ').nth(1))
            .collect();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e),
        };
        for e in entries {
            let name = e?.file_name();
            let name = name.as_encoded_bytes();
            if !name.contains(&b'@') && !named.contains(name) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes `keys` in order, replacing the file; the latest time.
    fn write_sorted(&self, keys: &mut [PageKey]) -> std::io::Result<i64> {
        keys.sort();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.root.join(DIR))?;
        let text: String = keys.iter().map(line).collect();
        crate::atomic_file::write(&self.path, text.as_bytes(), 0o600)?;
        match std::fs::remove_file(&self.unsorted) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(keys.last().map_or(i64::MIN, |k| k.received_at))
    }

    /// Notes a recording about to begin (durably, before its directory).
    pub(super) fn append(
        &self,
        key: &PageKey,
        every: &mut dyn FnMut() -> std::io::Result<Vec<PageKey>>,
    ) -> std::io::Result<()> {
        let mut last = self.lock();
        let latest = self.check(&mut last, every)?;
        if key.received_at < latest && !self.unsorted.exists() {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&self.unsorted)
                .and_then(|f| f.sync_all())?;
        }
        let mut f = OpenOptions::new().append(true).open(&self.path)?;
        f.write_all(line(key).as_bytes())?;
        f.sync_data()?;
        *last = Some(latest.max(key.received_at));
        Ok(())
    }

    /// Whether a prune should write the file again although it pruned
    /// nothing: it is missing or out of order.
    pub(super) fn needs_rewrite(&self) -> bool {
        !self.path.exists() || self.unsorted.exists()
    }

    /// Replaces the file with `keys`, in order (after a prune).
    pub(super) fn rewrite(&self, keys: &mut [PageKey]) -> std::io::Result<()> {
        let mut last = self.lock();
        *last = Some(self.write_sorted(keys)?);
        Ok(())
    }

    /// The keys before `after` (older), newest first, a second at a time,
    /// each second sorted newest first; `None` when the index cannot
    /// order them (marked unsorted): then every state must be read.
    pub(super) fn before(
        &self,
        after: Option<&PageKey>,
        every: &mut dyn FnMut() -> std::io::Result<Vec<PageKey>>,
    ) -> std::io::Result<Option<Seconds>> {
        {
            let mut last = self.lock();
            self.check(&mut last, every)?;
        }
        if self.unsorted.exists() {
            return Ok(None);
        }
        let f = File::open(&self.path)?;
        let len = f.metadata()?.len();
        let t = after.map_or(i64::MAX, |a| a.received_at);
        let end = boundary(&f, len, t)?;
        Ok(Some(Seconds {
            back: Backwards {
                f,
                pos: end,
                carry: Vec::new(),
                ready: Vec::new(),
            },
            after: after.cloned(),
            held: None,
        }))
    }
}

/// Cuts a last line without its newline (an append a crash cut short:
/// its recording was never begun); the latest time in the file.
fn cut_torn_tail(f: File, path: &Path) -> std::io::Result<i64> {
    let len = f.metadata()?.len();
    let mut back = Backwards {
        f,
        pos: len,
        carry: Vec::new(),
        ready: Vec::new(),
    };
    let complete = boundary(&back.f, len, i64::MAX)?;
    if complete < len {
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(complete)?;
    }
    back.pos = complete;
    while let Some(l) = back.next_line()? {
        if let Some(k) = parse(&l) {
            return Ok(k.received_at);
        }
    }
    Ok(i64::MIN)
}

/// The first line starting at or after `off` (`None` if there is none,
/// or it has no newline yet): where it and the next start, and its time.
fn line_from(f: &File, off: u64, len: u64) -> std::io::Result<Option<(u64, u64, i64)>> {
    use std::io::BufRead;
    let mut r = std::io::BufReader::new(f);
    let start = if off == 0 {
        0
    } else {
        r.seek(SeekFrom::Start(off - 1))?;
        let mut skipped = Vec::new();
        (&mut r)
            .take(len - (off - 1))
            .read_until(b'\n', &mut skipped)?;
        if skipped.last() != Some(&b'\n') {
            return Ok(None);
        }
        off - 1 + skipped.len() as u64
    };
    if start >= len {
        return Ok(None);
    }
    r.seek(SeekFrom::Start(start))?;
    let mut l = Vec::new();
    (&mut r).take(len - start).read_until(b'\n', &mut l)?;
    if l.last() != Some(&b'\n') {
        return Ok(None);
    }
    let next = start + l.len() as u64;
    l.pop();
    // A line that does not parse sorts with what is before it: it is
    // passed over when read.
    let at = parse(&l).map_or(i64::MIN, |k| k.received_at);
    Ok(Some((start, next, at)))
}

/// Where the first complete line later than `t` starts, or the end of
/// the complete lines if none is. Bisects byte offsets, reading a line
/// per step.
fn boundary(f: &File, len: u64, t: i64) -> std::io::Result<u64> {
    // Every line before `lo` is complete and at or before `t`. `hi`: no
    // complete line at or before `t` starts at or after it. When `lo`
    // passes `hi` the line at `lo` is later than `t`, cut short, or the end.
    let (mut lo, mut hi) = (0u64, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match line_from(f, mid, len)? {
            Some((start, next, at)) if start < hi => {
                if at > t {
                    hi = start;
                } else {
                    lo = next;
                }
            }
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// Lines read from a point back to the start of the file.
struct Backwards {
    f: File,
    /// Bytes before this are still to be read.
    pos: u64,
    /// The start of the earliest line read so far, whose beginning lies
    /// before `pos`.
    carry: Vec<u8>,
    /// Complete lines of the block read last, the latest last.
    ready: Vec<Vec<u8>>,
}

impl Backwards {
    fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(l) = self.ready.pop() {
                return Ok(Some(l));
            }
            if self.pos == 0 {
                if self.carry.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.carry)));
            }
            let n = BLOCK.min(self.pos);
            self.pos -= n;
            let mut data = vec![0u8; n as usize];
            self.f.read_exact_at(&mut data, self.pos)?;
            data.append(&mut self.carry);
            let mut parts = data.split(|&b| b == b'\n');
            // The first part may go on in the block before.
            self.carry = parts.next().map(<[u8]>::to_vec).unwrap_or_default();
            self.ready = parts
                .filter(|p| !p.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
        }
    }
}

/// The index's keys before a cursor, a second at a time, newest first.
pub(super) struct Seconds {
    back: Backwards,
    after: Option<PageKey>,
    /// A key read past the second returned last.
    held: Option<PageKey>,
}

impl Seconds {
    /// The next (older) second's keys before the cursor, newest first;
    /// empty at the start of the file.
    pub(super) fn next_second(&mut self) -> std::io::Result<Vec<PageKey>> {
        loop {
            let mut second: Vec<PageKey> = self.held.take().into_iter().collect();
            while let Some(l) = self.back.next_line()? {
                let Some(k) = parse(&l) else { continue };
                if second
                    .first()
                    .is_some_and(|s| s.received_at != k.received_at)
                {
                    self.held = Some(k);
                    break;
                }
                second.push(k);
            }
            let at_start = self.held.is_none();
            second.retain(|k| self.after.as_ref().is_none_or(|a| k < a));
            second.sort_by(|a, b| b.cmp(a));
            second.dedup();
            if !second.is_empty() || at_start {
                return Ok(second);
            }
        }
    }
}
