//! `jit-ssh revoke`: a security engineer asks the CA to revoke a serial, a
//! grant, a user or a key id, and confirms with their own security key.

use std::time::{Duration, Instant};

use jit_ssh_proto::api::{CreateRevocation, RevocationState, RevocationStatus, RevokeTarget};

use crate::browser;
use crate::ca_client::CaClient;
use crate::error::ClientError;
use crate::progress::Progress;
use crate::settings::Settings;

pub async fn revoke(
    settings: &Settings,
    target: RevokeTarget,
    reason: &str,
    open_browser: bool,
    timeout: Duration,
) -> Result<RevocationState, ClientError> {
    let client = CaClient::new(settings)?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| ClientError::Other(e.into()))?;
    let created = client
        .create_revocation(&CreateRevocation {
            user: settings.user.clone(),
            target,
            reason: reason.to_owned(),
        })
        .await?;
    browser::offer(
        "Confirm the revocation with your security key:",
        &created.mfa_url,
        open_browser,
        false,
    );
    let deadline = Instant::now() + timeout;
    let mut progress = Progress::new(false);
    loop {
        let state = tokio::select! {
            s = client.revocation(&created.id, &created.secret) => s?,
            _ = interrupt.recv() => return Err(ClientError::Cancelled),
        };
        match state.status {
            RevocationStatus::Revoked => {
                progress.done();
                return Ok(state);
            }
            RevocationStatus::Refused => {
                progress.done();
                return Err(ClientError::Denied(
                    state.outcome.unwrap_or_else(|| "refused".into()),
                ));
            }
            RevocationStatus::Expired => {
                progress.done();
                return Err(ClientError::TimedOut(
                    "the revocation was not confirmed in time; nothing was revoked".into(),
                ));
            }
            RevocationStatus::PendingMfa => {}
        }
        if Instant::now() >= deadline {
            progress.done();
            return Err(ClientError::TimedOut(
                "no confirmation; nothing was revoked".into(),
            ));
        }
        progress.update("waiting for your security key…");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {},
            _ = interrupt.recv() => return Err(ClientError::Cancelled),
        }
    }
}
