//! What people read about a request or a revocation: the line that says
//! who a request waits for, and the notifications the CA sends.

use jit_ssh_proto::api::RevokeTarget;

use super::{Notification, NotifyEvent};
use crate::store::{AccessRequest, ApprovalState, PendingRevocation};

/// What happened to an access request that is worth telling people.
/// (Revocations are told by [`about_revocation`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestEvent {
    PendingApproval,
    Approved,
    Denied,
    BreakGlass,
}

impl From<RequestEvent> for NotifyEvent {
    fn from(e: RequestEvent) -> Self {
        match e {
            RequestEvent::PendingApproval => Self::PendingApproval,
            RequestEvent::Approved => Self::Approved,
            RequestEvent::Denied => Self::Denied,
            RequestEvent::BreakGlass => Self::BreakGlass,
        }
    }
}

/// The notification about `req`. `by` is who decided; `url` is where to
/// decide (pending approvals).
pub fn about_request(
    event: RequestEvent,
    req: &AccessRequest,
    by: Option<&str>,
    url: Option<String>,
) -> Notification {
    let who = format!("{} → {}@{}", req.user, req.account, req.host);
    let text = match event {
        RequestEvent::PendingApproval => format!(
            "jit-ssh: {who} waits for approval ({}): {}",
            req.approval.as_ref().map(waiting_text).unwrap_or_default(),
            req.reason
        ),
        RequestEvent::Approved => format!("jit-ssh: {who} approved by {}", by.unwrap_or("?")),
        RequestEvent::Denied => format!(
            "jit-ssh: {who} denied by {}: {}",
            by.unwrap_or("?"),
            req.decision_reason.as_deref().unwrap_or("")
        ),
        RequestEvent::BreakGlass => format!(
            "jit-ssh BREAK-GLASS: {who} issued at once (serial {}): {}",
            req.certificate.as_ref().map_or(0, |c| c.serial),
            req.reason
        ),
    };
    Notification {
        event: event.into(),
        request: req.id.clone(),
        user: req.user.to_string(),
        host: req.host.to_string(),
        account: req.account.to_string(),
        reason: req.reason.to_string(),
        by: by.map(str::to_owned),
        approvers: req
            .approval
            .as_ref()
            .map(|a| a.approvers.clone())
            .unwrap_or_default(),
        url,
        text,
    }
}

/// The notification about a confirmed revocation.
pub fn about_revocation(done: &PendingRevocation) -> Notification {
    Notification {
        event: NotifyEvent::Revoked,
        request: done.id.clone(),
        user: match &done.target {
            RevokeTarget::User(u) => u.clone(),
            _ => String::new(),
        },
        host: String::new(),
        account: String::new(),
        reason: done.reason.clone(),
        by: Some(done.user.clone()),
        approvers: vec![],
        url: None,
        text: format!(
            "jit-ssh: {} revoked {} ({}): {}",
            done.user,
            done.target,
            done.reason,
            done.outcome.clone().unwrap_or_default()
        ),
    }
}

/// "1 of 2 approvals from carol, dave (approved: carol)".
pub fn waiting_text(a: &ApprovalState) -> String {
    let done: Vec<&str> = a.approvals.iter().map(|m| m.by.as_str()).collect();
    let mut text = format!(
        "{} of {} approval(s) from {}",
        done.len(),
        a.needed,
        if a.approvers.is_empty() {
            "nobody (no approver is configured besides you)".to_owned()
        } else {
            a.approvers.join(", ")
        }
    );
    if !done.is_empty() {
        text.push_str(&format!("; approved by {}", done.join(", ")));
    }
    if let Some(s) = &a.not_on_call {
        text.push_str(&format!("; you are not on call in {s}"));
    }
    text
}
