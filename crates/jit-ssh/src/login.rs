//! `jit-ssh login HOST`: a fresh ed25519 key in memory, a request to the
//! CA, the WebAuthn touch in the browser, then key + certificate into the
//! agent for exactly the certificate's remaining lifetime. The private key
//! never touches disk.

use std::time::{Duration, Instant};

use serde::Serialize;
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, PrivateKey};

use jit_ssh_proto::api::{CreateRequest, IssuedCertificate, RequestStatus};

use crate::agent::Agent;
use crate::browser;
use crate::ca_client::CaClient;
use crate::error::ClientError;
use crate::loaded::{self, now};
use crate::progress::Progress;
use crate::settings::Settings;

/// How the login should behave.
pub struct LoginOptions {
    pub host: String,
    pub reason: String,
    pub break_glass: bool,
    pub open_browser: bool,
    pub timeout: Duration,
    pub quiet: bool,
}

/// Milliseconds spent in each step; `wait` is the human's part.
#[derive(Debug, Default, Serialize)]
pub struct Timings {
    pub keygen_ms: f64,
    pub create_request_ms: f64,
    pub wait_ms: f64,
    pub agent_ms: f64,
    pub total_ms: f64,
    /// Everything but waiting for the person and the approvers.
    pub overhead_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct LoggedIn {
    pub host: String,
    pub account: String,
    pub request: String,
    /// A decimal string, like the CA's answers (see `jit_ssh_proto::serial`).
    #[serde(serialize_with = "jit_ssh_proto::serial::serialize")]
    pub serial: u64,
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    /// Identities removed from the agent first (older jit-ssh certificates
    /// for the same host and account, and expired ones).
    pub replaced: usize,
    pub timings: Timings,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn status_text(status: RequestStatus, reason: Option<&str>) -> String {
    match status {
        RequestStatus::PendingMfa => "waiting for your security key…".into(),
        RequestStatus::PendingApproval => format!(
            "waiting for approval{}…",
            reason
                .map(|r| format!(" ({})", jit_ssh_proto::text::escape_for_terminal(r)))
                .unwrap_or_default()
        ),
        RequestStatus::Issued => "issued".into(),
        RequestStatus::Denied => "denied".into(),
        RequestStatus::Expired => "expired".into(),
        RequestStatus::Cancelled => "cancelled".into(),
    }
}

pub async fn login(settings: &Settings, opts: &LoginOptions) -> Result<LoggedIn, ClientError> {
    let start = Instant::now();
    // Check the agent first: no point touching a key if we cannot load it.
    let mut agent = Agent::from_env()?;
    let client = CaClient::new(settings)?;
    // Catch Ctrl-C before the request exists: from then on an interrupt
    // must withdraw it on the CA, not just kill us.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| ClientError::Other(e.into()))?;
    let account = settings.account();

    let t = Instant::now();
    let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(|e| ClientError::Other(e.into()))?;
    let public_key = key
        .public_key()
        .to_openssh()
        .map_err(|e| ClientError::Other(e.into()))?;
    let keygen = t.elapsed();

    let t = Instant::now();
    let created = client
        .create(&CreateRequest {
            user: settings.user.clone(),
            host: opts.host.clone(),
            account: account.clone(),
            ttl: jit_ssh_proto::format_duration(settings.ttl),
            reason: opts.reason.clone(),
            public_key,
            break_glass: opts.break_glass,
        })
        .await?;
    let create = t.elapsed();

    browser::offer(
        "Confirm with your security key:",
        &created.mfa_url,
        &created.match_code,
        opts.open_browser,
        opts.quiet,
    );

    let t = Instant::now();
    let issued = tokio::select! {
        r = wait(&client, &created.id, &created.secret, opts) => r?,
        _ = interrupt.recv() => {
            // Clear the spinner's line before the error is printed.
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprint!("\r\x1b[2K");
            }
            let _ = client.cancel(&created.id, &created.secret).await;
            return Err(ClientError::Cancelled);
        }
    };
    let waited = t.elapsed();

    let t = Instant::now();
    let left = issued.valid_before.saturating_sub(now());
    if left == 0 {
        return Err(ClientError::TimedOut(
            "the certificate expired before it could be loaded".into(),
        ));
    }
    // Old jit-ssh certificates for this host pile up otherwise, and sshd
    // gives up after MaxAuthTries identities.
    let mut replaced = 0;
    for old in loaded::list(&mut agent)? {
        if (old.host == opts.host && old.account == account) || old.seconds_left == 0 {
            agent.remove(&old.blob)?;
            replaced += 1;
        }
    }
    let comment = format!("jit-ssh {account}@{} serial {}", opts.host, issued.serial);
    agent.add_certified(
        &key,
        &issued.certificate,
        Duration::from_secs(left),
        &comment,
    )?;
    let agent_time = t.elapsed();
    let total = start.elapsed();

    Ok(LoggedIn {
        host: opts.host.clone(),
        account,
        request: created.id,
        serial: issued.serial,
        principals: issued.principals,
        valid_after: issued.valid_after,
        valid_before: issued.valid_before,
        replaced,
        timings: Timings {
            keygen_ms: ms(keygen),
            create_request_ms: ms(create),
            wait_ms: ms(waited),
            agent_ms: ms(agent_time),
            total_ms: ms(total),
            overhead_ms: ms(total.saturating_sub(waited)),
        },
    })
}

/// Polls until the request is decided or `opts.timeout` passes.
async fn wait(
    client: &CaClient,
    id: &str,
    secret: &str,
    opts: &LoginOptions,
) -> Result<IssuedCertificate, ClientError> {
    let deadline = Instant::now() + opts.timeout;
    let mut progress = Progress::new(opts.quiet);
    let mut ticker = tokio::time::interval(Duration::from_millis(120));
    let poll = Duration::from_secs(20);
    let mut asked: Option<(Vec<String>, Vec<String>)> = None;
    // What we wait for, and when the CA will let the request expire: the
    // spinner counts down to it between polls.
    let mut shown = status_text(RequestStatus::PendingMfa, None);
    let mut expires: Option<u64> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            progress.done();
            let _ = client.cancel(id, secret).await;
            return Err(ClientError::TimedOut(format!(
                "no decision within {}; the request was withdrawn",
                jit_ssh_proto::format_duration(opts.timeout)
            )));
        }
        let state = {
            let fetch = client.state(id, secret, poll.min(left));
            tokio::pin!(fetch);
            loop {
                tokio::select! {
                    s = &mut fetch => break s?,
                    _ = ticker.tick() => progress.update(&with_countdown(&shown, expires)),
                }
            }
        };
        if let Some(a) = &state.approval {
            // Say who was asked, and each approval as it comes in.
            let seen = (a.approvers.clone(), a.approved_by.clone());
            if asked.as_ref() != Some(&seen) && !opts.quiet {
                progress.done();
                if asked.is_none() {
                    let why = a
                        .not_on_call
                        .as_ref()
                        .map(|s| format!(" (you are not on call in {s})"))
                        .unwrap_or_default();
                    eprintln!(
                        "Needs {} approval(s){why} from: {}. They can approve at:",
                        a.needed,
                        a.approvers.join(", ")
                    );
                    eprintln!("{}", jit_ssh_proto::text::escape_for_terminal(&a.url));
                }
                for who in a
                    .approved_by
                    .iter()
                    .skip(asked.as_ref().map_or(0, |s| s.1.len()))
                {
                    eprintln!(
                        "approved by {who} ({} of {})",
                        a.approved_by.len(),
                        a.needed
                    );
                }
                asked = Some(seen);
            }
        }
        expires = unix_time(&state.expires_at);
        shown = status_text(state.status, state.reason.as_deref());
        progress.update(&with_countdown(&shown, expires));
        match state.status {
            RequestStatus::Issued => {
                progress.done();
                return state.certificate.ok_or_else(|| {
                    ClientError::Other(anyhow::anyhow!(
                        "the CA said issued but sent no certificate"
                    ))
                });
            }
            RequestStatus::Denied => {
                progress.done();
                let reason = state.reason.unwrap_or_else(|| "no reason given".into());
                // Approvers are asked only after policy allowed the request:
                // a denial then is a person's, not the policy's.
                return Err(if state.approval.is_some() {
                    ClientError::DeniedByApprover(reason)
                } else {
                    ClientError::Denied(reason)
                });
            }
            RequestStatus::Expired => {
                progress.done();
                return Err(ClientError::TimedOut(state.reason.unwrap_or_else(|| {
                    "the request expired before it was approved".into()
                })));
            }
            RequestStatus::Cancelled => {
                progress.done();
                return Err(ClientError::Cancelled);
            }
            RequestStatus::PendingMfa | RequestStatus::PendingApproval => {}
        }
    }
}

/// `status`, and how long until the request expires (when known).
fn with_countdown(status: &str, expires: Option<u64>) -> String {
    match expires {
        Some(at) => format!(
            "{status} (the request expires in {})",
            jit_ssh_proto::format_duration(Duration::from_secs(
                at.saturating_sub(crate::loaded::now())
            ))
        ),
        None => status.to_owned(),
    }
}

fn unix_time(rfc3339: &str) -> Option<u64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
}
