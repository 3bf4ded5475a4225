//! `jit-ssh-ca migrate --from DATA_DIR`: an embedded CA (sled state and
//! the audit chain files) copied into an empty PostgreSQL database. The
//! source chain is verified whole before anything is written; the chain
//! is then copied in one transaction, record for record (same bytes,
//! same hashes, same head), after the state.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};

use jit_ssh_audit::AuditLog;
use jit_ssh_audit_disk::DiskAuditLog;
use jit_ssh_ca::config::storage::{PostgresConfig, SslMode};
use jit_ssh_ca::server::{AUDIT_DIR, STATE_DIR};
use jit_ssh_ca::store::pg::audit::import;
use jit_ssh_ca::store::{copy, PgAuditLog, PgStore, SledStore};

/// The database `--to` names, checked as `[storage]` would be.
pub fn target(
    url: &str,
    sslmode: &str,
    ca_file: Option<PathBuf>,
    password_file: Option<PathBuf>,
) -> anyhow::Result<PostgresConfig> {
    let parsed = postgres::Config::from_str(url).context("--to is not a PostgreSQL URL")?;
    if parsed.get_password().is_some() {
        bail!("--to holds a password; put it in a file and pass --password-file");
    }
    let sslmode = match sslmode {
        "disable" => SslMode::Disable,
        "verify-full" if ca_file.is_some() => SslMode::VerifyFull,
        "verify-full" => bail!("--sslmode verify-full (the default) needs --ca-file, or use --sslmode disable for a unix socket"),
        other => bail!("--sslmode {other:?} is not \"verify-full\" or \"disable\""),
    };
    Ok(PostgresConfig {
        url: url.to_owned(),
        password_file,
        sslmode,
        ca_file,
        pool_size: 2,
        connect_timeout: Duration::from_secs(10),
    })
}

pub fn copy(data: &Path, pg: &PostgresConfig) -> anyhow::Result<()> {
    let (state_dir, audit_dir) = (data.join(STATE_DIR), data.join(AUDIT_DIR));
    if !state_dir.is_dir() && !audit_dir.is_dir() {
        bail!(
            "{} holds no CA state ({STATE_DIR}/ or {AUDIT_DIR}/)",
            data.display()
        );
    }
    let target = PgStore::open(pg).context("opening the PostgreSQL database")?;
    if let Some(table) = target
        .first_non_empty_table()
        .context("checking the database is empty")?
    {
        bail!("the database already holds data (table {table}): --from copies only into an empty database");
    }
    let audit = DiskAuditLog::open(&audit_dir).with_context(|| {
        format!(
            "opening the audit log in {} (stop the CA using it first)",
            audit_dir.display()
        )
    })?;
    let report = audit.verify().context("verifying the source audit chain")?;
    if let Some(b) = report.first_break {
        bail!("the source audit chain is broken, nothing copied: {b}");
    }
    let state = SledStore::open(&state_dir).with_context(|| {
        format!(
            "opening {} (stop the CA using it first)",
            state_dir.display()
        )
    })?;
    let copied = copy::copy_state(&state, &target).context("copying the state")?;
    println!("state copied: {copied}");
    let log = PgAuditLog::open(pg).context("opening the PostgreSQL audit log")?;
    let head = import::import(&log, &audit).context("copying the audit chain")?;
    println!(
        "audit chain copied: {} records, head {} (the same as in {})",
        head.seq,
        head.hash,
        audit_dir.display()
    );
    Ok(())
}
