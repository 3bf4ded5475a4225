//! The CA on PostgreSQL: the login flow through the real router with the
//! state in the database, the schema check a server does at start, and
//! `jit-ssh-ca migrate` / `serve` as an operator runs them. One cluster
//! for this binary (tests/pg), a fresh database per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod pg;
mod stored;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::http::StatusCode;
use common::TestCa;
use jit_ssh_audit::AuditLog;
use jit_ssh_ca::store::pg::migrate::{self, SchemaError};
use jit_ssh_ca::store::pg::OpenError;
use jit_ssh_ca::store::{PgAuditLog, PgStore, Store};
use jit_ssh_proto::api::RequestStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_is_issued_with_its_state_in_postgresql() {
    // The blocking client never runs on the async workers (the server
    // calls its store from spawn_blocking too).
    let opened = tokio::task::spawn_blocking(|| {
        let cfg = pg::database("a_login_is_issued_with_its_state_in_postgresql")?;
        let store = PgStore::open(&cfg).unwrap();
        Some((cfg, TestCa::with_store(std::sync::Arc::new(store))))
    })
    .await
    .unwrap();
    let Some((cfg, t)) = opened else {
        return;
    };
    let t = std::sync::Arc::new(t);
    let mut key = t.enroll("alice").await;
    let (s, created) = t.request("alice", "db-1.dev", "oncall", "10m").await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let (id, secret) = (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    );
    // A long poll waiting while the touch happens wakes with the certificate.
    let poll = {
        let (t, id) = (t.clone(), id.clone());
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let (s, v) = t
                .get(&format!("/v1/requests/{id}?wait=20"), Some(&secret))
                .await;
            (s, v, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, after, _) = t.touch(&id, &mut key).await;
    assert_eq!(
        (s, after["status"].as_str()),
        (StatusCode::OK, Some("issued")),
        "{after}"
    );
    let (s, polled, took) = poll.await.unwrap();
    assert_eq!(
        (s, polled["status"].as_str()),
        (StatusCode::OK, Some("issued")),
        "{polled}"
    );
    assert!(
        took < Duration::from_secs(10),
        "long poll did not wake: {took:?}"
    );
    let cert = polled["certificate"]["certificate"].as_str().unwrap();
    let cert = ssh_key::Certificate::from_openssh(cert).unwrap();
    assert_eq!(cert.valid_principals(), ["oncall@db-1.dev"]);
    let ca_key = t.ca.signer().public_key().fingerprint(Default::default());
    cert.validate([&ca_key]).unwrap();

    // The state is in the database: another connection reads it back,
    // and the enrollment's credential with it.
    let stored = tokio::task::spawn_blocking(move || {
        let other = PgStore::open(&cfg).unwrap();
        (
            other.request(&id).unwrap().unwrap(),
            other.credentials("alice").unwrap().len(),
        )
    })
    .await
    .unwrap();
    assert_eq!(stored.0.status, RequestStatus::Issued);
    assert_eq!(
        stored.0.certificate.as_ref().map(|c| c.serial),
        Some(cert.serial())
    );
    assert_eq!(stored.1, 1);
    assert!(t.audit.verify().unwrap().first_break.is_none());
}

/// The notifications on the replicas' channel within `wait`.
fn heard(c: &mut postgres::Client, wait: Duration) -> Vec<String> {
    use postgres::fallible_iterator::FallibleIterator;
    let mut heard = Vec::new();
    let mut n = c.notifications();
    let mut it = n.timeout_iter(wait);
    while let Some(m) = it.next().unwrap() {
        heard.push(m.payload().to_owned());
    }
    heard
}

#[test]
fn only_changes_a_long_poll_can_see_wake_the_replicas() {
    let Some(cfg) = pg::database("only_changes_a_long_poll_can_see_wake_the_replicas") else {
        return;
    };
    let store = PgStore::open(&cfg).unwrap();
    let mut other = postgres::Client::connect(&cfg.url, postgres::NoTls).unwrap();
    other.batch_execute("LISTEN jit_ssh_request").unwrap();

    let first = stored::request("r1", RequestStatus::PendingMfa);
    let claimed = jit_ssh_ca::store::AccessRequest {
        deciding_since: Some(5),
        ..first.clone()
    };
    store.put_request(&first).unwrap();
    // A touch's claim and its release show nothing to a long poll.
    assert!(store.swap_request(&first, &claimed).unwrap());
    assert!(store.swap_request(&claimed, &first).unwrap());
    assert_eq!(
        heard(&mut other, Duration::from_millis(300)),
        Vec::<String>::new()
    );

    // The decision does: every replica hears of it.
    assert!(store.swap_request(&first, &claimed).unwrap());
    let issued = jit_ssh_ca::store::AccessRequest {
        status: RequestStatus::Issued,
        deciding_since: None,
        ..first.clone()
    };
    assert!(store.swap_request(&claimed, &issued).unwrap());
    assert_eq!(
        heard(&mut other, Duration::from_secs(2)),
        vec!["r1".to_owned()]
    );
}

#[test]
fn a_server_refuses_a_schema_it_does_not_know() {
    let Some(cluster) = pg::cluster("a_server_refuses_a_schema_it_does_not_know") else {
        return;
    };
    let cfg = cluster.database();
    let name = pg::db_name(&cfg);
    assert!(PgStore::open(&cfg).is_ok());
    // Migrating again changes nothing.
    let again = PgStore::migrate(&cfg).unwrap();
    assert_eq!(
        (again.from, again.to),
        (migrate::latest(), migrate::latest())
    );

    // A newer jit-ssh-ca migrated it: this one must not serve it.
    cluster.sql(
        &name,
        "INSERT INTO jit_ssh_schema (version, name, checksum) VALUES (999, 'future', 'x')",
    );
    let e = open_err(&cfg);
    assert!(
        matches!(e, OpenError::Schema(SchemaError::Newer { found: 999, .. })),
        "{e}"
    );
    assert!(e.to_string().contains("upgrade jit-ssh-ca"), "{e}");
    // `migrate` refuses it too (it would not know what 999 did).
    assert!(PgStore::migrate(&cfg).is_err());

    // A migration edited after it was applied.
    cluster.sql(
        &name,
        "DELETE FROM jit_ssh_schema WHERE version = 999;
         UPDATE jit_ssh_schema SET checksum = 'edited' WHERE version = 1",
    );
    let e = open_err(&cfg);
    assert!(
        matches!(e, OpenError::Schema(SchemaError::Altered { version: 1 })),
        "{e}"
    );
}

#[test]
fn an_unmigrated_database_is_refused_until_migrate_runs() {
    let Some(cluster) = pg::cluster("an_unmigrated_database_is_refused_until_migrate_runs") else {
        return;
    };
    cluster.sql("postgres", "CREATE DATABASE bare");
    let cfg = cluster.config("bare");
    let e = open_err(&cfg);
    assert!(
        matches!(e, OpenError::Schema(SchemaError::Unmigrated)),
        "{e}"
    );
    assert!(e.to_string().contains("jit-ssh-ca migrate"), "{e}");
    // Four `migrate` at once (replicas started together): one applies,
    // the others wait and find nothing to do.
    let results: Vec<_> = (0..4)
        .map(|_| {
            let cfg = cfg.clone();
            std::thread::spawn(move || PgStore::migrate(&cfg).unwrap())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|m| m.from == 0).count(),
        1,
        "{results:?}"
    );
    let store = PgStore::open(&cfg).unwrap();
    assert_eq!(store.krl_version().unwrap(), 1);
}

fn open_err(cfg: &jit_ssh_ca::config::storage::PostgresConfig) -> OpenError {
    match PgStore::open(cfg) {
        Ok(_) => panic!("opened"),
        Err(e) => e,
    }
}

fn ca() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jit-ssh-ca"))
}

