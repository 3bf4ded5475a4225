//! Users' credentials on PostgreSQL: one JSON list per user, changed by
//! a running CA only by compare-and-swap ([`crate::store::Store::swap_credentials`]).

use webauthn_rs::prelude::Passkey;

use super::commit::{self, Commit};
use super::{enc, PgStore};
use crate::store::StoreError;

impl PgStore {
    pub(super) fn swap_user_credentials(
        &self,
        user: &str,
        (old, new): (&[Passkey], &[Passkey]),
        durable: bool,
    ) -> Result<bool, StoreError> {
        let (body, was) = (enc(&new, "credentials")?, enc(&old, "credentials")?);
        // A counter update need not wait for the disk (see `commit`).
        let commit = if durable {
            Commit::Durable
        } else {
            Commit::Deferred
        };
        // A first credential is inserted only if the row is still missing
        // (or holds an empty list): of two inserts at once, the second
        // finds the first's row and its body no longer `[]`.
        let sql = if old.is_empty() {
            format!(
                "INSERT INTO credentials (user_name, body)
                 SELECT $1::text, $2::text FROM {}
                 ON CONFLICT (user_name) DO UPDATE SET body = EXCLUDED.body
                 WHERE credentials.body = $3",
                commit::setting(4)
            )
        } else {
            format!(
                "UPDATE credentials SET body = $2 FROM {}
                 WHERE user_name = $1 AND body = $3",
                commit::setting(4)
            )
        };
        let deferred = commit.deferred();
        self.with(|c| Ok(c.execute(&sql, &[&user, &body, &was, &deferred])? == 1))
    }

    /// Stores `user`'s credentials whatever is stored: for copying a
    /// store (`migrate --from`) only. The service never uses it: a
    /// running CA changes credentials with [`crate::store::Store::swap_credentials`].
    pub fn put_credentials(&self, user: &str, creds: &[Passkey]) -> Result<(), StoreError> {
        let body = enc(&creds, "credentials")?;
        self.with(|c| {
            c.execute(
                "INSERT INTO credentials (user_name, body) VALUES ($1, $2)
                 ON CONFLICT (user_name) DO UPDATE SET body = EXCLUDED.body",
                &[&user, &body],
            )?;
            Ok(())
        })
    }
}
