//! The CA server's configuration: parsed from TOML ([`file`]), then checked
//! as a whole so `check-config` can report every problem with its line.

pub mod connections;
pub mod dev;
pub mod file;
pub mod hosts;
pub mod metrics;
pub mod recordings;
mod rules;
mod schedules;
pub mod sessions;
pub mod storage;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::policy::Policy;
use crate::profile::CertProfile;

/// Certificates never live longer than this, whatever a rule says.
pub const HARD_MAX_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerConfig {
    File {
        path: PathBuf,
        passphrase_file: Option<PathBuf>,
    },
    /// A key pair on a PKCS#11 token.
    Pkcs11(crate::signer::pkcs11::TokenKeyConfig),
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_minute_per_user: u32,
    pub requests_per_minute_per_address: u32,
    pub request_ttl: Duration,
    pub invite_ttl: Duration,
    /// How long a confirmed sign-in (audit reading, approving) lasts.
    pub session_ttl: Duration,
    /// How long a request waits for its approvers once MFA is done.
    pub approval_ttl: Duration,
    /// How often the CA signs the audit chain's head (when it moved).
    pub checkpoint_interval: Duration,
    /// How long ended state stays in the store (the audit log keeps it).
    pub state_retention: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests_per_minute_per_user: 10,
            requests_per_minute_per_address: 60,
            request_ttl: Duration::from_secs(300),
            invite_ttl: Duration::from_secs(86_400),
            session_ttl: Duration::from_secs(900),
            approval_ttl: Duration::from_secs(1800),
            checkpoint_interval: Duration::from_secs(300),
            state_retention: Duration::from_secs(7 * 86_400),
        }
    }
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Without a trailing slash.
    pub public_url: Url,
    pub data_dir: PathBuf,
    pub signer: SignerConfig,
    /// Public key files published beside the signing key.
    pub publish_ca_keys: Vec<PathBuf>,
    pub tls: Option<TlsConfig>,
    pub limits: Limits,
    pub connections: connections::ConnectionLimits,
    pub hosts: hosts::HostsConfig,
    pub metrics: metrics::MetricsConfig,
    /// The host session wrapper certificates' `force-command` runs.
    pub sessions: sessions::SessionsConfig,
    /// How long session recordings are kept.
    pub recordings: recordings::RecordingsConfig,
    /// Where the state store lives (embedded sled or PostgreSQL).
    pub storage: storage::StorageConfig,
    pub profile: CertProfile,
    pub policy: Policy,
    /// On-call schedules by name.
    pub schedules: BTreeMap<String, crate::oncall::ScheduleConfig>,
    pub notify: Vec<crate::notify::NotifyTarget>,
}

impl Config {
    /// The public URL with a path appended.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }
}

/// One problem in a config file, with its 1-based line when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {} problem(s):\n{}", source_name, problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors {
    pub source_name: String,
    pub problems: Vec<Problem>,
}

struct Collector<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Collector<'_> {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let line = self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        self.problems.push(Problem {
            line: Some(line),
            message: message.into(),
        });
    }

    fn duration(&mut self, value: &toml::Spanned<String>, what: &str) -> Option<Duration> {
        match jit_ssh_proto::parse_duration(value.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.at(value.span(), format!("{what}: {e}"));
                None
            }
        }
    }
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        source_name: name.clone(),
        problems: vec![Problem {
            line: None,
            message: format!("cannot read it: {e}"),
        }],
    })?;
    parse(&text, &name)
}

/// Parses and checks config text; relative paths stay as written.
pub fn parse(text: &str, source_name: &str) -> Result<Config, ConfigErrors> {
    let fail = |problems| ConfigErrors {
        source_name: source_name.to_owned(),
        problems,
    };
    let file: file::ConfigFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        fail(vec![Problem {
            line,
            message: e.message().to_owned(),
        }])
    })?;
    let mut c = Collector {
        text,
        problems: Vec::new(),
    };
    let config = validate(file, &mut c);
    match config {
        Some(config) if c.problems.is_empty() => Ok(config),
        _ => Err(fail(c.problems)),
    }
}

