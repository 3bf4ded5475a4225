//! `jit-ssh audit`: read the CA's audit log (a table or JSON lines),
//! export the chain to a file, and verify an export offline with only the
//! CA public key.

use std::io::{BufReader, Write};
use std::path::Path;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use jit_ssh_audit::checkpoint::{verify_export_each, ExportReport};
use jit_ssh_audit::{AuditRecord, Event};
use jit_ssh_proto::api::AuditParams;
use jit_ssh_proto::text::escape_for_terminal;

use crate::ca_client::CaClient;
use crate::error::ClientError;
use crate::session::{signed_in, SignIn};
use crate::settings::Settings;

/// `--since 1h` (that long ago) or an RFC 3339 time, as RFC 3339.
pub fn time_arg(flag: &str, v: &str) -> Result<String, ClientError> {
    if OffsetDateTime::parse(v, &Rfc3339).is_ok() {
        return Ok(v.to_owned());
    }
    let ago = jit_ssh_proto::parse_duration(v).map_err(|e| {
        ClientError::Usage(format!(
            "{flag} {v:?}: give a duration (1h, 30m) or an RFC 3339 time ({e})"
        ))
    })?;
    (OffsetDateTime::now_utc() - ago)
        .format(&Rfc3339)
        .map_err(|e| ClientError::Other(e.into()))
}

/// Records matching `params`, following the cursor, up to `max`.
/// Returns them and whether more were left.
pub async fn list(
    settings: &Settings,
    how: &SignIn,
    params: AuditParams,
    max: usize,
) -> Result<(Vec<AuditRecord>, bool), ClientError> {
    let client = CaClient::new(settings)?;
    signed_in(&client, settings, how, |token| {
        let (client, mut params) = (&client, params.clone());
        async move {
            let mut out = Vec::new();
            loop {
                params.limit = Some(u32::try_from(max - out.len()).unwrap_or(1000).min(1000));
                let page = client.audit_page(&token, &params).await?;
                for r in page.records {
                    out.push(serde_json::from_value::<AuditRecord>(r).map_err(|e| {
                        ClientError::Other(anyhow::anyhow!(
                            "unreadable audit record from the CA: {e}"
                        ))
                    })?);
                }
                match page.next_cursor {
                    Some(c) if out.len() < max => params.cursor = Some(c),
                    Some(_) => return Ok((out, true)),
                    None => return Ok((out, false)),
                }
            }
        }
    })
    .await
}

/// The row columns: what, who, where, which certificate, and details.
/// How times are shown in the table: UTC (the default, what the log and
/// sshd's logs on most servers use), or the viewer's zone (`--local`).
#[derive(Debug, Clone, Copy)]
pub enum Zone {
    Utc,
    Local,
}

/// A Unix time to the second: `2026-11-29 12:05:07Z`, or in the local
/// zone `2026-11-29 13:05:07+01:00`.
pub fn show_time(unix: i64, zone: Zone) -> String {
    let Ok(ts) = jiff::Timestamp::from_second(unix) else {
        return unix.to_string();
    };
    match zone {
        Zone::Utc => ts.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
        Zone::Local => ts
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S%:z")
            .to_string(),
    }
}