fn write_config(dir: &Path, url: &str) -> std::path::PathBuf {
    let text = format!(
        r#"listen = "127.0.0.1:0"
public_url = "http://localhost:0"
data_dir = "{dir}/data"
ca_key = {{ kind = "file", path = "{dir}/ca/ca_key" }}

[storage]
kind = "postgres"
url = "{url}"
sslmode = "disable"
pool_size = 2

[[users]]
name = "alice"
groups = ["sre"]
"#,
        dir = dir.display()
    );
    let path = dir.join("ca.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn migrate_then_serve_as_an_operator_does() {
    let Some(cluster) = pg::cluster("migrate_then_serve_as_an_operator_does") else {
        return;
    };
    cluster.sql("postgres", "CREATE DATABASE operator");
    let tmp = tempfile::tempdir().unwrap();
    assert!(ca()
        .args(["init", "--dir"])
        .arg(tmp.path().join("ca"))
        .status()
        .unwrap()
        .success());
    let config = write_config(tmp.path(), &cluster.config("operator").url);

    // Before `migrate`: serve refuses, saying what to run.
    let out = ca()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("run `jit-ssh-ca migrate --config"), "{err}");

    let out = ca()
        .arg("migrate")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("migrated from version 0 to 2"), "{said}");
    let out = ca()
        .arg("migrate")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("already at version 2"));

    // Then it serves (and stops on SIGTERM).
    let mut child = ca()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let listening = rx.recv_timeout(Duration::from_secs(30));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let line = listening.unwrap();
    assert!(line.starts_with("jit-ssh-ca listening on"), "{line}");
    assert!(status.success(), "{status}");
    // The audit log is the database's too: no chain files beside the data.
    let data = tmp.path().join("data");
    assert!(data.is_dir());
    assert!(
        !data.join("audit").exists(),
        "audit files in {}",
        data.display()
    );
}