fn validate(f: file::ConfigFile, c: &mut Collector<'_>) -> Option<Config> {
    let listen: Option<SocketAddr> = match f.listen.get_ref().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            c.at(
                f.listen.span(),
                format!(
                    "listen: {:?} is not an address like 127.0.0.1:8722",
                    f.listen.get_ref()
                ),
            );
            None
        }
    };
    if let Some(a) = listen {
        if !a.ip().is_loopback() && f.tls.is_none() {
            c.at(
                f.listen.span(),
                format!("listen: {a} is not loopback, so [tls] is required (plain HTTP only on loopback)"),
            );
        }
    }
    let public_url = match Url::parse(f.public_url.get_ref()) {
        Ok(u)
            if u.scheme() == "https"
                || (u.scheme() == "http" && u.host_str() == Some("localhost")) =>
        {
            Some(u)
        }
        Ok(_) => {
            c.at(
                f.public_url.span(),
                "public_url: must be https (http only for http://localhost, which WebAuthn treats as secure)",
            );
            None
        }
        Err(e) => {
            c.at(f.public_url.span(), format!("public_url: {e}"));
            None
        }
    };
    let limits = limits(&f.limits, c);
    let connections = connections::limits(&f.connections, c);
    let hosts = hosts::hosts(&f.hosts, c);
    let metrics = metrics::metrics(&f.metrics, c);
    let sessions = sessions::sessions(&f.sessions, c);
    let recordings = recordings::recordings(&f.recordings, c);
    let storage = storage::storage(&f.storage, c);
    let skew = f
        .limits
        .clock_skew
        .as_ref()
        .and_then(|s| c.duration(s, "clock_skew"));
    let policy = rules::policy(&f, c);
    let schedules = schedules::schedules(&f, &policy, c);
    let notify = schedules::notify(&f, c);
    Some(Config {
        listen: listen?,
        public_url: public_url?,
        data_dir: f.data_dir,
        signer: f.ca_key.checked(),
        publish_ca_keys: f.publish_ca_keys,
        tls: f.tls.map(|t| TlsConfig {
            cert: t.cert,
            key: t.key,
        }),
        limits,
        connections,
        hosts,
        metrics,
        sessions,
        recordings,
        storage,
        profile: CertProfile {
            clock_skew: skew.unwrap_or(Duration::from_secs(60)),
            max_ttl: HARD_MAX_TTL,
        },
        policy,
        schedules,
        notify,
    })
}

fn limits(l: &file::LimitsFile, c: &mut Collector<'_>) -> Limits {
    let d = Limits::default();
    // A duration field: its value if given and valid, else the default
    // (an invalid one is reported by `c.duration`).
    let mut dur = |v: &Option<toml::Spanned<String>>, name: &str, default: Duration| {
        v.as_ref()
            .and_then(|s| c.duration(s, name))
            .unwrap_or(default)
    };
    Limits {
        requests_per_minute_per_user: l
            .requests_per_minute_per_user
            .unwrap_or(d.requests_per_minute_per_user),
        requests_per_minute_per_address: l
            .requests_per_minute_per_address
            .unwrap_or(d.requests_per_minute_per_address),
        request_ttl: dur(&l.request_ttl, "request_ttl", d.request_ttl),
        invite_ttl: dur(&l.invite_ttl, "invite_ttl", d.invite_ttl),
        session_ttl: dur(&l.session_ttl, "session_ttl", d.session_ttl),
        approval_ttl: dur(&l.approval_ttl, "approval_ttl", d.approval_ttl),
        checkpoint_interval: dur(
            &l.checkpoint_interval,
            "checkpoint_interval",
            d.checkpoint_interval,
        ),
        state_retention: dur(&l.state_retention, "state_retention", d.state_retention),
    }
}

/// The least a config file needs, for the section parsers' tests to
/// add their section to.
#[cfg(test)]
pub(crate) const TEST_BASE: &str = r#"
listen = "127.0.0.1:8722"
public_url = "http://localhost:8722"
data_dir = "/var/lib/jit-ssh"
ca_key = { kind = "file", path = "/var/lib/jit-ssh/ca/ca_key" }
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Approval, Role};

    const GOOD: &str = r#"
listen = "127.0.0.1:8722"
public_url = "http://localhost:8722"
data_dir = "/var/lib/jit-ssh"
ca_key = { kind = "file", path = "/var/lib/jit-ssh/ca/ca_key" }

