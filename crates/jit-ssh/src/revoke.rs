//! `jit-ssh revoke`: a security engineer asks the CA to revoke a serial, a
//! grant, a user or a key id, and confirms with their own security key.

use std::time::Duration;

use jit_ssh_proto::api::{CreateRevocation, RevocationState, RevocationStatus, RevokeTarget};

use crate::browser;
use crate::ca_client::CaClient;
use crate::confirm::until_confirmed;
use crate::error::ClientError;
use crate::settings::Settings;

pub async fn revoke(
    settings: &Settings,
    target: RevokeTarget,
    reason: &str,
    open_browser: bool,
    timeout: Duration,
) -> Result<RevocationState, ClientError> {
    let client = CaClient::new(settings)?;
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
        &created.match_code,
        open_browser,
        false,
    );
    until_confirmed(
        timeout,
        "waiting for your security key…",
        "no confirmation; nothing was revoked",
        || async {
            let state = client.revocation(&created.id, &created.secret).await?;
            match state.status {
                RevocationStatus::Revoked => Ok(Some(state)),
                RevocationStatus::Refused => Err(ClientError::Denied(
                    state.outcome.unwrap_or_else(|| "refused".into()),
                )),
                RevocationStatus::Expired => Err(ClientError::TimedOut(
                    "the revocation was not confirmed in time; nothing was revoked".into(),
                )),
                RevocationStatus::PendingMfa => Ok(None),
            }
        },
    )
    .await
}
