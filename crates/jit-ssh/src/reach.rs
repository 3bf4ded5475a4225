//! `jit-ssh hosts [PATTERN]`: what you may reach, as which accounts, for
//! how long, and what approval each would need right now — asked before
//! a request, so a denial after a touch is not how one finds out. Signs
//! in like `jit-ssh audit` (one touch, the saved session reused).

use std::io::Write;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use jit_ssh_proto::reach::{ReachApproval, ReachList, ReachParams, ReachRow};
use jit_ssh_proto::text::escape_for_terminal;

use crate::audit::{show_time, Zone};
use crate::ca_client::CaClient;
use crate::error::ClientError;
use crate::session::{signed_in, SignIn};
use crate::settings::{Overrides, Settings};

/// `jit-ssh hosts [PATTERN]`.
pub fn command(
    flags: &Overrides,
    how: &SignIn,
    pattern: Option<String>,
    json: bool,
) -> Result<(), ClientError> {
    let settings = Settings::resolve(flags)?;
    let list = crate::commands::runtime()?.block_on(fetch(&settings, how, pattern.clone()))?;
    print(&list, pattern.as_deref(), json)
}

pub async fn fetch(
    settings: &Settings,
    how: &SignIn,
    pattern: Option<String>,
) -> Result<ReachList, ClientError> {
    let client = CaClient::new(settings)?;
    let params = ReachParams {
        pattern,
        user: Some(settings.user.clone()),
    };
    signed_in(&client, settings, how, |token| {
        let (client, params) = (&client, &params);
        async move { client.reach(&token, params).await }
    })
    .await
}

fn ttl(secs: u64) -> String {
    jit_ssh_proto::format_duration(std::time::Duration::from_secs(secs))
}

fn names(list: &[String]) -> String {
    list.join(", ")
}

/// "APPROVAL NOW" in words (server text not yet escaped).
fn approval(row: &ReachRow) -> String {
    match &row.approval {
        ReachApproval::Auto => "none (your touch only)".into(),
        ReachApproval::OnCall {
            schedule,
            layer,
            until,
        } => {
            let until = OffsetDateTime::parse(until, &Rfc3339)
                .map(|t| show_time(t.unix_timestamp(), Zone::Utc))
                .unwrap_or_else(|_| until.clone());
            format!("none: on call now in {schedule}, layer {layer} (until {until})")
        }
        ReachApproval::Approvers {
            needed,
            approvers,
            not_on_call,
        } => {
            let n = if *needed == 1 {
                "1 approver".to_owned()
            } else {
                format!("{needed} approvers")
            };
            let of = if approvers.is_empty() {
                " (nobody may approve: ask an admin)".to_owned()
            } else {
                format!(" of {}", names(approvers))
            };
            match not_on_call {
                Some(s) => format!("{n}{of} (not on call in {s})"),
                None => format!("{n}{of}"),
            }
        }
        ReachApproval::BreakGlassOnly { reason } => format!(
            "break-glass only (--break-glass, up to {}): {reason}",
            ttl(row.break_glass_max_ttl_secs.unwrap_or(0))
        ),
        ReachApproval::Denied { reason } => format!("denied: {reason}"),
    }
}

/// Header and rows, columns as wide as their widest cell (the last runs
/// on); every cell from the CA escaped for the terminal.
fn table(list: &ReachList) -> Vec<String> {
    let header = ["HOSTS (GROUP)", "ACCOUNTS", "MAX TTL", "APPROVAL NOW"];
    let rows: Vec<[String; 4]> = list
        .rows
        .iter()
        .map(|r| {
            let cells = [
                format!("{} ({})", names(&r.hosts), r.host_group),
                names(&r.accounts),
                ttl(r.max_ttl_secs),
                approval(r),
            ];
            cells.map(|c| escape_for_terminal(&c).into_owned())
        })
        .collect();
    let mut width = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let mut text = String::new();
        for (cell, w) in cells[..3].iter().zip(&width) {
            text.push_str(&format!("{cell:<w$}  "));
        }
        text.push_str(cells[3]);
        text
    };
    std::iter::once(line(header))
        .chain(rows.iter().map(|r| line(r.each_ref().map(String::as_str))))
        .collect()
}

