//! `jit-ssh-host session`: the session wrapper. A certificate whose rule
//! asks for a session policy carries it as `force-command`, so sshd runs
//! every login of that certificate through this command, as the logged-in
//! user. It reads the certificate sshd accepted (`ExposeAuthInfo yes`
//! puts it in `$SSH_USER_AUTH`), runs what the user asked for, and ends
//! the session when the certificate expires or the host's KRL revokes it.
//! Anything it cannot establish refuses the login (fail closed).
//! See docs/sessions.md.

pub mod auth_info;
pub mod command;
pub mod deadline;
mod fdio;
pub mod hangup;
mod io;
mod pipes;
mod pty;
pub mod record;
pub mod revocation;
mod syslog;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ssh_key::{Certificate, HashAlg};
use tokio::signal::unix::{signal, SignalKind};

use auth_info::AuthInfoError;
use revocation::{KrlError, KrlWatch, Revoked};

/// Where the host recorder listens.
pub const RECORDER_SOCKET: &str = crate::recorder::SOCKET;

/// The wrapper's exit status when it refuses a login.
pub const REFUSED: u8 = 255;

/// How the CA's `force-command` runs the wrapper.
#[derive(Debug, Clone, clap::Args)]
pub struct SessionOptions {
    /// Where sync keeps ca-keys and revoked.krl.
    #[arg(long, default_value = "/etc/ssh/jit-ssh")]
    pub dir: PathBuf,
    /// What the rule's policy records: off, output or full.
    #[arg(long, default_value = "off")]
    pub record: String,
    /// The rule lets the session outlive its certificate (a revocation
    /// still ends it).
    #[arg(long)]
    pub keep_after_expiry: bool,
    /// The grant the certificate was issued for (the CA puts it here, in
    /// the signed force-command): only a certificate of that grant is
    /// taken from `$SSH_USER_AUTH`, the user's own file.
    #[arg(long)]
    pub grant: Option<String>,
    /// The host recorder's socket (for tests; hosts use the default).
    #[arg(long, default_value = RECORDER_SOCKET)]
    pub recorder_socket: PathBuf,
    /// The sftp server run for sshd's internal-sftp subsystem.
    #[arg(long, default_value = "/usr/lib/openssh/sftp-server")]
    pub sftp_server: PathBuf,
}

