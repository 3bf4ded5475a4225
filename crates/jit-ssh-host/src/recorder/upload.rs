//! Sending the spool to the CA: each session's chunks not yet
//! acknowledged, a batch per request (`POST /v1/recordings/{session}`,
//! docs/recordings.md), over the CA URLs sync uses, failing over as sync
//! does. What the CA acknowledged is noted in the spool; a session whose
//! end chunk was acknowledged leaves the spool. A batch the CA could not
//! take now is retried with backoff, so a CA that is down, or a recorder
//! restart, only delays uploads; a session the CA refused for good stays
//! in the spool, marked, and is not sent again ([`super::refused`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use jit_ssh_proto::recordings::{RecordingUpload, RecordingUploaded, MAX_UPLOAD_CHUNKS};
use reqwest::Url;
use tokio::sync::Notify;

use super::refused::{self, Verdict};
use super::spool::{read_unsent, remove, set_sent, Pending, Spool};
use crate::error::HostError;
use crate::failover::first_answering;
use crate::fetch::Refusal;

/// Raw chunk bytes per upload: base64 makes them 4/3 larger, under the
/// CA's 4 MiB body limit with room for the header.
const BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Chunks per upload, at most.
const BATCH_CHUNKS: usize = 64;
/// Unacknowledged chunk bytes read from the spool at a time.
const WINDOW_BYTES: usize = 8 * BATCH_BYTES;
/// How often the spool is looked at when nothing wakes the uploader.
const PASS_EVERY: Duration = Duration::from_secs(2);

pub struct Uploader {
    pub spool: Spool,
    pub urls: Vec<Url>,
    pub ca_cert: Option<PathBuf>,
    /// Sessions whose last upload failed: how often, and when to try
    /// again (doubling from 2 s to at most a minute), so a CA that is
    /// down or refuses is not asked, nor logged, every pass.
    pub backoff: HashMap<PathBuf, (u32, Instant)>,
    /// Sessions sent again from chunk 0 after a 409, and the chunk whose
    /// upload was refused then ([`refused::judge`]).
    pub restarted: HashMap<PathBuf, usize>,
}

/// Why a session's upload stopped short.
enum Failure {
    /// The CA could not be reached or asked, or the spool not read.
    Failed(HostError),
    /// The CA refused the upload starting at chunk `.1`.
    Refused(Refusal, usize),
}

impl From<HostError> for Failure {
    fn from(e: HostError) -> Self {
        Failure::Failed(e)
    }
}

/// The longest wait between two tries of one session.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn log(line: &str) {
    eprintln!("jit-ssh-host recorder: upload: {line}");
}

