//! `jit-ssh-ca enable-user`: lifts the block a user revocation put on a
//! user, on the running CA.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use jit_ssh_ca::server::admin::{AdminRequest, AdminResponse};

use super::running_ca::{ask, RunningCa};

#[derive(Args)]
pub struct EnableUserArgs {
    /// The user to re-enable after a user revocation.
    user: String,
    #[command(flatten)]
    ca: RunningCa,
}

pub fn run(a: EnableUserArgs) -> anyhow::Result<ExitCode> {
    let data = a.ca.data_dir()?;
    match ask(&data, &AdminRequest::EnableUser { user: a.user })? {
        AdminResponse::Enabled {
            user,
            was_blocked: true,
        } => {
            println!("{user} is enabled again: new certificates can be issued (revoked ones stay revoked)");
            Ok(ExitCode::SUCCESS)
        }
        AdminResponse::Enabled {
            user,
            was_blocked: false,
        } => {
            println!("{user} was not blocked; nothing changed");
            Ok(ExitCode::SUCCESS)
        }
        AdminResponse::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer from the CA: {other:?}"),
    }
}
