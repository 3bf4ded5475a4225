//! A rule's session policy: whether the host's session wrapper ends the
//! session when the certificate expires, and what it records. The CA
//! enforces it through the certificate: a policy that asks for anything
//! puts the wrapper in the `force-command` critical option, so plain sshd
//! runs every login of that certificate through it.

use serde::{Deserialize, Serialize};

use crate::names::GrantId;

/// What a session wrapper records of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recording {
    Off,
    /// What the session printed.
    Output,
    /// Output and what was typed (opt-in: people type passwords).
    Full,
}

impl Recording {
    pub fn as_str(self) -> &'static str {
        match self {
            Recording::Off => "off",
            Recording::Output => "output",
            Recording::Full => "full",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Recording::Off),
            "output" => Ok(Recording::Output),
            "full" => Ok(Recording::Full),
            other => Err(format!(
                "record {other:?} is not \"off\", \"output\" or \"full\""
            )),
        }
    }
}

/// `session = { end_at_expiry = …, record = … }` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPolicy {
    pub end_at_expiry: bool,
    pub record: Recording,
}

impl Default for SessionPolicy {
    /// End at expiry and record what the session prints: the host
    /// recorder takes it, and a host without one refuses the login (fail
    /// closed). `full` (keystrokes too) is opt-in: people type passwords.
    fn default() -> Self {
        Self {
            end_at_expiry: true,
            record: Recording::Output,
        }
    }
}

impl SessionPolicy {
    /// Whether sessions must run through the host's wrapper.
    pub fn needs_wrapper(&self) -> bool {
        self.end_at_expiry || self.record != Recording::Off
    }

    /// The `force-command` for a certificate of `grant` under this policy:
    /// the wrapper, told the policy and the grant (it reads nothing else
    /// the CA decided but the certificate itself). The grant ties the
    /// wrapper to this certificate: `$SSH_USER_AUTH` is the user's file,
    /// and another certificate of theirs written there is refused.
    pub fn force_command(&self, wrapper: &str, grant: &GrantId) -> Option<String> {
        self.needs_wrapper().then(|| {
            let keep = if self.end_at_expiry {
                ""
            } else {
                " --keep-after-expiry"
            };
            format!(
                "{wrapper} --record {}{keep} --grant {grant}",
                self.record.as_str()
            )
        })
    }

    /// As the `certificate_issued` audit record holds it.
    pub fn terms(&self) -> jit_ssh_audit::SessionTerms {
        jit_ssh_audit::SessionTerms {
            end_at_expiry: self.end_at_expiry,
            record: self.record.as_str().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_policy_that_asks_for_nothing_skips_the_wrapper() {
        let w = "/usr/local/bin/jit-ssh-host session";
        let off = SessionPolicy {
            end_at_expiry: false,
            record: Recording::Off,
        };
        let g = GrantId::parse("00112233445566778899aabbccddeeff").unwrap();
        assert_eq!(off.force_command(w, &g), None);
        assert_eq!(
            SessionPolicy::default().force_command(w, &g).as_deref(),
            Some("/usr/local/bin/jit-ssh-host session --record output --grant 00112233445566778899aabbccddeeff")
        );
        let record_only = SessionPolicy {
            end_at_expiry: false,
            record: Recording::Output,
        };
        assert_eq!(
            record_only.force_command(w, &g).as_deref(),
            Some("/usr/local/bin/jit-ssh-host session --record output --keep-after-expiry --grant 00112233445566778899aabbccddeeff")
        );
    }

    #[test]
    fn recording_names_round_trip() {
        for r in [Recording::Off, Recording::Output, Recording::Full] {
            assert_eq!(Recording::parse(r.as_str()), Ok(r));
        }
        assert!(Recording::parse("input").is_err());
    }
}
