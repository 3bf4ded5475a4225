//! `jit-ssh-host recorder`: the root-run host recorder. Session wrappers
//! connect to its unix socket and stream their sessions to it; it checks
//! who connected (SO_PEERCRED and /proc, not the wrapper's word), writes
//! each session as a signed, hash-chained recording into a root-only
//! spool, uploads the spool to the CA, and ends sshd sessions whose
//! wrapper died or overstayed the certificate. See docs/sessions.md.

pub mod expect;
pub mod identity;
pub mod list;
pub mod listen;
pub mod login_cgroup;
pub mod login_end;
pub mod peer;
pub mod pid_reuse;
pub mod protocol;
pub mod reap;
pub mod refused;
pub mod session;
pub mod space;
pub mod spool;
pub mod sweep;
#[cfg(test)]
mod test_job;
pub mod upload;
pub mod watched_logins;

use std::path::PathBuf;
use std::sync::Arc;

use jit_ssh_recording::ChunkPolicy;
use tokio::sync::Notify;

use crate::error::HostError;

/// Where the recorder listens by default (systemd's socket unit too).
pub const SOCKET: &str = "/run/jit-ssh/recorder.sock";

#[derive(Debug, Clone, clap::Args)]
pub struct RecorderOptions {
    /// The socket to bind when systemd did not pass one.
    #[arg(long, default_value = SOCKET)]
    pub socket: PathBuf,
    /// Root-only spool of recordings not yet acknowledged by the CA.
    #[arg(long, default_value = "/var/lib/jit-ssh/recordings")]
    pub spool: PathBuf,
    /// The host key that signs recordings (the one enrolled with the CA).
    #[arg(long, default_value = "/etc/ssh/ssh_host_ed25519_key")]
    pub host_key: PathBuf,
    /// Where sync keeps ca-keys (a session's certificate must be signed
    /// by one of them).
    #[arg(long, default_value = "/etc/ssh/jit-ssh")]
    pub dir: PathBuf,
    /// The CA URL(s) to upload to, as for sync; without one, recordings
    /// stay in the spool.
    #[arg(long = "ca-url", env = "JIT_SSH_CA_URL")]
    pub ca: Option<String>,
    /// Extra PEM root certificate for the CA's TLS.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// The session wrapper's binary (the path the CA's `[sessions]
    /// wrapper` names): a wrapper must run this file. Default: this
    /// program's own path.
    #[arg(long)]
    pub wrapper: Option<PathBuf>,
    /// Cut a chunk after this many seconds of a session (so an idle or
    /// slow session still reaches the CA).
    #[arg(long, default_value_t = 5)]
    pub chunk_seconds: u64,
    /// Free space the spool's filesystem must keep (e.g. 1GiB, 512MiB):
    /// below it new recorded sessions are refused and running ones ended
    /// (`spool-full`), keeping what was recorded.
    #[arg(long, default_value = "1GiB", value_parser = space::parse_size)]
    pub spool_min_free: u64,
    /// Percent of the spool's filesystem that must stay free, of its
    /// bytes and of its inodes (the larger of this and --spool-min-free,
    /// --spool-min-free-inodes applies).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub spool_min_free_percent: u8,
    /// Free inodes the spool's filesystem must keep: many small sessions
    /// (a directory and four files each) use up inodes before bytes.
    #[arg(long, default_value_t = 10_000)]
    pub spool_min_free_inodes: u64,
    /// The most the spool may hold (e.g. 20GiB); at it, as below the
    /// floor. Default: no cap of its own, only the floor.
    #[arg(long, value_parser = space::parse_size)]
    pub spool_max: Option<u64>,
    /// Where the cgroup v2 hierarchy is mounted, for logins' own
    /// cgroups (tests: a path that is not one shows a host without).
    /// Default: found in /proc/self/mountinfo.
    #[arg(long, hide = true)]
    pub cgroup_root: Option<PathBuf>,
}

