//! Command-line surface of `jit-ssh-ca`. Each subcommand parses its
//! arguments, calls the library, and reports; nothing more.

mod backup;
mod check_config;
mod enable_user;
mod hosts;
mod hsm;
mod init;
mod invite;
mod krl;
mod migrate;
mod migrate_from;
mod oncall;
mod ready;
mod rotate;
mod running_ca;
mod serve;
mod sign;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The jit-ssh certificate authority: short-lived, host-scoped OpenSSH
/// user certificates, an audit log of every one, and KRLs sshd can read.
#[derive(Parser)]
#[command(name = "jit-ssh-ca", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the CA server (or `serve --dev` for a local try-out).
    Serve(serve::ServeArgs),
    /// Make a one-time enrollment link, through the running server.
    Invite(invite::InviteArgs),
    /// Re-enable a user blocked by a user revocation, through the running server.
    EnableUser(enable_user::EnableUserArgs),
    /// Make an enrollment token for hosts of a host group (for
    /// provisioning: cloud-init, Ansible), through the running server.
    HostToken(hosts::HostTokenArgs),
    /// The enrolled hosts, through the running server.
    Hosts(hosts::HostsArgs),
    /// One enrolled host (`host remove NAME`), through the running server.
    #[command(subcommand)]
    Host(hosts::HostCommand),
    /// Rotate the CA key (or, with --host, the host CA key) in three
    /// audited steps: stage, activate, retire. Through the running server.
    #[command(subcommand)]
    Rotate(rotate::RotateCommand),
    /// Back up the running CA's state, audit log and key rotation state
    /// into a new directory, without stopping it.
    Backup(backup::BackupArgs),
    /// Restore a backup into a new data directory (offline).
    Restore(backup::RestoreArgs),
    /// Who is on call in a schedule, now or --at a time.
    Oncall(oncall::OnCallArgs),
    /// Check a configuration file and report every problem.
    CheckConfig(check_config::CheckConfigArgs),
    /// Whether the running CA can issue (what `/readyz` says); with
    /// `--wait`, waits for it (systemd's ExecStartPost).
    Ready(ready::ReadyArgs),
    /// Create the CA key and the host CA key (ed25519, mode 0600) and
    /// their public keys.
    Init(init::InitArgs),
    /// Offline emergency issuance on the CA host, audited like every other
    /// issuance. The break-glass path of last resort, for when the server is down.
    Sign(sign::SignArgs),
    /// Create or update the PostgreSQL schema (`[storage] kind = "postgres"`).
    Migrate(migrate::MigrateArgs),
    /// Build, show and check OpenSSH Key Revocation Lists.
    #[command(subcommand)]
    Krl(krl::KrlCommand),
    /// CA key pairs on a PKCS#11 token (an HSM): make one, list them.
    #[command(subcommand)]
    Hsm(hsm::HsmCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Invite(a) => invite::run(a),
        Command::CheckConfig(a) => check_config::run(a),
        Command::Ready(a) => ready::run(a),
        Command::Oncall(a) => oncall::run(a),
        Command::EnableUser(a) => enable_user::run(a),
        Command::Init(a) => init::run(a),
        Command::HostToken(a) => hosts::token(a),
        Command::Hosts(a) => hosts::list(a),
        Command::Host(c) => hosts::host(c),
        Command::Sign(a) => sign::run(a),
        Command::Krl(c) => krl::run(c),
        Command::Hsm(c) => hsm::run(c),
        Command::Migrate(a) => migrate::run(a),
        Command::Rotate(c) => rotate::run(c),
        Command::Backup(a) => backup::backup(a),
        Command::Restore(a) => backup::restore(a),
    }
}
