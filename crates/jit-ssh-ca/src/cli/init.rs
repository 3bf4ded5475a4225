use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use ssh_key::HashAlg;

use jit_ssh_ca::ca_key;

#[derive(Args)]
pub struct InitArgs {
    /// Directory for the CA key (created with mode 0700 if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Encrypt the key with the passphrase in this file (mode 0600).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

pub fn run(a: InitArgs) -> anyhow::Result<ExitCode> {
    let pass = a
        .passphrase_file
        .as_deref()
        .map(ca_key::read_passphrase)
        .transpose()
        .context("reading the passphrase")?;
    let out = ca_key::init(&a.dir, pass.as_deref()).context("creating the CA key")?;
    println!("CA key:        {}", out.key_path.display());
    println!("CA public key: {}", out.public_key_path.display());
    println!(
        "fingerprint:   {}",
        out.public_key.fingerprint(HashAlg::Sha256)
    );
    println!(
        "Hosts trust it with `TrustedUserCAKeys` listing the public key (see ca-keys.example)."
    );
    Ok(ExitCode::SUCCESS)
}
