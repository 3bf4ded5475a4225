//! The policy part of the config: users, host groups and rules, with
//! every problem reported against its line.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use super::{file, Collector, HARD_MAX_TTL};
use crate::names::{AccountName, NameError, UserName};
use crate::policy::{
    AccountRule, Approval, ApproverSet, HostGlob, HostGroup, Policy, Recording, Role, Rule,
    SessionPolicy, UserEntry,
};
use crate::profile::Extension;

/// Break-glass certificates last at most this long unless a rule says.
const DEFAULT_BREAK_GLASS_TTL: Duration = Duration::from_secs(900);

fn account_rule(s: &str) -> Result<AccountRule, NameError> {
    if s == "{user}" {
        return Ok(AccountRule::OwnName);
    }
    AccountName::parse(s).map(AccountRule::Named)
}

pub(super) fn policy(f: &file::ConfigFile, c: &mut Collector<'_>) -> Policy {
    let mut users = BTreeMap::new();
    for u in &f.users {
        if let Err(e) = UserName::parse(u.name.get_ref()) {
            c.at(u.name.span(), format!("users: {e}"));
            continue;
        }
        let mut roles = BTreeSet::new();
        for r in &u.roles {
            match Role::parse(r.get_ref()) {
                Ok(r) => {
                    roles.insert(r);
                }
                Err(e) => c.at(r.span(), format!("users.{}: {e}", u.name.get_ref())),
            }
        }
        let entry = UserEntry {
            groups: u.groups.iter().cloned().collect(),
            roles,
            emails: u.email.iter().cloned().collect(),
        };
        if users.insert(u.name.get_ref().clone(), entry).is_some() {
            c.at(
                u.name.span(),
                format!("users: {} is listed twice", u.name.get_ref()),
            );
        }
    }
    let known_groups: BTreeSet<&String> = f.users.iter().flat_map(|u| u.groups.iter()).collect();

    let mut host_groups = BTreeMap::new();
    for (name, g) in &f.host_groups {
        let span = g.span();
        let g = g.get_ref();
        let mut hosts = Vec::new();
        for h in &g.hosts {
            match HostGlob::parse(h) {
                Ok(p) => hosts.push(p),
                Err(e) => c.at(span.clone(), format!("host_groups.{name}: {e}")),
            }
        }
        if g.hosts.is_empty() {
            c.at(span.clone(), format!("host_groups.{name}: hosts is empty"));
        }
        let mut accounts = Vec::new();
        for a in &g.accounts {
            match account_rule(a) {
                Ok(a) => accounts.push(a),
                Err(e) => c.at(span.clone(), format!("host_groups.{name}: {e}")),
            }
        }
        if g.accounts.is_empty() {
            c.at(
                span.clone(),
                format!("host_groups.{name}: accounts is empty"),
            );
        }
        host_groups.insert(name.clone(), HostGroup { hosts, accounts });
    }

    let mut rules = Vec::new();
    for (i, r) in f.rules.iter().enumerate() {
        let span = r.span();
        let r = r.get_ref();
        let at = format!("rules[{i}]");
        for g in &r.host_groups {
            if !f.host_groups.contains_key(g) {
                c.at(
                    span.clone(),
                    format!("{at}: host group {g:?} is not defined in [host_groups]"),
                );
            }
        }
        for g in &r.groups {
            if !known_groups.contains(g) {
                c.at(span.clone(), format!("{at}: no user is in group {g:?}"));
            }
        }
        if r.groups.is_empty() || r.host_groups.is_empty() {
            c.at(
                span.clone(),
                format!("{at}: groups and host_groups must not be empty"),
            );
        }
        let accounts: Vec<AccountRule> = r
            .accounts
            .iter()
            .filter_map(|a| {
                account_rule(a)
                    .map_err(|e| c.at(span.clone(), format!("{at}: {e}")))
                    .ok()
            })
            .collect();
        let max_ttl = match jit_ssh_proto::parse_duration(&r.max_ttl) {
            Ok(d) if d.is_zero() => {
                c.at(span.clone(), format!("{at}: max_ttl must be more than 0s"));
                None
            }
            Ok(d) if d > HARD_MAX_TTL => {
                c.at(
                    span.clone(),
                    format!("{at}: max_ttl {} is over the hard cap of 1h", r.max_ttl),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                c.at(span.clone(), format!("{at}: max_ttl: {e}"));
                None
            }
        };
        let approval = approval(r, f, &known_groups, &at, &span, c);
        let break_glass = match (r.break_glass, &r.break_glass_max_ttl) {
            (false, None) => None,
            (false, Some(_)) => {
                c.at(
                    span.clone(),
                    format!("{at}: break_glass_max_ttl needs break_glass = true"),
                );
                None
            }
            (true, ttl) => {
                let cap = max_ttl.unwrap_or(HARD_MAX_TTL);
                match ttl.as_deref().map(jit_ssh_proto::parse_duration) {
                    None => Some(DEFAULT_BREAK_GLASS_TTL.min(cap)),
                    Some(Ok(d)) if !d.is_zero() && d <= cap => Some(d),
                    Some(Ok(_)) => {
                        c.at(span.clone(), format!("{at}: break_glass_max_ttl must be more than 0s and at most max_ttl"));
                        None
                    }
                    Some(Err(e)) => {
                        c.at(span.clone(), format!("{at}: break_glass_max_ttl: {e}"));
                        None
                    }
                }
            }
        };
        if r.break_glass && f.notify.is_empty() {
            c.at(
                span.clone(),
                format!(
                    "{at}: break_glass needs a [[notify]] target: break-glass is always notified"
                ),
            );
        }
        let extensions: Vec<Extension> = r
            .extensions
            .iter()
            .filter_map(|e| {
                Extension::parse(e)
                    .map_err(|e| c.at(span.clone(), format!("{at}: {e}")))
                    .ok()
            })
            .collect();
        let session = session(r.session.as_ref(), &at, &span, c);
        if let (Some(max_ttl), Some(approval)) = (max_ttl, approval) {
            rules.push(Rule {
                groups: r.groups.iter().cloned().collect(),
                host_groups: r.host_groups.clone(),
                accounts,
                max_ttl,
                approval,
                pin_source_address: r.source_address_pinning,
                extensions,
                break_glass,
                session,
            });
        }
    }
    Policy {
        users,
        host_groups,
        rules,
    }
}

/// The session policy of rule `at` (the default when it has none).
fn session(
    s: Option<&file::SessionFile>,
    at: &str,
    span: &Range<usize>,
    c: &mut Collector<'_>,
) -> SessionPolicy {
    let d = SessionPolicy::default();
    let Some(s) = s else { return d };
    let record = match s.record.as_deref().map(Recording::parse) {
        None => d.record,
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            c.at(span.clone(), format!("{at}: session: {e}"));
            d.record
        }
    };
    SessionPolicy {
        end_at_expiry: s.end_at_expiry.unwrap_or(d.end_at_expiry),
        record,
    }
}

