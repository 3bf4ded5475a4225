//! Where the CA keeps session recordings hosts upload: behind
//! [`RecordingStore`], a local directory by default ([`LocalRecordings`],
//! `DATA/recordings/`). The store keeps only chunks the service already
//! verified; it never decides what is authentic (docs/recordings.md).

mod index;
mod local;
mod page;
pub mod space;

use serde::{Deserialize, Serialize};

use std::time::Duration;

use jit_ssh_recording::{ChainState, Chunk, SessionId, Totals};

pub use local::LocalRecordings;

/// What the CA knows about one stored recording (`state.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingMeta {
    pub session: SessionId,
    pub user: String,
    pub host: String,
    pub account: String,
    pub grant: String,
    pub serial: u64,
    pub key_id: String,
    /// `output` or `full`.
    pub record: String,
    /// The enrolled host key (OpenSSH line) the chunks verified with.
    pub host_key: String,
    pub host_key_fingerprint: String,
    /// Unix seconds, from the header.
    pub started_at: u64,
    /// Unix seconds of the first and the latest upload.
    pub received_at: i64,
    pub updated_at: i64,
    /// Chunks stored (the index the next one must have).
    pub chunks: u64,
    /// Bytes of the chunks file that hold those chunks (anything after
    /// them is a write cut short by a crash, and is dropped).
    pub chunk_bytes: u64,
    /// Set once the end chunk arrived.
    pub ended: Option<EndedMeta>,
    /// Where the hash chain stands after the stored chunks, while the
    /// session is open: a later upload continues from it instead of
    /// reading and verifying every stored chunk again under the upload
    /// lock. Absent in state written before it existed (then the chunks
    /// are verified again, once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<StoredChain>,
    /// The validity of the certificate the session ran under, from its
    /// `certificate_issued` audit record: what bounds the recorded time
    /// of every later chunk. Absent in state written before it existed
    /// (then it is read from the audit log again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertWindow>,
}

/// A stored recording's state for tests: `user`'s session on db-1.dev,
/// received at `received_at`, nothing in it yet.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn test_meta(session: &str, received_at: i64, user: &str) -> RecordingMeta {
    RecordingMeta {
        session: SessionId::try_from(session).unwrap(),
        user: user.into(),
        host: "db-1.dev".into(),
        account: "oncall".into(),
        grant: "g".into(),
        serial: 7,
        key_id: "k".into(),
        record: "output".into(),
        host_key: String::new(),
        host_key_fingerprint: String::new(),
        started_at: 1,
        received_at,
        updated_at: received_at,
        chunks: 0,
        chunk_bytes: 0,
        ended: None,
        chain: None,
        certificate: None,
    }
}

/// Where a recording sorts in a listing: when the CA first received it,
/// then its id (newest first: larger keys first). Neither changes once
/// stored, so a page's cursor stays valid while sessions come and go.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PageKey {
    pub received_at: i64,
    pub session: String,
}

impl RecordingMeta {
    pub fn order(&self) -> PageKey {
        PageKey {
            received_at: self.received_at,
            session: self.session.to_string(),
        }
    }
}

/// When a session's certificate was valid, and whether its sessions end
/// with it (docs/recordings.md, "Sessions end with their certificate").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertWindow {
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds.
    pub valid_before: u64,
    /// False when the certificate's force-command says
    /// `--keep-after-expiry` (`end_at_expiry = false`): its sessions may
    /// outlive it, so only their start is bounded.
    pub ends_at_expiry: bool,
}

/// [`jit_ssh_recording::ChainState`] of an open session, as `state.json`
/// keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredChain {
    pub next_index: u64,
    /// The hash the next chunk must name (hex).
    pub prev: String,
    /// Microseconds since the session started where the last chunk ended.
    pub prev_end_micros: u64,
    pub data_chunks: u64,
    pub events: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

impl StoredChain {
    /// `None` for an ended session (nothing may follow its end chunk).
    pub fn of(s: &ChainState) -> Option<StoredChain> {
        if s.end.is_some() {
            return None;
        }
        Some(StoredChain {
            next_index: s.next_index,
            prev: s.prev.to_string(),
            prev_end_micros: u64::try_from(s.prev_end.as_micros()).unwrap_or(u64::MAX),
            data_chunks: s.sums.data_chunks,
            events: s.sums.events,
            raw_bytes: s.sums.raw_bytes,
            stored_bytes: s.sums.stored_bytes,
        })
    }