[[users]]
name = "alice"
groups = ["sre"]
roles = ["engineer", "approver"]

[host_groups.dev]
hosts = ["*.dev"]
accounts = ["oncall", "{user}"]

[[rules]]
groups = ["sre"]
host_groups = ["dev"]
max_ttl = "30m"
"#;

    #[test]
    fn a_token_key_is_configured_by_labels_and_a_pin_file_never_a_pin() {
        let token = r#"ca_key = { kind = "pkcs11", module = "/usr/lib/softhsm/libsofthsm2.so", token_label = "jit-ssh", key_label = "user-ca", pin_file = "/etc/jit-ssh/pin" }"#;
        let text = GOOD.replace(
            r#"ca_key = { kind = "file", path = "/var/lib/jit-ssh/ca/ca_key" }"#,
            token,
        ) + "\n[hosts]\nhost_ca_key = { kind = \"pkcs11\", module = \"/m.so\", token_label = \"jit-ssh\", key_label = \"host-ca\", pin_file = \"/etc/jit-ssh/pin\" }\n";
        let c = parse(&text, "t").unwrap();
        let SignerConfig::Pkcs11(k) = &c.signer else {
            panic!("{:?}", c.signer)
        };
        assert_eq!(
            (k.token_label.as_str(), k.key_label.as_str()),
            ("jit-ssh", "user-ca")
        );
        assert!(
            matches!(&c.hosts.host_ca_key, Some(SignerConfig::Pkcs11(h)) if h.key_label == "host-ca")
        );
        // A PIN written into the config is refused, not ignored.
        let with_pin = text.replace(
            r#"pin_file = "/etc/jit-ssh/pin" }"#,
            r#"pin_file = "/p", pin = "1234" }"#,
        );
        let e = parse(&with_pin, "t").unwrap_err().to_string();
        assert!(e.contains("unknown field `pin`"), "{e}");
        // A bare path is still the host CA key file.
        let c = parse(
            &(GOOD.to_owned() + "\n[hosts]\nhost_ca_key = \"/k\"\n"),
            "t",
        )
        .unwrap();
        assert_eq!(
            c.hosts.host_ca_key,
            Some(SignerConfig::File {
                path: "/k".into(),
                passphrase_file: None
            })
        );
    }

    #[test]
    fn the_documented_example_is_valid() {
        let text = include_str!("../../../../docs/ca.example.toml");
        let c = parse(text, "docs/ca.example.toml").unwrap();
        assert_eq!(c.limits.state_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(c.policy.rules.len(), 3);
        assert_eq!((c.schedules.len(), c.notify.len()), (2, 2));
        assert!(c.tls.is_some());
    }

    #[test]
    fn approval_schedules_and_notifications_are_checked() {
        let bad = format!(
            "{GOOD}{}",
            r#"
[[rules]]
groups = ["sre"]
host_groups = ["dev"]
max_ttl = "10m"
approval = "oncall"
schedule = "nope"

[[rules]]
groups = ["sre"]
host_groups = ["dev"]
max_ttl = "10m"
approval = "oncall"
schedule = "rota"
fallback = "approvers"

[[rules]]
groups = ["sre"]
host_groups = ["dev"]
max_ttl = "10m"
approval = "approvers"
approvers = ["ghosts"]
break_glass = true
break_glass_max_ttl = "20m"

[schedules.rota]
kind = "rotation"
members = ["alice", "mallory"]
shift = "7d"
handoff = "next monday"
time_zone = "Mars/Olympus"

[schedules.feed]
kind = "ical"
source = "http://example.com/feed.ics"
"#
        );
        let e = parse(&bad, "bad.toml").unwrap_err().to_string();
        for want in [
            "schedule \"nope\" is not defined",
            "approvers (user groups who may approve) is empty",
            "no user is in group \"ghosts\"",
            "break_glass_max_ttl must be more than 0s and at most max_ttl",
            "break_glass needs a [[notify]] target",
            "member \"mallory\" is not in [[users]]",
            "must be https",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn a_good_config_loads() {
        let c = parse(GOOD, "good.toml").unwrap();
        assert_eq!(c.listen.port(), 8722);
        assert_eq!(c.policy.rules[0].max_ttl, Duration::from_secs(1800));
        assert_eq!(c.policy.rules[0].approval, Approval::None);
        assert!(c.policy.roles("alice").contains(&Role::Approver));
    }

    #[test]
    fn session_policy_defaults_to_end_at_expiry_and_is_checked() {
        use crate::policy::{Recording, SessionPolicy};
        // A policy written before sessions existed still loads.
        let c = parse(GOOD, "good.toml").unwrap();
        assert_eq!(c.policy.rules[0].session, SessionPolicy::default());
        assert!(c.policy.rules[0].session.end_at_expiry);
        assert_eq!(c.policy.rules[0].session.record, Recording::Output);
        assert_eq!(c.sessions.wrapper, sessions::DEFAULT_WRAPPER);
        let text = format!(
            "{}\nsession = {{ end_at_expiry = false, record = \"full\" }}\n\n[sessions]\nwrapper = \"/opt/bin/jit-ssh-host session --dir /srv/jit\"\n",
            GOOD.trim_end()
        );
        let c = parse(&text, "s.toml").unwrap();
        assert_eq!(
            c.policy.rules[0].session,
            SessionPolicy {
                end_at_expiry: false,
                record: Recording::Full
            }
        );
        assert_eq!(
            c.sessions.wrapper,
            "/opt/bin/jit-ssh-host session --dir /srv/jit"
        );
        let bad = format!(
            "{}\nsession = {{ record = \"keystrokes\" }}\n\n[sessions]\nwrapper = \"jit-ssh-host session\"\n",
            GOOD.trim_end()
        );
        let e = parse(&bad, "bad.toml").unwrap_err().to_string();
        for want in [
            "rules[0]: session: record \"keystrokes\" is not",
            "sessions.wrapper \"jit-ssh-host session\" must start with an absolute path",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let text = GOOD.replace("max_ttl = \"30m\"", "max_ttl = \"30m\"\nmax_tll = \"1h\"");
        let e = parse(&text, "c.toml").unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert!(
            e.problems[0].message.contains("unknown field `max_tll`"),
            "{e}"
        );
        assert_eq!(e.problems[0].line, Some(20)); // the max_tll line
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = GOOD
            .replace("127.0.0.1:8722", "0.0.0.0:8722")
            .replace("\"engineer\", \"approver\"", "\"engineer\", \"wizard\"")
            .replace("\"*.dev\"", "\"*.dev\", \"bad,host\"")
            .replace(
                "host_groups = [\"dev\"]",
                "host_groups = [\"dev\", \"prod\"]",
            )
            .replace("\"30m\"", "\"2h\"");
        let e = parse(&text, "c.toml").unwrap_err();
        let all = e.to_string();
        for needle in [
            "line 2: listen",
            "line 10: users.alice: unknown role \"wizard\"",
            "bad,host",
            "\"prod\" is not defined",
            "over the hard cap",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(e.problems.len(), 5, "{all}");
    }

    #[test]
    fn state_retention_defaults_to_a_week_and_is_checked() {
        assert_eq!(
            parse(GOOD, "c.toml").unwrap().limits.state_retention,
            Duration::from_secs(7 * 86_400)
        );
        let text = format!("{GOOD}\n[limits]\nstate_retention = \"36h\"\n");
        assert_eq!(
            parse(&text, "c.toml").unwrap().limits.state_retention,
            Duration::from_secs(36 * 3600)
        );
        let text = format!("{GOOD}\n[limits]\nstate_retention = \"soon\"\n");
        let e = parse(&text, "c.toml").unwrap_err().to_string();
        assert!(e.contains("state_retention"), "{e}");
    }

    #[test]
    fn recordings_retention_defaults_to_90_days_and_is_checked() {
        let day = 86_400;
        assert_eq!(
            parse(GOOD, "c.toml").unwrap().recordings.retention,
            Duration::from_secs(90 * day)
        );
        let text = format!("{GOOD}\n[recordings]\nretention = \"30d\"\n");
        assert_eq!(
            parse(&text, "c.toml").unwrap().recordings.retention,
            Duration::from_secs(30 * day)
        );
        let text = format!("{GOOD}\n[recordings]\nretention = \"forever\"\n");
        let e = parse(&text, "c.toml").unwrap_err().to_string();
        assert!(e.contains("recordings.retention"), "{e}");
    }
}
