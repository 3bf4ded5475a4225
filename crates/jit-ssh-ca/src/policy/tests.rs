//! Policy decisions: rules, on-call, fallback, break-glass, denials.

use super::*;

fn set(groups: &[&str], min: u32) -> ApproverSet {
    ApproverSet {
        groups: groups.iter().map(|s| s.to_string()).collect(),
        min_approvals: min,
    }
}

pub(super) fn policy() -> Policy {
    let user = |groups: &[&str]| UserEntry {
        groups: groups.iter().map(|s| s.to_string()).collect(),
        roles: [Role::Engineer].into(),
        emails: vec![],
    };
    let acct = |s: &str| AccountRule::Named(AccountName::parse(s).unwrap());
    let rule =
        |groups: &[&str], hg: &str, accounts: Vec<AccountRule>, ttl: u64, approval: Approval| {
            Rule {
                groups: groups.iter().map(|s| s.to_string()).collect(),
                host_groups: vec![hg.into()],
                accounts,
                max_ttl: Duration::from_secs(ttl),
                approval,
                pin_source_address: false,
                extensions: vec![],
                break_glass: None,
                session: SessionPolicy::default(),
            }
        };
    let mut oncall = rule(
        &["sre"],
        "prod-web",
        vec![],
        1800,
        Approval::OnCall {
            schedule: "web".into(),
            layers: vec!["primary".into()],
            fallback: Some(set(&["leads"], 2)),
        },
    );
    oncall.break_glass = Some(Duration::from_secs(600));
    Policy {
        users: [
            ("alice".into(), user(&["sre"])),
            ("bob".into(), user(&["dev"])),
            ("lead1".into(), user(&["leads", "sre"])),
            ("lead2".into(), user(&["leads"])),
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
            (
                "prod-web".into(),
                HostGroup {
                    hosts: vec![HostGlob::parse("web-*.prod").unwrap()],
                    accounts: vec![acct("www")],
                },
            ),
            (
                "strict".into(),
                HostGroup {
                    hosts: vec![HostGlob::parse("*.strict").unwrap()],
                    accounts: vec![acct("root")],
                },
            ),
        ]
        .into(),
        rules: vec![
            rule(&["sre", "dev"], "dev", vec![], 3600, Approval::None),
            rule(
                &["sre"],
                "prod-db",
                vec![acct("postgres")],
                900,
                Approval::Approvers(set(&["leads"], 1)),
            ),
            oncall,
            rule(
                &["sre"],
                "strict",
                vec![],
                900,
                Approval::OnCall {
                    schedule: "web".into(),
                    layers: vec![],
                    fallback: None,
                },
            ),
        ],
    }
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

fn decide_as(user: &str, host: &str, account: &str, ttl: u64, bg: bool, on_call: bool) -> Decision {
    let lookup = |_: &str, _: &[String]| on_call.then(shift);
    policy().decide(
        &UserName::parse(user).unwrap(),
        &HostName::parse(host).unwrap(),
        &AccountName::parse(account).unwrap(),
        Duration::from_secs(ttl),
        bg,
        &lookup,
    )
}

fn decide(user: &str, host: &str, account: &str, ttl: u64) -> Decision {
    decide_as(user, host, account, ttl, false, false)
}

#[test]
fn allows_and_requires_approval_per_rule() {
    assert!(
        matches!(decide("alice", "db-1.dev", "oncall", 600), Decision::Allow(a) if a.rule == 0 && a.via == Via::Rule)
    );
    assert!(matches!(
        decide("alice", "web.dev", "alice", 600),
        Decision::Allow(_)
    ));
    assert_eq!(
        decide("alice", "db-1.prod", "postgres", 600),
        Decision::NeedsApproval {
            rule: 1,
            approvers: set(&["leads"], 1),
            not_on_call: None,
        }
    );
}

#[test]
fn on_call_engineers_get_in_and_others_fall_back_to_approvers() {
    let Decision::Allow(a) = decide_as("alice", "web-1.prod", "www", 600, false, true) else {
        panic!()
    };
    assert_eq!(a.via, Via::OnCall(shift()));
    assert_eq!(
        decide_as("alice", "web-1.prod", "www", 600, false, false),
        Decision::NeedsApproval {
            rule: 2,
            approvers: set(&["leads"], 2),
            not_on_call: Some("web".into()),
        }
    );
    // No fallback: off call is a denial that says who to ask.
    let Decision::Deny(d) = decide_as("alice", "x.strict", "root", 60, false, false) else {
        panic!()
    };
    assert_eq!(
        d,
        DenyReason::NotOnCall {
            schedule: "web".into()
        }
    );
    assert!(matches!(
        decide_as("alice", "x.strict", "root", 60, false, true),
        Decision::Allow(_)
    ));
}

#[test]
fn break_glass_only_where_allowed_and_within_its_own_ttl() {
    let Decision::Allow(a) = decide_as("alice", "web-1.prod", "www", 600, true, false) else {
        panic!()
    };
    assert_eq!(a.via, Via::BreakGlass);
    let Decision::Deny(d) = decide_as("alice", "web-1.prod", "www", 1200, true, false) else {
        panic!()
    };
    assert!(d.to_string().contains("over the cap of 10m"), "{d}");
    assert_eq!(
        decide_as("alice", "db-1.prod", "postgres", 60, true, false),
        Decision::Deny(DenyReason::BreakGlassNotAllowed {
            host: "db-1.prod".into()
        })
    );
}

#[test]
fn requesters_never_approve_their_own_requests() {
    let p = policy();
    assert_eq!(p.approvers(&set(&["leads"], 1), "lead1"), ["lead2"]);
    assert_eq!(
        p.approvers(&set(&["leads"], 1), "alice"),
        ["lead1", "lead2"]
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
