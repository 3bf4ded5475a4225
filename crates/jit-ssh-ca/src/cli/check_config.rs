use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use jit_ssh_ca::config::{self, SignerConfig};

#[derive(Args)]
pub struct CheckConfigArgs {
    /// The configuration file.
    file: PathBuf,
}

/// Reports every problem in the file, then the files it points to.
pub fn run(a: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let c = match config::load(&a.file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut problems = Vec::new();
    let SignerConfig::File {
        path,
        passphrase_file,
    } = &c.signer;
    if let Err(e) = jit_ssh_ca::ca_key::load(path, passphrase_file.as_deref()) {
        let hint = if path.exists() {
            String::new()
        } else {
            let dir = path.parent().unwrap_or(std::path::Path::new("."));
            format!(" (make one with `jit-ssh-ca init --dir {}`)", dir.display())
        };
        problems.push(format!("ca_key: {:#}{hint}", anyhow::Error::from(e)));
    }
    for p in &c.publish_ca_keys {
        if let Err(e) = ssh_key::PublicKey::read_openssh_file(p) {
            problems.push(format!("publish_ca_keys: {}: {e}", p.display()));
        }
    }
    if let Some(tls) = &c.tls {
        for (what, p) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
            if let Err(e) = std::fs::metadata(p) {
                problems.push(format!("{what}: {}: {e}", p.display()));
            }
        }
    }
    if let Some(p) = &c.metrics.token_file {
        match std::fs::read_to_string(p) {
            Ok(t) if t.trim().is_empty() => {
                problems.push(format!("metrics.token_file: {} is empty", p.display()))
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("metrics.token_file: {}: {e}", p.display())),
        }
    }
    let schedules = jit_ssh_ca::oncall::Schedules::new(c.schedules.clone());
    for (name, e) in schedules.load_files() {
        problems.push(format!("schedules.{name}: {e}"));
    }
    if problems.is_empty() {
        println!(
            "{}: OK ({} users, {} host groups, {} rules; listening on {}, public URL {})",
            a.file.display(),
            c.policy.users.len(),
            c.policy.host_groups.len(),
            c.policy.rules.len(),
            c.listen,
            c.public_url
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{}: {} problem(s):", a.file.display(), problems.len());
        for p in problems {
            eprintln!("  {p}");
        }
        Ok(ExitCode::from(1))
    }
}
