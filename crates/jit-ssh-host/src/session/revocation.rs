//! Watching the KRL `jit-ssh-host sync` keeps current (`DIR/revoked.krl`,
//! replaced whole by rename): the wrapper polls the file's identity
//! (device, inode, size, mtime) every second and, when it changed, reads
//! it again and asks the same question sshd asks at login
//! ([`jit_ssh_krl::Krl::is_cert_revoked`]: serial, key id, key or CA key).
//! Polling rather than inotify: one `stat` a second is nothing, it sees a
//! rename into place and a file written in place alike, and needs no
//! watch on a directory that sync may replace.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jit_ssh_krl::Krl;
use ssh_key::Certificate;

/// How often the KRL file is looked at: revocations end sessions within
/// this plus the time sync takes to write it.
pub const POLL: Duration = Duration::from_secs(1);

/// KRL files larger than this are not read (sshd reads them four times
/// per login: a KRL this size would have stopped logins long before).
const MAX_KRL_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum KrlError {
    #[error("the KRL {path} cannot be read ({why}): revocations could not end this session")]
    Unreadable { path: String, why: String },
    #[error("the KRL {path} is not a valid KRL: {why}")]
    Invalid { path: String, why: String },
}

/// Which certificate a KRL revokes, for the message that ends the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub serial: u64,
    pub key_id: String,
}

impl std::fmt::Display for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "certificate serial {} (key id {}) was revoked",
            self.serial, self.key_id
        )
    }
}

/// The first of `certs` that `krl` revokes.
pub fn revoked_in(krl: &Krl, certs: &[Certificate]) -> Option<Revoked> {
    certs
        .iter()
        .find(|c| krl.is_cert_revoked(c))
        .map(|c| Revoked {
            serial: c.serial(),
            key_id: c.key_id().to_owned(),
        })
}

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_ns: i64,
}

/// The KRL file and the version of it last judged.
pub struct KrlWatch {
    path: PathBuf,
    seen: Option<Stamp>,
}

impl KrlWatch {
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(crate::files::KRL_FILE),
            seen: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the KRL if it changed since the last call (always the first
    /// time) and judges `certs` by it. `Ok(None)`: unchanged or nothing
    /// revoked.
    pub fn check(&mut self, certs: &[Certificate]) -> Result<Option<Revoked>, KrlError> {
        let shown = || self.path.display().to_string();
        let meta = std::fs::metadata(&self.path).map_err(|e| KrlError::Unreadable {
            path: shown(),
            why: e.to_string(),
        })?;
        let stamp = Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.mtime(),
            mtime_ns: meta.mtime_nsec(),
        };
        if self.seen == Some(stamp) {
            return Ok(None);
        }
        if meta.len() > MAX_KRL_BYTES {
            return Err(KrlError::Unreadable {
                path: shown(),
                why: format!("over {MAX_KRL_BYTES} bytes"),
            });
        }
        let bytes = std::fs::read(&self.path).map_err(|e| KrlError::Unreadable {
            path: shown(),
            why: e.to_string(),
        })?;
        let krl = Krl::decode(&bytes).map_err(|e| KrlError::Invalid {
            path: shown(),
            why: e.to_string(),
        })?;
        self.seen = Some(stamp);
        Ok(revoked_in(&krl, certs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::auth_info::tests::cert;
    use jit_ssh_krl::CaScope;

    fn krl_revoking(c: &Certificate, by_key_id: bool) -> Krl {
        let ca = ssh_key::PublicKey::from(c.signature_key().clone());
        let mut krl = Krl::new();
        if by_key_id {
            krl.revoke_key_id(&CaScope::of(&ca), c.key_id()).unwrap();
        } else {
            krl.revoke_serial(&CaScope::of(&ca), c.serial()).unwrap();
        }
        krl
    }

    #[test]
    fn a_krl_revoking_the_serial_or_the_key_id_names_the_certificate() {
        let (c, other) = (cert(42, 2_000_000_000), cert(43, 2_000_000_000));
        for by_key_id in [false, true] {
            let krl = krl_revoking(&c, by_key_id);
            assert_eq!(
                revoked_in(&krl, &[other.clone(), c.clone()]),
                Some(Revoked {
                    serial: 42,
                    key_id: "jit-ssh:alice:g:42".into()
                })
            );
            assert_eq!(revoked_in(&krl, std::slice::from_ref(&other)), None);
        }
    }

    #[test]
    fn the_file_is_read_again_only_when_it_changed_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let c = cert(42, 2_000_000_000);
        let mut w = KrlWatch::new(dir.path());
        assert!(matches!(
            w.check(std::slice::from_ref(&c)),
            Err(KrlError::Unreadable { .. })
        ));
        let path = dir.path().join(crate::files::KRL_FILE);
        std::fs::write(&path, Krl::new().encode().unwrap()).unwrap();
        assert_eq!(w.check(std::slice::from_ref(&c)).unwrap(), None);
        // Replaced by rename, as sync does.
        let tmp = dir.path().join("new.krl");
        std::fs::write(&tmp, krl_revoking(&c, false).encode().unwrap()).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(
            w.check(std::slice::from_ref(&c)).unwrap().unwrap().serial,
            42
        );
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(
            w.check(std::slice::from_ref(&c)),
            Err(KrlError::Invalid { .. })
        ));
    }
}
