//! Prometheus metrics: every metric the CA exports is declared here, with
//! its help text, and served as text at `/metrics` ([`crate::http`]).
//!
//! The recorder is `metrics-exporter-prometheus`'s, kept per [`Metrics`]
//! and never installed as the process-wide one: two CAs in one process
//! (tests) count apart, and nothing outside the CA can write into it.
//!
//! Labels take only values from fixed sets (outcomes, error codes, route
//! templates, configured schedule names): never a user, host, request id
//! or token. That bounds the number of series, and a scrape reveals no
//! one's name.
//!
//! Counting happens where the outcome is known without touching the
//! service: the HTTP layer ([`http`]: routes, WebAuthn ceremonies,
//! rate-limit refusals), the audit log wrapper ([`audit`]: durable
//! events, append latency), and a hook in the disk log (group sizes).
//! Gauges of state (KRL, hosts, feeds, connections) are read at scrape
//! time ([`scrape`]).

pub mod audit;
pub mod http;
mod scrape;

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::policy::{Decision, DenyReason};

pub const HTTP_REQUESTS: &str = "jit_ssh_http_requests_total";
pub const REQUESTS_CREATED: &str = "jit_ssh_access_requests_created_total";
pub const POLICY_DECISIONS: &str = "jit_ssh_policy_decisions_total";
pub const APPROVER_DECISIONS: &str = "jit_ssh_approver_decisions_total";
pub const REQUESTS_ENDED: &str = "jit_ssh_access_requests_ended_total";
pub const CERTS_ISSUED: &str = "jit_ssh_certificates_issued_total";
pub const ISSUANCE_SECONDS: &str = "jit_ssh_certificate_issuance_duration_seconds";
pub const REVOCATIONS: &str = "jit_ssh_revocations_total";
pub const AUDIT_APPEND_SECONDS: &str = "jit_ssh_audit_append_duration_seconds";
pub const AUDIT_APPEND_FAILURES: &str = "jit_ssh_audit_append_failures_total";
pub const AUDIT_GROUP_RECORDS: &str = "jit_ssh_audit_commit_group_records";
pub const CEREMONIES: &str = "jit_ssh_webauthn_ceremonies_total";
pub const RATE_LIMITED: &str = "jit_ssh_rate_limited_total";
pub const KRL_VERSION: &str = "jit_ssh_krl_version";
pub const KRL_BYTES: &str = "jit_ssh_krl_bytes";
pub const KRL_REVOKED: &str = "jit_ssh_krl_revoked_serials";
pub const KRL_SIGNED_AGE: &str = "jit_ssh_krl_signed_age_seconds";
pub const NOTIFICATIONS: &str = "jit_ssh_notifications_total";
pub const NOTIFICATION_ATTEMPT_FAILURES: &str = "jit_ssh_notification_attempt_failures_total";
pub const FEED_AGE: &str = "jit_ssh_oncall_feed_age_seconds";
pub const FEED_LOADED: &str = "jit_ssh_oncall_feed_loaded";
pub const FEED_ERRORS: &str = "jit_ssh_oncall_feed_load_errors_total";
pub const CONNECTIONS_OPEN: &str = "jit_ssh_connections_open";
pub const HOSTS_ENROLLED: &str = "jit_ssh_hosts_enrolled";
pub const HOSTS_BEHIND_ON_KRL: &str = "jit_ssh_hosts_behind_on_krl";
pub const HOSTS_SILENT: &str = "jit_ssh_hosts_silent";
pub const SCRAPE_ERRORS: &str = "jit_ssh_metrics_scrape_errors_total";
pub const RECORDINGS_FREE: &str = "jit_ssh_recordings_free_bytes";
pub const RECORDINGS_FLOOR: &str = "jit_ssh_recordings_floor_bytes";
pub const RECORDINGS_BELOW_FLOOR: &str = "jit_ssh_recordings_below_floor";
pub const RECORDINGS_FREE_INODES: &str = "jit_ssh_recordings_free_inodes";
pub const RECORDINGS_FLOOR_INODES: &str = "jit_ssh_recordings_floor_inodes";

/// (name, help) of every counter.
const COUNTERS: &[(&str, &str)] = &[
    (HTTP_REQUESTS, "HTTP requests answered, by route template and status code."),
    (REQUESTS_CREATED, "Access requests created (recorded in the audit log)."),
    (POLICY_DECISIONS, "Policy decisions on access requests after the requester's touch, by outcome (approved, pending_approval, denied) and, for denials, reason."),
    (APPROVER_DECISIONS, "Approvers' recorded decisions on pending requests, by outcome."),
    (REQUESTS_ENDED, "Access requests that ended without a certificate, by outcome (expired, cancelled)."),
    (CERTS_ISSUED, "User certificates issued (each recorded durably in the audit log first)."),
    (REVOCATIONS, "Revocations recorded (serial, grant, user or key id)."),
    (AUDIT_APPEND_FAILURES, "Audit log appends that failed (the operation they recorded did not happen)."),
    (CEREMONIES, "WebAuthn ceremonies finished, by ceremony (access_request, decision, revocation, sign_in, enrollment) and result (ok, or the error code)."),
    (RATE_LIMITED, "Requests refused by a rate limit (HTTP 429), by route template."),
    (NOTIFICATIONS, "Notifications finished, by target kind and result (delivered, or failed after every retry)."),
    (NOTIFICATION_ATTEMPT_FAILURES, "Notification delivery attempts that failed (each is retried until the last), by target kind."),
    (FEED_ERRORS, "Failed loads of an on-call feed (fetch, read or parse), by schedule."),
    (SCRAPE_ERRORS, "State the last scrapes could not read (KRL, host inventory, recordings' free space), by what."),
];

