//! A host's recorder uploads a session's recording. The chunks' SSHSIGs
//! by the host's *enrolled* key are the authentication: the header names
//! the host, the CA verifies every new chunk with that host's key and the
//! chain so far, and on a session's first upload checks the header
//! against the grant's `certificate_issued` audit record (same serial,
//! key id, user, account, and that host). Then the session must lie
//! within that certificate (`recording_bounds`) and, on its first upload,
//! its id must be new (`recording_ids`) and its grant below its session
//! cap (`recording_caps`). Order: verify → audit
//! (`session_started`, `session_ended` with the final hash) → store; a
//! refused upload stores nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use base64ct::{Base64, Encoding};
use ssh_key::{HashAlg, PublicKey};

use jit_ssh_audit::session_record::{SessionEnded, SessionStarted, SessionSubject};
use jit_ssh_audit::{Actor, AuditQuery, CertificateIssued, Event};
use jit_ssh_proto::recordings::{RecordingUpload, RecordingUploaded, MAX_UPLOAD_CHUNKS};
use jit_ssh_recording::verify::{ChunkProblem, VerifyError};
use jit_ssh_recording::{ChainState, Chunk, Header, SessionId, Verifier};

use super::recording_ids::Audited;
use super::{recording_bounds as bounds, Ca, ServiceError};
use crate::recordings::space::{self, FsSpace, Probe};
use crate::recordings::{EndedMeta, LocalRecordings, RecordingMeta, RecordingStore, StoredChain};

/// Uploads per host name per minute (every session's recorder uploads
/// every few seconds).
const UPLOADS_PER_MINUTE_PER_HOST: u32 = 1200;
/// Open sessions whose chain state is kept in memory; past this the cache
/// is emptied and rebuilt from stored chunks as uploads come.
const CACHED_SESSIONS: usize = 10_000;

/// The recording store and where each open session's chain stands.
pub struct Recordings {
    pub(super) store: Arc<dyn RecordingStore>,
    /// Held for a whole upload: one writer per session at a time (and the
    /// cache stays what the store holds).
    chains: Mutex<HashMap<SessionId, ChainState>>,
    /// The data directory, whose filesystem holds the recordings and the
    /// audit log.
    data_dir: PathBuf,
    /// Reads that filesystem's free space (`statvfs`; tests replace it).
    probe: RwLock<Probe>,
}

impl Recordings {
    /// Removes recordings that ended before `before`, with no upload
    /// running (they hold the same lock) and the cache emptied after: a
    /// session idle past retention that uploads again starts from
    /// nothing stored and is refused at its first chunk, never appended
    /// to a directory made afresh.
    pub(super) fn prune(&self, before: i64) -> Result<u64, crate::recordings::RecordingStoreError> {
        let mut chains = self.chains.lock().unwrap_or_else(|p| p.into_inner());
        let pruned = self.store.prune(before);
        chains.clear();
        pruned
    }

    /// Recordings in `DATA/recordings/`.
    pub fn local(data_dir: &std::path::Path) -> Self {
        Recordings {
            store: Arc::new(LocalRecordings::new(data_dir.join("recordings"))),
            chains: Mutex::new(HashMap::new()),
            data_dir: data_dir.to_owned(),
            probe: RwLock::new(Arc::new(space::statvfs)),
        }
    }
}

fn stored(e: crate::recordings::RecordingStoreError) -> ServiceError {
    tracing::error!(error = %e, "recording store failed");
    ServiceError::Internal("recording store".into())
}

/// A refused chunk: a bad signature is 403, anything else 400; the text
/// is the recording crate's (it names the chunk).
fn refused(e: VerifyError) -> ServiceError {
    match e {
        VerifyError::Chunk {
            problem: ChunkProblem::Signature,
            ..
        } => ServiceError::Forbidden(e.to_string()),
        e => ServiceError::invalid(e),
    }
}

impl Ca {
    /// Replaces how the recordings' free space is read (tests run out of
    /// room without filling a disk).
    pub fn set_recordings_probe(&self, probe: Probe) {
        *self
            .recordings
            .probe
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = probe;
    }

    /// The recordings' filesystem as read now (`statvfs`, or the test's
    /// probe).
    pub fn recordings_fs(&self) -> std::io::Result<FsSpace> {
        let probe = self
            .recordings
            .probe
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let r = &self.recordings;
        let dir = r.data_dir.join("recordings");
        let dir = if dir.exists() {
            dir
        } else {
            r.data_dir.clone()
        };
        probe(&dir)
    }

