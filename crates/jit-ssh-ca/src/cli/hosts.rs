//! `jit-ssh-ca host-token` and `jit-ssh-ca hosts`: host enrollment tokens
//! and the inventory, through the running server's admin socket.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use jit_ssh_ca::server::admin::{AdminRequest, AdminResponse};

use super::running_ca::{ask, RunningCa};

#[derive(Args)]
pub struct HostTokenArgs {
    /// The host group enrolled hosts join (a [host_groups] name).
    #[arg(long)]
    group: String,
    /// Only names matching this glob, within the group's patterns.
    #[arg(long)]
    name_pattern: Option<String>,
    /// How long the token works (default: [hosts] token_ttl, 1h).
    #[arg(long)]
    ttl: Option<String>,
    /// How many hosts may enroll with it.
    #[arg(long, default_value_t = 1)]
    uses: u32,
    #[command(flatten)]
    ca: RunningCa,
}

/// Prints the token alone on stdout (for provisioning scripts); the
/// details go to stderr. The token is a secret: it never reaches a log.
pub fn token(a: HostTokenArgs) -> anyhow::Result<ExitCode> {
    let ttl_secs = a
        .ttl
        .as_deref()
        .map(jit_ssh_proto::parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--ttl: {e}"))?
        .map(|d| d.as_secs());
    let data = a.ca.data_dir()?;
    match ask(
        &data,
        &AdminRequest::HostToken {
            group: a.group,
            name_pattern: a.name_pattern,
            ttl_secs,
            uses: a.uses,
        },
    )? {
        AdminResponse::HostToken {
            token,
            expires_at,
            uses,
        } => {
            println!("{token}");
            eprintln!(
                "(enrollment token for {uses} host(s), valid until {expires_at}: `jit-ssh-host enroll --token …`)"
            );
            Ok(ExitCode::SUCCESS)
        }
        AdminResponse::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer from the CA: {other:?}"),
    }
}

/// `jit-ssh-ca host …`: one host of the inventory.
#[derive(clap::Subcommand)]
pub enum HostCommand {
    /// Forget a host and revoke its host key: engineers' ssh refuses it
    /// after their next `jit-ssh ssh-config` (`@revoked`), and the key
    /// cannot enroll again.
    Remove {
        /// The host's name.
        name: String,
        #[command(flatten)]
        ca: RunningCa,
    },
}

pub fn host(c: HostCommand) -> anyhow::Result<ExitCode> {
    let HostCommand::Remove { name, ca } = c;
    let data = ca.data_dir()?;
    match ask(&data, &AdminRequest::HostRemove { name })? {
        AdminResponse::HostRemoved {
            name,
            host_key_fingerprint,
        } => {
            println!("removed {name}; host key {host_key_fingerprint} revoked");
            Ok(ExitCode::SUCCESS)
        }
        AdminResponse::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer from the CA: {other:?}"),
    }
}

#[derive(Args)]
pub struct HostsArgs {
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    ca: RunningCa,
}

pub fn list(a: HostsArgs) -> anyhow::Result<ExitCode> {
    let data = a.ca.data_dir()?;
    match ask(&data, &AdminRequest::Hosts)? {
        AdminResponse::Hosts { hosts } => {
            if a.json {
                for h in &hosts.hosts {
                    println!("{}", serde_json::to_string(h)?);
                }
            } else {
                print!("{}", table(&hosts));
            }
            Ok(ExitCode::SUCCESS)
        }
        AdminResponse::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer from the CA: {other:?}"),
    }
}

/// The inventory as operators read it: one line per host, flags last.
fn table(list: &jit_ssh_proto::hosts::HostList) -> String {
    use jit_ssh_proto::text::escape_for_terminal as shown;
    let mut out = format!(
        "{:<30}  {:<12}  {:<20}  {:<9}  {:<20}  {:<20}  FLAGS\n",
        "NAME", "GROUP", "CERT UNTIL", "KRL", "KRL SIGNED", "LAST CONTACT"
    );
    for h in &list.hosts {
        let mut flags = Vec::new();
        if h.behind_on_krl {
            flags.push("behind-on-krl".to_owned());
        }
        if h.silent {
            flags.push("silent".to_owned());
        }
        if let Some(e) = &h.last_error {
            flags.push(format!("error: {}", shown(e)));
        }
        let krl = h
            .krl_version
            .map_or("-".to_owned(), |v| format!("{v}/{}", list.krl_version));
        out.push_str(&format!(
            "{:<30}  {:<12}  {:<20}  {:<9}  {:<20}  {:<20}  {}\n",
            shown(&h.name),
            shown(&h.group),
            h.cert_valid_before,
            krl,
            h.krl_signed_at.as_deref().unwrap_or("-"),
            h.last_contact,
            flags.join(", ")
        ));
    }
    out
}
