//! The commands besides the login flow itself: output and small glue.

use std::os::unix::process::CommandExt;

use crate::agent::Agent;
use crate::error::ClientError;
use crate::loaded::{self, now};
use crate::login::{self, LoginOptions};
use crate::settings::{Overrides, Settings};

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Other(e.into()))
}

fn when(unix: u64) -> String {
    let left = unix.saturating_sub(now());
    format!(
        "{} left",
        jit_ssh_proto::format_duration(std::time::Duration::from_secs(left))
    )
}

pub fn login(
    flags: &Overrides,
    opts: LoginOptions,
    if_needed: bool,
    json: bool,
) -> Result<(), ClientError> {
    let settings = Settings::resolve(flags)?;
    if if_needed {
        let mut agent = Agent::from_env()?;
        if let Some(c) = loaded::valid_for(&mut agent, &opts.host, &settings.account(), 60)? {
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&c).map_err(|e| ClientError::Other(e.into()))?
                );
            } else if !opts.quiet {
                eprintln!(
                    "already logged in to {} as {} ({})",
                    c.host,
                    c.account,
                    when(c.valid_before)
                );
            }
            return Ok(());
        }
    }
    let done = runtime()?.block_on(login::login(&settings, &opts))?;
    refresh_known_hosts(&settings);
    if json {
        println!(
            "{}",
            serde_json::to_string(&done).map_err(|e| ClientError::Other(e.into()))?
        );
    } else if !opts.quiet {
        println!(
            "Logged in: {} (serial {}, {}).",
            done.principals.join(","),
            done.serial,
            when(done.valid_before)
        );
        println!("ssh {}@{}", done.account, done.host);
    }
    Ok(())
}

/// After a login, quietly: once `ssh-config --ca-fingerprint` made jit-ssh
/// hold the CA key, every login also refreshes its known_hosts (new host
/// CA keys, removed hosts). Best effort: the login itself succeeded.
fn refresh_known_hosts(settings: &Settings) {
    let Ok(dir) = crate::known_hosts::dir() else {
        return;
    };
    if !dir.join(jit_ssh_host::files::CA_KEYS_FILE).exists() {
        return;
    }
    if let Ok(rt) = runtime() {
        if let Err(e) = rt.block_on(crate::known_hosts::refresh(settings, &dir, None)) {
            eprintln!("jit-ssh: warning: known_hosts not refreshed: {e}");
        }
    }
}

pub fn status(json: bool) -> Result<(), ClientError> {
    let mut agent = Agent::from_env()?;
    let certs = loaded::list(&mut agent)?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&certs).map_err(|e| ClientError::Other(e.into()))?
        );
        return Ok(());
    }
    if certs.is_empty() {
        println!("no jit-ssh certificates loaded");
    }
    for c in certs {
        println!(
            "{}@{}  {}  serial {}  {}",
            c.account,
            c.host,
            when(c.valid_before),
            c.serial,
            c.key_id
        );
    }
    Ok(())
}

pub fn logout(host: Option<&str>, json: bool) -> Result<(), ClientError> {
    // Sign-ins first: they go even when the agent cannot be reached.
    let signed_out = runtime()?.block_on(crate::sign_out::sign_out_all());
    let mut agent = Agent::from_env()?;
    let mut removed = 0;
    for c in loaded::list(&mut agent)? {
        if host.is_none_or(|h| h == c.host) {
            agent.remove(&c.blob)?;
            removed += 1;
        }
    }
    if json {
        println!("{{\"removed\":{removed},\"signed_out\":{signed_out}}}");
    } else {
        if signed_out > 0 {
            println!("ended {signed_out} sign-in(s) at the CA");
        }
        println!("removed {removed} jit-ssh certificate(s) from the agent");
    }
    Ok(())
}

pub fn ssh(flags: &Overrides, opts: LoginOptions, args: &[String]) -> Result<(), ClientError> {
    let settings = Settings::resolve(flags)?;
    let account = settings.account();
    let mut agent = Agent::from_env()?;
    if loaded::valid_for(&mut agent, &opts.host, &account, 30)?.is_none() {
        runtime()?.block_on(login::login(&settings, &opts))?;
    }
    let err = std::process::Command::new("ssh")
        .arg("-l")
        .arg(&account)
        .arg(&opts.host)
        .args(args)
        .exec();
    Err(ClientError::Other(anyhow::anyhow!("running ssh: {err}")))
}

