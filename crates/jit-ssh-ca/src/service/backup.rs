//! `jit-ssh-ca backup` on the running CA (see `crate::backup` for the
//! layout and why the order makes the copy consistent).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use jit_ssh_audit::{Actor, AuditRecord};

use super::Ca;
use crate::backup::{
    fresh_dir, io_err, state_dump, BackupError, BackupReport, KeyFile, Manifest, Writer,
    BACKUP_FORMAT, CHAIN, MANIFEST, MANIFEST_SIG, NAMESPACE,
};
use crate::config::storage::StorageConfig;
use crate::config::SignerConfig;
use crate::rotation_state::{KEYS_DIR, STATE_FILE};

impl Ca {
    /// Writes a backup of this CA into `to` (new or empty) while it keeps
    /// serving. Private key files are copied only when `include_key`.
    pub fn backup(
        &self,
        to: &Path,
        include_key: bool,
        actor: Actor,
    ) -> Result<BackupReport, BackupError> {
        if matches!(self.config.storage, StorageConfig::Postgres(_)) {
            return Err(BackupError::Postgres);
        }
        let started = Instant::now();
        fresh_dir(to)?;
        let mut w = Writer {
            dir: to.to_owned(),
            files: Vec::new(),
        };
        let result = self.write_backup(&mut w, include_key, actor, started);
        if result.is_err() {
            // No manifest means restore refuses it anyway; do not leave
            // half a backup that looks like one.
            for f in &w.files {
                let _ = std::fs::remove_file(w.dir.join(&f.path));
            }
            let _ = std::fs::remove_file(w.dir.join(MANIFEST));
        }
        result
    }

    fn write_backup(
        &self,
        w: &mut Writer,
        include_key: bool,
        actor: Actor,
        started: Instant,
    ) -> Result<BackupReport, BackupError> {
        // 1. The state, as of one moment, and 2. a checkpoint signed after
        // it, both while state writes wait: every record the copied state
        // depends on is at or before the checkpoint, and with writers
        // parked on the store the chain soon holds still long enough for a
        // checkpoint that vouches for every record before it.
        let held = Instant::now();
        let mut state = Vec::new();
        let mut checkpointed = Ok(0);
        let entries = self
            .store
            .dump(&mut state, &mut || {
                checkpointed = self.backup_checkpoint(actor.clone());
            })?
            .ok_or(BackupError::Postgres)?;
        let writers_held = held.elapsed();
        let last = checkpointed?;
        w.write(state_dump::FILE, &state)?;
        drop(state);

        // 3. The chain up to it, exactly as stored.
        let chain_path = w.dir.join(CHAIN);
        let (records, head) =
            w.write_with(CHAIN, |out| copy_chain(self, last, out, &chain_path))?;
        if records != last {
            return Err(BackupError::Io {
                what: "copying the audit chain: it ended early in",
                path: chain_path,
                source: std::io::Error::other(format!("{records} of {last} records")),
            });
        }

        // 4. What makes it the same CA besides the state.
        let data = &self.config.data_dir;
        let rotation = data.join(STATE_FILE);
        if rotation.exists() {
            let bytes = std::fs::read(&rotation).map_err(io_err("reading", &rotation))?;
            w.write(STATE_FILE, &bytes)?;
        }
        let mut keys = Vec::new();
        for (role, cfg, name) in [
            (
                "user CA key (ca_key)",
                Some(&self.config.signer),
                "ca-keys/user",
            ),
            (
                "host CA key ([hosts] host_ca_key)",
                self.config.hosts.host_ca_key.as_ref(),
                "ca-keys/host",
            ),
        ] {
            if let Some(SignerConfig::File { path, .. }) = cfg {
                keys.push(copy_key(w, role, path, name, include_key)?);
            }
        }
        let keys_dir = data.join(KEYS_DIR);
        if keys_dir.is_dir() {
            let mut names: Vec<PathBuf> = std::fs::read_dir(&keys_dir)
                .map_err(io_err("reading", &keys_dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            names.sort();
            for path in names {
                let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned)
                else {
                    continue;
                };
                let rel = format!("{KEYS_DIR}/{name}");
                if name.ends_with(".pub") {
                    let bytes = std::fs::read(&path).map_err(io_err("reading", &path))?;
                    w.write(&rel, &bytes)?;
                } else {
                    keys.push(copy_key(w, "rotation key", &path, &rel, include_key)?);
                }
            }
        }

        // 5. The manifest, signed by the CA key.
        let signer = self.signer();
        let manifest = Manifest {
            backup_format: BACKUP_FORMAT,
            data_format: crate::data_format::CURRENT,
            jit_ssh_ca_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at: super::rfc3339(self.now()),
            data_dir: data.clone(),
            audit_records: records,
            audit_head_hash: head.map(|r| r.hash.to_string()).unwrap_or_default(),
            state_entries: entries,
            ca_public_key: signer
                .public_key()
                .to_openssh()
                .map_err(|e| BackupError::Sign(e.to_string()))?,
            keys,
            files: w.files.clone(),
        };
        let mut json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Sign(e.to_string()))?;
        json.push(b'\n');
        let sig = signer
            .sign_detached(NAMESPACE, &json)
            .map_err(|e| BackupError::Sign(e.to_string()))?
            .to_pem(ssh_key::LineEnding::LF)
            .map_err(|e| BackupError::Sign(e.to_string()))?;
        w.write_unlisted(MANIFEST_SIG, sig.as_bytes())?;
        w.write_unlisted(MANIFEST, &json)?;
        let dir = std::fs::File::open(&w.dir).map_err(io_err("opening", &w.dir))?;
        dir.sync_all().map_err(io_err("syncing", &w.dir))?;
        let keys_left_out = manifest
            .keys
            .iter()
            .filter(|k| k.included_as.is_none())
            .map(|k| k.original_path.clone())
            .collect();
        Ok(BackupReport {
            dir: w.dir.clone(),
            audit_records: records,
            audit_head_hash: manifest.audit_head_hash,
            state_entries: entries,
            bytes: w.files.iter().map(|f| f.bytes).sum::<u64>() + json.len() as u64,
            writers_held_ms: writers_held.as_millis() as u64,
            took_ms: started.elapsed().as_millis() as u64,
            keys_included: manifest.keys.len()
                - manifest
                    .keys
                    .iter()
                    .filter(|k| k.included_as.is_none())
                    .count(),
            keys_left_out,
        })
    }
}

