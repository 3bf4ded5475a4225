//! What hosts are asked to trust, signed: the CA key set and the manifest of
//! the current KRL. Each is signed afresh at least every
//! [`RESIGN_AFTER`], even when nothing changed, so the signed `issued_at`
//! tells a host how fresh its copy is and a replayed old answer cannot pass
//! as current for long (`jit-ssh host sync --max-age`).

use std::sync::Mutex;

use sha2::{Digest, Sha256};
use ssh_key::{LineEnding, PublicKey};

use jit_ssh_proto::api::CaKeys;
use jit_ssh_proto::signed::{
    CaKeySet, KrlManifest, SignedDocument, CA_KEYS_NAMESPACE, CA_KEY_SET_KIND, KRL_MANIFEST_KIND,
    KRL_MANIFEST_NAMESPACE,
};

use super::{Ca, PublishedKrl, ServiceError};

/// A signed document older than this is signed again when asked for.
pub const RESIGN_AFTER: u64 = 60;
/// How long a KRL manifest says it may be relied on.
pub const MANIFEST_VALIDITY: u64 = 600;

/// The last signed documents, so a fleet polling every 30 s costs one
/// signature a minute rather than one per poll.
#[derive(Default)]
pub struct SignedCache {
    ca_keys: Mutex<Option<(u64, SignedDocument)>>,
    /// (KRL version, issued_at, manifest)
    manifest: Mutex<Option<(u64, u64, SignedDocument)>>,
}

impl SignedCache {
    /// Forgets what was signed: the next answer is signed afresh (after a
    /// key rotation step).
    pub(super) fn clear(&self) {
        if let Ok(mut c) = self.ca_keys.lock() {
            *c = None;
        }
        if let Ok(mut c) = self.manifest.lock() {
            *c = None;
        }
    }
}

impl Ca {
    /// The keys hosts trust: the signing key, a rotation's next and
    /// previous keys (`jit-ssh-ca rotate`), then keys the config adds
    /// (`publish_ca_keys`).
    fn published_keys(&self) -> Vec<PublicKey> {
        let mut keys = self.user_keys.published();
        keys.extend(self.extra_ca_keys.iter().cloned());
        keys
    }

    /// `GET /v1/ca-keys`: the key set, signed by the current CA key.
    pub fn ca_keys(&self) -> Result<CaKeys, ServiceError> {
        let now = u64::try_from(self.now()).unwrap_or(0);
        let keys: Vec<String> = self
            .published_keys()
            .iter()
            .map(|k| k.to_openssh())
            .collect::<Result<_, _>>()
            .map_err(|e| ServiceError::Internal(format!("encoding a CA key: {e}")))?;
        let mut cache = self
            .signed_cache
            .ca_keys
            .lock()
            .map_err(|_| ServiceError::Internal("signed key set".into()))?;
        let signed = match cache.as_ref() {
            Some((issued, doc)) if now.saturating_sub(*issued) < RESIGN_AFTER => doc.clone(),
            _ => {
                let doc = CaKeySet {
                    kind: CA_KEY_SET_KIND.into(),
                    issued_at: now,
                    keys: keys.clone(),
                };
                let signed = self.sign_document(CA_KEYS_NAMESPACE, &doc)?;
                *cache = Some((now, signed.clone()));
                signed
            }
        };
        Ok(CaKeys { keys, signed })
    }

    /// `GET /v1/krl.manifest` and the KRL it names.
    pub fn krl_manifest(&self) -> Result<(PublishedKrl, SignedDocument), ServiceError> {
        let now = u64::try_from(self.now()).unwrap_or(0);
        let krl = self.krl_at(now)?;
        let mut cache = self
            .signed_cache
            .manifest
            .lock()
            .map_err(|_| ServiceError::Internal("KRL manifest".into()))?;
        if let Some((version, issued, doc)) = cache.as_ref() {
            if *version == krl.version && now.saturating_sub(*issued) < RESIGN_AFTER {
                return Ok((krl, doc.clone()));
            }
        }
        let manifest = KrlManifest {
            kind: KRL_MANIFEST_KIND.into(),
            krl_version: krl.version,
            krl_sha256: hex::encode(Sha256::digest(krl.bytes.as_slice())),
            krl_size: krl.bytes.len() as u64,
            issued_at: now,
            valid_until: now + MANIFEST_VALIDITY,
        };
        let signed = self.sign_document(KRL_MANIFEST_NAMESPACE, &manifest)?;
        *cache = Some((krl.version, now, signed.clone()));
        Ok((krl, signed))
    }

    fn sign_document(
        &self,
        namespace: &str,
        doc: &impl serde::Serialize,
    ) -> Result<SignedDocument, ServiceError> {
        let document = serde_json::to_string(doc)
            .map_err(|e| ServiceError::Internal(format!("encoding {namespace}: {e}")))?;
        self.sign_document_bytes(namespace, document)
    }

    /// A detached SSHSIG by the user CA key over `document`, in `namespace`.
    pub(super) fn sign_document_bytes(
        &self,
        namespace: &str,
        document: String,
    ) -> Result<SignedDocument, ServiceError> {
        let signature = self
            .signer()
            .sign_detached(namespace, document.as_bytes())
            .and_then(|s| s.to_pem(LineEnding::LF).map_err(crate::signer::SignError))
            .map_err(|e| ServiceError::Internal(format!("signing {namespace}: {e}")))?;
        Ok(SignedDocument {
            document,
            signature,
        })
    }
}
