//! A user's credentials as read for a compare-and-swap: the passkeys,
//! and the bytes the store held for them.
//!
//! The swap compares against those bytes, never against the list encoded
//! again: webauthn-rs owns the passkey's stored form, and a version that
//! adds or renames a field (or any encoding that does not round-trip byte
//! for byte) would make every swap of a list stored by the older version
//! miss. Every sign-in that raises a signature counter would then fail
//! after its tries, for every user with such an authenticator.

use webauthn_rs::prelude::Passkey;

use super::StoreError;

#[derive(Debug, Clone)]
pub struct StoredCredentials {
    pub passkeys: Vec<Passkey>,
    /// What the store held, byte for byte; `None` when it held nothing.
    stored: Option<Vec<u8>>,
}

impl StoredCredentials {
    /// Decodes what a store read (`None`: no entry, no passkeys).
    pub(super) fn decode(stored: Option<Vec<u8>>) -> Result<Self, StoreError> {
        let passkeys = match &stored {
            Some(b) => serde_json::from_slice(b).map_err(|source| StoreError::Corrupt {
                what: "credentials",
                source,
            })?,
            None => Vec::new(),
        };
        Ok(Self { passkeys, stored })
    }

    /// The bytes a swap must still find stored.
    pub(super) fn stored(&self) -> Option<&[u8]> {
        self.stored.as_deref()
    }
}
