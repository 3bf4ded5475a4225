//! The PostgreSQL schema's versions: SQL files compiled into the binary,
//! applied in order by `jit-ssh-ca migrate`, and checked by every server
//! at start. A server never changes the schema itself: it refuses a
//! database that is behind its migrations (run `migrate`) or ahead of
//! them (a newer jit-ssh-ca migrated it; upgrade this one), so replicas
//! of different versions cannot quietly disagree on what a row means.
//!
//! A few dozen lines instead of a migration crate: the files are
//! embedded with `include_str!`, each applied version is recorded with the
//! SHA-256 of its SQL (an edited migration is refused), and everything
//! runs in one transaction under an advisory lock (two `migrate` at once
//! wait for each other; a failed one leaves nothing half-done).

use sha2::{Digest, Sha256};

/// Every migration, in order; versions start at 1 and never change.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "state",
        sql: include_str!("migrations/0001_state.sql"),
    },
    Migration {
        version: 2,
        name: "audit",
        sql: include_str!("migrations/0002_audit.sql"),
    },
];

/// An arbitrary constant: the advisory lock `migrate` holds.
const LOCK_KEY: i64 = 0x6a69_742d_7373_6801;

struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

impl Migration {
    fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// The schema version this binary serves.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
    #[error(transparent)]
    Pool(#[from] r2d2_postgres::r2d2::Error),
    #[error("the database has no jit-ssh schema: run `jit-ssh-ca migrate --config …` first")]
    Unmigrated,
    #[error(
        "the database schema is at version {found}, newer than this jit-ssh-ca knows ({known}): \
         upgrade jit-ssh-ca (a newer release migrated this database)"
    )]
    Newer { found: i32, known: i32 },
    #[error(
        "the database schema is at version {found}, this jit-ssh-ca needs {known}: \
         run `jit-ssh-ca migrate --config …`"
    )]
    Behind { found: i32, known: i32 },
    #[error(
        "schema version {version} in the database is not the migration this jit-ssh-ca has \
         (its SQL differs): refusing to touch it"
    )]
    Altered { version: i32 },
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub from: i32,
    pub to: i32,
}

/// Brings the schema to [`latest`]; does nothing when it is there.
pub fn migrate(client: &mut postgres::Client) -> Result<Migrated, SchemaError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS jit_ssh_schema (
             version integer PRIMARY KEY,
             name text NOT NULL,
             checksum text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )?;
    let from = check_applied(&mut tx)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > from) {
        tx.batch_execute(m.sql)?;
        tx.execute(
            "INSERT INTO jit_ssh_schema (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &m.checksum()],
        )?;
    }
    tx.commit()?;
    Ok(Migrated { from, to: latest() })
}

/// At start: the schema must be exactly what this binary knows.
pub fn check(client: &mut postgres::Client) -> Result<(), SchemaError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('jit_ssh_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Err(SchemaError::Unmigrated);
    }
    let mut tx = client.transaction()?;
    let found = check_applied(&mut tx)?;
    tx.commit()?;
    match found {
        0 => Err(SchemaError::Unmigrated),
        f if f < latest() => Err(SchemaError::Behind {
            found: f,
            known: latest(),
        }),
        _ => Ok(()),
    }
}

/// The highest applied version, after checking that every applied
/// version is one of ours, unchanged.
fn check_applied(tx: &mut postgres::Transaction<'_>) -> Result<i32, SchemaError> {
    let rows = tx.query(
        "SELECT version, checksum FROM jit_ssh_schema ORDER BY version",
        &[],
    )?;
    let mut found = 0;
    for row in rows {
        let version: i32 = row.get(0);
        let checksum: String = row.get(1);
        match MIGRATIONS.iter().find(|m| m.version == version) {
            None => {
                return Err(SchemaError::Newer {
                    found: version,
                    known: latest(),
                })
            }
            Some(m) if m.checksum() != checksum => return Err(SchemaError::Altered { version }),
            Some(_) => found = found.max(version),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_start_at_one_and_follow_each_other() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(usize::try_from(m.version).ok(), Some(i + 1), "{}", m.name);
        }
        assert_eq!(latest(), i32::try_from(MIGRATIONS.len()).unwrap_or(0));
    }
}