#[test]
fn verify_full_never_falls_back_to_a_plain_connection() {
    let Some(cluster) = pg::cluster("verify_full_never_falls_back_to_a_plain_connection") else {
        return;
    };
    let plain = cluster.database();
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = tmp.path().join("pg-ca.pem");
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&ca_file, ca.cert.pem()).unwrap();
    // This server offers no TLS (a unix socket): verify-full refuses to
    // talk to it rather than send anything in the clear.
    let tls = jit_ssh_ca::config::storage::PostgresConfig {
        sslmode: jit_ssh_ca::config::storage::SslMode::VerifyFull,
        ca_file: Some(ca_file),
        connect_timeout: Duration::from_secs(2),
        ..plain.clone()
    };
    let e = open_err(&tls);
    assert!(matches!(e, OpenError::Connect(_)), "{e}");
    assert!(PgStore::open(&plain).is_ok());
}

#[test]
fn check_config_reports_the_storage_files() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    assert!(ca()
        .args(["init", "--dir"])
        .arg(tmp.path().join("ca"))
        .status()
        .unwrap()
        .success());
    let pw = tmp.path().join("pg-password");
    std::fs::write(&pw, "s3cret\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = write_config(tmp.path(), "host=/nonexistent user=jit dbname=jit");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "sslmode = \"disable\"",
        &format!(
            "sslmode = \"verify-full\"\nca_file = \"{0}/missing.pem\"\npassword_file = \"{0}/pg-password\"",
            tmp.path().display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let out = ca().arg("check-config").arg(&config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("2 problem(s)"), "{err}");
    assert!(
        err.contains("pg-password is open to group or others"),
        "{err}"
    );
    assert!(err.contains("storage.ca_file"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn offline_sign_with_the_config_records_in_the_databases_chain() {
    use jit_ssh_audit::AuditQuery;
    let Some(cluster) = pg::cluster("offline_sign_with_the_config_records_in_the_databases_chain")
    else {
        return;
    };
    let db = cluster.database();
    let tmp = tempfile::tempdir().unwrap();
    assert!(ca()
        .args(["init", "--dir"])
        .arg(tmp.path().join("ca"))
        .status()
        .unwrap()
        .success());
    let config = write_config(tmp.path(), &db.url);
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let key = tmp.path().join("alice");
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap()
        .success());
    let out = ca()
        .args(["sign", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .arg("--ca-key")
        .arg(tmp.path().join("ca/ca_key"))
        .args([
            "--user",
            "alice",
            "--host",
            "db-1.prod",
            "--as",
            "postgres",
            "--ttl",
            "10m",
            "--reason",
            "INC-1: every replica down",
        ])
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = PgAuditLog::open(&db).unwrap();
    let issued = audit
        .query(&AuditQuery {
            kinds: vec!["certificate_issued".into()],
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(
        issued.len(),
        1,
        "the replicas' chain holds the offline issuance"
    );
    assert!(!data.join("audit").exists(), "no second chain under --data");
    audit.verify().unwrap();
}
