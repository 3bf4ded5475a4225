//! `jit-ssh logout` ends each saved sign-in at the CA before deleting its
//! file: deleting the file alone left every copy of the token working
//! until its end (auditors read the audit log and recordings with it).

use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;

use jit_ssh_proto::error::code;

use crate::ca_client::CaClient;
use crate::error::ClientError;
use crate::session::{saved_all, Saved};
use crate::settings::{Overrides, Settings};

/// Ends every saved sign-in at its CA and deletes its file, whatever the
/// CA answers. Returns how many the CA ended; says on stderr which it
/// could not end.
pub async fn sign_out_all() -> usize {
    // The configured CA (flags are not given to logout): its replicas and
    // its TLS root serve the files it issued.
    let configured = Settings::resolve(&Overrides::default()).ok();
    let mut ended = 0;
    for (path, saved) in saved_all() {
        if let Some(saved) = saved.filter(|s| s.valid_at(OffsetDateTime::now_utc())) {
            match end_one(&saved, configured.as_ref()).await {
                Ok(()) => ended += 1,
                Err(why) => eprintln!(
                    "jit-ssh: could not end the sign-in at the CA ({why}); deleted the \
                     local copy, but a copy of its token still works until {}",
                    saved.expires_at
                ),
            }
        }
        remove(&path);
    }
    ended
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        eprintln!("jit-ssh: could not delete {}: {e}", path.display());
    }
}

/// The CA to ask about `saved`: the configured one when it issued it (or
/// the file does not say), else the URL the file names.
fn settings_for(saved: &Saved, configured: Option<&Settings>) -> Option<Settings> {
    let url = reqwest::Url::parse(&saved.ca_url).ok();
    match (configured, url) {
        (Some(c), None) => Some(c.clone()),
        (Some(c), Some(u)) if c.ca_urls.contains(&u) => Some(c.clone()),
        (Some(c), Some(u)) => Some(Settings {
            ca_url: u.clone(),
            ca_urls: vec![u],
            ..c.clone()
        }),
        (None, Some(u)) => Some(Settings {
            ca_url: u.clone(),
            ca_urls: vec![u],
            user: String::new(),
            account: None,
            ttl: Duration::ZERO,
            ca_cert: None,
        }),
        (None, None) => None,
    }
}

/// Why `saved` was not ended, in words (never the token).
async fn end_one(saved: &Saved, configured: Option<&Settings>) -> Result<(), String> {
    let settings = settings_for(saved, configured)
        .ok_or_else(|| "no CA is configured and the file does not name one".to_owned())?;
    let id = saved
        .token
        .split_once('.')
        .map(|(id, _)| id)
        .ok_or_else(|| "the saved token is malformed".to_owned())?;
    let client = CaClient::new(&settings).map_err(|e| e.to_string())?;
    match client.end_session(id, &saved.token).await {
        Ok(_) => Ok(()),
        // The CA no longer accepts it: it has ended already.
        Err(ClientError::Ca { code: c, .. }) if c == code::UNAUTHORIZED => Ok(()),
        Err(ClientError::CaUnreachable { url, detail }) => {
            Err(format!("{url} could not be reached: {detail}"))
        }
        Err(e) => Err(format!("{}: {e}", settings.ca_url)),
    }
}
