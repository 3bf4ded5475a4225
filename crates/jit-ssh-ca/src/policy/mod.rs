//! Who may reach which host as which account, for how long, and whether
//! someone must approve: a pure decision over the configured policy.

mod glob;
mod preview;
mod session;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub use glob::HostGlob;
pub use preview::{Reach, ReachFilter};
pub use session::{Recording, SessionPolicy};

use crate::names::{AccountName, HostName, UserName};
use crate::oncall::Shift;
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

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserEntry {
    pub groups: BTreeSet<String>,
    pub roles: BTreeSet<Role>,
    /// How on-call feeds may name this user (besides the user name).
    pub emails: Vec<String>,
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

/// Who may approve, and how many must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproverSet {
    /// User groups whose members may approve.
    pub groups: BTreeSet<String>,
    pub min_approvals: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Issued after the requester's own MFA.
    None,
    /// Issued at once when the requester is on call in `schedule` (in one
    /// of `layers`, or any layer when empty); otherwise `fallback`, or
    /// denied when there is none.
    OnCall {
        schedule: String,
        layers: Vec<String>,
        fallback: Option<ApproverSet>,
    },
    Approvers(ApproverSet),
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
    /// Break-glass allowed, with its own (shorter) longest lifetime.
    pub break_glass: Option<Duration>,
    /// What the host's session wrapper does with sessions under this rule.
    pub session: SessionPolicy,
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
    pub session: SessionPolicy,
    pub via: Via,
}

/// Why no second person was needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The rule needs no approval.
    Rule,
    /// The requester is on call: this shift.
    OnCall(Shift),
    /// Break-glass: issued at once, loudly.
    BreakGlass,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Allowed),
    NeedsApproval {
        rule: usize,
        approvers: ApproverSet,
        /// Set when the rule is on-call and the requester was not.
        not_on_call: Option<String>,
    },
    Deny(DenyReason),
}

/// Answers "is this user on call in SCHEDULE (in these layers) now?".
pub type OnCallLookup<'a> = &'a dyn Fn(&str, &[String]) -> Option<Shift>;

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
    #[error("you are not on call in schedule {schedule}, and this rule has no approvers to fall back to; ask whoever is on call (`jit-ssh-ca oncall {schedule}`)")]
    NotOnCall { schedule: String },
    #[error("break-glass is not allowed for {host} by policy; log in without --break-glass")]
    BreakGlassNotAllowed { host: String },
}

impl Policy {
    /// Decides a request. Among the rules that allow it, one that issues
    /// at once wins, then one that needs approvers; ties go to the first
    /// in the file. A break-glass request counts only rules that allow
    /// break-glass, against their break-glass TTL.
    pub fn decide(
        &self,
        user: &UserName,
        host: &HostName,
        account: &AccountName,
        ttl: Duration,
        break_glass: bool,
        on_call: OnCallLookup<'_>,
    ) -> Decision {
        let Some(entry) = self.users.get(user.as_str()) else {
            return Decision::Deny(DenyReason::UnknownUser(user.to_string()));
        };
        let for_user = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.applies_to(entry));
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
                let accounts: Vec<&AccountRule> =
                    groups.iter().flat_map(|g| r.accounts_in(g)).collect();
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
        let cap = |r: &Rule| {
            if break_glass {
                r.break_glass
            } else {
                Some(r.max_ttl)
            }
        };
        let eligible: Vec<(usize, &Rule)> = for_account
            .iter()
            .copied()
            .filter(|(_, r)| cap(r).is_some())
            .collect();
        if eligible.is_empty() {
            return Decision::Deny(DenyReason::BreakGlassNotAllowed {
                host: host.to_string(),
            });
        }
        let within_ttl = eligible
            .iter()
            .copied()
            .filter(|(_, r)| cap(r).is_some_and(|c| ttl <= c));
        let decisions: Vec<Decision> = within_ttl
            .map(|(i, rule)| rule.decide_now(i, break_glass, on_call))
            .collect();
        let best = decisions
            .iter()
            .find(|d| matches!(d, Decision::Allow(_)))
            .or_else(|| {
                decisions
                    .iter()
                    .find(|d| matches!(d, Decision::NeedsApproval { .. }))
            })
            .or_else(|| decisions.first());
        match best {
            Some(d) => d.clone(),
            None => Decision::Deny(DenyReason::TtlOverCap {
                ttl,
                cap: eligible
                    .iter()
                    .filter_map(|(_, r)| cap(r))
                    .max()
                    .unwrap_or_default(),
                host: host.to_string(),
            }),
        }
    }

    /// Names an on-call feed may use for `user`: the name and emails.
    pub fn names_of<'a>(&'a self, user: &'a str) -> Vec<&'a str> {
        let mut names = vec![user];
        if let Some(u) = self.users.get(user) {
            names.extend(u.emails.iter().map(String::as_str));
        }
        names
    }

    /// Users who may approve for `set`: members of its groups, never the
    /// requester.
    pub fn approvers(&self, set: &ApproverSet, requester: &str) -> Vec<String> {
        self.users
            .iter()
            .filter(|(name, u)| *name != requester && !u.groups.is_disjoint(&set.groups))
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn roles(&self, user: &str) -> BTreeSet<Role> {
        self.users
            .get(user)
            .map(|u| u.roles.clone())
            .unwrap_or_default()
    }
}

impl Rule {
    /// Whether this rule is about `user` (shares one of their groups).
    pub fn applies_to(&self, user: &UserEntry) -> bool {
        !self.groups.is_disjoint(&user.groups)
    }

    /// The accounts this rule allows on the hosts of `group`.
    pub fn accounts_in<'a>(
        &'a self,
        group: &'a HostGroup,
    ) -> impl Iterator<Item = &'a AccountRule> {
        group
            .accounts
            .iter()
            .filter(|a| self.accounts.is_empty() || self.accounts.contains(a))
    }

    /// What this rule (number `index`) says now, for a request it covers
    /// (host, account and TTL already checked): issue at once, ask
    /// approvers, or deny. `jit-ssh hosts` asks the same question
    /// ([`Policy::preview`]), so its answer is the one a request gets.
    pub fn decide_now(
        &self,
        index: usize,
        break_glass: bool,
        on_call: OnCallLookup<'_>,
    ) -> Decision {
        let allow = |via| {
            Decision::Allow(Allowed {
                rule: index,
                pin_source_address: self.pin_source_address,
                extensions: self.extensions.clone(),
                session: self.session,
                via,
            })
        };
        if break_glass {
            return allow(Via::BreakGlass);
        }
        match &self.approval {
            Approval::None => allow(Via::Rule),
            Approval::Approvers(set) => Decision::NeedsApproval {
                rule: index,
                approvers: set.clone(),
                not_on_call: None,
            },
            Approval::OnCall {
                schedule,
                layers,
                fallback,
            } => match (on_call(schedule, layers), fallback) {
                (Some(shift), _) => allow(Via::OnCall(shift)),
                (None, Some(set)) => Decision::NeedsApproval {
                    rule: index,
                    approvers: set.clone(),
                    not_on_call: Some(schedule.clone()),
                },
                (None, None) => Decision::Deny(DenyReason::NotOnCall {
                    schedule: schedule.clone(),
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests;
