//! `jit-ssh-ca rotate stage|activate|retire|status [--host]`: CA key
//! rotation, through the running server's admin socket, so the server
//! switches keys without a restart (docs/operations.md, "Rotating keys").

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use jit_ssh_ca::server::admin::{AdminRequest, AdminResponse, RotateStep};
use jit_ssh_ca::service::{KeyRole, RotationStatus};

use super::running_ca::{ask, RunningCa};

#[derive(Subcommand)]
pub enum RotateCommand {
    /// Make the next key (or import one with --key) and publish it beside
    /// the signing key, so hosts trust both after their next sync.
    Stage {
        /// Import this private key (OpenSSH format, mode 0600, encrypted
        /// with the CA key's passphrase if that one is) instead of making one.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        #[command(flatten)]
        which: Which,
    },
    /// Sign with the staged key from now on; the previous key stays
    /// published until it is retired.
    Activate {
        #[command(flatten)]
        which: Which,
    },
    /// Stop publishing the previous key (refused while a certificate it
    /// signed can still be valid; the answer says from when).
    Retire {
        /// Do not wait: for a compromised key. Every certificate it signed
        /// stops working on hosts' next sync.
        #[arg(long)]
        now: bool,
        #[command(flatten)]
        which: Which,
    },
    /// Where the rotation stands.
    Status {
        #[command(flatten)]
        which: Which,
    },
}

#[derive(Args)]
pub struct Which {
    /// The host CA key instead of the user CA key.
    #[arg(long)]
    host: bool,
    #[command(flatten)]
    ca: RunningCa,
}

pub fn run(c: RotateCommand) -> anyhow::Result<ExitCode> {
    let (step, key_file, which) = match c {
        RotateCommand::Stage { key, which } => (RotateStep::Stage, key, which),
        RotateCommand::Activate { which } => (RotateStep::Activate, None, which),
        RotateCommand::Retire { now: false, which } => (RotateStep::Retire, None, which),
        RotateCommand::Retire { now: true, which } => (RotateStep::RetireNow, None, which),
        RotateCommand::Status { which } => (RotateStep::Status, None, which),
    };
    // The server resolves paths from its own directory: send an absolute one.
    let key_file = key_file
        .map(|p| std::path::absolute(&p).with_context(|| format!("--key {}", p.display())))
        .transpose()?;
    let key = if which.host {
        KeyRole::Host
    } else {
        KeyRole::User
    };
    let data = which.ca.data_dir()?;
    match ask(
        &data,
        &AdminRequest::Rotate {
            step,
            key,
            key_file,
        },
    )? {
        AdminResponse::Rotation { status } => {
            print!("{}", shown(&status));
            Ok(ExitCode::SUCCESS)
        }
        AdminResponse::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer from the CA: {other:?}"),
    }
}

fn shown(s: &RotationStatus) -> String {
    let file = |f: &Option<PathBuf>| {
        f.as_ref()
            .map(|p| format!(" ({})", p.display()))
            .unwrap_or_default()
    };
    let mut out = format!(
        "{} CA key\nactive:   {}{}\n",
        s.key.name(),
        s.active,
        file(&s.active_file)
    );
    if let Some(n) = &s.staged {
        out.push_str(&format!("staged:   {n}{}\n", file(&s.staged_file)));
    }
    if let Some(p) = &s.retiring {
        out.push_str(&format!(
            "previous: {p} (retire from {})\n",
            s.retire_after.as_deref().unwrap_or("?")
        ));
    }
    out
}
