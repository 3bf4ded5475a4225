use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Args;
use ssh_key::PublicKey;

use std::sync::Arc;

use jit_ssh_audit::{Actor, AuditLog, IssuedVia};
use jit_ssh_audit_disk::DiskAuditLog;
use jit_ssh_ca::config::storage::StorageConfig;
use jit_ssh_ca::issue::{issue, IssueRequest};
use jit_ssh_ca::names::{AccountName, GrantId, HostName, Reason, UserName};
use jit_ssh_ca::profile::{CertProfile, CertSpec, Extension, SourceCidr};
use jit_ssh_ca::signer::{CaSigner, FileSigner};
use jit_ssh_ca::store::PgAuditLog;
use jit_ssh_ca::{atomic_file, ca_key};

use jit_ssh_ca::server::AUDIT_DIR;

#[derive(Args)]
pub struct SignArgs {
    /// The CA data directory (its audit log is shared with `serve`).
    #[arg(long)]
    data: PathBuf,
    /// The CA's configuration: with `[storage] kind = "postgres"` the
    /// certificate is recorded in the database's audit chain (the one the
    /// replicas share), not in chain files under `--data`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The CA private key.
    #[arg(long)]
    ca_key: PathBuf,
    /// Passphrase file for an encrypted CA key.
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// The jit-ssh user the certificate is for (recorded in the key id).
    #[arg(long)]
    user: String,
    /// The host the certificate is good for.
    #[arg(long)]
    host: String,
    /// The account on that host.
    #[arg(long = "as", value_name = "ACCOUNT")]
    account: String,
    /// How long the certificate is valid, e.g. 10m (at most 1h).
    #[arg(long, value_parser = jit_ssh_proto::parse_duration)]
    ttl: std::time::Duration,
    /// Why: recorded in the audit log.
    #[arg(long)]
    reason: String,
    /// Pin the certificate to these source addresses (CIDR, repeatable).
    #[arg(long = "source-address", value_name = "CIDR")]
    source_address: Vec<String>,
    /// Force this command on login.
    #[arg(long)]
    force_command: Option<String>,
    /// Extensions instead of the default permit-pty (repeatable).
    #[arg(long = "extension", value_name = "NAME")]
    extensions: Vec<String>,
    /// The user's public key (OpenSSH format); the certificate is written
    /// beside it as NAME-cert.pub.
    public_key: PathBuf,
}

/// The audit log the CA records in: the database's chain when `--config`
/// names PostgreSQL storage (every replica's), else the chain files under
/// `--data`, which a running `serve` holds locked.
fn open_audit(data: &Path, config: Option<&Path>) -> anyhow::Result<Arc<dyn AuditLog>> {
    if let Some(path) = config {
        let config = jit_ssh_ca::config::load(path)?;
        if let StorageConfig::Postgres(pg) = &config.storage {
            let log = PgAuditLog::open(pg).context("opening the PostgreSQL audit log")?;
            return Ok(Arc::new(log));
        }
    }
    let db = data.join(AUDIT_DIR);
    let log = DiskAuditLog::open(&db).with_context(|| {
        format!(
            "opening the audit log in {} (if `jit-ssh-ca serve` is running it holds the lock: issue through the server instead)",
            db.display()
        )
    })?;
    Ok(Arc::new(log))
}

fn cert_path(public_key: &Path) -> PathBuf {
    let s = public_key.to_string_lossy();
    let stem = s.strip_suffix(".pub").unwrap_or(&s);
    PathBuf::from(format!("{stem}-cert.pub"))
}

fn operator() -> String {
    let login = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    match std::env::var("SUDO_USER") {
        Ok(by) if by != login => format!("{login} (sudo by {by})"),
        _ => login,
    }
}

pub fn run(a: SignArgs) -> anyhow::Result<ExitCode> {
    // Validate everything before touching the key or the log.
    let spec = CertSpec {
        user: UserName::parse(&a.user)?,
        host: HostName::parse(&a.host)?,
        account: AccountName::parse(&a.account)?,
        grant: GrantId::random(&mut rand::rngs::OsRng),
        ttl: a.ttl,
        source_address: a
            .source_address
            .iter()
            .flat_map(|s| s.split(','))
            .map(SourceCidr::parse)
            .collect::<Result<_, _>>()?,
        force_command: a.force_command,
        extensions: a
            .extensions
            .iter()
            .map(|e| Extension::parse(e))
            .collect::<Result<_, _>>()?,
        // Offline issuance is audited as `offline_sign`; the key id keeps
        // the usual form.
        break_glass: false,
    };
    let reason = Reason::parse(&a.reason)?;
    let pub_text = std::fs::read_to_string(&a.public_key)
        .with_context(|| format!("reading public key {}", a.public_key.display()))?;
    let public_key = PublicKey::from_openssh(pub_text.trim())
        .with_context(|| format!("{} is not an OpenSSH public key", a.public_key.display()))?;
    if !a.data.is_dir() {
        bail!(
            "data directory {} does not exist (create it, or point --data at the CA's data directory)",
            a.data.display()
        );
    }
    jit_ssh_ca::data_format::check_and_stamp(&a.data)?;
    let signer = FileSigner::new(
        ca_key::load(&a.ca_key, a.passphrase_file.as_deref())
            .with_context(|| format!("loading CA key {}", a.ca_key.display()))?,
    );
    // After a rotation the server signs with the key DATA/rotation.json
    // names; a certificate from another key would be refused by hosts
    // once that key is retired, or outlive what `rotate retire` waits for.
    let rotation = jit_ssh_ca::rotation_state::RotationFile::load(&a.data)?;
    if let Some(active) = rotation.and_then(|r| r.user).map(|u| u.active) {
        let active_key = ca_key::load(&active, a.passphrase_file.as_deref())
            .with_context(|| format!("loading the active CA key {}", active.display()))?;
        if active_key.public_key().key_data() != signer.public_key().key_data() {
            bail!(
                "{} is not the CA's signing key: since a key rotation it is {} (pass that as --ca-key; `jit-ssh-ca rotate status` names it)",
                a.ca_key.display(),
                active.display()
            );
        }
    }
    let audit = open_audit(&a.data, a.config.as_deref())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock is before 1970")?
        .as_secs();
    let issued = issue(
        &signer,
        audit.as_ref(),
        &CertProfile::default(),
        IssueRequest {
            spec: &spec,
            public_key: &public_key,
            reason: &reason,
            actor: Actor::Operator { login: operator() },
            via: IssuedVia::OfflineSign,
            session: None,
            preceding: vec![],
        },
        now,
    )?;
    let out = cert_path(&a.public_key);
    let line = issued
        .certificate
        .to_openssh()
        .context("encoding the certificate")?;
    atomic_file::write(&out, format!("{line}\n").as_bytes(), 0o644).with_context(|| {
        format!(
            "writing {} (the issuance is already in the audit log)",
            out.display()
        )
    })?;
    let f = &issued.fields;
    println!("certificate: {}", out.display());
    println!("serial:      {}", f.serial);
    println!("key id:      {}", f.key_id);
    println!(
        "principals:  {}",
        f.principals
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    println!(
        "valid:       {} to {} (Unix seconds)",
        f.valid_after, f.valid_before
    );
    println!("audit seq:   {}", issued.audit_seq);
    Ok(ExitCode::SUCCESS)
}
