//! `jit-ssh-ca backup --to DIR` (through the running server: no stop) and
//! `jit-ssh-ca restore --from DIR --data DIR` (offline). What a backup
//! holds and how to check it: `jit_ssh_ca::backup`, docs/operations.md.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use jit_ssh_ca::server::admin::{AdminRequest, AdminResponse};

use super::running_ca::{ask, RunningCa};

#[derive(Args)]
pub struct BackupArgs {
    /// Where to write it: a new or empty directory (made 0700).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Copy the CA's private key files too (the configured key files and
    /// rotation keys, as they are: encrypted if they are). Without it the
    /// backup holds no private key, and restore says where to put them.
    #[arg(long)]
    include_key: bool,
    #[command(flatten)]
    ca: RunningCa,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup directory (`jit-ssh-ca backup --to`).
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The data directory to create: new or empty, no CA running on it.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Accept the backup only if it is signed by this CA public key
    /// (recommended: without it, the key named in the backup is trusted).
    #[arg(long, value_name = "FILE")]
    ca_public_key: Option<PathBuf>,
}

pub fn backup(a: BackupArgs) -> anyhow::Result<ExitCode> {
    // The server resolves paths from its own directory: send an absolute one.
    let to = std::path::absolute(&a.to).with_context(|| format!("--to {}", a.to.display()))?;
    let data = a.ca.data_dir()?;
    match ask(
        &data,
        &AdminRequest::Backup {
            to,
            include_key: a.include_key,
        },
    )? {
        AdminResponse::BackedUp { report: r } => {
            println!("backup:        {}", r.dir.display());
            println!(
                "audit records: {} (head {})",
                r.audit_records, r.audit_head_hash
            );
            println!("state entries: {}", r.state_entries);
            println!("bytes:         {}", r.bytes);
            println!(
                "took:          {} ms (writes held {} ms)",
                r.took_ms, r.writers_held_ms
            );
            if r.keys_left_out.is_empty() {
                println!("private keys:  {} included", r.keys_included);
            } else {
                println!("private keys:  not included (--include-key); keep them safe separately:");
                for k in &r.keys_left_out {
                    println!("  {}", k.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AdminResponse::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer from the CA: {other:?}"),
    }
}

pub fn restore(a: RestoreArgs) -> anyhow::Result<ExitCode> {
    let pin = a
        .ca_public_key
        .as_ref()
        .map(|p| {
            ssh_key::PublicKey::read_openssh_file(p)
                .with_context(|| format!("reading --ca-public-key {}", p.display()))
        })
        .transpose()?;
    let data =
        std::path::absolute(&a.data).with_context(|| format!("--data {}", a.data.display()))?;
    let done = jit_ssh_ca::backup::restore::restore(&a.from, &data, pin.as_ref())
        .with_context(|| format!("restoring {} into {}", a.from.display(), data.display()))?;
    let m = &done.manifest;
    println!("restored:      {}", data.display());
    println!(
        "taken:         {} by jit-ssh-ca {}",
        m.created_at, m.jit_ssh_ca_version
    );
    println!(
        "audit records: {} (head {}; verified, last checkpoint signed by the CA key)",
        m.audit_records, m.audit_head_hash
    );
    println!("state entries: {}", m.state_entries);
    if !done.keys_to_place.is_empty() {
        println!("before `jit-ssh-ca serve`, put the CA's private keys in place (mode 0600):");
        for (role, at, copy) in &done.keys_to_place {
            match copy {
                Some(c) => println!("  {role}: copy {} to {}", c.display(), at.display()),
                None => println!(
                    "  {role}: {} (not in the backup: from where you keep it)",
                    at.display()
                ),
            }
        }
        println!(
            "  (paths are those the backed-up CA used; the config's data_dir must name {})",
            data.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
