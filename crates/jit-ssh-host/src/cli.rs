//! The host commands as clap sees them, and running them: shared by the
//! `jit-ssh-host` binary and the client's `jit-ssh host …`.

use clap::Subcommand;

use crate::error::HostError;
use std::path::Path;

use crate::files::CheckinState;
use crate::sync::SyncOptions;

#[derive(Subcommand)]
pub enum HostCommand {
    /// Enroll this host with a token from `jit-ssh-ca host-token`: prove
    /// the host key, get a host certificate (written beside the key), and
    /// trust the CA the token names; prints the HostCertificate line.
    Enroll {
        /// The CA URL (or JIT_SSH_CA_URL); several replicas as a
        /// comma-separated list.
        #[arg(long = "ca-url", visible_alias = "ca", env = "JIT_SSH_CA_URL")]
        ca: String,
        /// The enrollment token (jhe1.…); a secret: pass it from a file
        /// with --token "$(cat FILE)" rather than on a shared command line.
        #[arg(long, env = "JIT_SSH_HOST_TOKEN", hide_env_values = true)]
        token: String,
        /// This host's name as engineers ssh to it.
        #[arg(long)]
        name: String,
        /// Another name for the host certificate (repeatable), within
        /// what the token may enroll.
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// The host key to certify (its -cert.pub is written beside it).
        #[arg(long, default_value = "/etc/ssh/ssh_host_ed25519_key")]
        key: std::path::PathBuf,
        /// Where sync keeps sshd's CA keys and KRL.
        #[arg(long, default_value = "/etc/ssh/jit-ssh")]
        dir: std::path::PathBuf,
        /// Write 50-jit-ssh.conf (HostCertificate and the jit-ssh lines)
        /// into this sshd_config.d directory.
        #[arg(long)]
        sshd_config_dir: Option<std::path::PathBuf>,
        /// Extra PEM root certificate for the CA's TLS.
        #[arg(long)]
        ca_cert: Option<std::path::PathBuf>,
        /// How the drop-in has sshd get principals.
        #[command(flatten)]
        principals: crate::setup::PrincipalsSource,
    },
    /// Fetch, verify and atomically install the signed CA key set and the
    /// KRL its signed manifest names (run every 30 s by
    /// systemd/jit-ssh-host-sync.timer). Exit 9: the KRL held is stale.
    Sync {
        /// The CA URL (or JIT_SSH_CA_URL); several replicas as a
        /// comma-separated list, tried in order when one cannot be reached
        /// or answers 5xx. `--ca` is the old name.
        #[arg(long = "ca-url", visible_alias = "ca", env = "JIT_SSH_CA_URL")]
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
        /// After a renewed host certificate is installed, send sshd
        /// SIGHUP so it serves the new one (enrolled hosts only).
        #[arg(long)]
        reload_sshd: bool,
        /// The pid file of the sshd --reload-sshd signals.
        #[arg(long, default_value = "/run/sshd.pid")]
        sshd_pid_file: std::path::PathBuf,
    },
    /// The session wrapper: what a jit-ssh certificate's force-command
    /// runs (as the logged-in user, from sshd). Runs the login shell, the
    /// command, or sftp; ends the session when the certificate expires or
    /// this host's KRL revokes it. Needs `ExposeAuthInfo yes`.
    Session(crate::session::SessionOptions),
    /// The host recorder (root, socket-activated by
    /// systemd/jit-ssh-host-recorder.socket): records sessions the
    /// wrapper streams to it, uploads them to the CA, and ends sessions
    /// whose wrapper died. See docs/sessions.md.
    Recorder(crate::recorder::RecorderOptions),
    /// What the recorder's spool holds that the CA has not stored, and
    /// why: open, ended and waiting for the CA, or refused by the CA (with
    /// its reason; refused sessions are kept and not sent again).
    Recordings {
        /// The recorder's spool.
        #[arg(long, default_value = "/var/lib/jit-ssh/recordings")]
        spool: std::path::PathBuf,
        /// Clear the CA's refusal of SESSION: the recorder sends it again.
        #[arg(long, value_name = "SESSION")]
        retry: Option<String>,
    },
    /// sshd's AuthorizedPrincipalsCommand on a host with the recorder:
    /// prints DIR/principals/ACCOUNT, and first tells the recorder of a
    /// login whose certificate must be recorded (no recorder told, no
    /// principals). `… principals --dir DIR %u %T %k`.
    Principals(crate::principals::PrincipalsOptions),
    /// Write principals files for ACCOUNTs on this HOST and print the
    /// sshd_config lines.
    Setup {
        /// Where the principals files go (beside what sync writes).
        #[arg(long, default_value = "/etc/ssh/jit-ssh")]
        dir: std::path::PathBuf,
        /// This host's name as jit-ssh users ask for it.
        #[arg(long)]
        host: String,
        /// Accounts jit-ssh may log in as (repeatable).
        #[arg(long = "account", required = true)]
        accounts: Vec<String>,
        #[command(flatten)]
        principals: crate::setup::PrincipalsSource,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, HostError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HostError::Other(e.into()))
}