/// (name, help) of every gauge.
const GAUGES: &[(&str, &str)] = &[
    (KRL_VERSION, "Version of the KRL the CA publishes (grows with each revocation or expiry)."),
    (KRL_BYTES, "Size in bytes of the published KRL (sshd reads it on every login)."),
    (KRL_REVOKED, "Certificate serials listed in the published KRL (revoked and not yet expired)."),
    (KRL_SIGNED_AGE, "Seconds since the published KRL and its signature were made."),
    (FEED_AGE, "Seconds since the on-call feed of a schedule last loaded successfully (absent until it has)."),
    (FEED_LOADED, "Whether a schedule's on-call feed holds a good copy (1) or never loaded (0)."),
    (CONNECTIONS_OPEN, "HTTP(S) connections open on the main listener."),
    (HOSTS_ENROLLED, "Hosts in the inventory (enrolled with a host certificate)."),
    (
        HOSTS_BEHIND_ON_KRL,
        "Enrolled hosts behind on revocations, as the inventory flags them: the KRL they last reported was signed longer ago than [hosts] krl_behind_after (before a first check-in: enrolled longer ago).",
    ),
    (
        HOSTS_SILENT,
        "Enrolled hosts not heard from for longer than [hosts] silent_after.",
    ),
    (
        RECORDINGS_FREE,
        "Bytes free on the filesystem of the recordings store (and, usually, the audit log).",
    ),
    (
        RECORDINGS_FLOOR,
        "The free-space floor of the recordings store in bytes ([recordings] min_free, min_free_percent).",
    ),
    (
        RECORDINGS_FREE_INODES,
        "Inodes (files) free on the filesystem of the recordings store (absent where the filesystem has no fixed number).",
    ),
    (
        RECORDINGS_FLOOR_INODES,
        "The free-inode floor of the recordings store ([recordings] min_free_inodes, min_free_percent).",
    ),
    (
        RECORDINGS_BELOW_FLOOR,
        "Whether recording uploads are refused (1: the store is below its byte or inode floor, or its free space cannot be read; hosts keep their chunks and retry).",
    ),
];

/// (name, help, bucket upper bounds) of every histogram.
const HISTOGRAMS: &[(&str, &str, &[f64])] = &[
    (
        ISSUANCE_SECONDS,
        "Time to issue one certificate: serial check, signing and the durable audit record.",
        SECONDS,
    ),
    (
        AUDIT_APPEND_SECONDS,
        "Time for one append (a record, or the records of one step) to become durable (group commit: write and fsync).",
        SECONDS,
    ),
    (
        AUDIT_GROUP_RECORDS,
        "Records per group commit of the audit log (one write and one fsync each).",
        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
    ),
];

const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

pub const DECISION_OUTCOMES: &[&str] = &["approved", "pending_approval", "denied"];
pub const DENY_REASONS: &[&str] = &[
    "unknown_user",
    "blocked",
    "no_rule_for_host",
    "account_not_allowed",
    "ttl_over_cap",
    "not_on_call",
    "break_glass_not_allowed",
];