    /// The recordings' filesystem, if above `[recordings] min_free` and
    /// `min_free_inodes`.
    pub fn recordings_space(&self) -> Result<FsSpace, space::Short> {
        let s = self
            .recordings_fs()
            .map_err(|e| space::Short::Unknown(e.to_string()))?;
        let c = &self.config.recordings;
        space::judge(&s, c.floor, c.inode_floor)?;
        Ok(s)
    }

    pub fn upload_recording(
        &self,
        session: &str,
        body: &RecordingUpload,
        client: SocketAddr,
    ) -> Result<RecordingUploaded, ServiceError> {
        let session = SessionId::try_from(session).map_err(ServiceError::invalid)?;
        let header = Header::parse_line(&body.header)
            .map_err(|e| ServiceError::invalid(format!("header: {e}")))?;
        let info = &header.session;
        if info.session_id != session {
            return Err(ServiceError::invalid(format!(
                "the header is for session {}, not {session}",
                info.session_id
            )));
        }
        if body.chunks.is_empty() || body.chunks.len() > MAX_UPLOAD_CHUNKS {
            return Err(ServiceError::invalid(format!(
                "send 1 to {MAX_UPLOAD_CHUNKS} chunks"
            )));
        }
        let chunks = body
            .chunks
            .iter()
            .enumerate()
            .map(|(i, b64)| {
                Base64::decode_vec(b64)
                    .map_err(|e| ServiceError::invalid(format!("chunks[{i}]: not base64 ({e})")))
                    .and_then(|b| {
                        Chunk::from_bytes(&b).map_err(|e| {
                            ServiceError::invalid(format!("chunks[{i}]: not a chunk ({e})"))
                        })
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let r = &self.recordings;
        // A poisoned lock only means another upload panicked; the map is
        // rebuilt from the store when in doubt.
        let mut chains = r.chains.lock().unwrap_or_else(|p| {
            let mut g = p.into_inner();
            g.clear();
            g
        });
        let meta = r.store.meta(&session).map_err(stored)?;
        let now = self.now();
        let host_key = self.recording_host_key(&header, meta.as_ref())?;
        if meta.is_some()
            && r.store.header_line(&session).map_err(stored)?.as_deref() != Some(&body.header)
        {
            return Err(ServiceError::WrongState(format!(
                "session {session} was started with another header line"
            )));
        }
        // What is stored, by the store's count: the cached chain may be
        // gone (a restart, a full cache, an ended session) and is not
        // needed to compare a resend.
        let next = meta.as_ref().map_or(0, |m| m.chunks);
        let resent = chunks.iter().take_while(|c| c.body().index < next).count();
        if resent > 0 {
            self.compare_resent(&session, &chunks[..resent], next)?;
        }
        let new = &chunks[resent..];
        if new.is_empty() {
            return Ok(RecordingUploaded {
                next_index: next,
                ended: meta.as_ref().is_some_and(|m| m.ended.is_some()),
            });
        }
        if meta.as_ref().is_some_and(|m| m.ended.is_some()) {
            return Err(ServiceError::WrongState(format!(
                "session {session} has ended: its {next} chunks are stored, the last its end chunk; nothing may follow it"
            )));
        }
        for (k, c) in new.iter().enumerate() {
            let want = next + k as u64;
            if c.body().index != want {
                return Err(ServiceError::WrongState(format!(
                    "expected chunk index {want}, found {} (a gap or a reordering)",
                    c.body().index
                )));
            }
        }
        let held = chains
            .get(&session)
            .filter(|s| s.next_index == next)
            .cloned()
            .or_else(|| {
                meta.as_ref()
                    .and_then(|m| m.chain.as_ref())
                    .filter(|c| c.next_index == next)
                    .and_then(StoredChain::state)
            });
        let state = match held {
            Some(s) => s,
            None => self.rebuild_chain(&session, &body.header, &host_key)?,
        };
        let mut verifier =
            Verifier::resume(&body.header, host_key.clone(), state).map_err(refused)?;
        for c in new {
            verifier.push(c).map_err(refused)?;
        }
        let after = verifier.state().clone();
        // After the signatures: a caller without the host key learns
        // nothing about grants.
        let window = match meta.as_ref().and_then(|m| m.certificate) {
            Some(w) => w,
            None => {
                // A first upload, or state an older CA wrote without
                // the window: the audit record says it.
                let w = bounds::window(&self.check_grant(&header)?);
                if meta.is_none() {
                    bounds::check_start(&header, &w)?;
                }
                w
            }
        };
        bounds::check_chunks(&header, &window, new)?;
        let fingerprint = host_key.fingerprint(HashAlg::Sha256).to_string();
        // Audited already: a first upload whose store failed, retried.
        let audited = match meta {
            None => self.first_use(&header, &fingerprint, &after)?,
            Some(_) => Audited::default(),
        };
        self.limit(
            &format!("recording-upload:{}", info.host),
            UPLOADS_PER_MINUTE_PER_HOST,
        )?;
        // Before any audit record or byte: below the floor the room
        // left is the audit log's (issuance needs it), and the host
        // keeps its chunks until the store takes them.
        if let Err(short) = self.recordings_space() {
            tracing::warn!(%session, host = %info.host, reason = %short, "refused a recording upload: the recordings store is below its free-space or free-inode floor");
            return Err(ServiceError::InsufficientStorage(short.to_string()));
        }
        self.audit_recording(
            &header,
            &host_key,
            Audited {
                started: meta.is_some() || audited.started,
                ended: audited.ended,
            },
            new,
            &after,
            client,
        )?;
        let base = match meta {
            Some(m) => m,
            None => {
                let m = new_meta(&header, &host_key, now);
                r.store.begin(&m, &body.header).map_err(stored)?;
                m
            }
        };
        let mut next_meta = RecordingMeta {
            updated_at: now,
            chain: StoredChain::of(&after),
            certificate: Some(window),
            ..base
        };
        if let Some(end) = after.end {
            next_meta.ended = Some(EndedMeta {
                reason: end.reason.as_str().to_owned(),
                final_hash: after.prev.to_string(),
                output_bytes: end.totals.output_bytes,
                input_bytes: end.totals.input_bytes,
                at: now,
            });
        }
        r.store.append(&next_meta, new).map_err(stored)?;
        if after.end.is_some() {
            chains.remove(&session);
        } else {
            if chains.len() >= CACHED_SESSIONS {
                chains.clear();
            }
            chains.insert(session, after.clone());
        }
        Ok(RecordingUploaded {
            next_index: after.next_index,
            ended: after.end.is_some(),
        })
    }

    /// Resent chunks must be the stored ones at their indices, in order;
    /// only those are read back (`next` are stored).
    fn compare_resent(
        &self,
        session: &SessionId,
        resent: &[Chunk],
        next: u64,
    ) -> Result<(), ServiceError> {
        let first = resent[0].body().index;
        let differs = |i: u64| {
            ServiceError::WrongState(format!(
                "chunk {i} differs from the chunk {i} already stored; the next chunk must have index {next}"
            ))
        };
        for (k, c) in resent.iter().enumerate() {
            if c.body().index != first + k as u64 {
                return Err(differs(c.body().index));
            }
        }
        let held = self
            .recordings
            .store
            .read_chunks(session, first, resent.len())
            .map_err(stored)?;
        for (k, c) in resent.iter().enumerate() {
            if held.get(k) != Some(c) {
                return Err(differs(c.body().index));
            }
        }
        Ok(())
    }

    /// The enrolled key of the host the header names (the same key the
    /// session started with, for a later upload).
    fn recording_host_key(
        &self,
        header: &Header,
        meta: Option<&RecordingMeta>,
    ) -> Result<PublicKey, ServiceError> {
        let name = &header.session.host;
        let Some(host) = self.store.host(name)? else {
            return Err(ServiceError::Forbidden(format!(
                "{name} is not an enrolled host; its recordings are not accepted"
            )));
        };
        let key = PublicKey::from_openssh(&host.host_key)
            .map_err(|e| ServiceError::Internal(format!("stored host key: {e}")))?;
        let same_key = |m: &RecordingMeta| {
            PublicKey::from_openssh(&m.host_key).is_ok_and(|k| k.key_data() == key.key_data())
        };
        if meta.is_some_and(|m| !same_key(m)) {
            return Err(ServiceError::Forbidden(format!(
                "{name} was enrolled again with another host key since this session started"
            )));
        }
        Ok(key)
    }

    /// The header must describe a certificate this CA issued for the grant
    /// it names, to the person, account and host it names.
    fn check_grant(&self, header: &Header) -> Result<CertificateIssued, ServiceError> {
        let i = &header.session;
        let forbid = |why: String| {
            Err(ServiceError::Forbidden(format!(
                "the recording's header does not match grant {}: {why}",
                i.grant_id
            )))
        };
        if !super::is_id(&i.grant_id) {
            return forbid("no such grant".into());
        }
        // The audit record, not the request's row: it is what made the
        // certificate durable, and the CA keeps it, while the row is
        // pruned after `state_retention` (a host's spool may hold a
        // session longer: a CA down for days, uploads refused for space)
        // and its last write could be lost with the state store's
        // unflushed tail while the record stands.
        let Some(cert) = self.issued_under(&i.grant_id)? else {
            return forbid("no certificate was issued under it".into());
        };
        if cert.serial.to_string() != i.serial {
            return forbid(format!("its certificate's serial is not {}", i.serial));
        }
        if cert.key_id != i.key_id {
            return forbid("its certificate's key id differs".into());
        }
        if cert.user != i.user || cert.account != i.account {
            return forbid(format!("it is not {}'s as {}", i.user, i.account));
        }
        let on_host = cert.host == i.host
            || self
                .store
                .host(&i.host)?
                .is_some_and(|h| h.aliases.contains(&cert.host));
        if !on_host {
            return forbid(format!("it is not for host {}", i.host));
        }
        Ok(cert)
    }

    /// The certificate issued under grant `id`, as its audit record says.
    fn issued_under(&self, id: &str) -> Result<Option<CertificateIssued>, ServiceError> {
        let found = self
            .audit
            .query(&AuditQuery {
                grant: Some(id.to_owned()),
                kinds: vec!["certificate_issued".into()],
                limit: 1,
                ..Default::default()
            })
            .map_err(super::audit_read_failed)?;
        Ok(found.into_iter().find_map(|r| match r.event {
            Event::CertificateIssued(c) if c.grant == id => Some(c),
            _ => None,
        }))
    }

    /// The chain state after the chunks stored so far, verified again:
    /// only for a session whose `state.json` an older CA wrote without
    /// it, once (reading the whole recording, under the upload lock).
    fn rebuild_chain(
        &self,
        session: &SessionId,
        header_line: &str,
        key: &PublicKey,
    ) -> Result<ChainState, ServiceError> {
        let mut v = Verifier::new(header_line, key.clone()).map_err(refused)?;
        if let Some(s) = self.recordings.store.read(session).map_err(stored)? {
            for c in &s.chunks {
                v.push(c).map_err(|e| {
                    tracing::error!(%session, error = %e, "a stored recording no longer verifies");
                    ServiceError::Internal("recording store".into())
                })?;
            }
        }
        Ok(v.state().clone())
    }

    fn audit_recording(
        &self,
        header: &Header,
        key: &PublicKey,
        already: Audited,
        new: &[Chunk],
        after: &ChainState,
        client: SocketAddr,
    ) -> Result<(), ServiceError> {
        let i = &header.session;
        let subject = SessionSubject {
            session: i.session_id.to_string(),
            user: i.user.clone(),
            host: i.host.clone(),
            account: i.account.clone(),
            serial: i.serial.parse().unwrap_or(0),
            key_id: i.key_id.clone(),
            grant: i.grant_id.clone(),
        };
        let actor = || Actor::Host {
            name: i.host.clone(),
            client_addr: client.ip().to_string(),
        };
        if !already.started {
            self.audit(
                actor(),
                Event::SessionStarted(SessionStarted {
                    subject: subject.clone(),
                    record: record_str(header).to_owned(),
                    host_key_fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
                    started_at: header.timestamp,
                }),
            )?;
        }
        if let (Some(end), Some(last), false) = (after.end, new.last(), already.ended) {
            self.audit(
                actor(),
                Event::SessionEnded(SessionEnded {
                    subject,
                    reason: end.reason.as_str().to_owned(),
                    output_bytes: end.totals.output_bytes,
                    input_bytes: end.totals.input_bytes,
                    chunks: after.next_index,
                    duration_secs: last.body().end.as_secs(),
                    final_hash: after.prev.to_string(),
                    final_signature: last.signature().to_owned(),
                }),
            )?;
        }
        Ok(())
    }
}

fn record_str(h: &Header) -> &'static str {
    match h.session.record {
        jit_ssh_recording::RecordMode::Output => "output",
        jit_ssh_recording::RecordMode::Full => "full",
    }
}

fn new_meta(header: &Header, key: &PublicKey, now: i64) -> RecordingMeta {
    let i = &header.session;
    RecordingMeta {
        session: i.session_id.clone(),
        user: i.user.clone(),
        host: i.host.clone(),
        account: i.account.clone(),
        grant: i.grant_id.clone(),
        serial: i.serial.parse().unwrap_or(0),
        key_id: i.key_id.clone(),
        record: record_str(header).to_owned(),
        host_key: key.to_openssh().unwrap_or_default(),
        host_key_fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        started_at: header.timestamp,
        received_at: now,
        updated_at: now,
        chunks: 0,
        chunk_bytes: 0,
        ended: None,
        chain: None,
        certificate: None,
    }
}