pub fn run(command: HostCommand, json: bool) -> Result<(), HostError> {
    match command {
        HostCommand::Enroll {
            ca,
            token,
            name,
            aliases,
            key,
            dir,
            sshd_config_dir,
            ca_cert,
            principals,
        } => {
            let ca_urls = crate::failover::parse_ca_urls(&ca)?;
            let done =
                runtime()?.block_on(crate::enroll::enroll(&crate::enroll::EnrollOptions {
                    ca_urls,
                    token,
                    name,
                    aliases,
                    key,
                    dir,
                    sshd_config_dir,
                    ca_cert,
                    principals_command: principals.command().map(std::path::Path::to_owned),
                }))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&done).map_err(|e| HostError::Other(e.into()))?
                );
            } else {
                eprintln!(
                    "enrolled {}: host certificate {} (serial {})",
                    done.name, done.certificate, done.serial
                );
                if let Some(d) = &done.drop_in {
                    eprintln!("wrote {d}; check with `sshd -t` and reload sshd");
                } else {
                    eprintln!(
                        "add this line to sshd_config, check with `sshd -t` and reload sshd:"
                    );
                }
                println!("{}", done.host_certificate_line);
            }
            Ok(())
        }
        HostCommand::Sync {
            ca,
            dir,
            bootstrap_fingerprint,
            max_age,
            ca_cert,
            reload_sshd,
            sshd_pid_file,
        } => {
            let ca_urls = crate::failover::parse_ca_urls(&ca)?;
            let max_age = jit_ssh_proto::parse_duration(&max_age)
                .map_err(|e| HostError::Usage(format!("--max-age: {e}")))?;
            sync(
                &SyncOptions {
                    ca_urls,
                    dir,
                    bootstrap_fingerprint,
                    max_age,
                    ca_cert,
                },
                reload_sshd.then_some(sshd_pid_file.as_path()),
                json,
            )
        }
        HostCommand::Session(opts) => {
            // The wrapper's exit status is the session's (the command's,
            // or 255 when the login is refused): nothing else may print.
            let code = crate::session::run(&opts);
            std::process::exit(i32::from(code))
        }
        HostCommand::Recorder(opts) => crate::recorder::run(&opts),
        HostCommand::Recordings { spool, retry } => {
            crate::recorder::list::run(&spool, retry.as_deref(), json)
        }
        HostCommand::Principals(opts) => crate::principals::run(&opts),
        HostCommand::Setup {
            dir,
            host,
            accounts,
            principals,
        } => {
            print!(
                "{}",
                crate::setup::setup(&dir, &host, &accounts, principals.command())?
            );
            Ok(())
        }
    }
}

/// A whole sync must finish within this, well inside the systemd unit's
/// `TimeoutStartSec=60s`: an answerer that trickles replies cannot keep
/// the stale check below from running.
const SYNC_DEADLINE: std::time::Duration = std::time::Duration::from_secs(40);
/// The CA re-signs its answers every minute; a tighter bound would call
/// every healthy host stale.
const MIN_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(60);

