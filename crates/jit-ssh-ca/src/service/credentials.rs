//! Changing a user's enrolled credentials. Enrollment adds one and every
//! sign-in raises a signature counter, and each rewrites the user's whole
//! list: each is a compare-and-swap against the list it read, applied
//! again to a fresh read when another change came first (a sign-in on
//! another replica, a second enrollment). A blind write of a list read
//! earlier lost a passkey enrolled in between, or moved a counter back.

use webauthn_rs::prelude::Passkey;

use super::{Ca, ServiceError};

/// Reads and swaps before giving up. Each failed swap means another
/// change to the same user's list won; only that user's own touches and
/// enrollments make them, so a handful of tries is plenty.
const TRIES: usize = 8;

impl Ca {
    /// Applies `change` to `user`'s credentials as stored and swaps the
    /// result in, from a fresh read as long as another change wins (at
    /// most [`TRIES`] times); `durable` waits for the disk. `change`
    /// answers `None` when there is nothing to write. Returns the list
    /// stored, or `None` after too many lost swaps (nothing written).
    pub(super) fn change_credentials(
        &self,
        user: &str,
        durable: bool,
        mut change: impl FnMut(&[Passkey]) -> Option<Vec<Passkey>>,
    ) -> Result<Option<Vec<Passkey>>, ServiceError> {
        for _ in 0..TRIES {
            let old = self.store.stored_credentials(user)?;
            let Some(new) = change(&old.passkeys) else {
                return Ok(Some(old.passkeys));
            };
            if self.store.swap_credentials(user, &old, &new, durable)? {
                return Ok(Some(new));
            }
        }
        tracing::warn!(
            user,
            tries = TRIES,
            "the user's credentials kept changing under an update; nothing written"
        );
        Ok(None)
    }
}
