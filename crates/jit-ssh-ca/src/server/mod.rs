//! Running the CA: open its state, bind, serve HTTP(S) and the local admin
//! socket, and stop cleanly on SIGTERM or SIGINT.

pub mod admin;
mod audit_log;
mod conn;
mod feeds;
mod retention;
pub mod signers;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::storage::StorageConfig;
use crate::config::{Config, SignerConfig};
use crate::http;
use crate::service::{Ca, Slots};
use crate::store::{PgStore, SledStore, Store};

/// Subdirectories of the data directory.
pub const AUDIT_DIR: &str = "audit";
pub const STATE_DIR: &str = "state";
pub const ADMIN_SOCKET: &str = "admin.sock";

/// Opens everything the CA needs; fails with a message naming what.
pub fn open_ca(config: Config) -> anyhow::Result<Ca> {
    let data = config.data_dir.clone();
    create_private_dir(&data)?;
    // Before anything else in the directory is read: a newer layout is
    // refused, not half-read and rewritten.
    crate::data_format::check_and_stamp(&data)?;
    let pass = signers::passphrase_file(&config.signer);
    // A rotation, once started, names the keys (DATA/rotation.json).
    let rotation = crate::rotation_state::RotationFile::load(&data)
        .context("reading the CA key rotation state")?;
    let user_keys = open_slots(
        rotation.as_ref().and_then(|r| r.user.as_ref()),
        &config.signer,
        None,
        "the CA key",
    )?;
    let store = open_store(&config, &data)?;
    let audit = audit_log::OpenedAudit::open(&config.storage, &data)?;
    // The host CA key, if hosts are enrolled: encrypted with the same
    // passphrase as the CA key when `init` was given one.
    let host_keys = match &config.hosts.host_ca_key {
        Some(k) => Some(open_slots(
            rotation.as_ref().and_then(|r| r.host.as_ref()),
            k,
            pass,
            "the host CA key",
        )?),
        None => None,
    };
    let ca = Ca::new(config, user_keys.active.clone(), store, audit.log())
        .map_err(anyhow::Error::from)?;
    let metrics = ca.metrics.clone();
    audit.observe_group_sizes(move |n| metrics.audit_group(n));
    if let Some(p) = &ca.config.metrics.token_file {
        let token = std::fs::read_to_string(p)
            .with_context(|| format!("reading the metrics token {}", p.display()))?;
        anyhow::ensure!(
            !token.trim().is_empty(),
            "the metrics token file {} is empty",
            p.display()
        );
        ca.metrics.require_token(&token);
    }
    Ok(ca.with_key_slots(user_keys, host_keys))
}

/// The keys of one role: those a rotation state names (key files), or the
/// configured key alone. A token key (PKCS#11) is not rotated here.
fn open_slots(
    state: Option<&crate::rotation_state::RoleState>,
    cfg: &SignerConfig,
    passphrase_fallback: Option<&Path>,
    what: &str,
) -> anyhow::Result<Slots> {
    match cfg {
        SignerConfig::File {
            path,
            passphrase_file,
        } => Slots::open(
            state,
            path,
            passphrase_file.as_deref().or(passphrase_fallback),
        )
        .with_context(|| format!("loading {what} ({} or the rotation state)", path.display())),
        SignerConfig::Pkcs11(_) => {
            anyhow::ensure!(
                state.is_none(),
                "{what} is on a PKCS#11 token, but the rotation state in the data directory names key files; rotation is for key files only"
            );
            Ok(Slots::single(
                signers::open(cfg, passphrase_fallback, what)?,
                None,
            ))
        }
    }
}

/// The state store `[storage]` names: sled under the data directory, or
/// PostgreSQL (whose schema must be exactly this version's).
fn open_store(config: &Config, data: &Path) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &config.storage {
        StorageConfig::Embedded => {
            Arc::new(SledStore::open(&data.join(STATE_DIR)).with_context(|| {
                format!(
                    "opening {} (is another jit-ssh-ca running on this data directory?)",
                    data.join(STATE_DIR).display()
                )
            })?)
        }
        StorageConfig::Postgres(pg) => {
            Arc::new(PgStore::open(pg).context("opening the PostgreSQL state store")?)
        }
    })
}

