//! Offline check of a sessions export (`jit-ssh audit export --sessions
//! -o DIR`) with only the CA public key(s): the audit chain first, then
//! every recording against what that chain says about it.
//!
//! For each session the chain holds a `session_started` record naming the
//! host key's fingerprint, and (once ended) a `session_ended` record with
//! the recording's final chain hash. The host key itself travels in the
//! export, so it must (1) have that fingerprint, (2) be the key the chain
//! last enrolled for that host (`host_enrolled` or `host_renewed`, not
//! removed since) before the session started, and (3) verify every chunk,
//! the chain of chunks ending at exactly the final hash (the recording
//! crate's `verify`, which names the first bad chunk). The chain is
//! signed by the CA (checkpoints), so the CA's word reaches every chunk;
//! nothing in the export is taken on its own say-so.

use std::collections::{BTreeMap, HashMap};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, PublicKey};

use jit_ssh_audit::checkpoint::ExportReport;
use jit_ssh_audit::{AuditRecord, Event};
use jit_ssh_recording::{bundle, verify, ChainHash, Header, SessionId};

use crate::error::ClientError;

/// The chain, exactly as `jit-ssh audit export -o FILE` writes it.
pub const CHAIN_FILE: &str = "audit.jsonl";
/// One pair of files per recorded session in range.
pub const SESSIONS_DIR: &str = "sessions";
/// `SESSION.recording`: the bundle (`jit-ssh-recording/1`).
pub const RECORDING_EXT: &str = ".recording";
/// `SESSION.host-key.pub`: the host public key (OpenSSH line) the CA
/// verified the chunks with.
pub const HOST_KEY_EXT: &str = ".host-key.pub";

/// What the chain says about one session.
#[derive(Debug, Clone)]
struct ChainSession {
    host: String,
    started_seq: u64,
    /// The seqs of later `session_started` records naming the same id
    /// (a CA before ids were single-use took a second upload after
    /// retention pruned the first): the id is then refused, not read as
    /// one of them.
    again: Vec<u64>,
    fingerprint: String,
    /// The enrolled host (its name and the record's seq) whose key had
    /// that fingerprint when the session started.
    vouched_by: Option<(String, u64)>,
    /// From `session_ended`: final hash (hex) and its seq.
    ended: Option<(String, u64)>,
}

/// One session's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCheck {
    pub session: String,
    pub outcome: Result<Checked, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub chunks: usize,
    /// `None` while the session is open (no `session_ended` in the chain).
    pub final_hash: Option<String>,
    /// The enrolled host whose record vouches for the key.
    pub host: String,
}

#[derive(Debug)]
pub struct SessionsReport {
    pub chain: ExportReport,
    /// Every session in the chain or in the export, by id.
    pub sessions: Vec<SessionCheck>,
}

impl SessionsReport {
    pub fn problems(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sessions.iter().filter_map(|s| match &s.outcome {
            Err(e) => Some((s.session.as_str(), e.as_str())),
            Ok(_) => None,
        })
    }
}