fn sync(opts: &SyncOptions, reload_sshd: Option<&Path>, json: bool) -> Result<(), HostError> {
    if opts.max_age < MIN_MAX_AGE {
        return Err(HostError::Usage(format!(
            "--max-age must be at least {} (the CA re-signs its KRL manifest every minute)",
            jit_ssh_proto::format_duration(MIN_MAX_AGE)
        )));
    }
    let timed_out = || HostError::CaUnreachable {
        url: crate::failover::list(&opts.ca_urls),
        detail: format!(
            "no complete answer within {}",
            jit_ssh_proto::format_duration(SYNC_DEADLINE)
        ),
    };
    let rt = runtime()?;
    let deadline = rt.block_on(async { tokio::time::Instant::now() + SYNC_DEADLINE });
    let mut outcome = rt
        .block_on(async { tokio::time::timeout_at(deadline, crate::sync::sync(opts)).await })
        .unwrap_or_else(|_| Err(timed_out()));
    let mut state = crate::sync::record_state(&opts.dir, opts.max_age, outcome.as_ref());
    // An enrolled host reports what it now holds (or its error) and renews
    // its certificate; not when the CA could not be reached at all.
    let checked = match crate::checkin::read_identity(&opts.dir) {
        Ok(Some(id)) if !matches!(outcome, Err(HostError::CaUnreachable { .. })) => {
            let run = crate::failover::first_answering(&opts.ca_urls, |url| {
                let (id, state) = (&id, &state);
                async move {
                    let http = crate::fetch::client(&url, opts.ca_cert.as_deref())?;
                    let base = url.as_str().trim_end_matches('/');
                    crate::checkin::checkin(&http, base, &opts.dir, id, state, reload_sshd).await
                }
            });
            let done = rt
                .block_on(async { tokio::time::timeout_at(deadline, run).await })
                .unwrap_or_else(|_| Err(timed_out()));
            Some((id, done))
        }
        Ok(_) => None,
        Err(e) => Some((Default::default(), Err(e))),
    };
    let checkin_error = match checked {
        Some((id, done)) => {
            state.checkin = Some(CheckinState::after(
                state.checkin.take().unwrap_or_default(),
                &id.name,
                done.as_ref(),
                crate::sync::now_unix(),
            ));
            if let Err(e) = crate::files::write_state(&opts.dir, &state) {
                eprintln!("jit-ssh: warning: {e}");
            }
            match (done, &mut outcome) {
                (Ok(c), Ok(synced)) => {
                    synced.checkin = Some(c);
                    None
                }
                (Ok(c), Err(_)) => {
                    report_checkin(&c);
                    None
                }
                (Err(e), _) => Some(e),
            }
        }
        None => None,
    };
    match &outcome {
        Ok(done) if json => println!(
            "{}",
            serde_json::to_string(done).map_err(|e| HostError::Other(e.into()))?
        ),
        Ok(done) => {
            println!(
                "KRL version {} ({} revoked serials) and {} CA key(s) installed in {}",
                done.krl_version,
                done.revoked_serials,
                done.ca_keys,
                opts.dir.display()
            );
            if let Some(c) = &done.checkin {
                report_checkin(c);
            }
        }
        Err(_) => eprintln!(
            "jit-ssh: the files in {} were left as they were",
            opts.dir.display()
        ),
    }
    // A usage error (bad flags, nothing trusted yet) is what to fix first.
    let usage = matches!(outcome, Err(HostError::Usage(_)));
    if state.stale && !usage {
        // Judged from the held manifest's signed time: a CA (or someone
        // answering for it) replaying an old answer does not reset it.
        let why = match state.krl_signed_at {
            Some(t) => format!(
                "the KRL held in {} was signed {} ago, over --max-age {}",
                opts.dir.display(),
                jit_ssh_proto::format_duration(std::time::Duration::from_secs(
                    state.checked_at.saturating_sub(t)
                )),
                jit_ssh_proto::format_duration(opts.max_age)
            ),
            None => format!("{} holds no signed KRL manifest", opts.dir.display()),
        };
        if let Err(e) = &outcome {
            eprintln!("jit-ssh: error: {e}");
        }
        return Err(HostError::Stale(why));
    }
    outcome?;
    match checkin_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn report_checkin(c: &crate::checkin::CheckedIn) {
    match &c.renewed_serial {
        Some(serial) => println!(
            "checked in as {}: host certificate renewed (serial {serial}, valid for {}){}",
            c.name,
            jit_ssh_proto::format_duration(std::time::Duration::from_secs(
                c.cert_valid_before.saturating_sub(crate::sync::now_unix())
            )),
            if c.sshd_reloaded {
                "; sshd reloaded"
            } else {
                "; reload sshd to serve it (or pass --reload-sshd)"
            }
        ),
        None => println!("checked in as {}", c.name),
    }
}