pub fn print(list: &ReachList, pattern: Option<&str>, json: bool) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| ClientError::Other(e.into());
    if json {
        serde_json::to_writer(&mut out, list).map_err(|e| ClientError::Other(e.into()))?;
        writeln!(out).map_err(io)?;
        return Ok(());
    }
    if list.rows.is_empty() {
        let why = match (&list.note, pattern) {
            (Some(note), _) => note.clone(),
            (None, Some(p)) => format!("no host you may reach matches {p}"),
            (None, None) => "no rule lets you reach any host".into(),
        };
        writeln!(out, "{}", escape_for_terminal(&why)).map_err(io)?;
        return Ok(());
    }
    for line in table(list) {
        writeln!(out, "{line}").map_err(io)?;
    }
    if list.rows.len() > 1 {
        eprintln!("(a host in several rows gets the first that issues at once, else approvers)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(group: &str, approval: ReachApproval) -> ReachRow {
        ReachRow {
            rule: 0,
            host_group: group.into(),
            hosts: vec![format!("*.{group}")],
            accounts: vec!["oncall".into(), "alice".into()],
            max_ttl_secs: 900,
            break_glass_max_ttl_secs: Some(300),
            approval,
        }
    }

    #[test]
    fn the_table_aligns_and_says_each_approval_in_words() {
        let list = ReachList {
            user: "alice".into(),
            note: None,
            rows: vec![
                row("dev", ReachApproval::Auto),
                row(
                    "web",
                    ReachApproval::OnCall {
                        schedule: "web".into(),
                        layer: "primary".into(),
                        until: "2026-11-30T00:00:00Z".into(),
                    },
                ),
                row(
                    "db",
                    ReachApproval::Approvers {
                        needed: 2,
                        approvers: vec!["lead1".into(), "lead2".into()],
                        not_on_call: None,
                    },
                ),
                row(
                    "edge",
                    ReachApproval::BreakGlassOnly {
                        reason: "not on call".into(),
                    },
                ),
                row(
                    "x",
                    ReachApproval::Denied {
                        reason: "no".into(),
                    },
                ),
            ],
        };
        let t = table(&list);
        assert_eq!(t[0], "HOSTS (GROUP)  ACCOUNTS       MAX TTL  APPROVAL NOW");
        assert_eq!(
            t[1],
            "*.dev (dev)    oncall, alice  15m      none (your touch only)"
        );
        assert!(
            t[2].ends_with("none: on call now in web, layer primary (until 2026-11-30 00:00:00Z)"),
            "{}",
            t[2]
        );
        assert!(t[3].ends_with("2 approvers of lead1, lead2"), "{}", t[3]);
        assert!(
            t[4].ends_with("break-glass only (--break-glass, up to 5m): not on call"),
            "{}",
            t[4]
        );
        assert!(t[5].ends_with("denied: no"), "{}", t[5]);
    }

    #[test]
    fn text_from_the_ca_cannot_drive_the_terminal() {
        let mut r = row(
            "evil\u{1b}[2J",
            ReachApproval::Denied {
                reason: "ok\u{202e}txet\nforged line".into(),
            },
        );
        r.accounts = vec!["root\u{7}".into()];
        let list = ReachList {
            user: "alice".into(),
            note: None,
            rows: vec![r],
        };
        let t = table(&list).join("\n");
        assert_eq!(t.lines().count(), 2, "{t}");
        for c in ['\u{1b}', '\u{202e}', '\u{7}'] {
            assert!(!t.contains(c), "{t:?}");
        }
        assert!(t.contains("\\u{001b}[2J") && t.contains("\\u{202e}"), "{t}");
    }
}
