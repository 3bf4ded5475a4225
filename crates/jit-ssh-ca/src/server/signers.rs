//! Opening the signers a config names: a key file, or a key pair on a
//! PKCS#11 token (opened, logged in and probed before the CA serves).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::config::SignerConfig;
use crate::signer::pkcs11::{self, Pkcs11Signer};
use crate::signer::{CaSigner, FileSigner};

/// Opens `cfg` (`what` names it in messages). A key file without a
/// passphrase file of its own uses `passphrase_fallback` (the host CA key
/// shares the CA key's, as `jit-ssh-ca init` makes them).
pub fn open(
    cfg: &SignerConfig,
    passphrase_fallback: Option<&Path>,
    what: &str,
) -> anyhow::Result<Arc<dyn CaSigner>> {
    match cfg {
        SignerConfig::File {
            path,
            passphrase_file,
        } => {
            let pass = passphrase_file.as_deref().or(passphrase_fallback);
            let key = crate::ca_key::load(path, pass)
                .with_context(|| format!("loading {what} {}", path.display()))?;
            Ok(Arc::new(FileSigner::new(key)))
        }
        SignerConfig::Pkcs11(t) => {
            let signer = Pkcs11Signer::open(t)
                .with_context(|| format!("opening {what}: {}", pkcs11::describe(t)))?;
            Ok(Arc::new(signer))
        }
    }
}

/// The CA key's passphrase file, which a bare host CA key path shares.
pub fn passphrase_file(cfg: &SignerConfig) -> Option<&Path> {
    match cfg {
        SignerConfig::File {
            passphrase_file, ..
        } => passphrase_file.as_deref(),
        SignerConfig::Pkcs11(_) => None,
    }
}
