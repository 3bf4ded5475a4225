//! `jit-ssh-ca ready`: asks the running CA, over its admin socket, whether
//! it can issue (the checks behind `/readyz`). With `--wait 60s` it asks
//! again every second until it is, so `systemctl start` (ExecStartPost)
//! returns once the CA can issue, and fails if it never could.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;

use jit_ssh_ca::server::admin::{AdminRequest, AdminResponse};

use super::running_ca::{ask, RunningCa};

#[derive(Args)]
pub struct ReadyArgs {
    /// Keep asking for this long (e.g. "60s") until the CA is ready.
    #[arg(long, value_parser = jit_ssh_proto::parse_duration)]
    wait: Option<Duration>,
    #[command(flatten)]
    ca: RunningCa,
}

pub fn run(a: ReadyArgs) -> anyhow::Result<ExitCode> {
    let data = a.ca.data_dir()?;
    let deadline = Instant::now() + a.wait.unwrap_or_default();
    loop {
        let answer = ask(&data, &AdminRequest::Ready);
        let last_try = Instant::now() >= deadline;
        match answer {
            Ok(AdminResponse::Ready { ready: true, .. }) => {
                println!("ready: the CA key signs, the audit log takes appends, the store answers");
                return Ok(ExitCode::SUCCESS);
            }
            Ok(AdminResponse::Ready { failed, .. }) if last_try => {
                for (check, why) in failed {
                    eprintln!("not ready: {check}: {why}");
                }
                return Ok(ExitCode::FAILURE);
            }
            Ok(AdminResponse::Error { message }) => bail!("{message}"),
            Ok(AdminResponse::Ready { .. }) => {}
            Ok(other) => bail!("unexpected answer from the CA: {other:?}"),
            // Not up yet (the socket appears once the server runs).
            Err(e) if last_try => return Err(e),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
