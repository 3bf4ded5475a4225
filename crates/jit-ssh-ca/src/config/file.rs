//! The config file as written: TOML, unknown keys refused, durations as
//! human strings. [`super::validate`] turns it into a checked [`super::Config`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address to listen on, e.g. `127.0.0.1:8722`. Plain HTTP is allowed
    /// only on a loopback address; anything else needs `[tls]`.
    pub listen: Spanned<String>,
    /// The URL people and clients use to reach the CA; its host is the
    /// WebAuthn relying party id, so it must not change once users enroll.
    pub public_url: Spanned<String>,
    /// Where the CA keeps its state (audit log, users, requests).
    pub data_dir: PathBuf,
    /// The CA key.
    pub ca_key: SignerFile,
    /// Public keys hosts should trust besides the CA key (the next CA key
    /// during a rotation, see ca-keys.example): published in the signed key
    /// set, so `jit-ssh host sync` installs them, vouched for by the
    /// current key.
    #[serde(default)]
    pub publish_ca_keys: Vec<PathBuf>,
    /// TLS certificate and key (PEM); required unless `listen` is loopback.
    pub tls: Option<TlsFile>,
    #[serde(default)]
    pub limits: LimitsFile,
    /// Timeouts and the connection cap of the HTTP(S) listener.
    #[serde(default)]
    pub connections: super::connections::ConnectionsFile,
    /// The host CA: enrollment, host certificates.
    #[serde(default)]
    pub hosts: super::hosts::HostsFile,
    /// Where Prometheus scrapes `/metrics`, and the token it sends.
    #[serde(default)]
    pub metrics: super::metrics::MetricsFile,
    /// The host session wrapper (see docs/sessions.md).
    #[serde(default)]
    pub sessions: super::sessions::SessionsFile,
    /// How long session recordings are kept.
    #[serde(default)]
    pub recordings: super::recordings::RecordingsFile,
    /// Where the state store lives: embedded (default) or PostgreSQL.
    #[serde(default)]
    pub storage: super::storage::StorageFile,
    /// Users allowed to use the CA, with their groups and roles.
    #[serde(default)]
    pub users: Vec<UserFile>,
    /// Named sets of hosts and the accounts allowed on them.
    #[serde(default)]
    pub host_groups: BTreeMap<String, Spanned<HostGroupFile>>,
    /// Who may reach which host groups, for how long, with what approval.
    #[serde(default)]
    pub rules: Vec<Spanned<RuleFile>>,
    /// On-call schedules rules can name (`approval = "oncall"`).
    #[serde(default)]
    pub schedules: BTreeMap<String, Spanned<ScheduleFile>>,
    /// Where to send notifications (pending approval, decisions,
    /// break-glass, revocations).
    #[serde(default)]
    pub notify: Vec<Spanned<NotifyFile>>,
}

/// An on-call schedule.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleFile {
    /// An iCalendar feed (PagerDuty, Opsgenie and Grafana OnCall export them).
    Ical {
        /// A file path, or an https URL (http only for localhost).
        source: String,
        /// How often to fetch it again (default "5m").
        refresh: Option<String>,
        /// The zone for times in the feed without one (default "UTC").
        time_zone: Option<String>,
        /// Layer name → text marking that layer's events in their SUMMARY
        /// or CATEGORIES, e.g. `{ primary = "level 1" }`. Without it
        /// every event is layer "all".
        #[serde(default)]
        layers: BTreeMap<String, String>,
    },
    /// Members taking turns.
    Rotation {
        /// jit-ssh user names, in order.
        members: Vec<String>,
        /// Shift length, e.g. "7d" or "12h".
        shift: String,
        /// The first hand-off (local time, e.g. "2026-11-02T09:00:00"):
        /// when the first member starts.
        handoff: String,
        /// IANA zone of the hand-off time (default "UTC").
        time_zone: Option<String>,
        /// The layer name rules count it as (default "primary").
        layer: Option<String>,
    },
}

/// A notification target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    /// "webhook" (generic JSON), "slack" (an incoming-webhook payload in
    /// Slack markup), "mattermost" or "rocketchat" (the same in Markdown).
    pub kind: String,
    /// https (http only for localhost). Kept out of logs: Slack URLs are secrets.
    pub url: String,
    /// Events to send (default all): pending_approval, approved, denied,
    /// break_glass, revoked. break_glass is always sent.
    #[serde(default)]
    pub events: Vec<String>,
}

/// How the CA signs: a key file, or a key pair on a PKCS#11 token.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignerFile {
    File {
        /// OpenSSH private key, mode 0600.
        path: PathBuf,
        /// File holding the key's passphrase, mode 0600.
        passphrase_file: Option<PathBuf>,
    },
    /// An Ed25519 key pair on a PKCS#11 token (an HSM), made there with
    /// `jit-ssh-ca hsm keygen`; the private key never leaves the token.
    Pkcs11 {
        /// The token vendor's PKCS#11 module (a shared library).
        module: PathBuf,
        /// The token's label.
        token_label: String,
        /// The key pair's label (CKA_LABEL).
        key_label: String,
        /// File holding the user PIN, mode 0600. There is no `pin` key:
        /// the PIN never sits in this file.
        pin_file: PathBuf,
    },
}

