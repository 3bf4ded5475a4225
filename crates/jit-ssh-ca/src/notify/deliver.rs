//! Delivery: a queue the CA writes to without waiting, and a task that
//! posts each notification to each target that wants it, retrying with
//! exponential backoff; the last failure is audited.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use jit_ssh_audit::{Actor, AuditLog, Event, NotificationFailed};

use super::{Notification, NotifyTarget};

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Wait before the second attempt; doubled for each one after.
    pub first: Duration,
    pub attempts: u32,
    /// Per attempt.
    pub timeout: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            attempts: 5,
            timeout: Duration::from_secs(5),
        }
    }
}

pub struct Notifier {
    targets: Arc<Vec<NotifyTarget>>,
    queue: UnboundedSender<Notification>,
    /// Taken by [`Notifier::start`].
    receiver: Mutex<Option<UnboundedReceiver<Notification>>>,
}

impl Notifier {
    pub fn new(targets: Vec<NotifyTarget>) -> Self {
        let (queue, receiver) = unbounded_channel();
        Self {
            targets: Arc::new(targets),
            queue,
            receiver: Mutex::new(Some(receiver)),
        }
    }

    /// Queues `n` for every target that wants its kind of event. Returns
    /// at once; never fails the caller.
    pub fn send(&self, n: Notification) {
        if self.targets.iter().any(|t| t.events.contains(&n.event)) {
            let _ = self.queue.send(n);
        }
    }

    /// Starts delivering (once; needs a tokio runtime). Until then
    /// notifications wait in the queue.
    pub fn start(
        &self,
        audit: Arc<dyn AuditLog>,
        backoff: Backoff,
        metrics: Arc<crate::metrics::Metrics>,
    ) {
        let Some(mut rx) = self.receiver.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let targets = self.targets.clone();
        tokio::spawn(async move {
            let http = match crate::outbound::http_client(backoff.timeout) {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(error = %e, "notifications disabled: no HTTP client");
                    return;
                }
            };
            while let Some(n) = rx.recv().await {
                for t in targets.iter().filter(|t| t.events.contains(&n.event)) {
                    // One task per delivery: a slow target holds up nobody.
                    tokio::spawn(deliver(
                        http.clone(),
                        t.clone(),
                        n.clone(),
                        audit.clone(),
                        backoff,
                        metrics.clone(),
                    ));
                }
            }
        });
    }
}

/// Why an attempt failed, without the URL (it may hold a secret).
fn failure(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "request failed".into()
    }
}

async fn deliver(
    http: reqwest::Client,
    target: NotifyTarget,
    n: Notification,
    audit: Arc<dyn AuditLog>,
    backoff: Backoff,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let kind = target.kind.as_str();
    let body = n.payload(target.kind);
    let mut last = String::new();
    for attempt in 0..backoff.attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(backoff.first * 2u32.saturating_pow(attempt - 1)).await;
        }
        match http.post(target.url.clone()).json(&body).send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(event = n.event.as_str(), target = %target.describe(), attempt = attempt + 1, "notification delivered");
                metrics.notification(kind, true);
                return;
            }
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) => last = failure(&e),
        }
        tracing::warn!(event = n.event.as_str(), target = %target.describe(), attempt = attempt + 1, error = %last, "notification attempt failed");
        metrics.notification_attempt_failed(kind);
    }
    metrics.notification(kind, false);
    let record = Event::NotificationFailed(NotificationFailed {
        event: n.event.as_str().to_owned(),
        request: n.request.clone(),
        user: n.user.clone(),
        target: target.describe(),
        attempts: backoff.attempts.max(1),
        error: last,
    });
    let appended = tokio::task::spawn_blocking(move || audit.append(Actor::System, record)).await;
    if !matches!(appended, Ok(Ok(_))) {
        tracing::error!(event = n.event.as_str(), target = %target.describe(), "notification failed and its audit record could not be written");
    }
}