fn columns(r: &AuditRecord, zone: Zone) -> [String; 6] {
    let e = &r.event;
    let serials = e
        .serials()
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let detail = match e {
        Event::CertificateIssued(c) => {
            let until = i64::try_from(c.valid_before).unwrap_or(i64::MAX);
            format!(
                "{} until {} ({})",
                c.key_id,
                show_time(until, zone),
                c.reason
            )
        }
        Event::RequestCreated(c) => format!("ttl {}s: {}", c.ttl_secs, c.reason),
        Event::PolicyDecision(d) => format!(
            "{}{}: {}",
            if d.break_glass { "BREAK-GLASS " } else { "" },
            d.outcome,
            d.reason
        ),
        Event::Revoked(v) => format!("{} ({}) krl v{}", v.target, v.reason, v.krl_version),
        Event::Checkpoint(c) => format!("signs record {} ({})", c.seq, c.trigger),
        Event::MfaVerified(s)
        | Event::MfaFailed(s)
        | Event::RequestExpired(s)
        | Event::RequestCancelled(s)
        | Event::RevocationRefused(s)
        | Event::SignedIn(s)
        | Event::SignedOut(s) => format!("{} {}", s.request, s.detail),
        Event::InviteCreated(x) | Event::UserEnrolled(x) | Event::UserEnabled(x) => {
            x.detail.clone()
        }
        Event::RequestApproved(a) | Event::RequestDenied(a) | Event::ApprovalRefused(a) => format!(
            "{} by {} ({}/{}){}",
            e.kind().trim_start_matches("request_"),
            a.approver,
            a.approvals,
            a.needed,
            if a.comment.is_empty() {
                String::new()
            } else {
                format!(": {}", a.comment)
            }
        ),
        Event::HostTokenCreated(h) => {
            format!("token {} for group {}: {}", h.token, h.group, h.detail)
        }
        Event::HostEnrolled(h) => format!(
            "{} by token {}, host key {}, certificate until {}{}",
            h.group,
            h.token,
            h.host_key_fingerprint,
            show_time(i64::try_from(h.valid_before).unwrap_or(i64::MAX), zone),
            also_names(&h.aliases)
        ),
        Event::HostEnrollRefused(h) => format!("token {}: {}", h.token, h.detail),
        Event::HostRemoved(h) => {
            format!("host key {} revoked: {}", h.host_key_fingerprint, h.detail)
        }
        Event::HostRenewed(h) => format!(
            "host key {}, new certificate until {}{}",
            h.host_key_fingerprint,
            show_time(i64::try_from(h.valid_before).unwrap_or(i64::MAX), zone),
            also_names(&h.aliases)
        ),
        Event::HostCheckinRefused(h) => h.detail.clone(),
        Event::CaKeyStaged(k) => format!(
            "{} CA key {} staged beside {}: {}",
            k.key, k.fingerprint, k.other_fingerprint, k.detail
        ),
        Event::CaKeyActivated(k) => format!(
            "{} CA key {} signs now (was {}; retire it after {})",
            k.key,
            k.fingerprint,
            k.other_fingerprint,
            show_time(i64::try_from(k.retire_after).unwrap_or(i64::MAX), zone)
        ),
        Event::CaKeyRetired(k) => format!(
            "{} CA key {} retired ({} signs): {}",
            k.key, k.fingerprint, k.other_fingerprint, k.detail
        ),
        Event::NotificationFailed(n) => format!(
            "{} to {} failed after {} tries: {}",
            n.event, n.target, n.attempts, n.error
        ),
        Event::SessionStarted(s) => format!(
            "session {} recorded ({}), host key {}",
            s.subject.session, s.record, s.host_key_fingerprint
        ),
        Event::SessionEnded(s) => format!(
            "session {} ended ({}) after {}s: {} bytes out, {} chunks, final hash {}",
            s.subject.session, s.reason, s.duration_secs, s.output_bytes, s.chunks, s.final_hash
        ),
    };
    let host = match (e.account(), e.host()) {
        (Some(a), Some(h)) => format!("{a}@{h}"),
        (None, Some(h)) => h.to_owned(),
        _ => String::new(),
    };
    // Records written before the CA refused control and bidi characters
    // (or by a CA that did not) must not reorder or forge table lines.
    let shown = |s: &str| escape_for_terminal(s).into_owned();
    [
        show_time(r.time.unix_timestamp(), zone),
        e.kind().to_owned(),
        shown(e.user().unwrap_or("")),
        shown(&host),
        serials,
        shown(&detail),
    ]
}

/// A host certificate's aliases, as the table shows them.
fn also_names(aliases: &[String]) -> String {
    if aliases.is_empty() {
        String::new()
    } else {
        format!(", also for {}", aliases.join(", "))
    }
}

/// The records as a table whose columns are as wide as their widest cell
/// (the detail column runs on), header first.
fn table(records: &[AuditRecord], zone: Zone) -> Vec<String> {
    let header = ["SEQ", "TIME", "KIND", "USER", "ACCESS", "SERIAL", "DETAIL"];
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            let [time, kind, user, access, serial, detail] = columns(r, zone);
            [r.seq.to_string(), time, kind, user, access, serial, detail]
        })
        .collect();
    let mut width = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 7]| {
        let mut text = format!("{:>w$}", cells[0], w = width[0]);
        for (cell, w) in cells[1..6].iter().zip(&width[1..6]) {
            text.push_str(&format!("  {cell:<w$}"));
        }
        text.push_str("  ");
        text.push_str(cells[6]);
        text
    };
    std::iter::once(line(header))
        .chain(rows.iter().map(|r| line(r.each_ref().map(String::as_str))))
        .collect()
}

