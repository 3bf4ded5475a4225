//! What can go wrong for an engineer, each with an exit code scripts can
//! rely on and a next step a person can act on.

use std::fmt;

use jit_ssh_proto::text::escape_for_terminal;

#[derive(Debug)]
pub enum ClientError {
    /// `SSH_AUTH_SOCK` unset, or nothing answers on it.
    NoAgent(String),
    /// The CA cannot be reached (network, DNS, TLS).
    CaUnreachable {
        url: String,
        detail: String,
    },
    NotEnrolled(String),
    /// Policy or a role said no.
    Denied(String),
    /// An approver denied the request (their reason).
    DeniedByApprover(String),
    /// Waited too long, or the request expired before approval.
    TimedOut(String),
    /// Ctrl-C; the request was cancelled on the CA.
    Cancelled,
    /// Bad settings or arguments.
    Usage(String),
    /// `host sync` found something it will not install.
    SyncRefused(String),
    /// An audit export failed verification.
    VerifyFailed(String),
    /// `host sync`: the newest KRL this host holds is older than
    /// `--max-age` (by its signed time), whether or not this sync fetched.
    Stale(String),
    /// The CA refused or failed in another way.
    Ca {
        code: String,
        message: String,
    },
    Other(anyhow::Error),
}

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Usage(_) => 2,
            ClientError::NoAgent(_) => 3,
            ClientError::CaUnreachable { .. } => 4,
            ClientError::NotEnrolled(_) => 5,
            ClientError::Denied(_) | ClientError::DeniedByApprover(_) => 6,
            ClientError::TimedOut(_) => 7,
            ClientError::VerifyFailed(_) => 8,
            ClientError::Stale(_) => 9,
            ClientError::Cancelled => 130,
            ClientError::Ca { .. } | ClientError::SyncRefused(_) | ClientError::Other(_) => 1,
        }
    }

    /// The message as `jit-ssh: error:` prints it on a terminal: what it
    /// quotes (a file name from an export being verified, a CA's answer)
    /// is not the client's to trust, so every control character but the
    /// line breaks the message itself has is escaped.
    pub fn for_terminal(&self) -> String {
        self.to_string()
            .split('\n')
            .map(|line| jit_ssh_proto::text::escape_for_terminal(line).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What to do about it.
    pub fn next_step(&self) -> Option<String> {
        Some(match self {
            ClientError::NoAgent(_) => {
                "start an agent (`eval $(ssh-agent)`) or check SSH_AUTH_SOCK".into()
            }
            ClientError::CaUnreachable { url, .. } => {
                format!("check the CA URL ({url}: ca_url in ~/.config/jit-ssh/config.toml or JIT_SSH_CA_URL) and your network")
            }
            ClientError::NotEnrolled(_) => {
                "ask a jit-ssh admin for an enrollment link (`jit-ssh-ca invite USER`)".into()
            }
            ClientError::Denied(_) => {
                "ask for what the policy allows, or ask an admin to change the policy".into()
            }
            ClientError::TimedOut(_) => {
                "run the login again and confirm with your security key sooner".into()
            }
            ClientError::DeniedByApprover(_) => {
                "talk to the approver about their reason; a new request needs a new approval".into()
            }
            ClientError::Usage(_) => usage_hint(),
            ClientError::Stale(_) => {
                "revocations since then are not enforced here: check that the CA is reachable and that `jit-ssh host sync` runs (see sync-state.json and docs/hosts.md)".into()
            }
            ClientError::VerifyFailed(_) => {
                "treat the export as altered from that record on; compare with a fresh export and the CA's own `verify`".into()
            }
            _ => return None,
        })
    }
}

impl ClientError {
    /// A stable name for `--json` error output.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::NoAgent(_) => "no_agent",
            ClientError::CaUnreachable { .. } => "ca_unreachable",
            ClientError::NotEnrolled(_) => "not_enrolled",
            ClientError::Denied(_) => "denied",
            ClientError::DeniedByApprover(_) => "denied_by_approver",
            ClientError::TimedOut(_) => "timed_out",
            ClientError::Cancelled => "cancelled",
            ClientError::Usage(_) => "usage",
            ClientError::SyncRefused(_) => "sync_refused",
            ClientError::VerifyFailed(_) => "verify_failed",
            ClientError::Stale(_) => "stale",
            ClientError::Ca { .. } => "ca_refused",
            ClientError::Other(_) => "failed",
        }
    }

    /// The error as one JSON object, for `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "kind": self.kind(),
            "message": self.to_string(),
            "exit_code": self.exit_code(),
        });
        if let ClientError::Ca { code, .. } = self {
            error["ca_code"] = code.clone().into();
        }
        if let Some(next) = self.next_step() {
            error["next"] = next.into();
        }
        serde_json::json!({ "error": error })
    }
}

/// Which command's `--help` to read, from the command line itself.
fn usage_hint() -> String {
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .take(2)
        .collect();
    let sub = match words.as_slice() {
        [first, second, ..] if ["host", "audit"].contains(&first.as_str()) => {
            format!("{first} {second}")
        }
        [first, ..] => first.clone(),
        [] => String::new(),
    };
    if sub.is_empty() {
        "see `jit-ssh --help` for the commands".into()
    } else {
        format!("fix the value named above; `jit-ssh {sub} --help` lists what each argument takes")
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NoAgent(why) => write!(f, "no usable ssh-agent: {why}"),
            ClientError::CaUnreachable { url, detail } => {
                write!(f, "cannot reach the CA at {url}: {detail}")
            }
            ClientError::NotEnrolled(m) => write!(f, "not enrolled: {m}"),
            // Text from the CA (an approver's words, a server message) is
            // escaped: it must not reorder or forge terminal lines.
            ClientError::Denied(reason) => write!(f, "denied: {}", escape_for_terminal(reason)),
            ClientError::DeniedByApprover(reason) => {
                write!(f, "denied by an approver: {}", escape_for_terminal(reason))
            }
            ClientError::TimedOut(m) => write!(f, "timed out: {m}"),
            ClientError::Cancelled => write!(f, "cancelled; the request was withdrawn on the CA"),
            ClientError::Usage(m) => f.write_str(m),
            ClientError::SyncRefused(m) => write!(f, "sync refused: {m}"),
            ClientError::VerifyFailed(m) => write!(f, "verification FAILED at {m}"),
            ClientError::Stale(m) => write!(f, "stale: {m}"),
            ClientError::Ca { code, message } => write!(
                f,
                "the CA refused ({}): {}",
                escape_for_terminal(code),
                escape_for_terminal(message)
            ),
            ClientError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<jit_ssh_host::HostError> for ClientError {
    fn from(e: jit_ssh_host::HostError) -> Self {
        use jit_ssh_host::HostError as H;
        match e {
            H::Usage(m) => ClientError::Usage(m),
            H::CaUnreachable { url, detail } => ClientError::CaUnreachable { url, detail },
            H::SyncRefused(m) => ClientError::SyncRefused(m),
            H::Stale(m) => ClientError::Stale(m),
            e @ H::CheckinRefused(_) => ClientError::Other(anyhow::anyhow!("{e}")),
            H::Other(e) => ClientError::Other(e),
        }
    }
}

impl From<anyhow::Error> for ClientError {
    fn from(e: anyhow::Error) -> Self {
        ClientError::Other(e)
    }
}