/// Checks the export directory `dir`. The audit chain must verify first:
/// until it does, nothing it says about sessions is the CA's word.
pub fn verify_dir(dir: &Path, ca_keys: &[PublicKey]) -> Result<SessionsReport, ClientError> {
    let chain_path = dir.join(CHAIN_FILE);
    // What the chain says about sessions is gathered in the same read
    // that verifies it: read a second time, the file could be another.
    let mut seen = ChainSessions::default();
    let chain = crate::audit::verify_each(&chain_path, ca_keys, |rec| seen.take(rec))?;
    if chain.problem.is_some() {
        return Ok(SessionsReport {
            chain,
            sessions: Vec::new(),
        });
    }
    let in_chain = seen.sessions;
    let on_disk = recordings_on_disk(&dir.join(SESSIONS_DIR))?;
    let mut sessions = Vec::new();
    for (id, s) in &in_chain {
        let outcome = match on_disk.get(id) {
            _ if !s.again.is_empty() => Err(format!(
                "the audit chain holds {} session_started records (seq {}) for this session id: a session id is used once, so no one recording is vouched for",
                s.again.len() + 1,
                std::iter::once(s.started_seq)
                    .chain(s.again.iter().copied())
                    .map(|q| q.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => Err(format!(
                "the audit chain records this session (session_started, seq {}), but its recording is not in the export (pruned by retention, or removed)",
                s.started_seq
            )),
            Some(path) => check_one(id, s, path),
        };
        sessions.push(SessionCheck {
            session: id.clone(),
            outcome,
        });
    }
    for id in on_disk.keys().filter(|id| !in_chain.contains_key(*id)) {
        sessions.push(SessionCheck {
            session: id.clone(),
            outcome: Err(
                "no session_started record in the export's audit chain vouches for this recording"
                    .into(),
            ),
        });
    }
    Ok(SessionsReport { chain, sessions })
}

/// The sessions a chain records, with the host key enrolled for each
/// session's host at the moment it started, gathered record by record.
#[derive(Default)]
struct ChainSessions {
    /// Host name → (fingerprint of its enrolled key, the record's seq).
    hosts: HashMap<String, (String, u64)>,
    sessions: BTreeMap<String, ChainSession>,
}

impl ChainSessions {
    fn take(&mut self, rec: &AuditRecord) {
        match &rec.event {
            Event::HostEnrolled(h) | Event::HostRenewed(h) => {
                self.hosts
                    .insert(h.host.clone(), (h.host_key_fingerprint.clone(), rec.seq));
            }
            Event::HostRemoved(h) => {
                self.hosts.remove(&h.host);
            }
            Event::SessionStarted(s) => {
                let fp = &s.host_key_fingerprint;
                let host = &s.subject.host;
                // The session's host by name; or, for a session on one of
                // a host's aliases, the enrolled host holding that key
                // (the CA bound the alias to that host on upload).
                let vouched_by = match self.hosts.get(host) {
                    Some((k, seq)) if k == fp => Some((host.clone(), *seq)),
                    _ => self
                        .hosts
                        .iter()
                        .find(|(_, (k, _))| k == fp)
                        .map(|(name, (_, seq))| (name.clone(), *seq)),
                };
                self.sessions
                    .entry(s.subject.session.clone())
                    .and_modify(|known| known.again.push(rec.seq))
                    .or_insert_with(|| ChainSession {
                        host: host.clone(),
                        started_seq: rec.seq,
                        again: Vec::new(),
                        fingerprint: fp.clone(),
                        vouched_by,
                        ended: None,
                    });
            }
            Event::SessionEnded(e) => {
                if let Some(s) = self.sessions.get_mut(&e.subject.session) {
                    s.ended.get_or_insert((e.final_hash.clone(), rec.seq));
                }
            }
            _ => {}
        }
    }
}

/// `SESSION` → its `.recording` file, for every file in `dir` so named.
fn recordings_on_disk(dir: &Path) -> Result<BTreeMap<String, PathBuf>, ClientError> {
    let io = |e: std::io::Error| ClientError::Usage(format!("reading {}: {e}", dir.display()));
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(RECORDING_EXT) {
            out.insert(id.to_owned(), entry.path());
        }
    }
    Ok(out)
}

fn check_one(id: &str, s: &ChainSession, recording: &Path) -> Result<Checked, String> {
    // It becomes a file name below.
    if SessionId::try_from(id).is_err() {
        return Err("not a valid session id".into());
    }
    let key_path = recording.with_file_name(format!("{id}{HOST_KEY_EXT}"));
    let line = std::fs::read_to_string(&key_path)
        .map_err(|e| format!("the host key {}: {e}", key_path.display()))?;
    let key = PublicKey::from_openssh(line.trim())
        .map_err(|e| format!("the host key {}: {e}", key_path.display()))?;
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    if fingerprint != s.fingerprint {
        return Err(format!(
            "the host key in the export is {fingerprint}, but the session_started record (seq {}) names {}",
            s.started_seq, s.fingerprint
        ));
    }
    let Some((host, _)) = &s.vouched_by else {
        return Err(format!(
            "host key {fingerprint} is not vouched for: no host_enrolled or host_renewed record in the export names it for {} (or any host) before the session started (seq {}); the host was removed or re-enrolled with another key, or it enrolled before the export starts (export from an earlier --since)",
            s.host, s.started_seq
        ));
    };
    let f = std::fs::File::open(recording)
        .map_err(|e| format!("the recording {}: {e}", recording.display()))?;
    let (header, chunks) = bundle::read(BufReader::new(f)).map_err(|e| e.to_string())?;
    let named = Header::parse_line(&header)
        .map_err(|e| format!("header: {e}"))?
        .session
        .session_id
        .to_string();
    if named != id {
        return Err(format!(
            "the recording's header names session {named}, not {id}"
        ));
    }
    let expected = s
        .ended
        .as_ref()
        .map(|(h, seq)| {
            h.parse::<ChainHash>()
                .map_err(|e| format!("the session_ended record (seq {seq}): final hash: {e}"))
        })
        .transpose()?;
    let v = verify(&header, chunks, &key, expected.as_ref()).map_err(|e| e.to_string())?;
    Ok(Checked {
        chunks: v.chunks().len(),
        final_hash: s.ended.as_ref().map(|(h, _)| h.clone()),
        host: host.clone(),
    })
}

#[cfg(test)]
#[path = "sessions_verify_tests.rs"]
mod tests;
