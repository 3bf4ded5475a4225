//! jit-ssh certificates loaded in the agent: recognised by their key id
//! (`jit-ssh:USER:GRANT:SERIAL`), scoped by their `ACCOUNT@HOST` principal.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::agent::{Agent, Identity};
use crate::error::ClientError;

#[derive(Debug, Clone, Serialize)]
pub struct Loaded {
    #[serde(skip)]
    pub blob: Vec<u8>,
    pub key_id: String,
    /// A decimal string in `--json`, like the CA's answers.
    #[serde(serialize_with = "jit_ssh_proto::serial::serialize")]
    pub serial: u64,
    pub host: String,
    pub account: String,
    /// Unix seconds.
    pub valid_before: u64,
    pub seconds_left: u64,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn recognise(id: Identity) -> Option<Loaded> {
    let cert = id.certificate?;
    if !cert.key_id().starts_with("jit-ssh:") {
        return None;
    }
    let (account, host) = cert.valid_principals().first()?.split_once('@')?;
    Some(Loaded {
        key_id: cert.key_id().to_owned(),
        serial: cert.serial(),
        host: host.to_owned(),
        account: account.to_owned(),
        valid_before: cert.valid_before(),
        seconds_left: cert.valid_before().saturating_sub(now()),
        blob: id.blob,
    })
}

/// Every jit-ssh certificate in the agent.
pub fn list(agent: &mut Agent) -> Result<Vec<Loaded>, ClientError> {
    Ok(agent
        .identities()?
        .into_iter()
        .filter_map(recognise)
        .collect())
}

/// A certificate for `account@host` with at least `min_left` seconds to go.
pub fn valid_for(
    agent: &mut Agent,
    host: &str,
    account: &str,
    min_left: u64,
) -> Result<Option<Loaded>, ClientError> {
    Ok(list(agent)?
        .into_iter()
        .find(|c| c.host == host && c.account == account && c.seconds_left >= min_left))
}
