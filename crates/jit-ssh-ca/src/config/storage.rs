//! `[storage]`: where the CA's state and audit log live. `kind =
//! "embedded"` (the default) is sled and the chain files under
//! `data_dir`; `kind = "postgres"` is one PostgreSQL database for both,
//! shared by replicas (see docs/storage.md).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Collector;

/// The checked section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StorageConfig {
    /// sled under `data_dir` (one process).
    #[default]
    Embedded,
    Postgres(PostgresConfig),
}

/// A PostgreSQL database for the state store and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// A libpq-style connection string or URL without a password.
    pub url: String,
    /// The password, read at start from this file (mode 0600).
    pub password_file: Option<PathBuf>,
    pub sslmode: SslMode,
    /// PEM root certificates the server's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// Connections held at most.
    pub pool_size: u32,
    /// How long to wait for a connection (then the operation fails).
    pub connect_timeout: Duration,
}

/// Whether the connection to PostgreSQL is encrypted. There is no
/// "encrypt without checking whom": TLS here always verifies the server's
/// certificate and name, like libpq's `verify-full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain connections (a unix socket, or a trusted network).
    Disable,
    /// TLS, the certificate checked against `ca_file` and the host name.
    VerifyFull,
}

/// The `[storage]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFile {
    /// "embedded" (default) or "postgres".
    pub kind: Option<Spanned<String>>,
    /// postgres: `postgres://USER@HOST:PORT/DB` or `host=… user=… dbname=…`,
    /// without a password (use `password_file`).
    pub url: Option<Spanned<String>>,
    /// postgres: file holding the password, if the server asks for one.
    pub password_file: Option<PathBuf>,
    /// postgres: "verify-full" or "disable" (default "verify-full").
    pub sslmode: Option<Spanned<String>>,
    /// postgres: PEM file of the CA certificates for "verify-full".
    pub ca_file: Option<PathBuf>,
    /// postgres: connections held at most (default 8).
    pub pool_size: Option<u32>,
    /// postgres: how long to wait for a connection (default "5s").
    pub connect_timeout: Option<Spanned<String>>,
}

pub(super) fn storage(f: &StorageFile, c: &mut Collector<'_>) -> StorageConfig {
    let kind = f.kind.as_ref().map_or("embedded", |k| k.get_ref().as_str());
    match kind {
        "embedded" => {
            if f.url.is_some() || f.password_file.is_some() || f.sslmode.is_some() {
                c.problems.push(super::Problem {
                    line: None,
                    message: "storage: url, password_file and sslmode are for kind = \"postgres\""
                        .into(),
                });
            }
            StorageConfig::Embedded
        }
        "postgres" => postgres(f, c).map_or(StorageConfig::Embedded, StorageConfig::Postgres),
        other => {
            if let Some(k) = &f.kind {
                c.at(
                    k.span(),
                    format!("storage.kind: {other:?} is not \"embedded\" or \"postgres\""),
                );
            }
            StorageConfig::Embedded
        }
    }
}

