use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use base64ct::{Base64Unpadded, Encoding};
use clap::{Args, Subcommand};
use ssh_key::{Certificate, HashAlg, PublicKey};

use jit_ssh_ca::atomic_file;
use jit_ssh_krl::{spec, CaScope, Krl};

#[derive(Subcommand)]
pub enum KrlCommand {
    /// Write a KRL from `ssh-keygen -k` spec files (a drop-in for it that
    /// never writes a KRL OpenSSH cannot read).
    Build(BuildArgs),
    /// Print a KRL as a spec that `krl build` reads back.
    Show {
        /// The KRL file.
        file: PathBuf,
    },
    /// Check keys or certificates against a KRL, as `ssh-keygen -Q` does:
    /// exit status 1 if any is revoked.
    Check {
        /// The KRL file.
        krl: PathBuf,
        /// Public key or certificate files.
        #[arg(required = true)]
        keys: Vec<PathBuf>,
    },
}

#[derive(Args)]
pub struct BuildArgs {
    /// CA public key for `serial:` and `id:` lines, or `none` for
    /// certificates of any CA.
    #[arg(long)]
    ca: Option<String>,
    /// Spec files (`-` for standard input).
    specs: Vec<PathBuf>,
    /// Where to write the KRL (replaced atomically).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// KRL version number to record.
    #[arg(long, default_value_t = 0)]
    krl_version: u64,
    /// Comment to record.
    #[arg(long, default_value = "")]
    comment: String,
}

pub fn run(cmd: KrlCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KrlCommand::Build(a) => build(a),
        KrlCommand::Show { file } => show(&file),
        KrlCommand::Check { krl, keys } => check(&krl, &keys),
    }
}

fn read_krl(path: &PathBuf) -> anyhow::Result<Krl> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Krl::decode(&bytes)
        .with_context(|| format!("{} is not a KRL OpenSSH would accept", path.display()))
}

fn build(a: BuildArgs) -> anyhow::Result<ExitCode> {
    let scope = match a.ca.as_deref() {
        None => None,
        Some(n) if n.eq_ignore_ascii_case("none") => Some(CaScope::AnyCa),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading CA public key {path}"))?;
            let key = PublicKey::from_openssh(text.trim())
                .with_context(|| format!("{path} is not an OpenSSH public key"))?;
            Some(CaScope::of(&key))
        }
    };
    let mut krl = Krl::new();
    krl.version = a.krl_version;
    krl.comment = a.comment;
    krl.generated_date = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for path in &a.specs {
        let (name, text) = if path.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading spec from standard input")?;
            ("(standard input)".to_owned(), s)
        } else {
            let s = std::fs::read_to_string(path)
                .with_context(|| format!("reading spec {}", path.display()))?;
            (path.display().to_string(), s)
        };
        spec::apply(&mut krl, scope.as_ref(), &text, &name)?;
    }
    let bytes = krl.encode()?;
    atomic_file::write(&a.output, &bytes, 0o644)
        .with_context(|| format!("writing {}", a.output.display()))?;
    eprintln!("wrote {} ({} bytes)", a.output.display(), bytes.len());
    Ok(ExitCode::SUCCESS)
}

fn show(path: &PathBuf) -> anyhow::Result<ExitCode> {
    let krl = read_krl(path)?;
    let out = std::io::stdout();
    let mut w = std::io::BufWriter::new(out.lock());
    writeln!(w, "# KRL version {}", krl.version)?;
    writeln!(w, "# Generated at {} (Unix seconds)", krl.generated_date)?;
    if !krl.comment.is_empty() {
        writeln!(w, "# Comment: {}", krl.comment.escape_debug())?;
    }
    for blob in krl.explicit_keys() {
        match PublicKey::from_bytes(blob) {
            Ok(k) => writeln!(w, "key: {}", k.to_openssh()?)?,
            Err(_) => writeln!(w, "# unparsable explicit key ({} bytes)", blob.len())?,
        }
    }
    for d in krl.sha256s() {
        writeln!(w, "hash: SHA256:{}", Base64Unpadded::encode_string(d))?;
    }
    for d in krl.sha1s() {
        // The spec has no keyword for a raw SHA1 hash (ssh-keygen prints a comment too).
        writeln!(w, "# hash SHA1:{}", hex::encode(d))?;
    }
    for (scope, rc) in krl.cert_sections() {
        writeln!(w)?;
        match scope {
            CaScope::AnyCa => writeln!(w, "# Wildcard CA")?,
            CaScope::Ca(blob) => match PublicKey::from_bytes(blob) {
                Ok(k) => writeln!(
                    w,
                    "# CA key {} {}",
                    k.algorithm(),
                    k.fingerprint(HashAlg::Sha256)
                )?,
                Err(_) => writeln!(w, "# CA key (unparsable)")?,
            },
        }
        for (lo, hi) in rc.serials.ranges() {
            if lo == hi {
                writeln!(w, "serial: {lo}")?;
            } else {
                writeln!(w, "serial: {lo}-{hi}")?;
            }
        }
        for id in &rc.key_ids {
            writeln!(w, "id: {id}")?;
        }
    }
    w.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn check(krl_path: &PathBuf, keys: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let krl = read_krl(krl_path)?;
    let mut any_revoked = false;
    for path in keys {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let revoked = if let Ok(cert) = Certificate::from_openssh(text.trim()) {
            krl.is_cert_revoked(&cert)
        } else if let Ok(key) = PublicKey::from_openssh(text.trim()) {
            krl.is_key_revoked(&key)
        } else {
            bail!(
                "{} is neither an OpenSSH public key nor a certificate",
                path.display()
            );
        };
        any_revoked |= revoked;
        println!(
            "{}: {}",
            path.display(),
            if revoked { "REVOKED" } else { "ok" }
        );
    }
    Ok(if any_revoked {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