    /// The chain state it keeps, if its hash reads back.
    pub fn state(&self) -> Option<ChainState> {
        Some(ChainState {
            next_index: self.next_index,
            prev: self.prev.parse().ok()?,
            prev_end: Duration::from_micros(self.prev_end_micros),
            sums: Totals {
                data_chunks: self.data_chunks,
                events: self.events,
                raw_bytes: self.raw_bytes,
                stored_bytes: self.stored_bytes,
                ..Totals::default()
            },
            end: None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndedMeta {
    /// `exit`, `expiry`, `revoked`, `recorder-lost` or `spool-full`.
    pub reason: String,
    /// The final chain hash (hex), as in the `session_ended` record.
    pub final_hash: String,
    pub output_bytes: u64,
    pub input_bytes: u64,
    /// Unix seconds the end chunk arrived.
    pub at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingStoreError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("recording {0} already exists")]
    Exists(SessionId),
    #[error("recording {0} does not exist")]
    Missing(SessionId),
    #[error("stored recording {session} is damaged: {why}")]
    Damaged { session: SessionId, why: String },
    #[error("recording {session} holds {stored} chunks; chunk {first} does not follow them")]
    NotNext {
        session: SessionId,
        stored: u64,
        first: u64,
    },
}

/// A stored recording read back.
#[derive(Debug, Clone)]
pub struct StoredRecording {
    pub meta: RecordingMeta,
    pub header_line: String,
    pub chunks: Vec<Chunk>,
}

/// A stored recording opened for reading as it is sent, not into memory.
pub struct OpenRecording {
    pub meta: RecordingMeta,
    pub header_line: String,
    /// The stored chunks as a bundle holds them (`u32 length, chunk` …),
    /// `meta.chunk_bytes` of them: what was stored when it was opened.
    pub chunks: Box<dyn std::io::Read + Send>,
}

/// Storage of verified recordings. Every write is durable (fsynced) when
/// it returns; callers serialize writes to one session.
pub trait RecordingStore: Send + Sync {
    /// Starts recording `meta.session` with its header line and no chunks.
    fn begin(&self, meta: &RecordingMeta, header_line: &str) -> Result<(), RecordingStoreError>;
    /// Appends verified `chunks` (in order) and replaces the state with
    /// `meta` (whose `chunks`/`chunk_bytes` the store sets).
    fn append(
        &self,
        meta: &RecordingMeta,
        chunks: &[Chunk],
    ) -> Result<RecordingMeta, RecordingStoreError>;
    fn meta(&self, session: &SessionId) -> Result<Option<RecordingMeta>, RecordingStoreError>;
    /// The exact header line the recording started with.
    fn header_line(&self, session: &SessionId) -> Result<Option<String>, RecordingStoreError>;
    /// The header line and every stored chunk.
    fn read(&self, session: &SessionId) -> Result<Option<StoredRecording>, RecordingStoreError>;
    /// The header line and a reader of the stored chunks, for sending a
    /// recording of any size without holding it.
    fn open(&self, session: &SessionId) -> Result<Option<OpenRecording>, RecordingStoreError>;
    /// The stored chunks `first .. first + count` (fewer if fewer are
    /// stored), reading no more than those: what a resend is compared
    /// with, while every upload waits.
    fn read_chunks(
        &self,
        session: &SessionId,
        first: u64,
        count: usize,
    ) -> Result<Vec<Chunk>, RecordingStoreError>;
    /// Every recording's state, newest first.
    fn list(&self) -> Result<Vec<RecordingMeta>, RecordingStoreError>;
    /// One page of the recordings `keep` takes, newest first by
    /// [`RecordingMeta::order`]: at most `limit` of those ordered after
    /// `after`, and whether more follow. Holds no more than `limit + 1`
    /// states at once, however many are stored.
    fn page(
        &self,
        keep: &dyn Fn(&RecordingMeta) -> bool,
        after: Option<&PageKey>,
        limit: usize,
    ) -> Result<(Vec<RecordingMeta>, bool), RecordingStoreError>;
    /// Deletes recordings last written before `before` (Unix seconds),
    /// each leaving a mark that its id was used ([`Self::retired`]);
    /// returns how many.
    fn prune(&self, before: i64) -> Result<u64, RecordingStoreError>;
    /// Whether `session` was recorded here and pruned: its id may not be
    /// recorded again.
    fn retired(&self, session: &SessionId) -> Result<bool, RecordingStoreError>;
}