fn postgres(f: &StorageFile, c: &mut Collector<'_>) -> Option<PostgresConfig> {
    let before = c.problems.len();
    let url = match &f.url {
        Some(u) => {
            match postgres::Config::from_str(u.get_ref()) {
                Ok(parsed) if parsed.get_password().is_some() => c.at(
                    u.span(),
                    "storage.url: holds a password; put it in password_file instead",
                ),
                Ok(_) => {}
                // The parser's message never repeats the URL.
                Err(e) => c.at(u.span(), format!("storage.url: {e}")),
            }
            u.get_ref().clone()
        }
        None => {
            c.problems.push(super::Problem {
                line: None,
                message: "storage: kind = \"postgres\" needs url".into(),
            });
            String::new()
        }
    };
    let sslmode = match &f.sslmode {
        None => SslMode::VerifyFull,
        Some(s) => match s.get_ref().as_str() {
            "disable" => SslMode::Disable,
            "verify-full" => SslMode::VerifyFull,
            other => {
                c.at(
                    s.span(),
                    format!(
                        "storage.sslmode: {other:?} is not \"verify-full\" or \"disable\" \
                         (TLS without checking the server's certificate is not offered)"
                    ),
                );
                SslMode::Disable
            }
        },
    };
    if sslmode == SslMode::VerifyFull && f.ca_file.is_none() {
        c.problems.push(super::Problem {
            line: None,
            message: "storage: sslmode = \"verify-full\" (the default) needs ca_file, \
                      or sslmode = \"disable\" for a unix socket or trusted network"
                .into(),
        });
    }
    let pool_size = f.pool_size.unwrap_or(8);
    if !(1..=256).contains(&pool_size) {
        c.problems.push(super::Problem {
            line: None,
            message: format!("storage.pool_size: {pool_size} is not between 1 and 256"),
        });
    }
    let connect_timeout = match &f.connect_timeout {
        Some(s) => c.duration(s, "storage.connect_timeout")?,
        None => Duration::from_secs(5),
    };
    (c.problems.len() == before).then(|| PostgresConfig {
        url,
        password_file: f.password_file.clone(),
        sslmode,
        ca_file: f.ca_file.clone(),
        pool_size,
        connect_timeout,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::config::parse;

    use crate::config::TEST_BASE as BASE;

    fn problems(storage: &str) -> String {
        parse(&format!("{BASE}\n[storage]\n{storage}"), "t")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn embedded_is_the_default() {
        assert_eq!(parse(BASE, "t").unwrap().storage, StorageConfig::Embedded);
        let c = parse(&format!("{BASE}\n[storage]\nkind = \"embedded\""), "t").unwrap();
        assert_eq!(c.storage, StorageConfig::Embedded);
    }

    #[test]
    fn a_postgres_section_is_read_with_its_defaults() {
        let c = parse(
            &format!(
                "{BASE}\n[storage]\nkind = \"postgres\"\n\
                 url = \"postgres://jit@db.internal:5432/jit\"\n\
                 password_file = \"/etc/jit-ssh/pg-password\"\nca_file = \"/etc/jit-ssh/pg-ca.pem\"\n"
            ),
            "t",
        )
        .unwrap();
        let StorageConfig::Postgres(pg) = c.storage else {
            panic!("not postgres")
        };
        assert_eq!(pg.sslmode, SslMode::VerifyFull);
        assert_eq!(pg.pool_size, 8);
        assert_eq!(pg.connect_timeout, Duration::from_secs(5));
        assert_eq!(
            pg.password_file.as_deref(),
            Some(std::path::Path::new("/etc/jit-ssh/pg-password"))
        );
    }

    #[test]
    fn a_password_in_the_url_is_refused_and_not_repeated() {
        for url in [
            "postgres://jit:hunter2@db/jit",
            "host=db user=jit password=hunter2 dbname=jit",
        ] {
            let e = problems(&format!(
                "kind = \"postgres\"\nurl = \"{url}\"\nsslmode = \"disable\""
            ));
            assert!(e.contains("line 9: storage.url: holds a password"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        // Unparsable, with a password in it: the message does not echo it.
        let e = problems(
            "kind = \"postgres\"\nurl = \"postgres://jit:hunter2@db:port/jit\"\nsslmode = \"disable\"",
        );
        assert!(e.contains("line 9: storage.url: "), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn tls_without_verification_and_bad_values_are_refused() {
        let e = problems("kind = \"postgres\"\nurl = \"host=db\"\nsslmode = \"require\"");
        assert!(e.contains("storage.sslmode: \"require\" is not"), "{e}");
        let e = problems("kind = \"postgres\"\nurl = \"host=db\"");
        assert!(e.contains("needs ca_file"), "{e}");
        let e = problems("kind = \"postgres\"\nsslmode = \"disable\"\npool_size = 0");
        assert!(e.contains("needs url") && e.contains("pool_size: 0"), "{e}");
        let e = problems("kind = \"etcd\"");
        assert!(
            e.contains("\"etcd\" is not \"embedded\" or \"postgres\""),
            "{e}"
        );
        let e = problems("url = \"host=db\"");
        assert!(e.contains("are for kind = \"postgres\""), "{e}");
    }
}
