//! The CA key on disk: creating it once, and loading it only when nobody
//! else can read it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};

pub const KEY_FILE: &str = "ca_key";
pub const PUBLIC_KEY_FILE: &str = "ca_key.pub";
/// The host CA key beside it: signs host certificates only.
pub const HOST_KEY_FILE: &str = "host_ca_key";
pub const HOST_PUBLIC_KEY_FILE: &str = "host_ca_key.pub";

#[derive(Debug, thiserror::Error)]
pub enum CaKeyError {
    #[error("{0} already exists; refusing to overwrite a CA key (move it away first if you really mean to replace it)")]
    Exists(PathBuf),
    #[error("{path} is readable by group or others (mode {mode:04o}); a CA key must be private: run `chmod 600 {path}`")]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error("{0} is encrypted; give its passphrase with --passphrase-file")]
    PassphraseNeeded(PathBuf),
    #[error("the passphrase for {0} is wrong")]
    WrongPassphrase(PathBuf),
    #[error("passphrase file {0} is empty")]
    EmptyPassphrase(PathBuf),
    #[error("{path} is not an OpenSSH private key")]
    Parse {
        path: PathBuf,
        #[source]
        source: ssh_key::Error,
    },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("generating or encrypting the CA key failed")]
    Key(#[source] ssh_key::Error),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CaKeyError + 'a {
    move |source| CaKeyError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Where `init` put the key.
#[derive(Debug, Clone)]
pub struct InitOutput {
    pub key_path: PathBuf,
    pub public_key_path: PathBuf,
    pub public_key: ssh_key::PublicKey,
}

/// Makes a fresh ed25519 CA key in `dir` (created 0700 if missing), mode
/// 0600, encrypted when a passphrase is given. Never overwrites.
pub fn init(dir: &Path, passphrase: Option<&str>) -> Result<InitOutput, CaKeyError> {
    init_named(dir, KEY_FILE, PUBLIC_KEY_FILE, "jit-ssh CA", passphrase)
}

/// The same for the host CA key (`host_ca_key`): a separate key, so the
/// user CA never signs host certificates and the host CA never signs user
/// certificates.
pub fn init_host(dir: &Path, passphrase: Option<&str>) -> Result<InitOutput, CaKeyError> {
    init_named(
        dir,
        HOST_KEY_FILE,
        HOST_PUBLIC_KEY_FILE,
        "jit-ssh host CA",
        passphrase,
    )
}

fn init_named(
    dir: &Path,
    key_file: &str,
    public_file: &str,
    comment: &str,
    passphrase: Option<&str>,
) -> Result<InitOutput, CaKeyError> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("creating", dir))?;
    }
    let key_path = dir.join(key_file);
    let public_key_path = dir.join(public_file);
    for p in [&key_path, &public_key_path] {
        if p.exists() {
            return Err(CaKeyError::Exists(p.clone()));
        }
    }
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(CaKeyError::Key)?;
    key.set_comment(comment);
    let public_key = key.public_key().clone();
    if let Some(pass) = passphrase {
        key = key.encrypt(&mut OsRng, pass).map_err(CaKeyError::Key)?;
    }
    let pem = key.to_openssh(LineEnding::LF).map_err(CaKeyError::Key)?;
    write_new(&key_path, pem.as_bytes(), 0o600)?;
    let line = public_key.to_openssh().map_err(CaKeyError::Key)?;
    write_new(&public_key_path, format!("{line}\n").as_bytes(), 0o644)?;
    Ok(InitOutput {
        key_path,
        public_key_path,
        public_key,
    })
}

/// Creates `path` (failing if it exists), writes and syncs it.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), CaKeyError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CaKeyError::Exists(path.to_owned()),
            _ => CaKeyError::Io {
                what: "creating",
                path: path.to_owned(),
                source: e,
            },
        })?;
    f.write_all(data).map_err(io("writing", path))?;
    f.sync_all().map_err(io("syncing", path))
}

/// Refuses a file that group or others can read or write.
fn require_private(path: &Path) -> Result<(), CaKeyError> {
    let meta = fs::metadata(path).map_err(io("reading", path))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CaKeyError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Loads the CA key, decrypting it with the passphrase in
/// `passphrase_file` (itself private; trailing newline ignored).
pub fn load(path: &Path, passphrase_file: Option<&Path>) -> Result<PrivateKey, CaKeyError> {
    require_private(path)?;
    let text = fs::read_to_string(path).map_err(io("reading", path))?;
    let key = PrivateKey::from_openssh(&text).map_err(|source| CaKeyError::Parse {
        path: path.to_owned(),
        source,
    })?;
    if !key.is_encrypted() {
        return Ok(key);
    }
    let pass_path = passphrase_file.ok_or_else(|| CaKeyError::PassphraseNeeded(path.to_owned()))?;
    let pass = read_passphrase(pass_path)?;
    key.decrypt(pass.as_bytes())
        .map_err(|_| CaKeyError::WrongPassphrase(path.to_owned()))
}

/// Reads a passphrase file, which must be as private as the key.
pub fn read_passphrase(path: &Path) -> Result<String, CaKeyError> {
    require_private(path)?;
    let text = fs::read_to_string(path).map_err(io("reading", path))?;
    let pass = text.strip_suffix('\n').unwrap_or(&text);
    let pass = pass.strip_suffix('\r').unwrap_or(pass);
    if pass.is_empty() {
        return Err(CaKeyError::EmptyPassphrase(path.to_owned()));
    }
    Ok(pass.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_load_plain_and_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let out = init(&dir.path().join("ca"), None).unwrap();
        let mode = fs::metadata(&out.key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            load(&out.key_path, None).unwrap().public_key(),
            &out.public_key
        );
        assert!(matches!(
            init(&dir.path().join("ca"), None),
            Err(CaKeyError::Exists(_))
        ));

        let pass = dir.path().join("pass");
        fs::write(&pass, "correct horse\n").unwrap();
        fs::set_permissions(&pass, fs::Permissions::from_mode(0o600)).unwrap();
        let enc = init(&dir.path().join("enc"), Some("correct horse")).unwrap();
        assert!(matches!(
            load(&enc.key_path, None),
            Err(CaKeyError::PassphraseNeeded(_))
        ));
        assert_eq!(
            load(&enc.key_path, Some(&pass)).unwrap().public_key(),
            &enc.public_key
        );
        fs::write(&pass, "wrong\n").unwrap();
        assert!(matches!(
            load(&enc.key_path, Some(&pass)),
            Err(CaKeyError::WrongPassphrase(_))
        ));
    }

    #[test]
    fn load_refuses_a_key_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let out = init(dir.path(), None).unwrap();
        fs::set_permissions(&out.key_path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = load(&out.key_path, None).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
