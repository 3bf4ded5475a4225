//! From `[storage]` to a pool of connections: the password read from its
//! file, TLS (rustls on ring, the server's certificate verified against
//! `ca_file`) or none, and a bounded wait for a connection so that an
//! unreachable database fails a request instead of hanging it. Every
//! connection also carries the limits of [`super::limits`]: how long a
//! session may sit idle inside a transaction, and TCP keepalives.

use std::str::FromStr;

use postgres::NoTls;
use r2d2_postgres::{r2d2, PostgresConnectionManager};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::prepared::{Conn, Preparing};
use crate::config::storage::{PostgresConfig, SslMode};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("storage.url is not a PostgreSQL connection string")]
    Url(#[source] postgres::Error),
    #[error("reading storage.password_file {path}")]
    Password {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "storage.password_file {path} is open to group or others (mode {mode:03o}); \
         run `chmod 600 {path}`"
    )]
    PasswordOpen { path: String, mode: u32 },
    #[error("reading storage.ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("setting up TLS for PostgreSQL")]
    Tls(#[source] rustls::Error),
    #[error("connecting to PostgreSQL")]
    Pool(#[source] r2d2::Error),
}

/// The pool, with or without TLS (two types under one roof).
pub(super) enum Pool {
    Plain(r2d2::Pool<Preparing<PostgresConnectionManager<NoTls>>>),
    Tls(r2d2::Pool<Preparing<PostgresConnectionManager<MakeRustlsConnect>>>),
}

impl Pool {
    /// Runs `f` on a pooled connection. A connection that failed with an
    /// error saying it is gone (the server ended the session, say, after
    /// this replica froze inside a transaction) is not lent out again: the
    /// blocking client only notices that it is closed when next used, so
    /// the pool would otherwise fail one more request with it.
    pub(super) fn with<T, E>(&self, f: impl FnOnce(&mut Conn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<r2d2::Error> + std::error::Error + 'static,
    {
        let run = |c: &mut Conn| {
            let result = f(c);
            if let Err(e) = &result {
                if crate::store::database_unavailable(e) {
                    c.spoil();
                }
            }
            result
        };
        match self {
            Pool::Plain(p) => run(&mut *p.get()?),
            Pool::Tls(p) => run(&mut *p.get()?),
        }
    }
}

pub(super) fn pool(cfg: &PostgresConfig) -> Result<Pool, ConnectError> {
    match connector(cfg)? {
        Connector::Plain(pg) => {
            build(cfg, Preparing(PostgresConnectionManager::new(pg, NoTls))).map(Pool::Plain)
        }
        Connector::Tls(pg, tls) => {
            build(cfg, Preparing(PostgresConnectionManager::new(pg, tls))).map(Pool::Tls)
        }
    }
}

/// How to open one connection with `[storage]`'s settings: what the pool
/// uses, and what a connection of its own (a LISTEN) is made with.
#[derive(Clone)]
pub(super) enum Connector {
    Plain(postgres::Config),
    Tls(postgres::Config, MakeRustlsConnect),
}

impl Connector {
    pub(super) fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        match self {
            Connector::Plain(pg) => pg.connect(NoTls),
            Connector::Tls(pg, tls) => pg.connect(tls.clone()),
        }
    }
}

pub(super) fn connector(cfg: &PostgresConfig) -> Result<Connector, ConnectError> {
    let mut pg = postgres::Config::from_str(&cfg.url).map_err(ConnectError::Url)?;
    if let Some(path) = &cfg.password_file {
        pg.password(read_password(path)?.trim_end_matches(['\r', '\n']));
    }
    pg.application_name("jit-ssh-ca");
    pg.connect_timeout(cfg.connect_timeout);
    // A frozen replica's session must not hold its locks for ever.
    super::limits::apply(&mut pg);
    Ok(match cfg.sslmode {
        SslMode::Disable => {
            pg.ssl_mode(postgres::config::SslMode::Disable);
            Connector::Plain(pg)
        }
        SslMode::VerifyFull => {
            pg.ssl_mode(postgres::config::SslMode::Require);
            Connector::Tls(pg, MakeRustlsConnect::new(client_config(cfg)?))
        }
    })
}

/// Opens the pool with one connection (an unreachable or refusing
/// server is reported at start, not at the first request).
fn build<M: r2d2::ManageConnection>(
    cfg: &PostgresConfig,
    m: M,
) -> Result<r2d2::Pool<M>, ConnectError> {
    r2d2::Pool::builder()
        .max_size(cfg.pool_size)
        .min_idle(Some(1))
        .connection_timeout(cfg.connect_timeout)
        // No empty query before every use (a round trip per store call,
        // a dozen per login): a connection that died fails its next
        // statement, which the caller sees (503 when the database is
        // unreachable), and the pool then drops it as broken.
        .test_on_check_out(false)
        // The pool's own log lines could name the server; ours are enough.
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .build(m)
        .map_err(ConnectError::Pool)
}

/// The password file's content; refused when others may read it (as the
/// CA key is).
pub fn read_password(path: &std::path::Path) -> Result<String, ConnectError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = || path.display().to_string();
    let io = |source| ConnectError::Password {
        path: shown(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConnectError::PasswordOpen {
            path: shown(),
            mode,
        });
    }
    std::fs::read_to_string(path).map_err(io)
}

/// Problems with the files `[storage]` names, for `check-config` (which
/// does not connect).
pub fn check_files(cfg: &PostgresConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(p) = &cfg.password_file {
        if let Err(e) = read_password(p) {
            problems.push(format!("{e}"));
        }
    }
    if cfg.sslmode == SslMode::VerifyFull {
        if let Err(e) = client_config(cfg) {
            problems.push(format!("{e}"));
        }
    }
    problems
}

fn client_config(cfg: &PostgresConfig) -> Result<rustls::ClientConfig, ConnectError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let path = cfg.ca_file.as_ref().ok_or_else(|| ConnectError::CaFile {
        path: String::new(),
        message: "sslmode = \"verify-full\" needs ca_file".into(),
    })?;
    let bad = |message: String| ConnectError::CaFile {
        path: path.display().to_string(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ConnectError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_password_file_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_password(&p).unwrap_err().to_string();
        assert!(e.contains("mode 644") && e.contains("chmod 600"), "{e}");
        assert!(!e.contains("s3cret"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password(&p).unwrap(), "s3cret\n");
    }
}
