//! `jit-ssh-ca hsm keygen|list`: CA key pairs on a PKCS#11 token. The
//! private key is made on the token and never leaves it; what these
//! commands print is the public key and the config lines to use it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use jit_ssh_ca::signer::pkcs11::{self, TokenKeyConfig};

#[derive(Subcommand)]
pub enum HsmCommand {
    /// Make an Ed25519 key pair on the token (sensitive, not extractable)
    /// and print its public key.
    Keygen(KeygenArgs),
    /// List the key pairs on the token.
    List(TokenArgs),
}

#[derive(Args)]
pub struct TokenArgs {
    /// The token vendor's PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long)]
    module: PathBuf,
    /// The token's label.
    #[arg(long)]
    token_label: String,
    /// File holding the user PIN (mode 0600).
    #[arg(long)]
    pin_file: PathBuf,
}

#[derive(Args)]
pub struct KeygenArgs {
    #[command(flatten)]
    token: TokenArgs,
    /// Label of the new key pair.
    #[arg(long)]
    key_label: String,
    /// Also write the public key here (never overwritten), e.g. ca_key.pub.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn config(t: TokenArgs, key_label: String) -> TokenKeyConfig {
    TokenKeyConfig {
        module: t.module,
        token_label: t.token_label,
        key_label,
        pin_file: t.pin_file,
    }
}

pub fn run(c: HsmCommand) -> anyhow::Result<ExitCode> {
    match c {
        HsmCommand::Keygen(a) => keygen(a),
        HsmCommand::List(t) => list(t),
    }
}

fn keygen(a: KeygenArgs) -> anyhow::Result<ExitCode> {
    let cfg = config(a.token, a.key_label);
    let public =
        pkcs11::generate(&cfg).with_context(|| format!("making {}", pkcs11::describe(&cfg)))?;
    let line = public.to_openssh()?;
    if let Some(out) = &a.out {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
            .with_context(|| format!("creating {}", out.display()))?;
        writeln!(f, "{line}").with_context(|| format!("writing {}", out.display()))?;
    }
    println!("{line}");
    eprintln!(
        "made {} ({}); use it with\n  ca_key = {{ kind = \"pkcs11\", module = \"{}\", token_label = \"{}\", key_label = \"{}\", pin_file = \"{}\" }}",
        pkcs11::describe(&cfg),
        public.fingerprint(ssh_key::HashAlg::Sha256),
        cfg.module.display(),
        cfg.token_label,
        cfg.key_label,
        cfg.pin_file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn list(t: TokenArgs) -> anyhow::Result<ExitCode> {
    let cfg = config(t, String::new());
    let keys = pkcs11::list(&cfg).with_context(|| {
        format!(
            "listing keys on token {:?} ({})",
            cfg.token_label,
            cfg.module.display()
        )
    })?;
    for k in keys {
        let public = match &k.public {
            Some(p) => p.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
            None => "not Ed25519: unusable as a jit-ssh CA key".to_owned(),
        };
        let stays = if k.stays_on_token {
            "stays on the token"
        } else {
            "EXTRACTABLE: refused as a CA key"
        };
        println!("{}\t{public}\t{stays}", k.label);
    }
    Ok(ExitCode::SUCCESS)
}