pub fn print(
    records: &[AuditRecord],
    more: bool,
    json: bool,
    zone: Zone,
) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| ClientError::Other(e.into());
    if json {
        for r in records {
            serde_json::to_writer(&mut out, r).map_err(|e| ClientError::Other(e.into()))?;
            writeln!(out).map_err(io)?;
        }
        return Ok(());
    }
    for line in table(records, zone) {
        writeln!(out, "{line}").map_err(io)?;
    }
    if records.is_empty() {
        eprintln!("(no matching records)");
    }
    if more {
        eprintln!("(more records match: raise --limit or narrow the filters)");
    }
    Ok(())
}

/// What an export wrote.
#[derive(Debug, serde::Serialize)]
pub struct Exported {
    pub file: String,
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// Streams the chain to `file` (via a temporary file renamed at the end,
/// so a cut stream leaves no file that looks complete).
pub async fn export(
    settings: &Settings,
    how: &SignIn,
    since: Option<String>,
    file: &Path,
) -> Result<Exported, ClientError> {
    let client = CaClient::new(settings)?;
    let tmp = file.with_extension("partial");
    let result = signed_in(&client, settings, how, |token| {
        let (client, since, tmp) = (&client, since.clone(), tmp.clone());
        async move {
            let mut res = client.audit_export(&token, since.as_deref()).await?;
            let io =
                |e: std::io::Error| ClientError::Usage(format!("writing {}: {e}", tmp.display()));
            let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
            let mut records = 0u64;
            // The first and last lines, for the summary (the file itself
            // may be gigabytes: it is not read back).
            let (mut head, mut tail) = (Vec::new(), Vec::new());
            let broke_off = |detail: String| ClientError::CaUnreachable {
                url: settings.ca_url.to_string(),
                detail,
            };
            loop {
                let next = tokio::time::timeout(crate::ca_client::EXPORT_IDLE, res.chunk())
                    .await
                    .map_err(|_| {
                        broke_off(format!(
                            "the export stream stopped: nothing for {} s",
                            crate::ca_client::EXPORT_IDLE.as_secs()
                        ))
                    })?
                    .map_err(|e| broke_off(format!("the export stream broke off: {e}")))?;
                let Some(chunk) = next else { break };
                records += chunk.iter().filter(|b| **b == b'\n').count() as u64;
                out.write_all(&chunk).map_err(io)?;
                if !head.contains(&b'\n') && head.len() < 1 << 16 {
                    head.extend_from_slice(&chunk);
                }
                tail.extend_from_slice(&chunk);
                if tail.len() > 1 << 16 {
                    tail.drain(..tail.len() - (1 << 16));
                }
            }
            out.flush().map_err(io)?;
            out.get_ref().sync_all().map_err(io)?;
            Ok((records, head, tail))
        }
    })
    .await;
    let (records, head, tail) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, file)
        .map_err(|e| ClientError::Usage(format!("writing {}: {e}", file.display())))?;
    let seq_of = |line: &[u8]| {
        serde_json::from_slice::<AuditRecord>(line)
            .map(|r| r.seq)
            .unwrap_or(0)
    };
    let last_line = tail
        .split(|b| *b == b'\n')
        .rfind(|l| !l.is_empty())
        .unwrap_or(&[]);
    let first_line = head.split(|c| *c == b'\n').next().unwrap_or(&[]);
    Ok(Exported {
        file: file.display().to_string(),
        records,
        first_seq: seq_of(first_line),
        last_seq: seq_of(last_line),
    })
}

