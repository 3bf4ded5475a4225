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

pub fn run(a: InviteArgs) -> anyhow::Result<ExitCode> {
    let data = match (a.config, a.data, a.dev_dir) {
        (Some(c), _, _) => config::load(&c)?.data_dir,
        (_, Some(d), _) => d,
        (_, _, Some(dev)) => dev.join("data"),
        _ => bail!("say which CA: --config FILE, --data DIR, or --dev-dir DIR"),
    };
    let socket = data.join(ADMIN_SOCKET);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let response = runtime
        .block_on(admin::request(
            &socket,
            &AdminRequest::Invite {
                user: a.user,
                roles: a.roles,
            },
        ))
        .context("asking the running CA for an invite")?;
    match response {
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
    }
}
