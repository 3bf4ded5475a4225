//! Route paths of the CA's HTTP interface (axum path syntax).

/// `POST`: ask for access. `GET` (session token): pending requests the
/// signed-in user may decide.
pub const REQUESTS: &str = "/v1/requests";
/// `POST` [`crate::api::CreateDecision`]: approve or deny (confirmed on
/// the decision's page with the approver's own key).
pub const DECISIONS: &str = "/v1/requests/{id}/decisions";
/// `GET` (secret), `…/summary`, `…/mfa/start|finish`, as for revocations.
pub const DECISION: &str = "/v1/decisions/{id}";
pub const DECISION_SUMMARY: &str = "/v1/decisions/{id}/summary";
pub const DECISION_MFA_START: &str = "/v1/decisions/{id}/mfa/start";
pub const DECISION_MFA_FINISH: &str = "/v1/decisions/{id}/mfa/finish";
/// Page: approve or deny a request (the approver types their name).
pub const APPROVE_PAGE: &str = "/approve/{id}";
/// Page: confirm a decision made with `jit-ssh approve|deny`.
pub const DECIDE_PAGE: &str = "/decide/{id}";
/// `GET ?wait=SECONDS` with `Authorization: Bearer SECRET`: status, and the
/// certificate once issued. `DELETE` (same header): cancel it.
pub const REQUEST: &str = "/v1/requests/{id}";
/// `GET`: what the MFA page shows (no secret needed, nothing secret in it).
pub const REQUEST_SUMMARY: &str = "/v1/requests/{id}/summary";
/// `POST`: begin the WebAuthn assertion for this request.
pub const MFA_START: &str = "/v1/requests/{id}/mfa/start";
/// `POST`: finish it with the browser's assertion.
pub const MFA_FINISH: &str = "/v1/requests/{id}/mfa/finish";
/// `GET`: the TrustedUserCAKeys lines, and the same keys as a signed
/// [`crate::signed::CaKeySet`] (what `jit-ssh host sync` installs).
pub const CA_KEYS: &str = "/v1/ca-keys";
/// `GET`: who an invite is for (the enrollment page shows it).
pub const INVITE: &str = "/v1/enroll/{token}";
/// `POST`: begin registering a credential with an invite.
pub const ENROLL_START: &str = "/v1/enroll/{token}/start";
/// `POST`: finish it.
pub const ENROLL_FINISH: &str = "/v1/enroll/{token}/finish";
/// `GET`: the current KRL (OpenSSH format). `ETag` is `"v<VERSION>"`, the
/// version is also in [`KRL_VERSION_HEADER`]; `If-None-Match` gives 304.
pub const KRL: &str = "/v1/krl";
/// `GET`: a detached SSHSIG over the KRL bytes by the CA key, namespace
/// [`KRL_NAMESPACE`] (OpenSSH 9.4+ refuses signatures inside KRLs).
pub const KRL_SIG: &str = "/v1/krl.sig";
pub const KRL_NAMESPACE: &str = "jit-ssh-krl@jit-ssh";
/// `GET`: a signed [`crate::signed::KrlManifest`] naming the current KRL's
/// version, digest, size and signing time (what `jit-ssh host sync` checks).
pub const KRL_MANIFEST: &str = "/v1/krl.manifest";
pub const KRL_VERSION_HEADER: &str = "x-jit-ssh-krl-version";
/// `POST`: ask to revoke; `GET …/{id}` (secret), `…/summary`, `…/mfa/start|finish`.
pub const REVOCATIONS: &str = "/v1/revocations";
pub const REVOCATION: &str = "/v1/revocations/{id}";
pub const REVOCATION_SUMMARY: &str = "/v1/revocations/{id}/summary";
pub const REVOCATION_MFA_START: &str = "/v1/revocations/{id}/mfa/start";
pub const REVOCATION_MFA_FINISH: &str = "/v1/revocations/{id}/mfa/finish";
pub const REVOKE_PAGE: &str = "/revoke/{id}";
/// `POST`: sign in (read the audit log, decide requests); `GET …/{id}`
/// (secret), `…/summary`, `…/mfa/start|finish` as for revocations;
/// `DELETE …/{id}` with the session token `ID.SECRET`: sign out.
pub const SESSIONS: &str = "/v1/sessions";
pub const SESSION: &str = "/v1/sessions/{id}";
pub const SESSION_SUMMARY: &str = "/v1/sessions/{id}/summary";
pub const SESSION_MFA_START: &str = "/v1/sessions/{id}/mfa/start";
pub const SESSION_MFA_FINISH: &str = "/v1/sessions/{id}/mfa/finish";
pub const SIGNIN_PAGE: &str = "/signin/{id}";
/// `GET` with a session token: records matching `user`, `host`,
/// `account`, `serial`, `grant`, `kind` (comma-separated), `since`,
/// `until` (RFC 3339), `cursor`, `limit`.
pub const AUDIT: &str = "/v1/audit";
/// `GET` (auditor, security, admin): the chain as JSON lines from `since`
/// (RFC 3339, optional) to a checkpoint the CA signs for this export.
pub const AUDIT_EXPORT: &str = "/v1/audit/export";
/// `POST` [`crate::hosts::HostEnrollStart`]: a host with a token asks to enroll.
pub const HOSTS_ENROLL: &str = "/v1/hosts/enroll";
/// `POST` [`crate::hosts::HostEnrollFinish`]: it proves its host key.
pub const HOST_ENROLL_FINISH: &str = "/v1/hosts/enroll/{id}";
/// `POST` [`crate::host_checkin::HostCheckinStart`]: an enrolled host asks
/// for a nonce to check in with (host sync, every 30 s).
pub const HOSTS_CHECKIN: &str = "/v1/hosts/checkin";
/// `POST` [`crate::host_checkin::HostCheckin`]: it proves its key and
/// current certificate, reports what it holds, and may get a new certificate.
pub const HOST_CHECKIN_FINISH: &str = "/v1/hosts/checkin/{id}";
/// `GET` (session token; security, auditor, admin): the host inventory.
pub const HOSTS: &str = "/v1/hosts";
/// `GET ?pattern=GLOB` (session token): what the signed-in user may
/// reach and what approval each would need now ([`crate::reach`]).
pub const REACH: &str = "/v1/reach";
/// `GET`: the signed host CA key set (clients' known_hosts).
pub const HOST_CA_KEYS: &str = "/v1/host-ca-keys";
/// `GET`: liveness.
pub const HEALTH: &str = "/healthz";
/// The process is alive (what `/healthz` always said).
pub const LIVEZ: &str = "/livez";
/// 200 when the CA can issue (key signs, audit log takes appends, store
/// answers), 503 naming the failed checks otherwise.
pub const READYZ: &str = "/readyz";
/// Prometheus metrics (text exposition format).
pub const METRICS: &str = "/metrics";

/// Pages for people. `/`: what this CA is, how to enroll, and the
/// requests waiting for an approver (after a sign-in).
pub const HOME_PAGE: &str = "/";
pub const ENROLL_PAGE: &str = "/enroll/{token}";
pub const MFA_PAGE: &str = "/mfa/{id}";
pub const SCRIPT: &str = "/static/jit-ssh.js";
/// Times and WebAuthn failures in words; loaded before [`SCRIPT`].
pub const UI_SCRIPT: &str = "/static/jit-ssh-ui.js";

/// Fills `{name}` in a route with a value.
pub fn fill(route: &str, name: &str, value: &str) -> String {
    route.replace(&format!("{{{name}}}"), value)
}
/// `GET` (session token; auditor, security, admin): stored session
/// recordings, filtered by `user`, `host`, `grant`, `since`.
pub const RECORDINGS: &str = "/v1/recordings";
/// `POST` [`crate::recordings::RecordingUpload`] (a host's recorder; the
/// chunks' host signatures are the authentication); `GET` (session token;
/// auditor, security, admin): [`crate::recordings::RecordingDownload`].
pub const RECORDING: &str = "/v1/recordings/{session}";
