//! `GET /v1/reach` (`jit-ssh hosts`): what the signed-in user may reach
//! and what approval each would need right now, before any request.

use serde::{Deserialize, Serialize};

/// Query of [`crate::routes::REACH`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReachParams {
    /// A host pattern (`*`, `?`): keeps host groups whose name or host
    /// patterns it matches, or that cover it as a host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Whom it is about: only the signed-in user may be named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// The answer: one row per policy rule about the user and host group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachList {
    pub user: String,
    pub rows: Vec<ReachRow>,
    /// Set when nothing is reachable for a reason about the user (not in
    /// the policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachRow {
    /// The rule's index in the policy (as in `policy_decision` records).
    pub rule: usize,
    pub host_group: String,
    /// Host patterns of the group.
    pub hosts: Vec<String>,
    pub accounts: Vec<String>,
    /// The longest certificate lifetime, in seconds.
    pub max_ttl_secs: u64,
    /// Break-glass cap in seconds, when the rule allows break-glass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass_max_ttl_secs: Option<u64>,
    pub approval: ReachApproval,
}

/// What a request within the cap (not break-glass) would need now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReachApproval {
    /// Issued after your own touch.
    Auto,
    /// Issued after your touch because you are on call now.
    OnCall {
        schedule: String,
        layer: String,
        /// When the shift ends (RFC 3339).
        until: String,
    },
    /// Waits for `needed` approvals from `approvers`; `not_on_call` names
    /// the schedule when the rule is on-call and you are not.
    Approvers {
        needed: u32,
        approvers: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_on_call: Option<String>,
    },
    /// Denied now, but allowed as break-glass (`--break-glass`).
    BreakGlassOnly {
        reason: String,
    },
    Denied {
        reason: String,
    },
}
