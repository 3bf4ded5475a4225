//! Users' credentials on sled: one JSON list per user, changed only by
//! compare-and-swap ([`super::Store::swap_credentials`]) against the bytes
//! read ([`StoredCredentials`]).

use webauthn_rs::prelude::Passkey;

use super::sled_store::{enc, SledStore};
use super::{StoreError, StoredCredentials};

impl SledStore {
    pub(super) fn swap_user_credentials(
        &self,
        user: &str,
        (old, new): (&StoredCredentials, &[Passkey]),
        durable: bool,
    ) -> Result<bool, StoreError> {
        let _writing = self.writing();
        let swapped = self
            .credentials
            .compare_and_swap(user, old.stored(), Some(enc(&new, "credentials")?))?
            .is_ok();
        // Not the shared swap(), which always flushes: a counter update
        // is left to sled's background flush.
        if swapped && durable {
            self.credentials.flush()?;
        }
        Ok(swapped)
    }
}
