use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use jit_ssh_ca::config::{self, storage::StorageConfig};
use jit_ssh_ca::store::PgStore;

#[derive(Args)]
pub struct MigrateArgs {
    /// The configuration file; its `[storage]` names the database.
    #[arg(long)]
    config: PathBuf,
}

/// Brings the PostgreSQL schema to this version's; safe to run again and
/// from several hosts at once (they wait for each other).
pub fn run(a: MigrateArgs) -> anyhow::Result<ExitCode> {
    let config = config::load(&a.config)?;
    let StorageConfig::Postgres(pg) = &config.storage else {
        println!("storage is embedded: nothing to migrate (its format needs no migration)");
        return Ok(ExitCode::SUCCESS);
    };
    let done = PgStore::migrate(pg).context("migrating the PostgreSQL schema")?;
    if done.from == done.to {
        println!("schema already at version {}", done.to);
    } else {
        println!("schema migrated from version {} to {}", done.from, done.to);
    }
    Ok(ExitCode::SUCCESS)
}