impl Uploader {
    pub async fn run(mut self, wake: Arc<Notify>) {
        loop {
            self.pass().await;
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(PASS_EVERY) => {}
            }
        }
    }

    /// One look at every session in the spool.
    pub async fn pass(&mut self) {
        let now = Instant::now();
        for dir in self.spool.sessions() {
            if self.backoff.get(&dir).is_some_and(|&(_, next)| now < next)
                || refused::is_marked(&dir)
            {
                continue;
            }
            let e = match self.session(&dir).await {
                Ok(()) => {
                    self.backoff.remove(&dir);
                    continue;
                }
                Err(Failure::Failed(e)) => e.to_string(),
                Err(Failure::Refused(r, first)) => {
                    match refused::judge(&r, first, self.restarted.get(&dir).copied()) {
                        Verdict::Permanent => match refused_for_good(&dir, &r, first) {
                            Ok(()) => {
                                self.backoff.remove(&dir);
                                continue;
                            }
                            // Unmarked it is sent again, with backoff.
                            Err(e) => format!(
                                "the CA refused this session for good ({}: {}), but it cannot be marked refused: {e}",
                                r.status, r.message
                            ),
                        },
                        Verdict::FromStart => {
                            self.restarted.insert(dir.clone(), first);
                            match set_sent(&dir, 0) {
                                Ok(()) => format!(
                                    "the CA refused the upload from chunk {first} ({}: {}); it may hold fewer chunks than it acknowledged (another replica, a restored CA): sending again from chunk 0",
                                    r.status, r.message
                                ),
                                Err(e) => e.to_string(),
                            }
                        }
                        Verdict::Transient => {
                            format!("the CA refused ({}): {}", r.status, r.message)
                        }
                    }
                }
            };
            let failures = self.backoff.get(&dir).map_or(0, |b| b.0) + 1;
            let wait = (PASS_EVERY * 2u32.saturating_pow(failures.min(6) - 1)).min(MAX_BACKOFF);
            log(&format!(
                "{}: {e} (will retry in {}s)",
                dir.display(),
                wait.as_secs()
            ));
            self.backoff.insert(dir, (failures, now + wait));
        }
        self.backoff.retain(|d, _| d.exists());
        self.restarted.retain(|d, _| d.exists());
    }

    /// Uploads what the CA has not acknowledged, a window of the spool at
    /// a time.
    async fn session(&self, dir: &Path) -> Result<(), Failure> {
        loop {
            let d = dir.to_owned();
            let p = tokio::task::spawn_blocking(move || read_unsent(&d, WINDOW_BYTES))
                .await
                .map_err(|e| HostError::Other(e.into()))?
                .map_err(|e| HostError::Other(e.into()))?;
            if p.chunks.is_empty() || self.window(dir, &p).await? {
                return Ok(());
            }
        }
    }

    /// Uploads the chunks of `p`; whether the session is done (removed).
    async fn window(&self, dir: &Path, p: &Pending) -> Result<bool, Failure> {
        let loaded = p.first + p.chunks.len();
        let mut sent = p.first;
        while sent < loaded {
            let mut batch = Vec::new();
            let mut bytes = 0;
            for c in &p.chunks[sent - p.first..] {
                if !batch.is_empty()
                    && (bytes + c.len() > BATCH_BYTES
                        || batch.len() >= BATCH_CHUNKS.min(MAX_UPLOAD_CHUNKS))
                {
                    break;
                }
                bytes += c.len();
                batch.push(base64::engine::general_purpose::STANDARD.encode(c));
            }
            let n = batch.len();
            let body = RecordingUpload {
                header: p.header.clone(),
                chunks: batch,
            };
            let path = jit_ssh_proto::routes::RECORDING.replace("{session}", &p.session);
            // A refusal is an answer (no other replica is asked); a CA
            // that cannot be reached moves on to the next.
            let answer = first_answering(&self.urls, |base| {
                let body = &body;
                let path = &path;
                let ca_cert = self.ca_cert.clone();
                async move {
                    let http = crate::fetch::client(&base, ca_cert.as_deref())?;
                    let url = format!("{}{}", base.as_str().trim_end_matches('/'), path);
                    crate::fetch::post_answer::<_, RecordingUploaded>(&http, &url, body, 64 * 1024)
                        .await
                }
            })
            .await?;
            let got = answer.map_err(|r| Failure::Refused(r, sent))?;
            let acked = usize::try_from(got.next_index).unwrap_or(0).min(loaded);
            set_sent(dir, acked).map_err(|e| HostError::Other(e.into()))?;
            if acked < sent + n.min(1) {
                // The CA holds fewer chunks than were sent: start again
                // from what it holds, at the next pass.
                return Err(
                    HostError::SyncRefused(format!("the CA expects chunk {acked} next")).into(),
                );
            }
            sent = acked;
            if got.ended && p.ended {
                log(&format!(
                    "session {}: all {loaded} chunks stored at the CA",
                    p.session
                ));
                remove(dir).map_err(|e| HostError::Other(e.into()))?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Marks the session refused, keeping every chunk, and says so once.
fn refused_for_good(dir: &Path, r: &Refusal, first: usize) -> Result<(), super::spool::SpoolError> {
    refused::mark(
        dir,
        &refused::Marker::new(r, first, crate::sync::now_unix()),
    )?;
    log(&format!(
        "{}: the CA refused this session for good at chunk {first} ({}: {}); kept in the spool, not sent again (`jit-ssh-host recordings` lists it, `--retry SESSION` sends it again)",
        dir.display(),
        r.status,
        r.message
    ));
    Ok(())
}

#[cfg(test)]
#[path = "upload_tests.rs"]
mod tests;
