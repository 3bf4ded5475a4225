//! What a user may reach, asked before any request (`jit-ssh hosts`):
//! per rule about them and host group, the accounts, the TTL cap and
//! what the rule says right now. "Right now" is [`Rule::decide_now`],
//! the very function [`Policy::decide`] applies to a real request once
//! host, account and TTL are checked, so a preview cannot drift from the
//! rules it describes.

use std::time::Duration;

use super::{AccountRule, Decision, DenyReason, HostGlob, HostGroup, OnCallLookup, Policy};
use crate::names::UserName;

/// One rule about the user and one of its host groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// Index of the rule, as in the audit log's policy decisions.
    pub rule: usize,
    pub host_group: String,
    /// The group's host patterns.
    pub hosts: Vec<String>,
    /// Accounts this rule allows there (`{user}` spelled out).
    pub accounts: Vec<String>,
    pub max_ttl: Duration,
    /// Set when the rule allows break-glass, with its cap.
    pub break_glass_max_ttl: Option<Duration>,
    /// What a request within the cap gets now (not break-glass).
    pub now: Decision,
}

/// Which host groups a preview shows: a host pattern matched against the
/// group's name, its host patterns as text (`*.prod` selects `db-*.prod`),
/// and as a host name (`db-1.prod` selects `db-*.prod`).
#[derive(Debug, Clone)]
pub struct ReachFilter(HostGlob);

impl ReachFilter {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        HostGlob::parse(pattern).map(Self)
    }

    fn selects(&self, name: &str, group: &HostGroup) -> bool {
        self.0.matches(name)
            || group
                .hosts
                .iter()
                .any(|h| self.0.matches(h.as_str()) || h.matches(self.0.as_str()))
    }
}

impl Policy {
    /// Every (rule, host group) pair about `user` that `filter` selects
    /// and that allows at least one account, in policy order. A user the
    /// policy does not name gets the reason a request would be denied.
    pub fn preview(
        &self,
        user: &UserName,
        filter: Option<&ReachFilter>,
        on_call: OnCallLookup<'_>,
    ) -> Result<Vec<Reach>, DenyReason> {
        let Some(entry) = self.users.get(user.as_str()) else {
            return Err(DenyReason::UnknownUser(user.to_string()));
        };
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.applies_to(entry) {
                continue;
            }
            for name in &rule.host_groups {
                let Some(group) = self.host_groups.get(name) else {
                    continue;
                };
                if filter.is_some_and(|f| !f.selects(name, group)) {
                    continue;
                }
                let mut accounts: Vec<String> = Vec::new();
                for a in rule.accounts_in(group) {
                    let a = match a {
                        AccountRule::Named(n) => n.to_string(),
                        AccountRule::OwnName => user.to_string(),
                    };
                    if !accounts.contains(&a) {
                        accounts.push(a);
                    }
                }
                if accounts.is_empty() {
                    continue;
                }
                out.push(Reach {
                    rule: i,
                    host_group: name.clone(),
                    hosts: group.hosts.iter().map(|h| h.as_str().to_owned()).collect(),
                    accounts,
                    max_ttl: rule.max_ttl,
                    break_glass_max_ttl: rule.break_glass,
                    now: rule.decide_now(i, false, on_call),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::policy;
    use super::*;
    use crate::names::{AccountName, HostName};
    use crate::oncall::Shift;

    fn name(s: &str) -> UserName {
        UserName::parse(s).unwrap()
    }

    fn shift() -> Shift {
        Shift {
            schedule: "web".into(),
            layer: "primary".into(),
            member: "alice".into(),
            start: 0,
            end: 1,
        }
    }

    #[test]
    fn rows_say_what_a_request_for_a_host_of_the_group_gets() {
        let p = policy();
        // One concrete host per group of the fixture.
        let host_of = |g: &str| match g {
            "dev" => "a.dev",
            "prod-db" => "db-1.prod",
            "prod-web" => "web-1.prod",
            "strict" => "x.strict",
            other => panic!("no host for {other}"),
        };
        for on_call in [false, true] {
            let lookup = |_: &str, _: &[String]| on_call.then(shift);
            let rows = p.preview(&name("alice"), None, &lookup).unwrap();
            assert_eq!(rows.len(), 4, "{rows:?}");
            for r in rows {
                for account in &r.accounts {
                    let real = p.decide(
                        &name("alice"),
                        &HostName::parse(host_of(&r.host_group)).unwrap(),
                        &AccountName::parse(account).unwrap(),
                        r.max_ttl,
                        false,
                        &lookup,
                    );
                    assert_eq!(
                        real, r.now,
                        "{} as {account}, on call {on_call}",
                        r.host_group
                    );
                }
            }
        }
    }

    #[test]
    fn accounts_are_narrowed_by_the_rule_and_own_name_is_spelled_out() {
        let p = policy();
        let none = |_: &str, _: &[String]| None;
        let rows = p.preview(&name("alice"), None, &none).unwrap();
        let dev = rows.iter().find(|r| r.host_group == "dev").unwrap();
        assert_eq!(dev.accounts, ["oncall", "alice"]);
        let db = rows.iter().find(|r| r.host_group == "prod-db").unwrap();
        assert_eq!(
            db.accounts,
            ["postgres"],
            "the rule narrows postgres+oncall"
        );
        // bob is only in `dev`: one row.
        let bob = p.preview(&name("bob"), None, &none).unwrap();
        assert_eq!(
            bob.iter()
                .map(|r| r.host_group.as_str())
                .collect::<Vec<_>>(),
            ["dev"]
        );
        assert!(matches!(
            p.preview(&name("mallory"), None, &none),
            Err(DenyReason::UnknownUser(_))
        ));
    }

    #[test]
    fn a_pattern_selects_by_group_name_pattern_text_or_host_name() {
        let p = policy();
        let none = |_: &str, _: &[String]| None;
        let groups = |pattern: &str| {
            let f = ReachFilter::parse(pattern).unwrap();
            p.preview(&name("alice"), Some(&f), &none)
                .unwrap()
                .into_iter()
                .map(|r| r.host_group)
                .collect::<Vec<_>>()
        };
        assert_eq!(groups("*.prod"), ["prod-db", "prod-web"]);
        assert_eq!(groups("db-7.prod"), ["prod-db"]);
        assert_eq!(groups("prod-*"), ["prod-db", "prod-web"]);
        assert_eq!(groups("STRICT"), ["strict"]);
        assert!(groups("*.nowhere").is_empty());
        assert!(ReachFilter::parse("db;rm").is_err() && ReachFilter::parse("").is_err());
    }
}
