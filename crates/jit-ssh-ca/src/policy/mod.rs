//! Who may reach which host as which account, for how long, and whether
//! someone must approve: a pure decision over the configured policy.

mod glob;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub use glob::HostGlob;

use crate::names::{AccountName, HostName, UserName};
use crate::profile::Extension;

/// Roles a user can hold.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Engineer,
    Approver,
    Security,
    Auditor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Engineer => "engineer",
            Self::Approver => "approver",
            Self::Security => "security",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "engineer" => Ok(Self::Engineer),
            "approver" => Ok(Self::Approver),
            "security" => Ok(Self::Security),
            "auditor" => Ok(Self::Auditor),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown role {other:?} (roles: engineer, approver, security, auditor, admin)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub groups: BTreeSet<String>,
    pub roles: BTreeSet<Role>,
}

/// An account a host group allows: a fixed name, or the requester's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRule {
    Named(AccountName),
    /// `{user}`: the account named like the requesting user.
    OwnName,
}

impl AccountRule {
    fn allows(&self, account: &AccountName, user: &UserName) -> bool {
        match self {
            AccountRule::Named(a) => a == account,
            AccountRule::OwnName => account.as_str() == user.as_str(),
        }
    }

    fn describe(&self) -> String {
        match self {
            AccountRule::Named(a) => a.to_string(),
            AccountRule::OwnName => "your own name".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGroup {
    pub hosts: Vec<HostGlob>,
    pub accounts: Vec<AccountRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    None,
    Approvers { min_approvals: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub groups: BTreeSet<String>,
    pub host_groups: Vec<String>,
    /// Narrows the host groups' accounts; empty means all of them.
    pub accounts: Vec<AccountRule>,
    pub max_ttl: Duration,
    pub approval: Approval,
    pub pin_source_address: bool,
    pub extensions: Vec<Extension>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub users: BTreeMap<String, UserEntry>,
    pub host_groups: BTreeMap<String, HostGroup>,
    pub rules: Vec<Rule>,
}

/// What policy allows for an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// Index of the rule that allowed it (for the audit record).
    pub rule: usize,
    pub pin_source_address: bool,
    pub extensions: Vec<Extension>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Allowed),
    NeedsApproval { rule: usize, min_approvals: u32 },
    Deny(DenyReason),
}

/// Why a request was denied, in words the engineer can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DenyReason {
    #[error("user {0} is not in the CA's policy; ask an admin to add them")]
    UnknownUser(String),
    #[error("{0} is blocked by a revocation; an admin re-enables them with `jit-ssh-ca enable-user {0}`")]
    Blocked(String),
    #[error("no rule lets you reach {host}; ask for a rule covering it, or check the host name")]
    NoRuleForHost { host: String },
    #[error("account {account} is not allowed on {host}; allowed: {}", allowed.join(", "))]
    AccountNotAllowed {
        account: String,
        host: String,
        allowed: Vec<String>,
    },
    #[error("TTL {} is over the cap of {} for {host}; ask for {} or less", jit_ssh_proto::format_duration(*ttl), jit_ssh_proto::format_duration(*cap), jit_ssh_proto::format_duration(*cap))]
    TtlOverCap {
        ttl: Duration,
        cap: Duration,
        host: String,
    },
}

impl Policy {
    /// Decides a request. Among the rules that allow it, one needing no
    /// approval wins; ties go to the first in the file.
    pub fn decide(
        &self,
        user: &UserName,
        host: &HostName,
        account: &AccountName,
        ttl: Duration,
    ) -> Decision {
        let Some(entry) = self.users.get(user.as_str()) else {
            return Decision::Deny(DenyReason::UnknownUser(user.to_string()));
        };
        let for_user = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.groups.is_disjoint(&entry.groups));
        // Rules that cover the host, with the accounts they allow there.
        let covering: Vec<(usize, &Rule, Vec<&AccountRule>)> = for_user
            .filter_map(|(i, r)| {
                let groups: Vec<&HostGroup> = r
                    .host_groups
                    .iter()
                    .filter_map(|g| self.host_groups.get(g))
                    .filter(|g| g.hosts.iter().any(|h| h.matches(host.as_str())))
                    .collect();
                if groups.is_empty() {
                    return None;
                }
                let accounts: Vec<&AccountRule> = groups
                    .iter()
                    .flat_map(|g| g.accounts.iter())
                    .filter(|a| r.accounts.is_empty() || r.accounts.contains(a))
                    .collect();
                Some((i, r, accounts))
            })
            .collect();
        if covering.is_empty() {
            return Decision::Deny(DenyReason::NoRuleForHost {
                host: host.to_string(),
            });
        }
        let for_account: Vec<(usize, &Rule)> = covering
            .iter()
            .filter(|(_, _, accounts)| accounts.iter().any(|a| a.allows(account, user)))
            .map(|(i, r, _)| (*i, *r))
            .collect();
        if for_account.is_empty() {
            let mut allowed: Vec<String> = covering
                .iter()
                .flat_map(|(_, _, a)| a.iter().map(|a| a.describe()))
                .collect();
            allowed.sort();
            allowed.dedup();
            return Decision::Deny(DenyReason::AccountNotAllowed {
                account: account.to_string(),
                host: host.to_string(),
                allowed,
            });
        }
        let within_ttl: Vec<(usize, &Rule)> = for_account
            .iter()
            .copied()
            .filter(|(_, r)| ttl <= r.max_ttl)
            .collect();
        let Some(&(i, rule)) = within_ttl
            .iter()
            .find(|(_, r)| r.approval == Approval::None)
            .or_else(|| within_ttl.first())
        else {
            let cap = for_account
                .iter()
                .map(|(_, r)| r.max_ttl)
                .max()
                .unwrap_or_default();
            return Decision::Deny(DenyReason::TtlOverCap {
                ttl,
                cap,
                host: host.to_string(),
            });
        };
        match rule.approval {
            Approval::None => Decision::Allow(Allowed {
                rule: i,
                pin_source_address: rule.pin_source_address,
                extensions: rule.extensions.clone(),
            }),
            Approval::Approvers { min_approvals } => Decision::NeedsApproval {
                rule: i,
                min_approvals,
            },
        }
    }

