//! `sslmode = "verify-full"` against a PostgreSQL that speaks TLS (on
//! 127.0.0.1, its own cluster: the shared one has no TCP at all): the
//! store connects when the server's certificate chains to `ca_file` and
//! names the host, and refuses otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg;

use std::time::Duration;

use jit_ssh_ca::config::storage::{PostgresConfig, SslMode};
use jit_ssh_ca::store::{PgStore, Store};

#[test]
fn verify_full_connects_to_the_right_server_only() {
    if !pg::available("verify_full_connects_to_the_right_server_only") {
        return;
    }
    let server = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    // PostgreSQL takes a port number, not a listening socket: ask the
    // system for a free one (nothing else on this machine races for it
    // in the few ms until the server binds it).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (cert_pem, key_pem) = (server.cert.pem(), server.signing_key.serialize_pem());
    let cluster = pg::Cluster::start_with(port, |dir| {
        std::fs::write(dir.join("server.crt"), &cert_pem).unwrap();
        std::fs::write(dir.join("server.key"), &key_pem).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        format!(
            "listen_addresses = '127.0.0.1'\nssl = on\n\
             ssl_cert_file = '{0}/server.crt'\nssl_key_file = '{0}/server.key'\n",
            dir.display()
        )
    });
    // A database over the unix socket (as the harness does), then TLS.
    let unix = cluster.database();
    let name = pg::db_name(&unix);
    let tmp = tempfile::tempdir().unwrap();
    let right = tmp.path().join("right.pem");
    std::fs::write(&right, &cert_pem).unwrap();
    let wrong = tmp.path().join("wrong.pem");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let tls = |host: &str, ca: &std::path::Path| PostgresConfig {
        url: format!("host={host} port={port} user=jit dbname={name}"),
        sslmode: SslMode::VerifyFull,
        ca_file: Some(ca.to_owned()),
        connect_timeout: Duration::from_secs(2),
        ..unix.clone()
    };

    let store = PgStore::open(&tls("localhost", &right)).unwrap();
    store.block_user("mallory").unwrap();
    assert!(store.is_blocked("mallory").unwrap());
    // The session really is encrypted (the server says so).
    drop(store);
    let mut admin = postgres::Config::new()
        .host_path(cluster.dir())
        .port(port)
        .user("jit")
        .dbname(&name)
        .connect(postgres::NoTls)
        .unwrap();
    let store = PgStore::open(&tls("localhost", &right)).unwrap();
    let encrypted: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE s.ssl AND a.application_name = 'jit-ssh-ca'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(encrypted >= 1, "no TLS session from the store");
    drop(store);

    // A certificate from another CA, or for another name: refused.
    assert!(PgStore::open(&tls("localhost", &wrong)).is_err());
    assert!(PgStore::open(&tls("127.0.0.1", &right)).is_err());
}
