//! Users' credentials on sled: one JSON list per user, changed only by
//! compare-and-swap ([`super::Store::swap_credentials`]).

use webauthn_rs::prelude::Passkey;

use super::sled_store::{enc, SledStore};
use super::StoreError;

impl SledStore {
    pub(super) fn swap_user_credentials(
        &self,
        user: &str,
        (old, new): (&[Passkey], &[Passkey]),
        durable: bool,
    ) -> Result<bool, StoreError> {
        let _writing = self.writing();
        let new = enc(&new, "credentials")?;
        let mut swapped = old.is_empty()
            && self
                .credentials
                .compare_and_swap(user, None as Option<&[u8]>, Some(new.clone()))?
                .is_ok();
        if !swapped {
            // An empty `old` also matches an empty list stored.
            swapped = self
                .credentials
                .compare_and_swap(user, Some(enc(&old, "credentials")?), Some(new))?
                .is_ok();
        }
        // Not the shared swap(), which always flushes: a counter update
        // is left to sled's background flush.
        if swapped && durable {
            self.credentials.flush()?;
        }
        Ok(swapped)
    }
}
