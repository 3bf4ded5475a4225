//! How an admin command finds the running CA and asks it something: over
//! the admin socket in its data directory.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use jit_ssh_ca::config;
use jit_ssh_ca::server::admin::{self, AdminRequest, AdminResponse};
use jit_ssh_ca::server::ADMIN_SOCKET;

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
    pub(super) fn data_dir(self) -> anyhow::Result<PathBuf> {
        Ok(match (self.config, self.data, self.dev_dir) {
            (Some(c), _, _) => config::load(&c)?.data_dir,
            (_, Some(d), _) => d,
            (_, _, Some(dev)) => dev.join("data"),
            _ => bail!("say which CA: --config FILE, --data DIR, or --dev-dir DIR"),
        })
    }
}

/// Sends one admin request to the running CA.
pub(super) fn ask(data: &std::path::Path, req: &AdminRequest) -> anyhow::Result<AdminResponse> {
    let socket = data.join(ADMIN_SOCKET);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(admin::request(&socket, req))
        .context("asking the running CA")
}