/// Why the wrapper refuses the login.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    AuthInfo(#[from] AuthInfoError),
    #[error(transparent)]
    Record(#[from] record::RecordError),
    #[error(
        "unknown --record {0:?}: the CA and this host's jit-ssh-host disagree; update jit-ssh-host"
    )]
    UnknownRecord(String),
    #[error("the certificate is not signed by a CA key in {path}: {why}")]
    Untrusted { path: String, why: String },
    #[error("the certificate in $SSH_USER_AUTH ({key_id}) is not the one this login was granted (grant {grant})")]
    OtherGrant { key_id: String, grant: String },
    #[error(transparent)]
    Krl(#[from] KrlError),
    #[error("{0}")]
    Revoked(Revoked),
    #[error("the certificate expired at {} UTC", deadline::clock_time(*.0))]
    Expired(u64),
    #[error("starting {program}: {why}")]
    Spawn { program: String, why: String },
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Everything established before the child starts.
struct Prepared {
    certs: Vec<Certificate>,
    /// The recorder's accepted connection, when the policy records.
    recorder: Option<record::Connected>,
    end: Option<u64>,
    krl: KrlWatch,
}

fn prepare(opts: &SessionOptions) -> Result<Prepared, Refusal> {
    let records = match opts.record.as_str() {
        "off" => false,
        "output" | "full" => true,
        other => return Err(Refusal::UnknownRecord(other.to_owned())),
    };
    let certs = auth_info::session_certificates(std::env::var_os("SSH_USER_AUTH"))?;
    trusted(&certs, &opts.dir)?;
    if let Some(grant) = &opts.grant {
        of_grant(&certs, grant)?;
    }
    let mut krl = KrlWatch::new(&opts.dir);
    if let Some(r) = krl.check(&certs)? {
        return Err(Refusal::Revoked(r));
    }
    let end = if opts.keep_after_expiry {
        None
    } else {
        deadline::session_end(&certs)
    };
    if let Some(end) = end.filter(|&e| e <= now_unix()) {
        return Err(Refusal::Expired(end));
    }
    // Last, once everything else let the login in: the recorder must
    // take the session before anything runs.
    let recorder = if records {
        Some(record::connect(
            &opts.recorder_socket,
            &hello(opts, &certs),
        )?)
    } else {
        None
    };
    Ok(Prepared {
        certs,
        recorder,
        end,
        krl,
    })
}

/// What the wrapper tells the recorder (which checks it: docs/sessions.md).
fn hello(opts: &SessionOptions, certs: &[Certificate]) -> crate::recorder::protocol::Hello {
    let interactive = rustix::termios::isatty(std::io::stdin().as_fd());
    let (cols, rows) = if interactive {
        pty::outer_cols_rows().unwrap_or((0, 0))
    } else {
        (0, 0)
    };
    crate::recorder::protocol::Hello {
        version: 1,
        record: opts.record.clone(),
        grant: opts.grant.clone(),
        serial: certs.first().map_or(0, Certificate::serial),
        key_id: certs
            .first()
            .map_or_else(String::new, |c| c.key_id().to_owned()),
        account: std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_default(),
        sshd_pid: std::os::unix::process::parent_id(),
        cols,
        rows,
        interactive,
    }
}

/// The file sshd wrote is the user's own: another session of theirs could
/// put a different certificate of theirs there (longer-lived, not
/// revoked). The force-command names the grant; its key id
/// (`jit-ssh:USER:GRANT:SERIAL`) must name the same one.
fn of_grant(certs: &[Certificate], grant: &str) -> Result<(), Refusal> {
    for c in certs {
        if c.key_id().split(':').nth(2) != Some(grant) {
            return Err(Refusal::OtherGrant {
                key_id: c.key_id().to_owned(),
                grant: grant.to_owned(),
            });
        }
    }
    Ok(())
}

/// The file sshd wrote is the user's own: only a certificate signed by a
/// CA key this host trusts counts (another session of the same user
/// could have rewritten it with a longer-lived one of its own making).
pub(crate) fn trusted(certs: &[Certificate], dir: &Path) -> Result<(), Refusal> {
    let path = dir.join(crate::files::CA_KEYS_FILE);
    let untrusted = |why: String| Refusal::Untrusted {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| untrusted(e.to_string()))?;
    let fingerprints: Vec<_> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| ssh_key::PublicKey::from_openssh(l).ok())
        .map(|k| k.fingerprint(HashAlg::Sha256))
        .collect();
    let now = now_unix();
    for c in certs {
        c.validate_at(now, &fingerprints)
            .map_err(|e| untrusted(format!("serial {}: {e}", c.serial())))?;
    }
    Ok(())
}

/// Runs the wrapper; returns its exit status (the child's, or
/// [`REFUSED`]).
pub fn run(opts: &SessionOptions) -> u8 {
    let interactive = rustix::termios::isatty(std::io::stdin().as_fd());
    let prepared = match prepare(opts) {
        Ok(p) => p,
        Err(e) => {
            let line = format!("jit-ssh: login refused: {e}");
            syslog::warn(&line);
            say(interactive, &line);
            return REFUSED;
        }
    };
    let shell = std::env::var_os("SHELL")
        .filter(|s| !s.is_empty())
        .map_or_else(|| PathBuf::from("/bin/sh"), PathBuf::from);
    let original = std::env::var("SSH_ORIGINAL_COMMAND").ok();
    let plan = command::plan(original.as_deref(), &shell, &opts.sftp_server);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(interactive, &format!("jit-ssh: login refused: {e}"));
            return REFUSED;
        }
    };
    let code = rt.block_on(serve(prepared, plan, interactive, &opts.sftp_server));
    // A thread still blocked reading the person's stdin (or writing a
    // stderr nobody reads) must not hold the exit.
    rt.shutdown_background();
    code
}

/// A line from the wrapper itself, on stderr (before any raw mode).
fn say(interactive: bool, line: &str) {
    use std::io::Write;
    let end = if interactive { "\r\n" } else { "\n" };
    let _ = write!(std::io::stderr(), "{line}{end}");
}

/// Why the session ends early.
enum Ending {
    Expired(u64),
    Revoked(Revoked),
    HungUp,
    /// The recorder went away: the session cannot go on unrecorded.
    RecorderLost,
}

