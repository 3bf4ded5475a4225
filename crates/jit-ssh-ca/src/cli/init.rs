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
    // An existing user CA key is kept (a CA from before host CAs gains
    // only the host key); with both present there is nothing to do.
    let user_key_exists = a.dir.join(ca_key::KEY_FILE).exists();
    if !user_key_exists {
        let out = ca_key::init(&a.dir, pass.as_deref()).context("creating the CA key")?;
        println!("CA key:             {}", out.key_path.display());
        println!("CA public key:      {}", out.public_key_path.display());
        println!(
            "fingerprint:        {}",
            out.public_key.fingerprint(HashAlg::Sha256)
        );
    }
    let host = ca_key::init_host(&a.dir, pass.as_deref());
    match host {
        Ok(out) => {
            println!("host CA key:        {}", out.key_path.display());
            println!("host CA public key: {}", out.public_key_path.display());
            println!(
                "host CA fingerprint: {}",
                out.public_key.fingerprint(HashAlg::Sha256)
            );
        }
        Err(ca_key::CaKeyError::Exists(p)) if user_key_exists => {
            anyhow::bail!(
                "{} and {} already exist; refusing to overwrite CA keys",
                a.dir.join(ca_key::KEY_FILE).display(),
                p.display()
            )
        }
        Err(e) => return Err(anyhow::Error::from(e).context("creating the host CA key")),
    }
    println!(
        "Hosts trust the CA key with `TrustedUserCAKeys` (see ca-keys.example); the host CA key signs host certificates (`[hosts] host_ca_key`, docs/hosts.md)."
    );
    Ok(ExitCode::SUCCESS)
}
