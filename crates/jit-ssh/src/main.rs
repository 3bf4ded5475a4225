//! `jit-ssh`: the engineer's client for the jit-ssh certificate authority.
//!
//! This binary is the home of `jit-ssh login HOST`, `status`, `logout`,
//! `revoke`, `audit` and `host sync`; each lands with the CA server API it
//! talks to. Until then it only describes itself, and says so.

use std::process::ExitCode;

use clap::Parser;

/// Just-in-time SSH certificates for on-call engineers.
///
/// No commands are available yet: `jit-ssh login` arrives with the CA
/// server. Operators can already use `jit-ssh-ca` (init, sign, krl).
#[derive(Parser)]
#[command(name = "jit-ssh", version, about)]
struct Cli {}

fn main() -> ExitCode {
    let _ = Cli::parse();
    eprintln!("jit-ssh: no commands are available yet; `jit-ssh login` arrives with the CA server (see README)");
    ExitCode::from(2)
}