async fn serve(mut p: Prepared, plan: command::Plan, interactive: bool, sftp_server: &Path) -> u8 {
    let spawn_err = |e: std::io::Error| Refusal::Spawn {
        program: plan.program.display().to_string(),
        why: e.to_string(),
    };
    // The recorder's connection, streaming (the login was refused above
    // when it did not accept the session).
    let tap = match p.recorder.take().map(record::Connected::stream) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            let line = format!("jit-ssh: login refused: the recorder's connection: {e}");
            syslog::warn(&line);
            say(interactive, &line);
            return REFUSED;
        }
        None => None,
    };
    let lost = tap.as_ref().map(|t| t.lost.clone());
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let parent = i32::try_from(std::os::unix::process::parent_id()).unwrap_or(0);
    // The screen (pty sessions): the child's output and the notices.
    let screen = pty::Screen::default();
    let raw = if interactive {
        pty::RawMode::enter(std::io::stdin().as_fd()).ok()
    } else {
        None
    };
    let spawned = if interactive {
        pty::spawn(&plan, screen.clone(), tap.clone())
            .map(|c| (c.child, c.output_done, Some(c.master)))
    } else {
        pipes::spawn(
            &plan,
            // The sftp server's bytes are file transfers, not a session
            // to replay: not recorded (its header and end are).
            tap.clone().filter(|_| plan.program != sftp_server),
        )
        .map(|c| (c.child, c.output_done, None))
    };
    let (mut child, mut output_done, master) = match spawned {
        Ok(c) => c,
        Err(e) => {
            drop(raw);
            say(
                interactive,
                &format!("jit-ssh: login refused: {}", spawn_err(e)),
            );
            return REFUSED;
        }
    };
    let child_pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    // Whose session to hang up: the child's own on a pty, ours on pipes
    // (the child's process group when ours is not a real id).
    let (scope, spare) = if interactive {
        (hangup::Scope::Session(child_pid), vec![me])
    } else {
        let ours =
            hangup::own_session().map_or(hangup::Scope::Group(child_pid), hangup::Scope::Session);
        (ours, vec![me, parent])
    };

    let (at_once, mut notices) = match p.end {
        Some(end) if interactive => deadline::notice_times(now_unix(), end),
        _ => (false, vec![]),
    };
    // Never waits: a person who stops reading (flow control, a stalled
    // client) blocks the screen, and the loop below must still end the
    // session on time. The line is written on a blocking thread, between
    // two chunks of output, once the screen takes it.
    let tell = |line: String| {
        let screen = screen.clone();
        tokio::task::spawn_blocking(move || {
            let _ = screen.write(format!("\r\n{line}\r\n").as_bytes());
        })
    };
    if let (true, Some(end)) = (at_once, p.end) {
        drop(tell(deadline::notice(end.saturating_sub(now_unix()), end)));
    }

    let mut clock = tokio::time::interval(Duration::from_millis(250));
    let mut krl_poll = tokio::time::interval(revocation::POLL);
    let mut winch = signal(SignalKind::window_change()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    let mut status = None;
    let mut output_ended = false;
    let ending = loop {
        tokio::select! {
            s = child.wait(), if status.is_none() => {
                status = Some(s);
                if interactive {
                    // The shell is gone: what it printed last is in the
                    // pty; a background job holding the pty open does not
                    // keep the session.
                    // (Not polled again if it already finished: a
                    // finished JoinHandle panics when polled, which killed
                    // the wrapper before it told the recorder the end.)
                    if !output_ended {
                        let waited = tokio::time::timeout(Duration::from_millis(500), &mut output_done).await;
                        output_ended = waited.is_ok();
                    }
                    break None;
                }
                if output_ended { break None; }
            }
            _ = &mut output_done, if !output_ended => {
                output_ended = true;
                if status.is_some() { break None; }
            }
            _ = clock.tick() => {
                let now = now_unix();
                if let Some(end) = p.end {
                    if now >= end { break Some(Ending::Expired(end)); }
                    while notices.first().is_some_and(|&t| now >= t) {
                        notices.remove(0);
                        drop(tell(deadline::notice(end.saturating_sub(now), end)));
                    }
                }
            }
            _ = krl_poll.tick() => {
                // An unreadable or broken KRL is not a revocation: sync
                // replaces it whole, so this is a moment, and sshd
                // refuses new logins meanwhile. The last good one stands.
                if let Ok(Some(r)) = p.krl.check(&p.certs) {
                    break Some(Ending::Revoked(r));
                }
            }
            Some(()) = async { winch.as_mut()?.recv().await } => {
                if let Some(m) = &master {
                    pty::pass_size(m);
                }
                if let (Some(t), Some((cols, rows))) = (&tap, pty::outer_cols_rows()) {
                    t.resize(cols, rows);
                }
            }
            Some(()) = async { lost.as_ref()?.notified().await; Some(()) } => {
                break Some(Ending::RecorderLost);
            }
            Some(()) = async { hup.as_mut()?.recv().await } => break Some(Ending::HungUp),
            Some(()) = async { term.as_mut()?.recv().await } => break Some(Ending::HungUp),
        }
    };
    let end_code = match &ending {
        Some(Ending::Expired(_)) => 2,
        Some(Ending::Revoked(_)) => 3,
        _ => 1,
    };
    let mut last_line = None;
    let code = match ending {
        None => status.and_then(Result::ok).map_or(1, command::exit_code),
        Some(why) => {
            let line = match &why {
                Ending::Expired(end) => Some(format!(
                    "jit-ssh: the certificate expired at {} UTC: this session is over",
                    deadline::clock_time(*end)
                )),
                Ending::Revoked(r) => Some(format!("jit-ssh: {r}: this session is over")),
                Ending::RecorderLost => Some(match tap.as_ref().and_then(record::Tap::ending) {
                    Some(reason) => format!("jit-ssh: the session recorder ended this session: {reason}"),
                    None => "jit-ssh: the session recorder went away, and this session must be recorded: this session is over"
                        .to_owned(),
                }),
                Ending::HungUp => None,
            };
            if matches!(why, Ending::RecorderLost) {
                if let Some(l) = &line {
                    syslog::warn(l);
                }
            }
            if let Some(line) = line {
                if interactive {
                    last_line = Some(tell(line));
                } else {
                    // stderr may be a full pipe nobody reads: written off
                    // the loop, and the hang-up does not wait for it.
                    let said = tokio::task::spawn_blocking(move || say(false, &line));
                    let _ = tokio::time::timeout(Duration::from_millis(200), said).await;
                }
            }
            let spare = spare.clone();
            let _ = tokio::task::spawn_blocking(move || hangup::hang_up(scope, &spare)).await;
            let s = tokio::time::timeout(Duration::from_millis(200), child.wait()).await;
            match s {
                Ok(Ok(s)) => command::exit_code(s),
                _ => 129,
            }
        }
    };
    // The recorder hears how the session ended, after the last output
    // (output after it is no longer shown: see pty.rs).
    if let Some(t) = tap {
        let ended = tokio::task::spawn_blocking(move || t.end(end_code));
        let _ = tokio::time::timeout(Duration::from_secs(2), ended).await;
    }
    // Let the last output and line reach the screen, then put the
    // terminal back as it was.
    if interactive {
        // The line first: output can go on for as long as a background
        // job holds the pty.
        let shown = async {
            if let Some(line) = last_line {
                let _ = line.await;
            }
            if !output_ended {
                let _ = (&mut output_done).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(500), shown).await;
    }
    drop(raw);
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::{Algorithm, PrivateKey};

    #[test]
    fn only_a_certificate_from_a_trusted_ca_key_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = ssh_key::rand_core::OsRng;
        let (ca, other) = (
            PrivateKey::random(&mut rng, Algorithm::Ed25519).unwrap(),
            PrivateKey::random(&mut rng, Algorithm::Ed25519).unwrap(),
        );
        std::fs::write(
            dir.path().join(crate::files::CA_KEYS_FILE),
            format!("# jit-ssh\n{}\n", ca.public_key().to_openssh().unwrap()),
        )
        .unwrap();
        let later = now_unix() + 600;
        let good = auth_info::tests::cert_by(&ca, 1, later);
        assert!(trusted(std::slice::from_ref(&good), dir.path()).is_ok());
        // Signed by a key the host does not trust, with a later end.
        let forged = auth_info::tests::cert_by(&other, 1, later + 86_400);
        assert!(matches!(
            trusted(&[good, forged], dir.path()),
            Err(Refusal::Untrusted { .. })
        ));
        // No ca-keys file: nothing is trusted.
        let empty = tempfile::tempdir().unwrap();
        let c = auth_info::tests::cert_by(&ca, 2, later);
        assert!(trusted(&[c], empty.path()).is_err());
    }

    #[test]
    fn only_the_certificate_of_the_granted_login_counts() {
        let ca = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).unwrap();
        // cert_by issues key ids `jit-ssh:alice:g:SERIAL`.
        let c = auth_info::tests::cert_by(&ca, 3, now_unix() + 600);
        assert!(of_grant(std::slice::from_ref(&c), "g").is_ok());
        assert!(matches!(
            of_grant(&[c], "another-grant"),
            Err(Refusal::OtherGrant { .. })
        ));
    }
}