impl SignerFile {
    pub(super) fn checked(self) -> super::SignerConfig {
        match self {
            SignerFile::File {
                path,
                passphrase_file,
            } => super::SignerConfig::File {
                path,
                passphrase_file,
            },
            SignerFile::Pkcs11 {
                module,
                token_label,
                key_label,
                pin_file,
            } => super::SignerConfig::Pkcs11(crate::signer::pkcs11::TokenKeyConfig {
                module,
                token_label,
                key_label,
                pin_file,
            }),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Confirmed WebAuthn touches per user per minute (default 10). Only
    /// a verified touch counts, so nobody else can spend a user's budget;
    /// unauthenticated work counts per client address instead.
    pub requests_per_minute_per_user: Option<u32>,
    /// New requests, sign-ins, revocations, decisions and WebAuthn
    /// ceremonies per client address per minute (default 60).
    pub requests_per_minute_per_address: Option<u32>,
    /// How long a request may wait for its WebAuthn touch (default "5m").
    pub request_ttl: Option<Spanned<String>>,
    /// How long an enrollment link stays valid (default "24h").
    pub invite_ttl: Option<Spanned<String>>,
    /// How long a sign-in for reading the audit log or deciding requests
    /// lasts once confirmed (default "15m").
    pub session_ttl: Option<Spanned<String>>,
    /// How long a request waits for its approvers after the requester's
    /// touch (default "30m"); approvals expire with it.
    pub approval_ttl: Option<Spanned<String>>,
    /// How often the CA signs a checkpoint of the audit chain, when records
    /// were added since the last one (default "5m"). Also on shutdown and
    /// before every export.
    pub checkpoint_interval: Option<Spanned<String>>,
    /// How long requests, sign-ins, revocations and decisions stay in the
    /// state store after they ended (default "7d"); the audit log keeps
    /// their history for good. Expired WebAuthn ceremonies and enrollment
    /// links go at once.
    pub state_retention: Option<Spanned<String>>,
    /// How far certificates are back-dated for slow host clocks (default "60s").
    pub clock_skew: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserFile {
    pub name: Spanned<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// engineer, approver, security, auditor, admin.
    #[serde(default)]
    pub roles: Vec<Spanned<String>>,
    /// How on-call feeds name this user (their ATTENDEE address), if not
    /// by the user name.
    pub email: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostGroupFile {
    /// Glob patterns over host names (`*` and `?`).
    pub hosts: Vec<String>,
    /// Accounts allowed on these hosts; `{user}` means the requester's own name.
    pub accounts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// User groups this rule applies to.
    pub groups: Vec<String>,
    /// Host groups it opens.
    pub host_groups: Vec<String>,
    /// Optional narrowing of the host groups' accounts.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Longest certificate lifetime, e.g. "15m" (at most "1h").
    pub max_ttl: String,
    /// "none" (issue after MFA), "oncall" (issue at once to whoever is on
    /// call in `schedule`) or "approvers".
    #[serde(default = "default_approval")]
    pub approval: String,
    /// User groups whose members may approve (approval = "approvers", or
    /// "oncall" with fallback = "approvers"). Never the requester.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// How many distinct approvers (default 1).
    pub min_approvals: Option<u32>,
    /// With approval = "oncall": the schedule.
    pub schedule: Option<String>,
    /// With approval = "oncall": the layers that count (default all).
    #[serde(default)]
    pub layers: Vec<String>,
    /// With approval = "oncall", for requesters not on call: "approvers"
    /// or "deny" (default).
    pub fallback: Option<String>,
    /// Allow `jit-ssh login --break-glass`: issued at once after MFA,
    /// marked in the key id and audit log, always notified.
    #[serde(default)]
    pub break_glass: bool,
    /// Longest break-glass certificate (default "15m", at most max_ttl).
    pub break_glass_max_ttl: Option<String>,
    /// Pin certificates to the address the CA saw the request from.
    #[serde(default)]
    pub source_address_pinning: bool,
    /// Certificate extensions (default: permit-pty only).
    #[serde(default)]
    pub extensions: Vec<String>,
    /// What the host's session wrapper does with sessions under this rule
    /// (default: end at expiry, record output).
    pub session: Option<SessionFile>,
}

/// `session = { end_at_expiry = true, record = "off" }` of a rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    /// End the session when the certificate expires (default true).
    pub end_at_expiry: Option<bool>,
    /// "output" (default), "full" (input too: people type passwords) or
    /// "off". Recording needs the host recorder (`jit-ssh-host
    /// recorder`): a host without one refuses the rule's logins.
    pub record: Option<String>,
}

fn default_approval() -> String {
    "none".into()
}
