//! Who holds the CA key. Callers sign through [`CaSigner`], so a hardware
//! token or KMS can replace the key file without touching issuance.

use ssh_key::certificate::Builder;
use ssh_key::{Certificate, HashAlg, PrivateKey, PublicKey, SshSig};

pub mod pkcs11;

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
        let cert = builder.sign(&self.key).map_err(SignError)?;
        verify_issued(&cert, self.key.public_key())?;
        Ok(cert)
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

/// Checks a certificate just signed against the CA key that should have
/// signed it, so a faulty signature never leaves the CA. ssh-key's
/// `Builder::sign` does this only in debug builds (`#[cfg(debug_assertions)]`
/// in ssh-key 0.6.7): a release build needs it here.
pub(crate) fn verify_issued(cert: &Certificate, ca: &PublicKey) -> Result<(), SignError> {
    cert.validate_at(cert.valid_after(), [&ca.fingerprint(HashAlg::Sha256)])
        .map_err(SignError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::certificate::CertType;
    use ssh_key::rand_core::OsRng;
    use ssh_key::Algorithm;

    fn cert_by(ca: &PrivateKey) -> Certificate {
        let user = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
        let mut b =
            Builder::new_with_random_nonce(&mut OsRng, user.public_key(), 1_000, 2_000).unwrap();
        b.cert_type(CertType::User).unwrap();
        b.valid_principal("a@h").unwrap();
        b.sign(ca).unwrap()
    }

    /// The check a release build relies on (ssh-key skips its own there):
    /// a certificate must verify against the CA key that was to sign it.
    #[test]
    fn issued_certificates_are_checked_against_the_ca_key() {
        let ca = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
        let other = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
        let cert = cert_by(&ca);
        verify_issued(&cert, ca.public_key()).unwrap();
        assert!(verify_issued(&cert, other.public_key()).is_err());
        // The same certificate bytes with the signature of another one.
        let forged = {
            let mut blob = cert.to_bytes().unwrap();
            let n = blob.len();
            let theirs = cert_by(&ca).to_bytes().unwrap();
            blob[n - 64..].copy_from_slice(&theirs[theirs.len() - 64..]);
            Certificate::from_bytes(&blob).unwrap()
        };
        assert!(verify_issued(&forged, ca.public_key()).is_err());
    }
}
