//! Session recordings: what a host's recorder uploads and what auditors
//! read back (docs/recordings.md, docs/recording-format.md).

use serde::{Deserialize, Serialize};

/// The most bytes one upload body may have (the only route above the
/// global 16 KiB limit).
pub const MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024;
/// The most chunks one upload may carry.
pub const MAX_UPLOAD_CHUNKS: usize = 1024;

/// `POST /v1/recordings/{session}`: the recording's header line (the same
/// on every upload of a session) and chunks in order, each the base64 of
/// its stored form (`Chunk::to_bytes`). Chunks already stored may be sent
/// again (identical: accepted; different: 409).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingUpload {
    pub header: String,
    pub chunks: Vec<String>,
}

/// The answer to an upload: the index the next chunk must have, and
/// whether the end chunk is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingUploaded {
    pub next_index: u64,
    pub ended: bool,
}

/// Recordings in one `GET /v1/recordings` answer unless `limit` says.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// The most recordings one answer holds.
pub const MAX_LIST_LIMIT: usize = 1000;

/// `GET /v1/recordings` filters (all optional; `since`: RFC 3339, the
/// session started at or after it), and the page: at most `limit`
/// recordings (1 to [`MAX_LIST_LIMIT`], default [`DEFAULT_LIST_LIMIT`]),
/// after the cursor `after` (a previous answer's `next`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingParams {
    pub user: Option<String>,
    pub host: Option<String>,
    pub grant: Option<String>,
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// One stored recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingSummary {
    pub session: String,
    pub user: String,
    pub host: String,
    pub account: String,
    pub grant: String,
    #[serde(with = "crate::serial")]
    pub serial: u64,
    pub key_id: String,
    /// `output` or `full`.
    pub record: String,
    /// RFC 3339, from the recording's header.
    pub started_at: String,
    /// RFC 3339 when the end chunk arrived; absent while open.
    pub ended_at: Option<String>,
    /// `exit`, `expiry`, `revoked`, `recorder-lost`, `spool-full`; absent while open.
    pub reason: Option<String>,
    pub chunks: u64,
    /// Bytes stored at the CA (framed chunks).
    pub stored_bytes: u64,
    /// Terminal output bytes the recorder read (known once ended).
    pub output_bytes: Option<u64>,
}

/// `GET /v1/recordings`: one page, newest first (by when the CA first
/// received the session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingList {
    pub recordings: Vec<RecordingSummary>,
    /// The cursor of the next page (pass it as `after`); absent on the
    /// last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /v1/recordings/{session}`: the recording as a bundle and what an
/// auditor needs to verify it without trusting this answer's transport
/// alone: the host key the CA verified it with, and the final hash the
/// `session_ended` audit record holds (with that record's sequence
/// number, to check against an audit export).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingDownload {
    pub summary: RecordingSummary,
    /// The enrolled host public key (OpenSSH line).
    pub host_key: String,
    /// The host key's SHA256 fingerprint as the `session_started` audit
    /// record names it (empty if the audit log has none).
    pub host_key_fingerprint: String,
    /// From the `session_ended` audit record; absent while open.
    pub final_hash: Option<String>,
    pub session_ended_seq: Option<u64>,
    /// Base64 of the bundle (`jit-ssh-recording/1`, docs/recording-format.md).
    pub bundle: String,
}
