//! `jit-ssh-ca oncall SCHEDULE [--at TIME]`: who is on call, per layer,
//! with the shift's start and end, as the CA would decide it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use jit_ssh_ca::config;
use jit_ssh_ca::oncall::{rfc3339, Schedules, Source};

#[derive(Args)]
pub struct OnCallArgs {
    /// The schedule's name in the config.
    schedule: String,
    /// When to ask about: an RFC 3339 time (default now).
    #[arg(long)]
    at: Option<String>,
    /// The configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: OnCallArgs) -> anyhow::Result<ExitCode> {
    let c = match config::load(&a.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let at = match &a.at {
        None => jiff::Timestamp::now(),
        Some(t) => t.parse::<jiff::Timestamp>().with_context(|| {
            format!("--at {t:?}: use an RFC 3339 time like 2026-11-24T09:00:00Z")
        })?,
    }
    .as_second();
    let schedules = Schedules::new(c.schedules.clone());
    let Some(sc) = schedules.config(&a.schedule) else {
        let names: Vec<&String> = schedules.names().collect();
        anyhow::bail!(
            "no schedule {:?} in {} (schedules: {names:?})",
            a.schedule,
            a.config.display()
        );
    };
    match &sc.source {
        Source::IcalFile(_) => {
            if let Some((_, e)) = schedules
                .load_files()
                .into_iter()
                .find(|(n, _)| *n == a.schedule)
            {
                anyhow::bail!("schedule {}: {e}", a.schedule);
            }
        }
        Source::IcalUrl(url) => {
            let text = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    jit_ssh_ca::outbound::http_client(std::time::Duration::from_secs(20))?
                        .get(url.clone())
                        .send()
                        .await?
                        .error_for_status()?
                        .text()
                        .await
                })
                .with_context(|| {
                    format!(
                        "fetching the feed of schedule {} from {}",
                        a.schedule,
                        url.host_str().unwrap_or("?")
                    )
                })?;
            schedules
                .set_feed(&a.schedule, &text)
                .map_err(|e| anyhow::anyhow!("schedule {}: {e}", a.schedule))?;
        }
        Source::Rotation(_) => {}
    }
    let shifts = schedules
        .shifts(&a.schedule, at)
        .map_err(|e| anyhow::anyhow!("schedule {}: {e}", a.schedule))?;
    // Which jit-ssh user each entry is, when the feed names them by email.
    let user_of = |member: &str| {
        c.policy
            .users
            .iter()
            .find(|(name, u)| {
                name.eq_ignore_ascii_case(member)
                    || u.emails.iter().any(|e| e.eq_ignore_ascii_case(member))
            })
            .map(|(name, _)| name.clone())
    };
    if a.json {
        let rows: Vec<serde_json::Value> = shifts
            .iter()
            .map(|s| {
                serde_json::json!({
                    "schedule": s.schedule, "layer": s.layer, "member": s.member,
                    "user": user_of(&s.member), "start": rfc3339(s.start), "end": rfc3339(s.end),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "at": rfc3339(at), "shifts": rows })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if shifts.is_empty() {
        println!("{}: nobody is on call at {}", a.schedule, rfc3339(at));
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: on call at {}", a.schedule, rfc3339(at));
    for s in &shifts {
        let user = user_of(&s.member)
            .map_or_else(|| " (not a jit-ssh user)".to_owned(), |u| format!(" = {u}"));
        println!(
            "  {:<10} {}{user}  {} – {}",
            s.layer,
            s.member,
            rfc3339(s.start),
            rfc3339(s.end)
        );
    }
    Ok(ExitCode::SUCCESS)
}
