//! The host's files. sshd reads `ca-keys` and `revoked.krl`; beside them
//! sync keeps the signed documents it accepted (to judge the next answer's
//! age from signed times, never from file mtimes) and a state file for
//! monitors. Every file is replaced whole (temp file, fsync, rename) and
//! the temp file is created fresh, so a link planted at its name is not
//! followed.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use jit_ssh_proto::signed::SignedDocument;

use crate::error::HostError;

pub const CA_KEYS_FILE: &str = "ca-keys";
pub const KRL_FILE: &str = "revoked.krl";
/// The signed key set whose keys are in [`CA_KEYS_FILE`].
pub const CA_KEYS_SIGNED_FILE: &str = "ca-keys.signed.json";
/// The signed manifest of [`KRL_FILE`].
pub const KRL_MANIFEST_FILE: &str = "krl.manifest.json";
/// What the last sync found, for monitoring (`jq .stale`).
pub const STATE_FILE: &str = "sync-state.json";
/// Held (flock) while a sync runs, so two never interleave.
pub const LOCK_FILE: &str = ".sync.lock";

fn refused(why: impl Into<String>) -> HostError {
    HostError::SyncRefused(why.into())
}

/// This process's effective uid, from /proc (no libc call needed).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Makes `dir` (0755) if missing; refuses it, or any directory above it,
/// when someone other than root or this user owns it, or group or others
/// may write it (a sticky directory like /tmp excepted above `dir`):
/// whoever can write there decides who logs in. The same rule as sshd's
/// StrictModes.
pub fn check_dir(dir: &Path) -> Result<(), HostError> {
    use std::os::unix::fs::MetadataExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| refused(format!("creating {}: {e}", dir.display())))?;
    }
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| refused(format!("reading {}: {e}", dir.display())))?;
    let me = effective_uid();
    for (i, d) in dir.ancestors().enumerate() {
        let meta =
            std::fs::metadata(d).map_err(|e| refused(format!("reading {}: {e}", d.display())))?;
        if i == 0 && !meta.is_dir() {
            return Err(refused(format!("{} is not a directory", d.display())));
        }
        let owner = meta.uid();
        if owner != 0 && Some(owner) != me {
            return Err(refused(format!(
                "{} is owned by uid {owner}, not root or this user; whoever owns it decides who logs in",
                d.display()
            )));
        }
        let mode = meta.permissions().mode() & 0o7777;
        let sticky = mode & 0o1000 != 0;
        if mode & 0o022 != 0 && (i == 0 || !sticky) {
            return Err(refused(format!(
                "{} is writable by group or others (mode {:03o}); run `chmod go-w {}`",
                d.display(),
                mode & 0o777,
                d.display()
            )));
        }
    }
    Ok(())
}

/// Replaces `path` atomically with `data` (mode 0644).
pub fn replace(path: &Path, data: &[u8]) -> Result<(), HostError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.new"));
    let result = (|| {
        // Whatever sits at the temp name (a leftover, or a planted link) is
        // removed, not followed; create_new then fails rather than open
        // anything that appears there in between.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| refused(format!("writing {}: {e}", path.display())))
}

/// Reads `dir/name`, `None` when it does not exist.
pub fn read_opt(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, HostError> {
    match std::fs::read(dir.join(name)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(refused(format!(
            "reading {}: {e}",
            dir.join(name).display()
        ))),
    }
}

/// A held signed document; unreadable ones count as absent (the next
/// accepted answer replaces them).
pub fn read_signed(dir: &Path, name: &str) -> Option<SignedDocument> {
    let bytes = read_opt(dir, name).ok()??;
    serde_json::from_slice(&bytes).ok()
}

pub fn write_signed(dir: &Path, name: &str, doc: &SignedDocument) -> Result<(), HostError> {
    let bytes = serde_json::to_vec_pretty(doc).map_err(|e| HostError::Other(e.into()))?;
    replace(&dir.join(name), &bytes)
}

/// What [`STATE_FILE`] holds. Informational: nothing trusts it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncState {
    /// When this sync ran (Unix seconds).
    pub checked_at: u64,
    /// Whether this sync installed (or confirmed) the CA's current answer.
    pub ok: bool,
    pub last_error: Option<String>,
    pub last_success_at: Option<u64>,
    /// The held KRL: version, and its manifest's signed times.
    pub krl_version: u64,
    pub krl_signed_at: Option<u64>,
    pub krl_valid_until: Option<u64>,
    /// The held key set's signing time and size.
    pub ca_keys_signed_at: Option<u64>,
    pub ca_keys: usize,
    /// The held manifest is older than `--max-age`, past its `valid_until`,
    /// or missing: revocations since may not be enforced here.
    pub stale: bool,
    pub max_age_secs: u64,
    /// For an enrolled host: its last check-in (what the CA's inventory
    /// shows of it) and its host certificate's end.
    #[serde(default)]
    pub checkin: Option<CheckinState>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckinState {
    pub name: String,
    pub ok: bool,
    pub error: Option<String>,
    /// Unix seconds of the last accepted check-in.
    pub last_ok_at: Option<u64>,
    pub cert_valid_before: Option<u64>,
    /// Set when this check-in installed a new certificate.
    pub renewed_serial: Option<String>,
}

pub fn read_state(dir: &Path) -> Option<SyncState> {
    serde_json::from_slice(&read_opt(dir, STATE_FILE).ok()??).ok()
}

pub fn write_state(dir: &Path, state: &SyncState) -> Result<(), HostError> {
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| HostError::Other(e.into()))?;
    replace(&dir.join(STATE_FILE), &bytes)
}