/// The ssh_config block that makes plain `ssh ACCOUNT@HOST` log in first.
///
/// `originalhost` and `%n` are the name as typed, so a `HostName` alias
/// elsewhere in the file does not change which host the certificate is
/// for; `%r` is the account ssh will log in as, so the certificate carries
/// that principal (not the jit-ssh user's own name). With `known_hosts`,
/// those hosts are checked against jit-ssh's `@cert-authority` file.
pub fn ssh_config_snippet(
    hosts: &[String],
    known_hosts: Option<&std::path::Path>,
) -> Result<String, ClientError> {
    for h in hosts {
        if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c == ',' || c == '"') {
            return Err(ClientError::Usage(format!(
                "host pattern {h:?} may not hold spaces, commas or quotes"
            )));
        }
    }
    let patterns = hosts.join(",");
    let mut text = format!(
        "# jit-ssh: plain `ssh ACCOUNT@HOST` logs in first, as ACCOUNT (only when no\n\
         # certificate with a minute left is loaded for that host and account).\n\
         # Add to ~/.ssh/config.\n\
         Match originalhost {patterns} exec \"jit-ssh login --if-needed --quiet --as %r %n\"\n",
    );
    if let Some(k) = known_hosts {
        text.push_str(&format!(
            "# Enrolled hosts are trusted by their host certificate (no first-use prompt).\n\
             Match originalhost {patterns}\n    UserKnownHostsFile \"{}\"\n",
            k.display()
        ));
    }
    Ok(text)
}

pub fn ssh_config(
    flags: &Overrides,
    hosts: &[String],
    ca_fingerprint: Option<&str>,
    json: bool,
) -> Result<(), ClientError> {
    ssh_config_snippet(hosts, None)?;
    // Trusting hosts by certificate needs the CA; without it (or before the
    // first --ca-fingerprint) the login part still works.
    let known = Settings::resolve(flags).and_then(|settings| {
        let dir = crate::known_hosts::dir()?;
        runtime()?.block_on(crate::known_hosts::refresh(&settings, &dir, ca_fingerprint))
    });
    let known = match known {
        Ok(k) => Some(k),
        Err(e) if ca_fingerprint.is_some() => return Err(e),
        Err(e) => {
            eprintln!("jit-ssh: hosts are not trusted by certificate yet: {e}");
            None
        }
    };
    let snippet = ssh_config_snippet(hosts, known.as_ref().map(|(p, _)| p.as_path()))?;
    if json {
        let doc = serde_json::json!({
            "hosts": hosts,
            "snippet": snippet,
            "known_hosts": known.as_ref().map(|(p, _)| p.display().to_string()),
            "host_ca_keys": known.as_ref().map(|(_, n)| *n),
        });
        println!("{doc}");
    } else {
        print!("{snippet}");
    }
    Ok(())
}

pub fn revoke(
    flags: &Overrides,
    target: jit_ssh_proto::api::RevokeTarget,
    reason: &str,
    open_browser: bool,
    timeout: std::time::Duration,
    json: bool,
) -> Result<(), ClientError> {
    let settings = Settings::resolve(flags)?;
    let done = runtime()?.block_on(crate::revoke::revoke(
        &settings,
        target,
        reason,
        open_browser,
        timeout,
    ))?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&done).map_err(|e| ClientError::Other(e.into()))?
        );
    } else {
        println!("Revoked: {}", done.outcome.unwrap_or_default());
        println!("Hosts enforce it at their next `jit-ssh host sync` (every 30 s with the timer).");
    }
    Ok(())
}

pub fn audit_list(
    flags: &Overrides,
    how: &crate::session::SignIn,
    params: jit_ssh_proto::api::AuditParams,
    limit: usize,
    json: bool,
    zone: crate::audit::Zone,
) -> Result<(), ClientError> {
    let settings = Settings::resolve(flags)?;
    let (records, more) =
        runtime()?.block_on(crate::audit::list(&settings, how, params, limit.max(1)))?;
    crate::audit::print(&records, more, json, zone)
}

pub fn audit_export(
    flags: &Overrides,
    how: &crate::session::SignIn,
    since: Option<String>,
    file: &std::path::Path,
    json: bool,
) -> Result<(), ClientError> {
    let settings = Settings::resolve(flags)?;
    let done = runtime()?.block_on(crate::audit::export(&settings, how, since, file))?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&done).map_err(|e| ClientError::Other(e.into()))?
        );
    } else {
        println!(
            "exported {} records (seq {}–{}) to {}; check it with `jit-ssh audit verify {} --ca-key CA.pub`",
            done.records, done.first_seq, done.last_seq, done.file, done.file
        );
    }
    Ok(())
}

pub fn audit_export_sessions(
    flags: &Overrides,
    how: &crate::session::SignIn,
    since: Option<String>,
    dir: &std::path::Path,
    json: bool,
) -> Result<(), ClientError> {
    let settings = Settings::resolve(flags)?;
    let done = runtime()?.block_on(crate::sessions_export::export(&settings, how, since, dir))?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&done).map_err(|e| ClientError::Other(e.into()))?
        );
        return Ok(());
    }
    println!(
        "exported {} records (seq {}–{}) and {} session recording(s) to {}; check it with `jit-ssh audit verify {} --ca-key CA.pub`",
        done.chain.records, done.chain.first_seq, done.chain.last_seq, done.recordings, done.dir, done.dir
    );
    for id in &done.missing {
        eprintln!("jit-ssh: session {id}: the CA holds no recording (pruned by retention?); verify will name it");
    }
    Ok(())
}

