//! Where a CA key rotation stands, on disk: `DATA/rotation.json` names the
//! key files (the active key, the staged next key) and the previous key
//! still published, and is replaced atomically at each step. Keys made by
//! `rotate stage` live in `DATA/keys/`, mode 0600 like `init` makes them.
//!
//! Once this file exists, it (not the config's `ca_key` or
//! `[hosts] host_ca_key`) says which key signs: a restart keeps the
//! rotation where it was.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::ca_key::{self, CaKeyError};

pub const STATE_FILE: &str = "rotation.json";
pub const KEYS_DIR: &str = "keys";
/// The newest layout this binary writes and reads.
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum RotationStateError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a rotation state this version understands")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path} has layout version {found}; this jit-ssh-ca reads up to {VERSION} (upgrade it)"
    )]
    TooNew { path: PathBuf, found: u32 },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] CaKeyError),
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationFile {
    pub version: u32,
    /// The user CA key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<RoleState>,
    /// The host CA key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<RoleState>,
}

/// One key's rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleState {
    /// The private key that signs.
    pub active: PathBuf,
    /// The next key: published, not signing yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<PathBuf>,
    /// The previous key: published, no longer signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring: Option<Retiring>,
}

/// The key an activation replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retiring {
    /// Its public key (OpenSSH line).
    pub public_key: String,
    /// Its private key file, kept (the operator decides when to destroy it).
    pub key_file: PathBuf,
    /// Unix seconds: when the next key took over.
    pub activated_at: i64,
    /// Unix seconds: from then on no certificate it signed can be valid.
    pub retire_after: i64,
}

impl RotationFile {
    /// The state in `data`, or `None` when no rotation ever happened.
    pub fn load(data: &Path) -> Result<Option<Self>, RotationStateError> {
        let path = data.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RotationStateError::Read { path, source }),
        };
        // The version first, so a newer layout is named as such rather
        // than as a parse error.
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version =
            serde_json::from_str(&text).map_err(|source| RotationStateError::Parse {
                path: path.clone(),
                source,
            })?;
        if v.version > VERSION {
            return Err(RotationStateError::TooNew {
                path,
                found: v.version,
            });
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| RotationStateError::Parse { path, source })
    }

    /// Replaces the file atomically (mode 0600).
    pub fn save(&self, data: &Path) -> Result<(), RotationStateError> {
        let path = data.join(STATE_FILE);
        let mut out = self.clone();
        out.version = VERSION;
        let mut json =
            serde_json::to_vec_pretty(&out).map_err(|source| RotationStateError::Parse {
                path: path.clone(),
                source,
            })?;
        json.push(b'\n');
        crate::atomic_file::write(&path, &json, 0o600)
            .map_err(|source| RotationStateError::Write { path, source })
    }
}

/// Makes a fresh ed25519 key in `DATA/keys/` named for `role` and `now`
/// (mode 0600, encrypted with `passphrase` when the CA key is), and
/// returns its path and the key.
pub fn make_key(
    data: &Path,
    role: &str,
    now: i64,
    passphrase: Option<&str>,
) -> Result<(PathBuf, PrivateKey), RotationStateError> {
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(CaKeyError::Key)?;
    key.set_comment(format!("jit-ssh {role} CA ({now})"));
    let plain = key.clone();
    if let Some(pass) = passphrase {
        key = key.encrypt(&mut OsRng, pass).map_err(CaKeyError::Key)?;
    }
    let pem = key.to_openssh(LineEnding::LF).map_err(CaKeyError::Key)?;
    let path = write_key(data, role, now, pem.as_bytes())?;
    Ok((path, plain))
}

/// Copies an operator's key file into `DATA/keys/` (bytes unchanged, so
/// it stays encrypted if it was), after checking it loads as `load` would.
pub fn import_key(
    data: &Path,
    role: &str,
    now: i64,
    from: &Path,
    passphrase_file: Option<&Path>,
) -> Result<(PathBuf, PrivateKey), RotationStateError> {
    let key = ca_key::load(from, passphrase_file)?;
    let bytes = std::fs::read(from).map_err(|source| RotationStateError::Read {
        path: from.to_owned(),
        source,
    })?;
    let path = write_key(data, role, now, &bytes)?;
    Ok((path, key))
}

fn write_key(
    data: &Path,
    role: &str,
    now: i64,
    bytes: &[u8],
) -> Result<PathBuf, RotationStateError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = data.join(KEYS_DIR);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RotationStateError::Write { path, source }
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io(&dir))?;
    }
    let path = dir.join(format!("{role}_ca_key-{now}"));
    // create_new: a key file is never overwritten.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    f.write_all(bytes).map_err(io(&path))?;
    f.sync_all().map_err(io(&path))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn saves_and_loads_and_refuses_a_newer_layout() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RotationFile::load(dir.path()).unwrap(), None);
        let (path, key) = make_key(dir.path(), "user", 1_800_000_000, None).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            ca_key::load(&path, None).unwrap().public_key(),
            key.public_key()
        );
        let state = RotationFile {
            version: 0,
            user: Some(RoleState {
                active: PathBuf::from("/etc/jit-ssh/ca_key"),
                staged: Some(path),
                retiring: None,
            }),
            host: None,
        };
        state.save(dir.path()).unwrap();
        let back = RotationFile::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.user, state.user);
        assert_eq!(back.version, VERSION);

        std::fs::write(dir.path().join(STATE_FILE), r#"{"version": 9}"#).unwrap();
        let err = RotationFile::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("version 9"), "{err}");
    }
}