impl Ca {
    /// A checkpoint that vouches for every record before it, so the
    /// copied chain verifies whole (`jit-ssh audit verify`): appends that
    /// land between reading the head and appending the checkpoint are
    /// signed by another checkpoint, a few tries at most. Its sequence
    /// number (0 for an empty log).
    fn backup_checkpoint(&self, actor: Actor) -> Result<u64, BackupError> {
        let failed = |e: super::ServiceError| BackupError::Checkpoint(e.to_string());
        let mut last = 0;
        for _ in 0..CHECKPOINT_TRIES {
            let head = self.audit.head();
            if head.seq == 0 {
                return Ok(0);
            }
            last = self
                .sign_checkpoint(head, actor.clone(), "backup")
                .map_err(failed)?;
            if last == head.seq + 1 {
                break;
            }
        }
        Ok(last)
    }
}

/// Each try is one signature and one group commit. Were every try beaten
/// by another append, the copy still restores and verifies (its head is in
/// the signed manifest); only `jit-ssh audit verify` of the copy itself
/// would call its last records not vouched for.
const CHECKPOINT_TRIES: usize = 20;

/// Records 1..=`last` as stored, one per line; returns the count and the
/// last record.
fn copy_chain(
    ca: &Ca,
    last: u64,
    out: &mut dyn Write,
    path: &Path,
) -> Result<(u64, Option<AuditRecord>), BackupError> {
    let mut failed = None;
    let mut tail = Vec::new();
    let n = ca.audit.export(1, last, &mut |line| {
        let written = out.write_all(line).and_then(|()| out.write_all(b"\n"));
        match written {
            Ok(()) => {
                tail.clear();
                tail.extend_from_slice(line);
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(io_err("writing", path)(e));
    }
    let head = if tail.is_empty() {
        None
    } else {
        Some(serde_json::from_slice(&tail).map_err(|e| BackupError::Io {
            what: "reading the last audit record for",
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })?)
    };
    Ok((n, head))
}

/// One private key file: copied as `rel` with `include_key`, else named.
fn copy_key(
    w: &mut Writer,
    role: &str,
    path: &Path,
    rel: &str,
    include_key: bool,
) -> Result<KeyFile, BackupError> {
    let included_as = if include_key {
        let bytes = std::fs::read(path).map_err(io_err("reading the key", path))?;
        w.write(rel, &bytes)?;
        Some(rel.to_owned())
    } else {
        None
    };
    Ok(KeyFile {
        role: role.to_owned(),
        original_path: path.to_owned(),
        included_as,
    })
}
