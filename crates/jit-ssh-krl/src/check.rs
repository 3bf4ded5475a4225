//! The revocation check sshd performs (`ssh_krl_check_key`), so tools can
//! answer "would sshd refuse this?" exactly as `ssh-keygen -Q` does.

use ssh_key::{Certificate, PublicKey};

use crate::model::{key_blob, sha1_of, sha256_of, CaScope, Krl};

impl Krl {
    /// Whether this KRL revokes the plain key `key` (by fingerprint or blob).
    pub fn is_key_revoked(&self, key: &PublicKey) -> bool {
        self.sha1s.contains(&sha1_of(key))
            || self.sha256s.contains(&sha256_of(key))
            || self.explicit_keys.contains(&key_blob(key))
    }

    /// Whether sshd would refuse `cert` because of this KRL: its key, its
    /// serial or key id under its CA (or any CA), or the CA key itself.
    pub fn is_cert_revoked(&self, cert: &Certificate) -> bool {
        let key = PublicKey::from(cert.public_key().clone());
        let ca = PublicKey::from(cert.signature_key().clone());
        if self.is_key_revoked(&key) {
            return true;
        }
        for scope in [CaScope::of(&ca), CaScope::AnyCa] {
            if let Some(rc) = self.certs.get(&scope) {
                if rc.key_ids.contains(cert.key_id()) {
                    return true;
                }
                // Serial 0 means "no serial" and is never revoked by serial.
                if cert.serial() != 0 && rc.serials.contains(cert.serial()) {
                    return true;
                }
            }
        }
        self.is_key_revoked(&ca)
    }
}