pub fn run(opts: &RecorderOptions) -> Result<(), HostError> {
    let urls = opts
        .ca
        .as_deref()
        .map(crate::failover::parse_ca_urls)
        .transpose()?;
    let host_key = ssh_key::PrivateKey::read_openssh_file(&opts.host_key)
        .map_err(|e| HostError::Usage(format!("--host-key {}: {e}", opts.host_key.display())))?;
    if host_key.is_encrypted() {
        return Err(HostError::Usage(format!(
            "--host-key {}: an encrypted key cannot sign unattended",
            opts.host_key.display()
        )));
    }
    let wrapper = match &opts.wrapper {
        Some(w) => w.clone(),
        None => std::env::current_exe().map_err(|e| HostError::Other(e.into()))?,
    };
    let spool = spool::Spool::open(&opts.spool).map_err(|e| HostError::Other(e.into()))?;
    // Sessions a previous recorder left open are over (their wrappers
    // ended them when it went away): give each its end.
    for dir in spool.sessions() {
        if !dir.join("ended").exists() {
            match spool::end_orphan(&dir, &host_key) {
                Ok(()) => eprintln!(
                    "jit-ssh-host recorder: {}: left open by a previous recorder: ended (recorder-lost)",
                    dir.display()
                ),
                Err(e) => eprintln!("jit-ssh-host recorder: {}: cannot end it: {e}", dir.display()),
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| HostError::Other(e.into()))?;
    rt.block_on(async {
        // Caught before it says it listens, so that a stop right after a
        // start is a clean one too.
        let mut stop = stop_signals()?;
        let (stop_tx, stopping) = tokio::sync::watch::channel(false);
        let listener =
            listen::listener(&opts.socket).map_err(|e| HostError::Usage(e.to_string()))?;
        let wake = Arc::new(Notify::new());
        // Logins a previous recorder watched (it crashed, or was
        // restarted) are still to be ended at their certificate's end.
        let registry = expect::Shared::default();
        let cgroups = login_cgroup::start(opts.cgroup_root.as_deref());
        let kept = expect::restore(
            &registry,
            spool.dir().join(watched_logins::FILE),
            &opts.dir,
            cgroups,
        );
        if kept > 0 {
            eprintln!(
                "jit-ssh-host recorder: watching {kept} login(s) a previous recorder watched"
            );
        }
        let ctx = Arc::new(session::Context {
            spool: spool.clone(),
            host_key,
            dir: opts.dir.clone(),
            passwd: PathBuf::from("/etc/passwd"),
            wrapper,
            policy: ChunkPolicy {
                max_span: std::time::Duration::from_secs(opts.chunk_seconds.clamp(1, 600)),
                ..ChunkPolicy::default()
            },
            uploads: wake.clone(),
            registry: registry.clone(),
            pending: Default::default(),
            space: space::Guard::new(
                spool.dir(),
                space::Limits {
                    min_free: opts.spool_min_free,
                    min_free_percent: opts.spool_min_free_percent,
                    min_free_inodes: opts.spool_min_free_inodes,
                    max_spool: opts.spool_max,
                },
            ),
            stopping,
        });
        // Without it a wrapper killed at once would free what it left
        // from the certificate's end: no recorder rather than that.
        sweep::start_young(ctx.registry.clone()).map_err(|e| HostError::Other(e.into()))?;
        tokio::spawn(sweep::run(ctx.registry.clone(), ctx.wrapper.clone()));
        match urls {
            Some(urls) => {
                eprintln!(
                    "jit-ssh-host recorder: listening; uploading to {}",
                    crate::failover::list(&urls)
                );
                tokio::spawn(
                    upload::Uploader {
                        spool,
                        urls,
                        ca_cert: opts.ca_cert.clone(),
                        backoff: Default::default(),
                        restarted: Default::default(),
                    }
                    .run(wake),
                );
            }
            None => eprintln!(
                "jit-ssh-host recorder: listening; no --ca-url: recordings stay in {}",
                opts.spool.display()
            ),
        }
        let mut sessions = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        sessions.spawn(session::handle(stream, ctx.clone()));
                    }
                    Err(e) => {
                        eprintln!("jit-ssh-host recorder: accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
                Some(_) = sessions.join_next() => {}
                () = &mut stop => break,
            }
        }
        // No new session; each open one ends with what it recorded
        // saved, ended and signed (its person told why), within a bound:
        // one that has not by then is ended by the next recorder, as
        // after a crash.
        drop(listener);
        let open = sessions.len();
        let _ = stop_tx.send(true);
        let all = async { while sessions.join_next().await.is_some() {} };
        let ended = tokio::time::timeout(STOP_GRACE, all).await.is_ok();
        eprintln!(
            "jit-ssh-host recorder: stopping: {open} connection(s) open, {}",
            if ended {
                "all ended"
            } else {
                "not all ended in time"
            }
        );
        Ok(())
    })
}

/// How long a stopping recorder waits for its open sessions to end (the
/// notice, the hang-up and the drain of what the wrapper still sends
/// take about 2 s).
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// SIGTERM (systemd's stop) or SIGINT, caught from the moment this
/// returns.
fn stop_signals(
) -> Result<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>, HostError> {
    use tokio::signal::unix::{signal, SignalKind};
    let caught = |kind| signal(kind).map_err(|e| HostError::Other(e.into()));
    let mut term = caught(SignalKind::terminate())?;
    let mut int = caught(SignalKind::interrupt())?;
    Ok(Box::pin(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }))
}
