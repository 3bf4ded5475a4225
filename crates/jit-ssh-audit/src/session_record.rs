//! What the audit chain says about a recorded SSH session: that it began
//! (which grant, certificate and host) and how it ended, with the
//! recording's final chain hash and the host's signature over it, so the
//! audit chain vouches for every recorded byte.

use serde::{Deserialize, Serialize};

/// Who, where and under which grant a session ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSubject {
    /// The recording's session id (as the host recorder named it).
    pub session: String,
    pub user: String,
    pub host: String,
    pub account: String,
    /// The certificate's serial.
    pub serial: u64,
    pub key_id: String,
    pub grant: String,
}

/// `session_started`: the first chunks of a session's recording arrived,
/// signed by the enrolled key of the host the header names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStarted {
    #[serde(flatten)]
    pub subject: SessionSubject,
    /// The session policy's record mode: `output` or `full`.
    pub record: String,
    /// SHA256 fingerprint of the host key the chunks are signed with.
    pub host_key_fingerprint: String,
    /// Unix seconds, from the recording's header.
    pub started_at: u64,
}

/// `session_ended`: the recording's last chunk arrived and verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnded {
    #[serde(flatten)]
    pub subject: SessionSubject,
    /// `exit`, `expiry`, `revoked`, `recorder-lost` or `spool-full`.
    pub reason: String,
    pub output_bytes: u64,
    pub input_bytes: u64,
    pub chunks: u64,
    /// Seconds from the session's start to its end.
    pub duration_secs: u64,
    /// The recording's final chain hash (hex): its last chunk's.
    pub final_hash: String,
    /// The host's SSHSIG over that last chunk (armored).
    pub final_signature: String,
}
