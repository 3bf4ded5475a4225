//! A user certificate for unit tests about the session wrapper's
//! force-command: signed by a throwaway CA, valid for ages.

#![allow(clippy::unwrap_used)]

use ssh_key::{certificate, Algorithm, Certificate, PrivateKey};

/// Alice's certificate (serial 1, principal `oncall@h`) whose
/// force-command is `fc` (none when empty).
pub fn forcing(fc: &str) -> Certificate {
    forcing_until(fc, u64::MAX / 2)
}

/// [`forcing`], valid until `valid_before` (Unix seconds).
pub fn forcing_until(fc: &str, valid_before: u64) -> Certificate {
    let mut rng = ssh_key::rand_core::OsRng;
    let ca = PrivateKey::random(&mut rng, Algorithm::Ed25519).unwrap();
    let user = PrivateKey::random(&mut rng, Algorithm::Ed25519).unwrap();
    let mut b =
        certificate::Builder::new_with_random_nonce(&mut rng, user.public_key(), 0, valid_before)
            .unwrap();
    b.serial(1).unwrap();
    b.key_id("jit-ssh:alice:g:1").unwrap();
    b.valid_principal("oncall@h").unwrap();
    if !fc.is_empty() {
        b.critical_option("force-command", fc).unwrap();
    }
    b.sign(&ca).unwrap()
}
