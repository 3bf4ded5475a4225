//! `jit-ssh-ca invite`: a one-time enrollment link from the running CA.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use jit_ssh_ca::server::admin::{AdminRequest, AdminResponse};

use super::running_ca::{ask, RunningCa};

#[derive(Args)]
pub struct InviteArgs {
    /// The user to enroll (must be in the CA's configuration).
    user: String,
    /// Extra roles the invite grants (engineer, approver, security, auditor, admin).
    #[arg(long = "role")]
    roles: Vec<String>,
    #[command(flatten)]
    ca: RunningCa,
}

pub fn run(a: InviteArgs) -> anyhow::Result<ExitCode> {
    let data = a.ca.data_dir()?;
    match ask(
        &data,
        &AdminRequest::Invite {
            user: a.user,
            roles: a.roles,
        },
    )? {
        AdminResponse::Invited {
            user,
            url,
            expires_at,
        } => {
            println!("enroll {user}: {url}");
            eprintln!("(one-time link, valid until {expires_at})");
            Ok(ExitCode::SUCCESS)
        }
        AdminResponse::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer from the CA: {other:?}"),
    }
}