    pub fn roles(&self, user: &str) -> BTreeSet<Role> {
        self.users
            .get(user)
            .map(|u| u.roles.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let user = |groups: &[&str]| UserEntry {
            groups: groups.iter().map(|s| s.to_string()).collect(),
            roles: [Role::Engineer].into(),
        };
        let acct = |s: &str| AccountRule::Named(AccountName::parse(s).unwrap());
        Policy {
            users: [
                ("alice".into(), user(&["sre"])),
                ("bob".into(), user(&["dev"])),
            ]
            .into(),
            host_groups: [
                (
                    "dev".into(),
                    HostGroup {
                        hosts: vec![HostGlob::parse("*.dev").unwrap()],
                        accounts: vec![acct("oncall"), AccountRule::OwnName],
                    },
                ),
                (
                    "prod-db".into(),
                    HostGroup {
                        hosts: vec![HostGlob::parse("db-*.prod").unwrap()],
                        accounts: vec![acct("postgres"), acct("oncall")],
                    },
                ),
            ]
            .into(),
            rules: vec![
                Rule {
                    groups: ["sre".into(), "dev".into()].into(),
                    host_groups: vec!["dev".into()],
                    accounts: vec![],
                    max_ttl: Duration::from_secs(3600),
                    approval: Approval::None,
                    pin_source_address: false,
                    extensions: vec![],
                },
                Rule {
                    groups: ["sre".into()].into(),
                    host_groups: vec!["prod-db".into()],
                    accounts: vec![acct("postgres")],
                    max_ttl: Duration::from_secs(900),
                    approval: Approval::Approvers { min_approvals: 1 },
                    pin_source_address: true,
                    extensions: vec![],
                },
            ],
        }
    }

    fn decide(user: &str, host: &str, account: &str, ttl: u64) -> Decision {
        policy().decide(
            &UserName::parse(user).unwrap(),
            &HostName::parse(host).unwrap(),
            &AccountName::parse(account).unwrap(),
            Duration::from_secs(ttl),
        )
    }

    #[test]
    fn allows_and_requires_approval_per_rule() {
        assert!(
            matches!(decide("alice", "db-1.dev", "oncall", 600), Decision::Allow(a) if a.rule == 0)
        );
        assert!(matches!(
            decide("alice", "web.dev", "alice", 600),
            Decision::Allow(_)
        ));
        assert_eq!(
            decide("alice", "db-1.prod", "postgres", 600),
            Decision::NeedsApproval {
                rule: 1,
                min_approvals: 1
            }
        );
    }

    #[test]
    fn every_denial_says_why() {
        assert!(matches!(
            decide("mallory", "db-1.dev", "oncall", 60),
            Decision::Deny(DenyReason::UnknownUser(_))
        ));
        assert!(matches!(
            decide("bob", "db-1.prod", "postgres", 60),
            Decision::Deny(DenyReason::NoRuleForHost { .. })
        ));
        let Decision::Deny(d) = decide("alice", "db-1.prod", "root", 60) else {
            panic!()
        };
        assert_eq!(
            d.to_string(),
            "account root is not allowed on db-1.prod; allowed: postgres"
        );
        let Decision::Deny(d) = decide("bob", "web.dev", "alice", 60) else {
            panic!()
        };
        assert!(
            d.to_string().contains("allowed: oncall, your own name"),
            "{d}"
        );
        let Decision::Deny(d) = decide("alice", "db-1.prod", "postgres", 3600) else {
            panic!()
        };
        assert_eq!(
            d.to_string(),
            "TTL 1h is over the cap of 15m for db-1.prod; ask for 15m or less"
        );
    }
}
