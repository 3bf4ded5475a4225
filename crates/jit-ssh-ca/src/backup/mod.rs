//! Backups of a running CA and their restore (docs/operations.md,
//! "Backup and restore").
//!
//! A backup is a directory (0700, files 0600):
//!
//! - `state.dump`: the state store as of one moment ([`state_dump`]);
//! - `audit/chain.jsonl`: the audit chain from record 1 to a checkpoint
//!   signed for the backup, exactly as the log stores it (indexes are
//!   derived data: restore rebuilds them);
//! - `rotation.json` and `keys/*.pub` when a key rotation happened;
//!   the private key files only with `--include-key` (`keys/`, and the
//!   configured key files as `ca-keys/user`, `ca-keys/host`);
//! - `manifest.json`: versions, the audit head, the CA public key and the
//!   SHA-256 of every other file; `manifest.json.sig`: the CA key's SSHSIG
//!   over it (namespace [`NAMESPACE`]).
//!
//! Order is what makes it consistent: the service appends an audit record
//! before it stores what the record is about (a certificate is in the log
//! before its request says "issued"), so the state is copied first and
//! the chain after, up to a checkpoint signed after the state copy (both
//! while state writes wait). Every certificate the copied state knows is
//! then in the copied chain.

pub mod restore;
mod stage;
pub mod state_dump;

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The newest backup layout this binary writes and reads.
pub const BACKUP_FORMAT: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
pub const MANIFEST_SIG: &str = "manifest.json.sig";
pub const CHAIN: &str = "audit/chain.jsonl";
/// SSHSIG namespace of a manifest's signature.
pub const NAMESPACE: &str = "jit-ssh-backup@jit-ssh";

/// What a backup holds and how to check it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The layout of this directory ([`BACKUP_FORMAT`]).
    pub backup_format: u32,
    /// The data directory format it restores to (`crate::data_format`).
    pub data_format: u32,
    /// The jit-ssh-ca that wrote it.
    pub jit_ssh_ca_version: String,
    /// RFC 3339.
    pub created_at: String,
    /// The data directory it was taken from (paths in `rotation.json`
    /// under it are moved to the restore target).
    pub data_dir: PathBuf,
    /// The copied chain: its last record is the backup's checkpoint.
    pub audit_records: u64,
    /// Hex SHA-256 hash of the last record.
    pub audit_head_hash: String,
    /// Entries in `state.dump`.
    pub state_entries: u64,
    /// The CA key that signed this manifest and the last checkpoint
    /// (OpenSSH public key line).
    pub ca_public_key: String,
    /// The CA's private key files: where they were, whether they are here.
    pub keys: Vec<KeyFile>,
    /// Every other file, with its size and SHA-256.
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// What the key is: "user CA key (ca_key)", "host CA key", "rotation key".
    pub role: String,
    /// Where the running CA read it.
    pub original_path: PathBuf,
    /// Its path in the backup, when `--include-key` copied it.
    pub included_as: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the backup directory, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// Hex.
    pub sha256: String,
}

/// What `backup` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupReport {
    pub dir: PathBuf,
    pub audit_records: u64,
    pub audit_head_hash: String,
    pub state_entries: u64,
    pub bytes: u64,
    /// How long writes to the state store waited for its copy.
    pub writers_held_ms: u64,
    pub took_ms: u64,
    /// Private key files copied (`--include-key`).
    pub keys_included: usize,
    /// Private key files not copied: where they were.
    pub keys_left_out: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the state is in PostgreSQL ([storage] kind = \"postgres\"): back the database up with pg_dump or point-in-time recovery, and the audit directory with it (docs/operations.md, \"Backup and restore\"); `jit-ssh-ca backup` copies the embedded store only")]
    Postgres,
    #[error(
        "{0} is not empty: a backup goes into a new or empty directory (nothing is overwritten)"
    )]
    NotEmpty(PathBuf),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("copying the state store")]
    Store(#[from] crate::store::StoreError),
    #[error("copying the audit log")]
    Audit(#[from] jit_ssh_audit::StoreError),
    #[error("signing the backup's checkpoint: {0}")]
    Checkpoint(String),
    #[error("signing the manifest: {0}")]
    Sign(String),
}

pub(crate) fn io_err(
    what: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io { what, path, source }
}

/// Makes `dir` (0700), or takes an existing empty one (and makes it 0700).
pub(crate) fn fresh_dir(dir: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::NotEmpty(dir.to_owned()));
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err("chmod 700", dir))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("creating", dir)),
        Err(e) => Err(io_err("reading", dir)(e)),
    }
}

/// Writes files into a backup directory, 0600 and never over an existing
/// one, and keeps the manifest's list.
pub(crate) struct Writer {
    pub dir: PathBuf,
    pub files: Vec<FileEntry>,
}

impl Writer {
    fn create(&self, rel: &str) -> Result<std::fs::File, BackupError> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err("creating", parent))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("creating", &path))
    }

    /// A file written by `fill`, hashed as it is written, synced.
    pub fn write_with<T>(
        &mut self,
        rel: &str,
        fill: impl FnOnce(&mut dyn Write) -> Result<T, BackupError>,
    ) -> Result<T, BackupError> {
        let file = self.create(rel)?;
        let mut hashing = Hashing {
            inner: std::io::BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            bytes: 0,
        };
        let out = fill(&mut hashing)?;
        let path = self.dir.join(rel);
        hashing.inner.flush().map_err(io_err("writing", &path))?;
        hashing
            .inner
            .get_ref()
            .sync_all()
            .map_err(io_err("syncing", &path))?;
        self.files.push(FileEntry {
            path: rel.to_owned(),
            bytes: hashing.bytes,
            sha256: hex::encode(hashing.hash.finalize()),
        });
        Ok(out)
    }

    pub fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<(), BackupError> {
        let path = self.dir.join(rel);
        self.write_with(rel, |w| {
            w.write_all(bytes).map_err(io_err("writing", &path))
        })
    }

    /// A file outside the list (the manifest and its signature).
    pub fn write_unlisted(&self, rel: &str, bytes: &[u8]) -> Result<(), BackupError> {
        let path = self.dir.join(rel);
        let mut f = self.create(rel)?;
        f.write_all(bytes).map_err(io_err("writing", &path))?;
        f.sync_all().map_err(io_err("syncing", &path))
    }
}

struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// SHA-256 of a file, streamed.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h)?;
    Ok((n, hex::encode(h.finalize())))
}