static META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    issuance: Histogram,
    audit_append: Histogram,
    audit_group: Histogram,
    /// Connections open on the main listener, set by the server.
    connections: OnceLock<Box<dyn Fn() -> usize + Send + Sync>>,
    /// SHA-256 (hex) of the bearer token `/metrics` wants, if any.
    token_hash: OnceLock<String>,
    /// Where the metrics listener is bound, when there is one.
    bound: OnceLock<std::net::SocketAddr>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut builder = PrometheusBuilder::new();
        for (name, _, buckets) in HISTOGRAMS {
            // Only an empty bucket list fails, and none is.
            builder = match builder.set_buckets_for_metric(Matcher::Full((*name).into()), buckets) {
                Ok(b) => b,
                Err(_) => PrometheusBuilder::new(),
            };
        }
        let recorder = builder.build_recorder();
        for (name, help) in COUNTERS {
            recorder.describe_counter((*name).into(), None, (*help).into());
        }
        for (name, help) in GAUGES {
            recorder.describe_gauge((*name).into(), None, (*help).into());
        }
        for (name, help, _) in HISTOGRAMS {
            recorder.describe_histogram((*name).into(), None, (*help).into());
        }
        let handle = recorder.handle();
        let m = Self {
            issuance: recorder.register_histogram(&Key::from_static_name(ISSUANCE_SECONDS), &META),
            audit_append: recorder
                .register_histogram(&Key::from_static_name(AUDIT_APPEND_SECONDS), &META),
            audit_group: recorder
                .register_histogram(&Key::from_static_name(AUDIT_GROUP_RECORDS), &META),
            recorder,
            handle,
            connections: OnceLock::new(),
            token_hash: OnceLock::new(),
            bound: OnceLock::new(),
        };
        m.preregister();
        m
    }

    /// Series that exist from the start at 0, so a rate over them works
    /// from the first scrape rather than from the first event.
    fn preregister(&self) {
        for outcome in DECISION_OUTCOMES {
            let reasons: &[&str] = if *outcome == "denied" {
                DENY_REASONS
            } else {
                &["none"]
            };
            for reason in reasons {
                self.counter(
                    POLICY_DECISIONS,
                    &[("outcome", outcome), ("reason", reason)],
                )
                .increment(0);
            }
        }
        for outcome in ["approved", "denied"] {
            self.counter(APPROVER_DECISIONS, &[("outcome", outcome)])
                .increment(0);
        }
        for outcome in ["expired", "cancelled"] {
            self.counter(REQUESTS_ENDED, &[("outcome", outcome)])
                .increment(0);
        }
        for name in [
            REQUESTS_CREATED,
            CERTS_ISSUED,
            REVOCATIONS,
            AUDIT_APPEND_FAILURES,
        ] {
            self.counter(name, &[]).increment(0);
        }
        for ceremony in http::CEREMONIES_BY_ROUTE.iter().map(|(_, c)| c) {
            self.counter(CEREMONIES, &[("ceremony", ceremony), ("result", "ok")])
                .increment(0);
        }
    }

    pub(crate) fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, (*v).to_owned()))
            .collect();
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &META)
    }

    pub(crate) fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, (*v).to_owned()))
            .collect();
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &META)
    }

    /// A policy decision that was recorded in the audit log.
    pub fn policy_decision(&self, decision: &Decision) {
        let (outcome, reason) = match decision {
            Decision::Allow(_) => ("approved", "none"),
            Decision::NeedsApproval { .. } => ("pending_approval", "none"),
            Decision::Deny(d) => ("denied", deny_reason(d)),
        };
        self.counter(
            POLICY_DECISIONS,
            &[("outcome", outcome), ("reason", reason)],
        )
        .increment(1);
    }

    /// One certificate issued in `took`.
    pub fn issued(&self, took: Duration) {
        self.issuance.record(took.as_secs_f64());
    }

    pub(crate) fn audit_appended(&self, took: Duration) {
        self.audit_append.record(took.as_secs_f64());
    }

    /// A group commit of `records` records (the disk log's hook).
    pub fn audit_group(&self, records: usize) {
        self.audit_group.record(records as f64);
    }

    /// A notification to a target of `kind` finished.
    pub fn notification(&self, kind: &'static str, delivered: bool) {
        let result = if delivered { "delivered" } else { "failed" };
        self.counter(NOTIFICATIONS, &[("target_kind", kind), ("result", result)])
            .increment(1);
    }

    pub fn notification_attempt_failed(&self, kind: &'static str) {
        self.counter(NOTIFICATION_ATTEMPT_FAILURES, &[("target_kind", kind)])
            .increment(1);
    }

    /// Where the number of open connections comes from (the server's
    /// connection guard). Set once.
    pub fn count_connections_with(&self, open: impl Fn() -> usize + Send + Sync + 'static) {
        let _ = self.connections.set(Box::new(open));
    }

    /// The metrics listener's address, once the server bound it.
    pub fn bound(&self) -> Option<std::net::SocketAddr> {
        self.bound.get().copied()
    }

    pub(crate) fn set_bound(&self, addr: std::net::SocketAddr) {
        let _ = self.bound.set(addr);
    }

    /// Makes `/metrics` want `Authorization: Bearer TOKEN`. Set once.
    pub fn require_token(&self, token: &str) {
        let _ = self
            .token_hash
            .set(crate::service::sha256_hex(&[token.trim()]));
    }

    /// Whether a request with this `Authorization` header may read the
    /// metrics; `None` when no token is set.
    pub fn token_ok(&self, authorization: Option<&str>) -> Option<bool> {
        let want = self.token_hash.get()?;
        let given = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(|t| crate::service::sha256_hex(&[t.trim()]));
        Some(given.is_some_and(|g| crate::service::same(&g, want)))
    }

    /// Drains recorded histogram samples into their buckets; a scrape
    /// does it too. Without either, samples pile up in memory, so the
    /// server runs this every few seconds.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

fn deny_reason(d: &DenyReason) -> &'static str {
    match d {
        DenyReason::UnknownUser(_) => "unknown_user",
        DenyReason::Blocked(_) => "blocked",
        DenyReason::NoRuleForHost { .. } => "no_rule_for_host",
        DenyReason::AccountNotAllowed { .. } => "account_not_allowed",
        DenyReason::TtlOverCap { .. } => "ttl_over_cap",
        DenyReason::NotOnCall { .. } => "not_on_call",
        DenyReason::BreakGlassNotAllowed { .. } => "break_glass_not_allowed",
    }
}
