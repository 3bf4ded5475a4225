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
mod cli;
mod commands;
mod confirm;
mod error;
mod known_hosts;
mod loaded;
mod login;
mod play_filter;
mod progress;
mod reach;
mod recordings;
mod recordings_pages;
mod revoke;
mod session;
mod sessions_export;
mod sessions_verify;
mod settings;
mod sign_out;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{AccessArgs, AuditAction, AuditArgs, Cli, Command, Common, SignInArgs};

use crate::error::ClientError;
use crate::settings::Overrides;

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
            access,
            if_needed,
            quiet,
        } => {
            let (flags, opts) = access_options(host, access, quiet)?;
            commands::login(&flags, opts, if_needed, json)
        }
        Command::Audit(args) => audit_command(*args, json),
        Command::Hosts {
            pattern,
            sign_in: s,
        } => {
            let (flags, how) = sign_in(&s)?;
            reach::command(&flags, &how, pattern, json)
        }
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
        Command::Ssh { host, access, args } => {
            let (flags, opts) = access_options(host, access, false)?;
            commands::ssh(&flags, opts, &args)
        }
        Command::SshConfig {
            hosts,
            ca_fingerprint,
            common,
        } => commands::ssh_config(
            &overrides(&common, None, None),
            &hosts,
            ca_fingerprint.as_deref(),
            json,
        ),
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
        Command::Host(command) => jit_ssh_host::cli::run(command, json).map_err(ClientError::from),
    }
}

/// Settings and login options from `login`'s and `ssh`'s shared flags.
fn access_options(
    host: String,
    a: AccessArgs,
    quiet: bool,
) -> Result<(Overrides, login::LoginOptions), ClientError> {
    let timeout = jit_ssh_proto::parse_duration(&a.timeout)
        .map_err(|e| ClientError::Usage(format!("--timeout: {e}")))?;
    let reason = match (a.reason, a.break_glass) {
        (Some(r), _) => r,
        (None, false) => "on-call access".to_owned(),
        (None, true) => {
            return Err(ClientError::Usage(
                "--break-glass needs --reason TEXT: say what the emergency is".into(),
            ))
        }
    };
    Ok((
        overrides(&a.common, a.account, a.ttl),
        login::LoginOptions {
            host,
            reason,
            break_glass: a.break_glass,
            open_browser: !a.no_browser,
            timeout,
            quiet,
        },
    ))
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
            let zone = if f.local {
                audit::Zone::Local
            } else {
                audit::Zone::Utc
            };
            commands::audit_list(&flags, &how, params, f.limit, json, zone)
        }
        Some(AuditAction::Export {
            since,
            output,
            sessions,
            sign_in: s,
        }) => {
            let (flags, how) = sign_in(&s)?;
            let since = since.map(|s| audit::time_arg("--since", &s)).transpose()?;
            if sessions {
                commands::audit_export_sessions(&flags, &how, since, &output, json)
            } else {
                commands::audit_export(&flags, &how, since, &output, json)
            }
        }
        Some(AuditAction::Verify { file, ca_key }) => commands::audit_verify(&file, &ca_key, json),
        Some(AuditAction::Sessions {
            user,
            host,
            grant,
            since,
            sign_in: s,
        }) => {
            let (flags, how) = sign_in(&s)?;
            let since = since.map(|s| audit::time_arg("--since", &s)).transpose()?;
            recordings::sessions_command(
                &flags,
                &how,
                jit_ssh_proto::recordings::RecordingParams {
                    user,
                    host,
                    grant,
                    since,
                    ..Default::default()
                },
                json,
            )
        }
        Some(AuditAction::Play {
            session,
            speed,
            idle_limit,
            cat,
            to,
            sign_in: s,
        }) => {
            let (flags, how) = sign_in(&s)?;
            let to = if cat { Some("-".into()) } else { to };
            recordings::play_command(&flags, &how, &session, speed, idle_limit, to.as_deref())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    // `jit-ssh ssh` becomes ssh, whose status is the remote command's: its
    // own failures before that are moved out of that range.
    let offset = if matches!(cli.command, Command::Ssh { .. }) {
        200
    } else {
        0
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                // One JSON document on stdout, as for success.
                println!("{}", e.to_json());
            } else {
                eprintln!("jit-ssh: error: {}", e.for_terminal());
                if let Some(next) = e.next_step() {
                    eprintln!(
                        "jit-ssh: next: {}",
                        jit_ssh_proto::text::escape_for_terminal(&next)
                    );
                }
            }
            let code = e.exit_code();
            ExitCode::from(if code == 130 { code } else { code + offset })
        }
    }
}
