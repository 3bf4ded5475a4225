//! `jit-ssh`: the engineer's client for the jit-ssh certificate authority.
//!
//! Exit codes: 0 ok, 1 the CA refused or failed, 2 usage or settings,
//! 3 no ssh-agent, 4 CA unreachable, 5 not enrolled, 6 denied, 7 timed
//! out or expired, 8 an audit export failed verification, 130 cancelled
//! (Ctrl-C).

mod agent;
mod approve;
mod audit;
mod browser;
mod ca_client;
mod commands;
mod confirm;
mod error;
mod host;
mod loaded;
mod login;
mod progress;
mod revoke;
mod session;
mod settings;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::ClientError;
use crate::settings::Overrides;

/// Just-in-time SSH certificates for on-call engineers.
#[derive(Parser)]
#[command(name = "jit-ssh", version, about)]
struct Cli {
    /// Machine-readable output (JSON) on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Settings that flags can override (see `~/.config/jit-ssh/config.toml`).
#[derive(Args, Clone, Default)]
struct Common {
    /// The CA URL (JIT_SSH_CA_URL, ca_url).
    #[arg(long)]
    ca_url: Option<String>,
    /// Your jit-ssh user name (JIT_SSH_USER, user; default: login name).
    #[arg(long)]
    user: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Get a short-lived certificate for HOST into your ssh-agent.
    Login {
        host: String,
        /// Account on the host (JIT_SSH_ACCOUNT, account; default: your user name).
        #[arg(long = "as", value_name = "ACCOUNT")]
        account: Option<String>,
        /// Certificate lifetime, e.g. 10m (JIT_SSH_TTL, ttl; default 10m).
        #[arg(long)]
        ttl: Option<String>,
        /// Why you need access (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
        /// Break-glass: where policy allows it, issued at once after your
        /// touch, with a shorter cap, marked and always notified. Needs --reason.
        #[arg(long)]
        break_glass: bool,
        /// Only print the link (for jump hosts: touch the key on your laptop).
        #[arg(long)]
        no_browser: bool,
        /// Give up (and withdraw the request) after this long.
        #[arg(long, default_value = "10m")]
        timeout: String,
        /// Do nothing if a certificate with over a minute left is loaded.
        #[arg(long)]
        if_needed: bool,
        /// Print only the link and errors.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        common: Common,
    },
    /// List jit-ssh certificates in the agent and their time left.
    Status,
    /// Remove jit-ssh certificates from the agent (all, or for HOST), and
    /// forget saved sign-ins.
    Logout { host: Option<String> },
    /// Pending requests you may approve or deny (signs you in).
    Requests {
        #[command(flatten)]
        sign_in: SignInArgs,
    },
    /// Approve someone's request, confirmed with your security key.
    Approve {
        /// The request id (from `jit-ssh requests` or the notification).
        id: String,
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        sign_in: SignInArgs,
    },
    /// Deny someone's request, confirmed with your security key.
    Deny {
        id: String,
        /// Why (the requester sees it).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        sign_in: SignInArgs,
    },
    /// Read the CA's audit log (signs you in with your security key):
    /// engineers see their own records, auditors everyone's.
    Audit(AuditArgs),
    /// Log in if needed, then run ssh ACCOUNT@HOST [ARGS].
    Ssh {
        host: String,
        #[arg(long = "as", value_name = "ACCOUNT")]
        account: Option<String>,
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long, default_value = "on-call access")]
        reason: String,
        #[command(flatten)]
        common: Common,
        /// Arguments for ssh (after --).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Revoke certificates (security role; confirmed with your security key).
    /// Hosts enforce it at their next `jit-ssh host sync`.
    Revoke {
        #[arg(long, group = "what")]
        serial: Option<u64>,
        #[arg(long, group = "what")]
        grant: Option<String>,
        /// Every unexpired certificate of this user, and no new ones until
        /// an admin runs `jit-ssh-ca enable-user`.
        /// (You, the revoker, come from JIT_SSH_USER or the settings file.)
        #[arg(long = "user", value_name = "NAME", group = "what")]
        target_user: Option<String>,
        #[arg(long, group = "what")]
        key_id: Option<String>,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        #[arg(long)]
        no_browser: bool,
        #[arg(long, default_value = "5m")]
        timeout: String,
        /// The CA URL (JIT_SSH_CA_URL, ca_url).
        #[arg(long)]
        ca_url: Option<String>,
    },
    /// On an SSH host: keep CA keys and KRL current, write principals files.
    #[command(subcommand)]
    Host(HostCommand),
    /// Print an ssh_config snippet so plain `ssh HOST` logs in first.
    SshConfig {
        /// Host patterns jit-ssh covers, e.g. "*.prod".
        #[arg(long = "host", value_name = "PATTERN", required = true)]
        hosts: Vec<String>,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct AuditArgs {
    #[command(subcommand)]
    action: Option<AuditAction>,
    #[command(flatten)]
    filters: AuditFilters,
}

#[derive(Args, Clone)]
struct AuditFilters {
    /// Records about this user.
    #[arg(long)]
    user: Option<String>,
    /// Records about this host.
    #[arg(long)]
    host: Option<String>,
    /// Records about this account (login name on the host).
    #[arg(long)]
    account: Option<String>,
    /// The issuance and revocation of this certificate serial (sshd logs
    /// it on every login).
    #[arg(long)]
    serial: Option<u64>,
    /// Everything about this grant (request id).
    #[arg(long)]
    grant: Option<String>,
    /// Event kinds, comma-separated (certificate_issued, revoked, …).
    #[arg(long)]
    kind: Option<String>,
    /// From this long ago (1h, 2d) or this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Before this long ago or this RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Print at most this many records.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    #[command(flatten)]
    sign_in: SignInArgs,
}

#[derive(Args, Clone)]
struct SignInArgs {
    /// Only print the sign-in link.
    #[arg(long)]
    no_browser: bool,
    /// Give up signing in after this long.
    #[arg(long, default_value = "5m")]
    timeout: String,
    /// The CA (JIT_SSH_CA_URL, ca_url).
    #[arg(long)]
    ca_url: Option<String>,
}

#[derive(Subcommand)]
enum AuditAction {
    /// Write the chain as JSON lines (auditors): from --since to a
    /// checkpoint the CA signs for this export.
    Export {
        #[arg(long)]
        since: Option<String>,
        /// The file to write.
        #[arg(short = 'o', long = "output")]
        output: std::path::PathBuf,
        #[command(flatten)]
        sign_in: SignInArgs,
    },
    /// Check an export offline: every hash link and every checkpoint
    /// signature; names the first record that fails.
    Verify {
        file: std::path::PathBuf,
        /// The CA public key(s): a .pub file or a TrustedUserCAKeys file.
        #[arg(long)]
        ca_key: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum HostCommand {
    /// Fetch, verify and atomically install the signed CA key set and the
    /// KRL its signed manifest names (run every 30 s by
    /// systemd/jit-ssh-host-sync.timer). Exit 9: the KRL held is stale.
    Sync {
        /// The CA URL (or JIT_SSH_CA_URL).
        #[arg(long = "ca", env = "JIT_SSH_CA_URL")]
        ca: String,
        /// Where sshd reads ca-keys and revoked.krl.
        #[arg(long, default_value = "/etc/ssh/jit-ssh")]
        dir: std::path::PathBuf,
        /// First sync only: the SHA256 fingerprint of the CA key to trust.
        #[arg(long)]
        bootstrap_fingerprint: Option<String>,
        /// Exit 9 (and mark sync-state.json stale) when the newest KRL
        /// manifest held was signed longer ago than this, fetched or not.
        #[arg(long, default_value = "10m")]
        max_age: String,
        /// Extra PEM root certificate for the CA's TLS.
        #[arg(long)]
        ca_cert: Option<std::path::PathBuf>,
    },
    /// Write principals files for ACCOUNTs on this HOST and print the
    /// sshd_config lines.
    Setup {
        #[arg(long, default_value = "/etc/ssh/jit-ssh")]
        dir: std::path::PathBuf,
        /// This host's name as jit-ssh users ask for it.
        #[arg(long)]
        host: String,
        /// Accounts jit-ssh may log in as (repeatable).
        #[arg(long = "account", required = true)]
        accounts: Vec<String>,
    },
}

fn overrides(common: &Common, account: Option<String>, ttl: Option<String>) -> Overrides {
    Overrides {
        ca_url: common.ca_url.clone(),
        user: common.user.clone(),
        account,
        ttl,
    }
}

fn run(cli: Cli) -> Result<(), ClientError> {
    let json = cli.json;
    match cli.command {
        Command::Login {
            host,
            account,
            ttl,
            reason,
            break_glass,
            no_browser,
            timeout,
            if_needed,
            quiet,
            common,
        } => {
            let timeout = jit_ssh_proto::parse_duration(&timeout)
                .map_err(|e| ClientError::Usage(format!("--timeout: {e}")))?;
            let reason = match (reason, break_glass) {
                (Some(r), _) => r,
                (None, false) => "on-call access".to_owned(),
                (None, true) => {
                    return Err(ClientError::Usage(
                        "--break-glass needs --reason TEXT: say what the emergency is".into(),
                    ))
                }
            };
            commands::login(
                &overrides(&common, account, ttl),
                login::LoginOptions {
                    host,
                    reason,
                    break_glass,
                    open_browser: !no_browser,
                    timeout,
                    quiet,
                },
                if_needed,
                json,
            )
        }
        Command::Audit(args) => audit_command(args, json),
        Command::Requests { sign_in: s } => {
            let (flags, how) = sign_in(&s)?;
            commands::requests(&flags, &how, json)
        }
        Command::Approve {
            id,
            comment,
            sign_in: s,
        } => {
            let (flags, how) = sign_in(&s)?;
            commands::decide(
                &flags,
                &how,
                &id,
                jit_ssh_proto::api::Verdict::Approve,
                &comment,
                json,
            )
        }
        Command::Deny {
            id,
            reason,
            sign_in: s,
        } => {
            let (flags, how) = sign_in(&s)?;
            commands::decide(
                &flags,
                &how,
                &id,
                jit_ssh_proto::api::Verdict::Deny,
                &reason,
                json,
            )
        }
        Command::Status => commands::status(json),
        Command::Logout { host } => commands::logout(host.as_deref(), json),
        Command::Ssh {
            host,
            account,
            ttl,
            reason,
            common,
            args,
        } => commands::ssh(&overrides(&common, account, ttl), &host, &reason, &args),
        Command::SshConfig { hosts } => commands::ssh_config(&hosts, json),
        Command::Revoke {
            serial,
            grant,
            target_user,
            key_id,
            reason,
            no_browser,
            timeout,
            ca_url,
        } => {
            use jit_ssh_proto::api::RevokeTarget;
            let target = match (serial, grant, target_user, key_id) {
                (Some(s), ..) => RevokeTarget::Serial(s),
                (_, Some(g), ..) => RevokeTarget::Grant(g),
                (_, _, Some(u), _) => RevokeTarget::User(u),
                (.., Some(k)) => RevokeTarget::KeyId(k),
                _ => {
                    return Err(ClientError::Usage(
                        "say what to revoke: --serial, --grant, --user or --key-id".into(),
                    ))
                }
            };
            let timeout = jit_ssh_proto::parse_duration(&timeout)
                .map_err(|e| ClientError::Usage(format!("--timeout: {e}")))?;
            let flags = Overrides {
                ca_url,
                ..Overrides::default()
            };
            commands::revoke(&flags, target, &reason, !no_browser, timeout, json)
        }
        Command::Host(HostCommand::Sync {
            ca,
            dir,
            bootstrap_fingerprint,
            max_age,
            ca_cert,
        }) => {
            let ca_url = reqwest::Url::parse(&ca)
                .map_err(|e| ClientError::Usage(format!("--ca {ca:?}: {e}")))?;
            let max_age = jit_ssh_proto::parse_duration(&max_age)
                .map_err(|e| ClientError::Usage(format!("--max-age: {e}")))?;
            commands::host_sync(
                &host::SyncOptions {
                    ca_url,
                    dir,
                    bootstrap_fingerprint,
                    max_age,
                    ca_cert,
                },
                json,
            )
        }
        Command::Host(HostCommand::Setup {
            dir,
            host,
            accounts,
        }) => {
            print!("{}", host::setup(&dir, &host, &accounts)?);
            Ok(())
        }
    }
}

fn sign_in(args: &SignInArgs) -> Result<(Overrides, session::SignIn), ClientError> {
    let timeout = jit_ssh_proto::parse_duration(&args.timeout)
        .map_err(|e| ClientError::Usage(format!("--timeout: {e}")))?;
    Ok((
        Overrides {
            ca_url: args.ca_url.clone(),
            ..Overrides::default()
        },
        session::SignIn {
            open_browser: !args.no_browser,
            timeout,
        },
    ))
}

fn audit_command(args: AuditArgs, json: bool) -> Result<(), ClientError> {
    match args.action {
        None => {
            let f = args.filters;
            let (flags, how) = sign_in(&f.sign_in)?;
            let params = jit_ssh_proto::api::AuditParams {
                user: f.user,
                host: f.host,
                account: f.account,
                serial: f.serial,
                grant: f.grant,
                kind: f.kind,
                since: f
                    .since
                    .map(|s| audit::time_arg("--since", &s))
                    .transpose()?,
                until: f
                    .until
                    .map(|s| audit::time_arg("--until", &s))
                    .transpose()?,
                ..Default::default()
            };
            commands::audit_list(&flags, &how, params, f.limit, json)
        }
        Some(AuditAction::Export {
            since,
            output,
            sign_in: s,
        }) => {
            let (flags, how) = sign_in(&s)?;
            let since = since.map(|s| audit::time_arg("--since", &s)).transpose()?;
            commands::audit_export(&flags, &how, since, &output, json)
        }
        Some(AuditAction::Verify { file, ca_key }) => commands::audit_verify(&file, &ca_key, json),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jit-ssh: error: {e}");
            if let Some(next) = e.next_step() {
                eprintln!("jit-ssh: next: {next}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
