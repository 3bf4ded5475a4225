use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use jit_ssh_ca::config::{self, storage::StorageConfig};
use jit_ssh_ca::store::PgStore;

#[derive(Args)]
pub struct MigrateArgs {
    /// The configuration file; its `[storage]` names the database.
    #[arg(long, required_unless_present = "to")]
    config: Option<PathBuf>,
    /// Also copy an embedded CA's state and audit chain from this data
    /// directory into the database, which must hold nothing yet. Stop
    /// the CA that uses the directory first.
    #[arg(long, value_name = "DATA_DIR")]
    from: Option<PathBuf>,
    /// With --from: the database to copy into, instead of --config's
    /// (a postgres:// URL or key=value words, without a password).
    #[arg(long, requires = "from", conflicts_with = "config", value_name = "URL")]
    to: Option<String>,
    /// With --to: "verify-full" (TLS, needs --ca-file) or "disable".
    #[arg(long, requires = "to", default_value = "verify-full")]
    sslmode: String,
    /// With --to: PEM certificates the server's must chain to.
    #[arg(long, requires = "to")]
    ca_file: Option<PathBuf>,
    /// With --to: a file holding the password (mode 0600).
    #[arg(long, requires = "to")]
    password_file: Option<PathBuf>,
}

/// Brings the PostgreSQL schema to this version's; safe to run again and
/// from several hosts at once (they wait for each other). With `--from`,
/// then copies an embedded CA into it.
pub fn run(a: MigrateArgs) -> anyhow::Result<ExitCode> {
    let pg = match (&a.config, &a.to) {
        (_, Some(url)) => super::migrate_from::target(
            url,
            &a.sslmode,
            a.ca_file.clone(),
            a.password_file.clone(),
        )?,
        (Some(path), None) => match config::load(path)?.storage {
            StorageConfig::Postgres(pg) => pg,
            StorageConfig::Embedded if a.from.is_some() => anyhow::bail!(
                "--from copies into PostgreSQL, but {} has no [storage] kind = \"postgres\"",
                path.display()
            ),
            StorageConfig::Embedded => {
                println!("storage is embedded: nothing to migrate (its format needs no migration)");
                return Ok(ExitCode::SUCCESS);
            }
        },
        (None, None) => anyhow::bail!("give --config, or --from with --to"),
    };
    let done = PgStore::migrate(&pg).context("migrating the PostgreSQL schema")?;
    if done.from == done.to {
        println!("schema already at version {}", done.to);
    } else {
        println!("schema migrated from version {} to {}", done.from, done.to);
    }
    if let Some(data) = &a.from {
        super::migrate_from::copy(data, &pg)?;
    }
    Ok(ExitCode::SUCCESS)
}
