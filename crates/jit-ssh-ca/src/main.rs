//! `jit-ssh-ca`: the operator's commands for the jit-ssh certificate authority.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jit-ssh-ca: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
