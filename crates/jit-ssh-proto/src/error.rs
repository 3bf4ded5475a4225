//! The one error body of the HTTP API: `{"error": {"code", "message"}}`.
//! Codes are stable and machine-readable; messages are for people.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// Stable error codes.
pub mod code {
    /// The body is not the JSON the endpoint takes (syntax, types, unknown fields).
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// A field's value is not allowed (names, TTL, reason).
    pub const INVALID_FIELD: &str = "invalid_field";
    /// `public_key` is not an OpenSSH ed25519 public key line.
    pub const INVALID_PUBLIC_KEY: &str = "invalid_public_key";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    pub const NOT_FOUND: &str = "not_found";
    /// Missing or wrong request secret.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The user has no enrolled credential.
    pub const NOT_ENROLLED: &str = "not_enrolled";
    /// The user's roles do not allow this (e.g. revoking needs `security`).
    pub const FORBIDDEN: &str = "forbidden";
    /// The user was blocked by a revocation; an admin must re-enable them.
    pub const USER_BLOCKED: &str = "user_blocked";
    /// The request is not in a state that allows this (already decided, expired).
    pub const WRONG_STATE: &str = "wrong_state";
    /// The WebAuthn ceremony failed, was already used, or expired.
    pub const MFA_FAILED: &str = "mfa_failed";
    /// The invite is unknown, used or expired.
    pub const INVITE_INVALID: &str = "invite_invalid";
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Something on the CA side failed; nothing was issued.
    pub const INTERNAL: &str = "internal";
    /// A part the CA depends on (its database) cannot be reached just now;
    /// nothing was issued or changed. Retry, or another replica.
    pub const UNAVAILABLE: &str = "unavailable";
    /// The CA's recordings store is below its free-space floor: nothing of
    /// the upload was stored; keep the chunks and retry later (507).
    pub const INSUFFICIENT_STORAGE: &str = "insufficient_storage";
    /// The path exists but not with this method (the `Allow` header lists
    /// the ones it takes).
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// The request body did not arrive within the CA's body timeout.
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
}
