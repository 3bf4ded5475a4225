//! `jit-ssh audit export --sessions -o DIR`: the audit chain as `audit
//! export` writes it, and beside it the recording of every session whose
//! `session_started` record is in that chain, so `jit-ssh audit verify
//! DIR` can check them offline (see `sessions_verify`, docs/audit.md).
//!
//! ```text
//! DIR/audit.jsonl                   the chain (with the CA's export checkpoint)
//! DIR/sessions/SESSION.recording    the recording bundle (jit-ssh-recording/1)
//! DIR/sessions/SESSION.host-key.pub the host key the CA verified it with
//! ```
//!
//! Nothing here is trusted by `verify`: the host key is checked against
//! the chain, the recording against the key and the chain's final hash.

use std::io::{BufRead, BufReader};
use std::path::Path;

use base64ct::{Base64, Encoding};

use jit_ssh_audit::{AuditRecord, Event};
use jit_ssh_proto::error::code;
use jit_ssh_recording::SessionId;

use crate::ca_client::CaClient;
use crate::error::ClientError;
use crate::session::{signed_in, SignIn};
use crate::sessions_verify::{CHAIN_FILE, HOST_KEY_EXT, RECORDING_EXT, SESSIONS_DIR};
use crate::settings::Settings;

/// What a sessions export wrote.
#[derive(Debug, serde::Serialize)]
pub struct ExportedSessions {
    #[serde(flatten)]
    pub chain: crate::audit::Exported,
    pub dir: String,
    /// Recordings written.
    pub recordings: u64,
    /// Sessions in the chain whose recording the CA no longer holds
    /// (retention) or never got.
    pub missing: Vec<String>,
}

pub async fn export(
    settings: &Settings,
    how: &SignIn,
    since: Option<String>,
    dir: &Path,
) -> Result<ExportedSessions, ClientError> {
    let usage = |e: std::io::Error| ClientError::Usage(format!("{}: {e}", dir.display()));
    // Never mix two exports: a stale recording beside a new chain would
    // be checked against the wrong records.
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => std::fs::remove_dir(dir).map_err(usage)?,
        Ok(false) => {
            return Err(ClientError::Usage(format!(
                "{}: not empty; --sessions writes a new directory",
                dir.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(usage(e)),
    }
    // Written aside and renamed when complete, as a single-file export
    // is: a cut export leaves no directory that looks whole.
    let partial = dir.with_extension("partial");
    std::fs::create_dir(&partial).map_err(|e| {
        ClientError::Usage(format!(
            "{}: {e} (left by an export that failed? remove it)",
            partial.display()
        ))
    })?;
    match fill(settings, how, since, &partial).await {
        Ok(mut done) => {
            std::fs::rename(&partial, dir).map_err(usage)?;
            done.dir = dir.display().to_string();
            done.chain.file = dir.join(CHAIN_FILE).display().to_string();
            Ok(done)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

async fn fill(
    settings: &Settings,
    how: &SignIn,
    since: Option<String>,
    dir: &Path,
) -> Result<ExportedSessions, ClientError> {
    let usage = |e: std::io::Error| ClientError::Usage(format!("{}: {e}", dir.display()));
    let chain_path = dir.join(CHAIN_FILE);
    let chain = crate::audit::export(settings, how, since, &chain_path).await?;
    let sessions = dir.join(SESSIONS_DIR);
    std::fs::create_dir(&sessions).map_err(usage)?;
    let client = CaClient::new(settings)?;
    let (mut recordings, mut missing) = (0u64, Vec::new());
    for id in started_sessions(&chain_path)? {
        let got = signed_in(&client, settings, how, |token| {
            let (client, id) = (&client, id.clone());
            async move { client.recording(&token, &id).await }
        })
        .await;
        let d = match got {
            Ok(d) => d,
            Err(ClientError::Ca { code: c, .. }) if c == code::NOT_FOUND => {
                missing.push(id);
                continue;
            }
            // An id the audit log starts twice: no recording is vouched
            // for; `verify` names it from the chain alone.
            Err(ClientError::Ca { code: c, message }) if c == code::WRONG_STATE => {
                eprintln!(
                    "jit-ssh: session {}: not exported: {}",
                    jit_ssh_proto::text::escape_for_terminal(&id),
                    jit_ssh_proto::text::escape_for_terminal(&message)
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        let bundle = Base64::decode_vec(&d.bundle).map_err(|e| {
            ClientError::Other(anyhow::anyhow!(
                "recording {id} from the CA: not base64: {e}"
            ))
        })?;
        let write = |name: String, bytes: &[u8]| {
            let path = sessions.join(name);
            std::fs::write(&path, bytes)
                .map_err(|e| ClientError::Usage(format!("writing {}: {e}", path.display())))
        };
        write(
            format!("{id}{HOST_KEY_EXT}"),
            format!("{}\n", d.host_key).as_bytes(),
        )?;
        write(format!("{id}{RECORDING_EXT}"), &bundle)?;
        recordings += 1;
    }
    Ok(ExportedSessions {
        chain,
        dir: dir.display().to_string(),
        recordings,
        missing,
    })
}

/// The session ids of the chain's `session_started` records, in order;
/// only ids that are valid session ids (they become file names).
fn started_sessions(chain: &Path) -> Result<Vec<String>, ClientError> {
    let io = |e: std::io::Error| ClientError::Usage(format!("reading {}: {e}", chain.display()));
    let f = std::fs::File::open(chain).map_err(io)?;
    let (mut out, mut seen) = (Vec::new(), std::collections::HashSet::new());
    for line in BufReader::with_capacity(1 << 20, f).lines() {
        let line = line.map_err(io)?;
        if !line.contains("\"session_started\"") {
            continue;
        }
        let Ok(rec) = serde_json::from_str::<AuditRecord>(&line) else {
            continue;
        };
        if let Event::SessionStarted(s) = rec.event {
            let id = s.subject.session;
            if SessionId::try_from(id.as_str()).is_ok() && seen.insert(id.clone()) {
                out.push(id);
            }
        }
    }
    Ok(out)
}
