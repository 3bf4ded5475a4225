use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use jit_ssh_ca::config;
use jit_ssh_ca::server::admin::{self, AdminRequest, AdminResponse};
use jit_ssh_ca::server::ADMIN_SOCKET;

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

/// Which running CA an admin command talks to.
#[derive(Args)]
pub struct RunningCa {
    /// The running CA's configuration file (to find its data directory).
    #[arg(long, conflicts_with_all = ["data", "dev_dir"])]
    config: Option<PathBuf>,
    /// The running CA's data directory.
    #[arg(long, conflicts_with = "dev_dir")]
    data: Option<PathBuf>,
    /// The directory of a CA started with `serve --dev`.
    #[arg(long)]
    dev_dir: Option<PathBuf>,
}

impl RunningCa {
    /// Its data directory, where the admin socket is.
    fn data_dir(self) -> anyhow::Result<PathBuf> {
        Ok(match (self.config, self.data, self.dev_dir) {
            (Some(c), _, _) => config::load(&c)?.data_dir,
            (_, Some(d), _) => d,
            (_, _, Some(dev)) => dev.join("data"),
            _ => bail!("say which CA: --config FILE, --data DIR, or --dev-dir DIR"),
        })
    }
}

/// Sends one admin request to the running CA.
fn ask(data: &std::path::Path, req: &AdminRequest) -> anyhow::Result<AdminResponse> {
    let socket = data.join(ADMIN_SOCKET);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(admin::request(&socket, req))
        .context("asking the running CA")
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

#[derive(Args)]
pub struct EnableUserArgs {
    /// The user to re-enable after a user revocation.
    user: String,
    #[command(flatten)]
    ca: RunningCa,
}

pub fn enable_user(a: EnableUserArgs) -> anyhow::Result<ExitCode> {
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
