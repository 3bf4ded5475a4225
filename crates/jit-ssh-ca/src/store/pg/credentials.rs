//! Users' credentials on PostgreSQL: one JSON list per user, changed by
//! a running CA only by compare-and-swap ([`crate::store::Store::swap_credentials`])
//! against the text read ([`StoredCredentials`]).

use webauthn_rs::prelude::Passkey;

use super::commit::{self, Commit};
use super::{enc, PgStore};
use crate::store::{StoreError, StoredCredentials};

impl PgStore {
    pub(super) fn swap_user_credentials(
        &self,
        user: &str,
        (old, new): (&StoredCredentials, &[Passkey]),
        durable: bool,
    ) -> Result<bool, StoreError> {
        let body = enc(&new, "credentials")?;
        // A counter update need not wait for the disk (see `commit`).
        let commit = if durable {
            Commit::Durable
        } else {
            Commit::Deferred
        };
        let deferred = commit.deferred();
        // Read as text, so it is text again.
        let was = old.stored().map(String::from_utf8_lossy);
        let Some(was) = was else {
            // A first credential is inserted only if the row is still
            // missing: of two inserts at once, the second finds the row.
            let sql = format!(
                "INSERT INTO credentials (user_name, body)
                 SELECT $1::text, $2::text FROM {}
                 ON CONFLICT (user_name) DO NOTHING",
                commit::setting(3)
            );
            return self.with(|c| Ok(c.execute(&sql, &[&user, &body, &deferred])? == 1));
        };
        let sql = format!(
            "UPDATE credentials SET body = $2 FROM {}
             WHERE user_name = $1 AND body = $3",
            commit::setting(4)
        );
        self.with(|c| Ok(c.execute(&sql, &[&user, &body, &was.as_ref(), &deferred])? == 1))
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