/// The approval mode of rule `at`.
fn approval(
    r: &file::RuleFile,
    f: &file::ConfigFile,
    known_groups: &BTreeSet<&String>,
    at: &str,
    span: &Range<usize>,
    c: &mut Collector<'_>,
) -> Option<Approval> {
    let bad = |c: &mut Collector<'_>, m: String| {
        c.at(span.clone(), format!("{at}: {m}"));
        None::<Approval>
    };
    let approvers = |c: &mut Collector<'_>| -> Option<ApproverSet> {
        if r.approvers.is_empty() {
            c.at(
                span.clone(),
                format!("{at}: approvers (user groups who may approve) is empty"),
            );
            return None;
        }
        for g in &r.approvers {
            if !known_groups.contains(g) {
                c.at(
                    span.clone(),
                    format!("{at}: approvers: no user is in group {g:?}"),
                );
            }
        }
        match r.min_approvals.unwrap_or(1) {
            0 => {
                c.at(
                    span.clone(),
                    format!("{at}: min_approvals must be at least 1"),
                );
                None
            }
            n => Some(ApproverSet {
                groups: r.approvers.iter().cloned().collect(),
                min_approvals: n,
            }),
        }
    };
    let oncall_only = r.schedule.is_some() || !r.layers.is_empty() || r.fallback.is_some();
    match r.approval.as_str() {
        "none" if !r.approvers.is_empty() || r.min_approvals.is_some() || oncall_only => bad(
            c,
            "approvers, min_approvals, schedule, layers and fallback need approval = \"approvers\" or \"oncall\"".into(),
        ),
        "none" => Some(Approval::None),
        "approvers" if oncall_only => bad(c, "schedule, layers and fallback need approval = \"oncall\"".into()),
        "approvers" => approvers(c).map(Approval::Approvers),
        "oncall" => {
            let Some(schedule) = r.schedule.clone() else {
                return bad(c, "approval = \"oncall\" needs schedule".into());
            };
            if !f.schedules.contains_key(&schedule) {
                return bad(c, format!("schedule {schedule:?} is not defined in [schedules]"));
            }
            let fallback = match r.fallback.as_deref().unwrap_or("deny") {
                "deny" if r.approvers.is_empty() && r.min_approvals.is_none() => None,
                "deny" => return bad(c, "approvers are only used with fallback = \"approvers\"".into()),
                "approvers" => Some(approvers(c)?),
                other => return bad(c, format!("fallback {other:?} is not \"approvers\" or \"deny\"")),
            };
            Some(Approval::OnCall {
                schedule,
                layers: r.layers.clone(),
                fallback,
            })
        }
        other => bad(
            c,
            format!("approval {other:?} is not \"none\", \"oncall\" or \"approvers\""),
        ),
    }
}
