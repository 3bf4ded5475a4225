//! Who holds the CA key. Callers sign through [`CaSigner`], so a hardware
//! token or KMS can replace the key file without touching issuance.

use ssh_key::certificate::Builder;
use ssh_key::{Certificate, HashAlg, PrivateKey, PublicKey, SshSig};

#[derive(Debug, thiserror::Error)]
#[error("signing the certificate failed")]
pub struct SignError(#[source] pub ssh_key::Error);

pub trait CaSigner: Send + Sync {
    fn public_key(&self) -> &PublicKey;

    /// Signs and returns the certificate. Implementations must verify the
    /// signature they made before returning it.
    fn sign(&self, builder: Builder) -> Result<Certificate, SignError>;

    /// A detached SSHSIG over `msg` (what `ssh-keygen -Y sign` makes).
    fn sign_detached(&self, namespace: &str, msg: &[u8]) -> Result<SshSig, SignError>;
}

/// A CA key loaded from a file (see [`crate::ca_key::load`]).
pub struct FileSigner {
    key: PrivateKey,
}

impl FileSigner {
    pub fn new(key: PrivateKey) -> Self {
        Self { key }
    }
}

impl CaSigner for FileSigner {
    fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    fn sign(&self, builder: Builder) -> Result<Certificate, SignError> {
        // ssh-key's Builder::sign verifies the fresh signature against the
        // CA key before returning: a faulty signature never leaves the CA.
        builder.sign(&self.key).map_err(SignError)
    }

    fn sign_detached(&self, namespace: &str, msg: &[u8]) -> Result<SshSig, SignError> {
        let sig = self
            .key
            .sign(namespace, HashAlg::Sha512, msg)
            .map_err(SignError)?;
        // As with certificates: check before anything leaves the CA.
        self.key
            .public_key()
            .verify(namespace, msg, &sig)
            .map_err(SignError)?;
        Ok(sig)
    }
}
