//! The host key as the encoder holds it: a recording signs every chunk,
//! so bulk output means thousands of signatures a minute. For an Ed25519
//! key the signing key is prepared once: ssh-key's own `sign` rebuilds it
//! from the key pair and checks it against the public half (a scalar
//! multiplication) at every signature, which was a third of the time
//! signing took (docs/sessions.md, the benchmark). Other key types sign
//! through ssh-key as before. Either way the signature is the same SSHSIG
//! (Ed25519 signatures are deterministic: byte for byte the same).

use ssh_key::private::KeypairData;
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, SshSig};

/// A host key ready to sign chunks.
pub struct ChunkSigner {
    key: PrivateKey,
    ed25519: Option<PreparedEd25519>,
}

struct PreparedEd25519 {
    key: ed25519_dalek::SigningKey,
    public: KeyData,
}

impl signature::Signer<ssh_key::Signature> for PreparedEd25519 {
    fn try_sign(&self, msg: &[u8]) -> signature::Result<ssh_key::Signature> {
        let sig = signature::Signer::<ed25519_dalek::Signature>::try_sign(&self.key, msg)?;
        ssh_key::Signature::new(Algorithm::Ed25519, sig.to_bytes().to_vec())
            .map_err(signature::Error::from_source)
    }
}

impl From<&PreparedEd25519> for KeyData {
    fn from(k: &PreparedEd25519) -> KeyData {
        k.public.clone()
    }
}

impl ChunkSigner {
    pub fn new(key: PrivateKey) -> ChunkSigner {
        // A key pair whose halves do not match is not prepared: signing
        // through ssh-key then fails as it always did.
        let ed25519 = match key.key_data() {
            KeypairData::Ed25519(pair) => {
                ed25519_dalek::SigningKey::try_from(pair)
                    .ok()
                    .map(|k| PreparedEd25519 {
                        key: k,
                        public: key.public_key().key_data().clone(),
                    })
            }
            _ => None,
        };
        ChunkSigner { key, ed25519 }
    }

    /// The armored SSHSIG (SHA-512) over `msg` in `namespace`.
    pub fn sign(&self, namespace: &str, msg: &[u8]) -> Result<String, ssh_key::Error> {
        let sig = match &self.ed25519 {
            Some(k) => SshSig::sign(k, namespace, HashAlg::Sha512, msg)?,
            None => self.key.sign(namespace, HashAlg::Sha512, msg)?,
        };
        sig.to_pem(LineEnding::LF)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ssh_key::rand_core::OsRng;

    #[test]
    fn a_prepared_ed25519_key_signs_exactly_as_ssh_key_does() {
        let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
        let signer = ChunkSigner::new(key.clone());
        assert!(signer.ed25519.is_some());
        for msg in [&b""[..], b"a chunk body", &[7u8; 100_000]] {
            let ours = signer.sign("ns@test", msg).unwrap();
            let theirs = key
                .sign("ns@test", HashAlg::Sha512, msg)
                .unwrap()
                .to_pem(LineEnding::LF)
                .unwrap();
            assert_eq!(ours, theirs);
            let sig = SshSig::from_pem(&ours).unwrap();
            assert!(key.public_key().verify("ns@test", msg, &sig).is_ok());
            assert!(key.public_key().verify("other@test", msg, &sig).is_err());
        }
    }
}
