//! `jit-ssh-host`: what systemd runs on an SSH host (see docs/hosts.md).
//! Exit codes: 0 ok, 1 refused, 2 usage, 4 CA unreachable, 9 stale.

use std::process::ExitCode;

use clap::Parser;

/// jit-ssh on an SSH host: keep sshd's trust of the CA current.
#[derive(Parser)]
#[command(name = "jit-ssh-host", version, about)]
struct Cli {
    /// Machine-readable output (JSON) on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: jit_ssh_host::cli::HostCommand,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match jit_ssh_host::cli::run(cli.command, cli.json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jit-ssh-host: error: {e}");
            if let Some(next) = e.next_step() {
                eprintln!("jit-ssh-host: next: {next}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
