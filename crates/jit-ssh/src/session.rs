//! Signing in to the CA for commands that read or decide (`audit`,
//! `requests`, `approve`, `deny`): the user confirms a sign-in with their
//! security key, and the session token is kept for its short life in a
//! private file, so a run of commands needs one touch.
//!
//! The token file lives in `$XDG_RUNTIME_DIR/jit-ssh/` (memory, cleared at
//! logout) when there is one, else `~/.cache/jit-ssh/`; mode 0600 in a
//! 0700 directory. It is useless after `session_ttl` (15 minutes by
//! default), and `jit-ssh logout` ends it at the CA and removes it
//! (`sign_out.rs`).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use jit_ssh_proto::api::{session_token, CreateSession, SessionStatus};
use jit_ssh_proto::error::code;

use crate::browser;
use crate::ca_client::CaClient;
use crate::confirm::until_confirmed;
use crate::error::ClientError;
use crate::settings::Settings;

#[derive(Serialize, Deserialize)]
pub(crate) struct Saved {
    pub(crate) token: String,
    /// RFC 3339.
    pub(crate) expires_at: String,
    /// The CA that issued it, so logout can end it there (empty in files
    /// written before logout did).
    #[serde(default)]
    pub(crate) ca_url: String,
}

impl Saved {
    /// Whether the CA still takes the token at `t` (an unreadable end is
    /// taken as past).
    pub(crate) fn valid_at(&self, t: OffsetDateTime) -> bool {
        OffsetDateTime::parse(&self.expires_at, &Rfc3339).is_ok_and(|end| end > t)
    }
}

fn dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("jit-ssh"))
}

/// One file per CA and user.
fn file(settings: &Settings) -> Option<PathBuf> {
    let who = Sha256::digest(format!("{}\n{}", settings.ca_url, settings.user));
    Some(dir()?.join(format!("session-{}", &hex::encode(who)[..16])))
}

fn load(settings: &Settings) -> Option<String> {
    let saved: Saved = serde_json::from_slice(&std::fs::read(file(settings)?).ok()?).ok()?;
    // Not one about to end mid-command.
    let soon = OffsetDateTime::now_utc() + Duration::from_secs(10);
    saved.valid_at(soon).then_some(saved.token)
}

fn save(settings: &Settings, saved: &Saved) {
    // Best effort: without the file the next command asks for a touch.
    let (Some(dir), Some(path)) = (dir(), file(settings)) else {
        return;
    };
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    let tmp = path.with_extension("tmp");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&serde_json::to_vec(saved).unwrap_or_default()))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Every saved session file, with what it holds when it can be read.
pub(crate) fn saved_all() -> Vec<(PathBuf, Option<Saved>)> {
    let Some(entries) = dir().and_then(|d| std::fs::read_dir(d).ok()) else {
        return vec![];
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("session-"))
        .map(|e| {
            let saved = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            (e.path(), saved)
        })
        .collect()
}

/// Drops the saved session (the CA no longer accepts it).
pub fn forget(settings: &Settings) {
    if let Some(path) = file(settings) {
        let _ = std::fs::remove_file(path);
    }
}

/// A session token for `settings.user`: the saved one while it lasts,
/// else a new sign-in confirmed with the user's security key.
pub async fn token(
    client: &CaClient,
    settings: &Settings,
    open_browser: bool,
    timeout: Duration,
) -> Result<String, ClientError> {
    if let Some(token) = load(settings) {
        return Ok(token);
    }
    let created = client
        .create_session(&CreateSession {
            user: settings.user.clone(),
        })
        .await?;
    browser::offer(
        &format!("Sign in as {} with your security key:", settings.user),
        &created.mfa_url,
        &created.match_code,
        open_browser,
        false,
    );
    let state = until_confirmed(
        timeout,
        "waiting for your security key…",
        "the sign-in was not confirmed in time",
        || async {
            let s = client.session(&created.id, &created.secret).await?;
            match s.status {
                SessionStatus::Active => Ok(Some(s)),
                SessionStatus::PendingMfa => Ok(None),
                SessionStatus::Expired => Err(ClientError::TimedOut(
                    "the sign-in expired before it was confirmed".into(),
                )),
            }
        },
    )
    .await?;
    let token = session_token(&created.id, &created.secret);
    save(
        settings,
        &Saved {
            token: token.clone(),
            expires_at: state.expires_at,
            ca_url: settings.ca_url.to_string(),
        },
    );
    Ok(token)
}

/// How to sign in when needed.
pub struct SignIn {
    pub open_browser: bool,
    pub timeout: Duration,
}

/// Runs `f` with a session token; once more with a fresh sign-in if the
/// CA no longer accepts the saved one.
pub async fn signed_in<T, F, Fut>(
    client: &CaClient,
    settings: &Settings,
    how: &SignIn,
    f: F,
) -> Result<T, ClientError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let saved = token(client, settings, how.open_browser, how.timeout).await?;
    match f(saved).await {
        Err(ClientError::Ca { code: c, .. }) if c == code::UNAUTHORIZED => {
            forget(settings);
            let fresh = token(client, settings, how.open_browser, how.timeout).await?;
            f(fresh).await
        }
        other => other,
    }
}