/// Reads trusted CA public keys: one per line, as in a TrustedUserCAKeys
/// file or a `.pub` file; blank lines and `#` comments are skipped.
pub fn read_keys(path: &Path) -> Result<Vec<ssh_key::PublicKey>, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::Usage(format!("--ca-key {}: {e}", path.display())))?;
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            ssh_key::PublicKey::from_openssh(l).map_err(|e| {
                ClientError::Usage(format!(
                    "--ca-key {}: not an OpenSSH public key: {e}",
                    path.display()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(ClientError::Usage(format!(
            "--ca-key {}: no keys in it",
            path.display()
        )));
    }
    Ok(keys)
}

pub fn verify(file: &Path, keys: &[ssh_key::PublicKey]) -> Result<ExportReport, ClientError> {
    verify_each(file, keys, |_| {})
}

/// [`verify`], handing `each` every record as it is read (see
/// [`verify_export_each`]): one read of the file.
pub fn verify_each(
    file: &Path,
    keys: &[ssh_key::PublicKey],
    each: impl FnMut(&AuditRecord),
) -> Result<ExportReport, ClientError> {
    let f = std::fs::File::open(file)
        .map_err(|e| ClientError::Usage(format!("{}: {e}", file.display())))?;
    verify_export_each(BufReader::with_capacity(1 << 20, f), keys, each)
        .map_err(|e| ClientError::Usage(format!("reading {}: {e}", file.display())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_table_aligns_and_shows_times_to_the_second() {
        let zero = "0".repeat(64);
        let record = |seq: u64, user: &str, host: &str| -> AuditRecord {
            serde_json::from_value(serde_json::json!({
                "seq": seq,
                "time": "2026-11-29T10:00:00.123456Z",
                "actor": {"kind": "system"},
                "event": {
                    "kind": "certificate_issued",
                    "serial": 465906067876377908u64, "key_id": "jit-ssh:u:r1:1",
                    "user": user, "host": host, "account": "postgres",
                    "principals": ["postgres@h"], "valid_after": 1795946340u64,
                    "valid_before": 1795947000u64, "public_key_fingerprint": "SHA256:x",
                    "ca_fingerprint": "SHA256:y", "grant": "r1", "reason": "fix",
                    "critical_options": [], "extensions": ["permit-pty"], "via": "server"
                },
                "prev_hash": zero, "hash": zero,
            }))
            .unwrap()
        };
        let lines = table(
            &[
                record(7, "al", "db-1.prod"),
                record(12345, "a-much-longer-user", "x.dev"),
            ],
            Zone::Utc,
        );
        assert_eq!(lines.len(), 3);
        // Every column starts at the same place on every line.
        let starts = |l: &str, word: &str| l.find(word).unwrap();
        assert_eq!(
            starts(&lines[1], "certificate_issued"),
            starts(&lines[0], "KIND")
        );
        assert_eq!(
            starts(&lines[2], "certificate_issued"),
            starts(&lines[0], "KIND")
        );
        assert_eq!(starts(&lines[1], "al "), starts(&lines[0], "USER"));
        assert_eq!(
            starts(&lines[2], "postgres@x.dev"),
            starts(&lines[0], "ACCESS")
        );
        // Times to the second; validity as a time, not epoch seconds.
        assert!(lines[1].contains("2026-11-29 10:00:00Z "), "{}", lines[1]);
        assert!(
            lines[1].contains("until 2026-11-29 10:10:00Z"),
            "{}",
            lines[1]
        );
        assert!(!lines[1].contains("1795947000"), "{}", lines[1]);
    }

    /// An old record (written before the CA refused such reasons) with a
    /// bidi override and a forged second line in its reason.
    #[test]
    fn old_records_with_bidi_or_newlines_are_printed_escaped() {
        let zero = "0".repeat(64);
        let record: AuditRecord = serde_json::from_value(serde_json::json!({
            "seq": 7,
            "time": "2026-11-29T10:00:00Z",
            "actor": {"kind": "system"},
            "event": {
                "kind": "request_created",
                "request": "r1", "user": "alice", "host": "db-1.prod", "account": "postgres",
                "ttl_secs": 900,
                "reason": "fix \u{202E}1-bd\u{202C} now\n       1  2026-11-29T10:00:00Z  certificate_issued",
                "key_fingerprint": "SHA256:x", "client_addr": "127.0.0.1"
            },
            "prev_hash": zero, "hash": zero,
        }))
        .unwrap();
        let detail = &columns(&record, Zone::Utc)[5];
        assert!(
            !detail.contains('\u{202E}') && !detail.contains('\n'),
            "{detail:?}"
        );
        assert!(
            detail.contains("\\u{202e}") && detail.contains("\\u{000a}"),
            "{detail}"
        );
    }
}
