//! Where the CA keeps session recordings hosts upload: behind
//! [`RecordingStore`], a local directory by default ([`LocalRecordings`],
//! `DATA/recordings/`). The store keeps only chunks the service already
//! verified; it never decides what is authentic (docs/recordings.md).

mod local;
pub mod space;

use serde::{Deserialize, Serialize};

use jit_ssh_recording::{Chunk, SessionId};

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
    /// Every recording's state, newest first.
    fn list(&self) -> Result<Vec<RecordingMeta>, RecordingStoreError>;
    /// Deletes recordings last written before `before` (Unix seconds);
    /// returns how many.
    fn prune(&self, before: i64) -> Result<u64, RecordingStoreError>;
}