/// Makes `dir` (and parents) with mode 0700 if missing; refuses one that
/// others can enter.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .permissions()
        .mode()
        & 0o777;
    anyhow::ensure!(
        mode & 0o077 == 0,
        "data directory {} is open to group or others (mode {mode:03o}); run `chmod 700 {}`",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Serves `ca` on `listener` until SIGTERM/SIGINT, then drains for up to
/// 10 s. `on_ready` runs once the admin socket is up.
pub async fn serve(
    ca: Ca,
    listener: std::net::TcpListener,
    on_ready: impl FnOnce(&Arc<Ca>),
) -> anyhow::Result<()> {
    let ca = Arc::new(ca);
    let admin = admin::start(ca.clone()).await?;
    let metrics_listener =
        match ca.config.metrics.listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!("binding the metrics listener [metrics] listen {addr}")
            })?),
            None => None,
        };
    let app = http::app(ca.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    {
        let handle = handle.clone();
        let stop = shutdown_signal()?;
        tokio::spawn(async move {
            stop.await;
            tracing::info!("shutting down");
            handle.graceful_shutdown(Some(Duration::from_secs(10)));
        });
    }
    ca.start_notifications(crate::notify::Backoff::default());
    feeds::start(ca.clone());
    retention::start(ca.clone());
    let checkpoints = tokio::spawn(checkpoint_every(
        ca.clone(),
        ca.config.limits.checkpoint_interval,
    ));
    listener.set_nonblocking(true).context("listener")?;
    let limits = ca.config.connections;
    let guard = conn::Guard::new(&limits);
    ca.metrics.count_connections_with(guard.open_counter());
    let metrics_tasks = start_metrics(ca.clone(), metrics_listener);
    on_ready(&ca);
    conn::warn_if_over_file_limit(&limits);
    match &ca.config.tls {
        Some(tls) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let rustls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .with_context(|| {
                    format!(
                        "loading TLS certificate {} and key {}",
                        tls.cert.display(),
                        tls.key.display()
                    )
                })?;
            // The guard sits under TLS: the cap and the idle rule hold
            // from the first handshake byte.
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls)
                .handshake_timeout(limits.header_timeout)
                .acceptor(guard);
            guarded(listener, acceptor, &limits)
                .context("TLS listener")?
                .handle(handle)
                .serve(app)
                .await
                .context("serving HTTPS")?;
        }
        None => {
            guarded(listener, guard, &limits)
                .context("listener")?
                .handle(handle)
                .serve(app)
                .await
                .context("serving HTTP")?;
        }
    }
    admin.stop().await;
    checkpoints.abort();
    for t in metrics_tasks {
        t.abort();
    }
    // The last records get a signature too, so an export taken from this
    // data directory later verifies to its end.
    checkpoint(ca, "shutdown").await;
    Ok(())
}

/// A server on `listener` with `acceptor` (the [`conn::Guard`], alone or
/// under TLS) and hyper's side of the connection limits: a request head
/// must arrive within `header_timeout`, counted from the end of the
/// previous response on a kept-alive connection; a connection's first
/// request within `header_timeout` of the acceptor finishing (this also
/// bounds hyper's protocol detection, which has no timeout of its own).
pub(crate) fn guarded<A>(
    listener: std::net::TcpListener,
    acceptor: A,
    limits: &crate::config::connections::ConnectionLimits,
) -> std::io::Result<axum_server::Server<SocketAddr, A>> {
    let mut server = axum_server::from_tcp(listener)?.acceptor(acceptor);
    server
        .http_builder()
        .http1()
        .header_read_timeout(limits.header_timeout);
    Ok(server.first_request_timeout(limits.header_timeout))
}

/// Serves `/metrics`, `/livez` and `/readyz` on their own listener when
/// configured, and keeps histogram samples drained into their buckets
/// when nobody scrapes.
fn start_metrics(
    ca: Arc<Ca>,
    listener: Option<tokio::net::TcpListener>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![{
        let ca = ca.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                ca.metrics.upkeep();
            }
        })
    }];
    if let Some(listener) = listener {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "metrics listener");
            ca.metrics.set_bound(addr);
        }
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, http::metrics_app(ca)).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        }));
    }
    tasks
}

/// Signs a checkpoint of the audit chain every `interval` (when records
/// were added since the last one).
async fn checkpoint_every(ca: Arc<Ca>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        checkpoint(ca.clone(), "interval").await;
    }
}

/// Signs a checkpoint on the blocking pool; a failure is logged (the next
/// one, or the next export, signs the same records).
async fn checkpoint(ca: Arc<Ca>, trigger: &'static str) {
    let signed =
        tokio::task::spawn_blocking(move || ca.checkpoint(jit_ssh_audit::Actor::System, trigger))
            .await;
    match signed {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, trigger, "signing an audit checkpoint failed"),
        Err(e) => tracing::error!(error = %e, trigger, "signing an audit checkpoint failed"),
    }
}

/// SIGTERM or SIGINT, caught from the moment this returns, not from when
/// the returned future is first polled: the CA says it listens only
/// after this, so a stop that follows at once (systemd, a test) shuts it
/// down cleanly instead of the signal's default action killing it.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("catching SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("catching SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}