/// `audit verify DIR`: the chain, then every recording against it.
fn audit_verify_sessions(
    dir: &std::path::Path,
    keys: &[ssh_key::PublicKey],
    json: bool,
) -> Result<(), ClientError> {
    use crate::sessions_verify::CHAIN_FILE;
    let r = crate::sessions_verify::verify_dir(dir, keys)?;
    let problems: Vec<String> = r
        .problems()
        .map(|(s, e)| format!("session {s}: {e}"))
        .collect();
    if json {
        let sessions: Vec<_> = r
            .sessions
            .iter()
            .map(|s| match &s.outcome {
                Ok(c) => serde_json::json!({
                    "session": s.session, "ok": true, "chunks": c.chunks,
                    "final_hash": c.final_hash, "host": c.host,
                }),
                Err(e) => serde_json::json!({"session": s.session, "ok": false, "problem": e}),
            })
            .collect();
        let v = serde_json::json!({
            "ok": r.chain.problem.is_none() && problems.is_empty(),
            "records": r.chain.records,
            "first_seq": r.chain.first_seq,
            "last_seq": r.chain.last_seq,
            "signed_through": r.chain.signed_through,
            "problem": r.chain.problem.as_ref().map(|p| p.to_string()),
            "sessions": sessions,
        });
        println!("{v}");
    }
    if let Some(p) = &r.chain.problem {
        return Err(ClientError::VerifyFailed(format!("{CHAIN_FILE} {p}")));
    }
    if !json {
        for s in &r.sessions {
            let line = match &s.outcome {
                Ok(c) => match &c.final_hash {
                    Some(h) => format!(
                        "session {}: OK, {} chunks signed by the host key of {} (vouched for by the audit chain), ending at the final hash {h} of its session_ended record",
                        s.session, c.chunks, c.host
                    ),
                    None => format!(
                        "session {}: open (no session_ended record in the export): the {} chunks uploaded so far are intact and signed by the host key of {}",
                        s.session, c.chunks, c.host
                    ),
                },
                Err(e) => format!("session {}: FAILED: {e}", s.session),
            };
            println!("{}", jit_ssh_proto::text::escape_for_terminal(&line));
        }
    }
    if !problems.is_empty() {
        return Err(ClientError::VerifyFailed(problems.join("; ")));
    }
    if !json {
        println!(
            "OK: {} records (seq {}–{}), every link intact and signed by the CA; {} recording(s) intact and vouched for by it.",
            r.chain.records,
            r.chain.first_seq,
            r.chain.last_seq,
            r.sessions.len()
        );
    }
    Ok(())
}

pub fn audit_verify(
    file: &std::path::Path,
    ca_key: &std::path::Path,
    json: bool,
) -> Result<(), ClientError> {
    let keys = crate::audit::read_keys(ca_key)?;
    if file.is_dir() {
        return audit_verify_sessions(file, &keys, json);
    }
    let report = crate::audit::verify(file, &keys)?;
    let signed_at = report.signed_at.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    if json {
        let v = serde_json::json!({
            "ok": report.problem.is_none(),
            "records": report.records,
            "first_seq": report.first_seq,
            "last_seq": report.last_seq,
            "checkpoints": report.checkpoints,
            "signed_through": report.signed_through,
            "signed_at": signed_at,
            "problem": report.problem.as_ref().map(|p| serde_json::json!({
                "line": p.line, "seq": p.seq, "what": p.what,
            })),
        });
        println!("{v}");
    }
    match report.problem {
        Some(p) => Err(ClientError::VerifyFailed(p.to_string())),
        None => {
            if !json {
                // The time of the newest record a signature covers: a
                // checkpoint record's own time is not signed.
                let cover = match signed_at {
                    Some(t) => format!(
                        "cover every record, up to record {} of {t}",
                        report.signed_through
                    ),
                    None => "sign only records before the export".to_owned(),
                };
                println!(
                    "OK: {} records (seq {}–{}), every link intact; {} checkpoint(s) signed by the CA {cover}.",
                    report.records, report.first_seq, report.last_seq, report.checkpoints,
                );
            }
            Ok(())
        }
    }
}

pub fn requests(
    flags: &Overrides,
    how: &crate::session::SignIn,
    json: bool,
) -> Result<(), ClientError> {
    let settings = Settings::resolve(flags)?;
    let pending = runtime()?.block_on(crate::approve::pending(&settings, how))?;
    crate::approve::print(&pending, json)
}

pub fn decide(
    flags: &Overrides,
    how: &crate::session::SignIn,
    id: &str,
    verdict: jit_ssh_proto::api::Verdict,
    comment: &str,
    json: bool,
) -> Result<(), ClientError> {
    let settings = Settings::resolve(flags)?;
    let d = runtime()?.block_on(crate::approve::decide(&settings, id, verdict, comment, how))?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&d).map_err(|e| ClientError::Other(e.into()))?
        );
    } else {
        println!("{}", d.outcome.unwrap_or_default());
    }
    Ok(())
}
