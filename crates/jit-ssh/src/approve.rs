//! Approvers: `jit-ssh requests` lists the pending requests you may
//! decide; `jit-ssh approve ID` / `jit-ssh deny ID --reason` record your
//! verdict once you confirm it with your own security key.

use std::io::Write;

use jit_ssh_proto::api::{CreateDecision, DecisionState, DecisionStatus, RequestSummary, Verdict};

use crate::browser;
use crate::ca_client::CaClient;
use crate::confirm::until_confirmed;
use crate::error::ClientError;
use crate::session::{signed_in, SignIn};
use crate::settings::Settings;

pub async fn pending(
    settings: &Settings,
    how: &SignIn,
) -> Result<Vec<RequestSummary>, ClientError> {
    let client = CaClient::new(settings)?;
    signed_in(&client, settings, how, |token| {
        let client = &client;
        async move { Ok(client.pending(&token).await?.requests) }
    })
    .await
}

pub fn print(requests: &[RequestSummary], json: bool) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| ClientError::Other(e.into());
    if json {
        // One JSON array, like `status --json`.
        serde_json::to_writer(&mut out, requests).map_err(|e| ClientError::Other(e.into()))?;
        writeln!(out).map_err(io)?;
        return Ok(());
    }
    if requests.is_empty() {
        eprintln!("no pending requests you may decide");
        return Ok(());
    }
    writeln!(
        out,
        "{:<32}  {:<12}  {:<30}  {:>5}  {:<9}  {:<25}  REASON",
        "ID", "USER", "ACCESS", "TTL", "APPROVALS", "EXPIRES"
    )
    .map_err(io)?;
    for r in requests {
        let approvals = r
            .approval
            .as_ref()
            .map(|a| format!("{}/{}", a.approved_by.len(), a.needed))
            .unwrap_or_default();
        writeln!(
            out,
            "{:<32}  {:<12}  {:<30}  {:>5}  {:<9}  {:<25}  {}",
            r.id,
            r.user,
            format!("{}@{}", r.account, r.host),
            r.ttl,
            approvals,
            r.expires_at,
            // The CA refuses control and bidi characters; escape anyway
            // (an older CA stored them).
            jit_ssh_proto::text::escape_for_terminal(&r.reason)
        )
        .map_err(io)?;
    }
    eprintln!(
        "decide with `jit-ssh approve ID [--comment TEXT]` or `jit-ssh deny ID --reason TEXT`"
    );
    Ok(())
}

/// Records `verdict` on request `id` once the approver confirms it.
pub async fn decide(
    settings: &Settings,
    id: &str,
    verdict: Verdict,
    comment: &str,
    how: &SignIn,
) -> Result<DecisionState, ClientError> {
    let client = CaClient::new(settings)?;
    let created = client
        .create_decision(
            id,
            &CreateDecision {
                user: settings.user.clone(),
                verdict,
                comment: comment.to_owned(),
            },
        )
        .await?;
    let what = match verdict {
        Verdict::Approve => "approval",
        Verdict::Deny => "denial",
    };
    browser::offer(
        &format!("Confirm your {what} with your security key:"),
        &created.mfa_url,
        &created.match_code,
        how.open_browser,
        false,
    );
    until_confirmed(
        how.timeout,
        "waiting for your security key…",
        "no confirmation; nothing was decided",
        || async {
            let d = client.decision(&created.id, &created.secret).await?;
            match d.status {
                DecisionStatus::Recorded => Ok(Some(d)),
                DecisionStatus::Refused => Err(ClientError::Denied(
                    d.outcome.unwrap_or_else(|| "refused".into()),
                )),
                DecisionStatus::Expired => Err(ClientError::TimedOut(
                    "the decision was not confirmed in time; nothing was decided".into(),
                )),
                DecisionStatus::PendingMfa => Ok(None),
            }
        },
    )
    .await
}
