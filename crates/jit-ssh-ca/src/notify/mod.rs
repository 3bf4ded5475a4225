//! Notifications: webhooks (generic JSON, or a Slack-compatible payload)
//! for pending approvals, decisions, break-glass and revocations.
//!
//! Sending never blocks what caused it: the CA queues the notification and
//! returns; a delivery task posts it, retrying with exponential backoff,
//! and records an audit event when a target still fails after the last
//! attempt. Target URLs never appear in logs or audit records (Slack's
//! carry a secret); only their host does.

mod deliver;
mod markdown;
mod slack;
pub mod texts;

use std::collections::BTreeSet;

use serde::Serialize;

pub use deliver::{Backoff, Notifier};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    PendingApproval,
    Approved,
    Denied,
    BreakGlass,
    Revoked,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 5] = [
        Self::PendingApproval,
        Self::Approved,
        Self::Denied,
        Self::BreakGlass,
        Self::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingApproval => "pending_approval",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::BreakGlass => "break_glass",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "event {s:?} is not one of {}",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    /// The [`Notification`] as JSON.
    Webhook,
    /// `{"text": …}` in Slack's markup.
    Slack,
    /// `{"text": …}` in Markdown (Mattermost, Rocket.Chat).
    Markdown(MarkdownChat),
}

/// Which Markdown chat: the payload is the same; the name is for logs,
/// audit records and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkdownChat {
    Mattermost,
    RocketChat,
}

impl NotifyKind {
    /// As the config and the logs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Markdown(MarkdownChat::Mattermost) => "mattermost",
            Self::Markdown(MarkdownChat::RocketChat) => "rocketchat",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    pub kind: NotifyKind,
    pub url: url::Url,
    pub events: BTreeSet<NotifyEvent>,
}

impl NotifyTarget {
    /// What logs and audit records may say about the target.
    pub fn describe(&self) -> String {
        let kind = self.kind.as_str();
        format!("{kind} at {}", self.url.host_str().unwrap_or("?"))
    }
}

/// What happened, for people and for scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub event: NotifyEvent,
    /// The access request (or revocation) id.
    pub request: String,
    /// Whose access it is.
    pub user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    pub reason: String,
    /// Who decided or revoked, when someone did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Who may approve (pending approvals).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Where to decide (pending approvals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// One line in words.
    pub text: String,
}

impl Notification {
    /// The body posted to a target of `kind`.
    pub fn payload(&self, kind: NotifyKind) -> serde_json::Value {
        match kind {
            NotifyKind::Webhook => serde_json::to_value(self).unwrap_or_default(),
            // The text holds what requesters and approvers typed: Slack
            // must show it, not make a link, mention or @channel of it.
            // Only the CA's own link is markup (see `slack`).
            NotifyKind::Slack => slack::payload(&self.text, self.url.as_deref()),
            NotifyKind::Markdown(_) => {
                // Same reason, Markdown's markup: every punctuation
                // character escaped, so a requester's `[Decide](…)`,
                // image or URL shows as typed and only the CA's link is one.
                let mut text = markdown::escape(&self.text);
                if let Some(url) = &self.url {
                    text.push_str(&format!(" [Decide]({url})"));
                }
                serde_json::json!({ "text": text })
            }
        }
    }
}
