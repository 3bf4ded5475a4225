//! Backup of a running CA through its admin socket, and restore: a backup
//! taken while certificates are being issued restores to a CA whose audit
//! chain verifies, whose state holds no certificate without its record,
//! and whose users can still log in; a tampered, cut or newer backup is
//! refused by name and leaves the target empty.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../src/store/sled_reopen.rs"]
mod sled_reopen;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use common::TestCa;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use jit_ssh_audit::{Actor, AuditLog, AuditQuery};
use jit_ssh_ca::backup::restore::{restore, RestoreError};
use jit_ssh_ca::backup::{BackupError, BackupReport};
use jit_ssh_ca::server::admin::{self, AdminRequest, AdminResponse};
use jit_ssh_ca::signer::{CaSigner, FileSigner};

/// Budgets out of the way: the loop issues as fast as it can.
const LIMITS: &str =
    "requests_per_minute_per_user = 1000000\nrequests_per_minute_per_address = 1000000";

fn signer() -> Arc<FileSigner> {
    Arc::new(FileSigner::new(
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap(),
    ))
}

/// Requests and confirms a certificate for `user`; its serial.
async fn issue(t: &TestCa, user: &str, key: &mut SoftPasskey) -> u64 {
    let (s, created) = t.request(user, "web1.dev", "oncall", "10m").await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (s, body, _) = t.touch(&id, key).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, state) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    state["certificate"]["serial"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn backup_over_socket(t: &TestCa, to: &Path) -> Result<BackupReport, String> {
    let socket = t.dir.path().join(jit_ssh_ca::server::ADMIN_SOCKET);
    let req = AdminRequest::Backup {
        to: to.to_owned(),
        include_key: false,
    };
    match admin::request(&socket, &req).await.unwrap() {
        AdminResponse::BackedUp { report } => Ok(report),
        AdminResponse::Error { message } => Err(message),
        other => panic!("unexpected answer {other:?}"),
    }
}

/// Serials of the certificates the requests in a state directory hold.
fn serials_in_state(state: &Path) -> Vec<u64> {
    let db = sled_reopen::until_unlocked(|| sled::open(state));
    db.open_tree("requests")
        .unwrap()
        .iter()
        .filter_map(|item| {
            let (_, v) = item.unwrap();
            let req: jit_ssh_ca::store::AccessRequest = serde_json::from_slice(&v).unwrap();
            req.certificate.map(|c| c.serial)
        })
        .collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            assert_eq!(mode(&p), 0o700, "{}", p.display());
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_during_issuance_restores_to_a_ca_that_verifies_and_issues() {
    let key = signer();
    let t = Arc::new(TestCa::on_dir(
        tempfile::tempdir().unwrap(),
        LIMITS,
        key.clone(),
    ));
    let mut alice = t.enroll("alice").await;
    let bob = t.enroll("bob").await;
    let before = issue(&t, "alice", &mut alice).await;
    let socket = admin::start(t.ca.clone()).await.unwrap();

    // Two users issue in a loop while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for (user, mut passkey) in [("bob", bob), ("alice", alice)] {
        let (t, stop, issued) = (t.clone(), stop.clone(), issued.clone());
        loops.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                issue(&t, user, &mut passkey).await;
                issued.fetch_add(1, Ordering::SeqCst);
            }
            passkey
        }));
    }
    while issued.load(Ordering::SeqCst) < 10 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let out = tempfile::tempdir().unwrap();
    let to = out.path().join("backup");
    let report = backup_over_socket(&t, &to).await.unwrap();
    let at_backup = issued.load(Ordering::SeqCst);
    while issued.load(Ordering::SeqCst) < at_backup + 10 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut alice = None;
    for l in loops {
        alice = Some(l.await.unwrap());
    }
    let mut alice = alice.unwrap();
    socket.stop().await;
    assert!(
        report.audit_records > 0 && report.state_entries > 0,
        "{report:?}"
    );
    assert!(
        report.keys_left_out.contains(&PathBuf::from("unused")),
        "{report:?}"
    );

    // Private to the CA's user.
    assert_eq!(mode(&to), 0o700);
    let mut files = Vec::new();
    all_files(&to, &mut files);
    assert!(files.len() >= 4, "{files:?}");
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }

    // The copy verifies whole as an export, with the CA public key only
    // (what `jit-ssh audit verify` does).
    let export = std::fs::File::open(to.join("audit/chain.jsonl")).unwrap();
    let checked = jit_ssh_audit::checkpoint::verify_export(
        std::io::BufReader::new(export),
        std::slice::from_ref(key.public_key()),
    )
    .unwrap();
    assert_eq!(checked.problem, None);
    assert_eq!(checked.last_seq, report.audit_records);

    let data = tempfile::tempdir().unwrap();
    let done = restore(&to, data.path(), Some(key.public_key())).unwrap();
    assert_eq!(done.manifest.audit_records, report.audit_records);
    assert_eq!(
        std::fs::read_to_string(data.path().join("format")).unwrap(),
        "1\n"
    );

    // Every certificate the restored state knows has its record.
    let serials = serials_in_state(&data.path().join("state"));
    assert!(
        serials.contains(&before),
        "the pre-loop certificate is restored"
    );
    assert!(
        serials.len() as u64 > 1 && (serials.len() as u64) < 1 + issued.load(Ordering::SeqCst),
        "the backup holds part of the loop: {} of {} certificates",
        serials.len(),
        1 + issued.load(Ordering::SeqCst)
    );
    let r = TestCa::on_dir(data, LIMITS, key.clone());
    let verified = r.audit.verify().unwrap();
    assert_eq!(verified.first_break, None);
    assert_eq!(verified.records, report.audit_records);
    assert_eq!(verified.head.hash.to_string(), report.audit_head_hash);
    for s in &serials {
        let found = r
            .audit
            .query(&AuditQuery {
                serial: Some(*s),
                kinds: vec!["certificate_issued".into()],
                limit: 1,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            found.len(),
            1,
            "serial {s} has no certificate_issued record"
        );
    }

    // Alice, enrolled before the backup, logs in on the restored CA.
    let serial = issue(&r, "alice", &mut alice).await;
    assert!(r.audit.serial_issued(serial).unwrap());
    assert_eq!(r.audit.verify().unwrap().first_break, None);
}

/// A small CA, backed up once; returns it, its key and the backup.
async fn small_backup() -> (TestCa, Arc<FileSigner>, tempfile::TempDir, PathBuf) {
    let key = signer();
    let t = TestCa::on_dir(tempfile::tempdir().unwrap(), LIMITS, key.clone());
    let mut alice = t.enroll("alice").await;
    issue(&t, "alice", &mut alice).await;
    let out = tempfile::tempdir().unwrap();
    let to = out.path().join("backup");
    let (ca, dir) = (t.ca.clone(), to.clone());
    tokio::task::spawn_blocking(move || ca.backup(&dir, false, Actor::System))
        .await
        .unwrap()
        .unwrap();
    (t, key, out, to)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// Restores a changed copy of `backup` into an empty directory: the
/// error, and that the directory stayed empty.
fn refused(backup: &Path, change: impl FnOnce(&Path)) -> String {
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("copy");
    copy_dir(backup, &copy);
    change(&copy);
    let target = work.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let e = restore(&copy, &target, None).unwrap_err();
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "target written after: {e}"
    );
    format!("{:#}", anyhow::Error::from(e))
}

#[tokio::test]
async fn a_tampered_cut_or_newer_backup_is_refused_by_name_and_the_target_stays_empty() {
    let (t, _key, _out, to) = small_backup().await;

    let e = refused(&to, |b| {
        let p = b.join("audit/chain.jsonl");
        let mut bytes = std::fs::read(&p).unwrap();
        let i = bytes.len() / 2;
        bytes[i] ^= 0x01;
        std::fs::write(&p, bytes).unwrap();
    });
    assert!(e.contains("audit/chain.jsonl was altered"), "{e}");

    let e = refused(&to, |b| {
        let p = b.join("audit/chain.jsonl");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 40]).unwrap();
    });
    assert!(e.contains("audit/chain.jsonl was altered"), "{e}");

    let e = refused(&to, |b| std::fs::remove_file(b.join("state.dump")).unwrap());
    assert!(e.contains("state.dump is missing"), "{e}");

    let e = refused(&to, |b| std::fs::write(b.join("extra"), "x").unwrap());
    assert!(
        e.contains("extra is in the backup but not in its manifest"),
        "{e}"
    );

    let e = refused(&to, |b| {
        let p = b.join("manifest.json");
        let text = std::fs::read_to_string(&p).unwrap();
        let edited = text.replace("\"state_entries\": ", "\"state_entries\": 1");
        assert_ne!(text, edited);
        std::fs::write(&p, edited).unwrap();
    });
    assert!(e.contains("manifest.json was edited"), "{e}");

    let e = refused(&to, |b| {
        std::fs::remove_file(b.join("manifest.json")).unwrap()
    });
    assert!(e.contains("manifest.json"), "{e}");

    let e = refused(&to, |b| {
        let p = b.join("manifest.json");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("\"data_format\": 1", "\"data_format\": 2")).unwrap();
    });
    assert!(
        e.contains("data format version 2") && e.contains("data format 1 at most"),
        "{e}"
    );

    // Signed by another CA than the one the operator names.
    let work = tempfile::tempdir().unwrap();
    let other = signer();
    let e = restore(&to, &work.path().join("t"), Some(other.public_key())).unwrap_err();
    assert!(matches!(e, RestoreError::OtherCa { .. }), "{e}");
    assert!(!work.path().join("t").exists());

    // Never over a data directory in use or not empty.
    let socket = admin::start(t.ca.clone()).await.unwrap();
    let e = restore(&to, t.dir.path(), None).unwrap_err();
    assert!(matches!(e, RestoreError::Running(_)), "{e}");
    socket.stop().await;
    let e = restore(&to, t.dir.path(), None).unwrap_err();
    assert!(matches!(e, RestoreError::NotEmpty(_)), "{e}");

    // The untouched backup restores.
    restore(&to, &work.path().join("good"), None).unwrap();
}

#[tokio::test]
async fn backup_refuses_a_directory_with_something_in_it() {
    let (t, _key, out, to) = small_backup().await;
    let before = std::fs::read(to.join("manifest.json")).unwrap();
    let (ca, dir) = (t.ca.clone(), to.clone());
    let e = tokio::task::spawn_blocking(move || ca.backup(&dir, false, Actor::System))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, BackupError::NotEmpty(_)), "{e}");
    assert_eq!(std::fs::read(to.join("manifest.json")).unwrap(), before);
    drop(out);
}

#[tokio::test]
async fn a_ca_on_postgres_is_not_backed_up_here_and_says_where_to_look() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::config_text("")
        .replace("ONCALL_ICS", "/nonexistent/oncall.ics")
        .replace("WEBHOOK_URL", "http://127.0.0.1:9/hook")
        + "\n[storage]\nkind = \"postgres\"\nurl = \"postgres://jit@127.0.0.1:5432/jit\"\n\
           password_file = \"/nonexistent/pw\"\nsslmode = \"disable\"\n";
    let mut cfg = jit_ssh_ca::config::parse(&text, "test").unwrap();
    cfg.data_dir = dir.path().to_owned();
    // The store is never reached: the refusal comes first.
    let ca = jit_ssh_ca::service::Ca::new(
        cfg,
        signer(),
        Arc::new(jit_ssh_ca::store::SledStore::open(&dir.path().join("state")).unwrap()),
        Arc::new(jit_ssh_audit_disk::DiskAuditLog::open(&dir.path().join("audit")).unwrap()),
    )
    .unwrap();
    let to = dir.path().join("backup");
    let e = ca.backup(&to, false, Actor::System).unwrap_err();
    assert!(matches!(e, BackupError::Postgres), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("pg_dump") && text.contains("docs/operations.md"),
        "{text}"
    );
    assert!(!to.exists());
}

fn bulk_event(i: u64) -> jit_ssh_audit::Event {
    let user = format!("user{}", i % 500);
    jit_ssh_audit::Event::CertificateIssued(jit_ssh_audit::CertificateIssued {
        serial: i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        key_id: format!("jit-ssh:{user}:{i:032x}:{i}"),
        user,
        host: format!("db-{}.prod", i % 5000),
        account: "postgres".into(),
        principals: vec![format!("postgres@db-{}.prod", i % 5000)],
        valid_after: 1_800_000_000 + i,
        valid_before: 1_800_000_600 + i,
        public_key_fingerprint: "SHA256:7OS6Dx+OHABorl8BixVaEKG77cEZBBmPYu9cRAgjbeY".into(),
        ca_fingerprint: "SHA256:8gqd8KkC/AvRXQT0Q5lWEjooI+ncnxIErOaFz571DQ0".into(),
        grant: format!("{i:032x}"),
        reason: "incident 4242: primary failover".into(),
        critical_options: vec![],
        extensions: vec!["permit-pty".into()],
        via: jit_ssh_audit::IssuedVia::Server,
        session: None,
    })
}

/// Figures for docs/operations.md: `JIT_SSH_BACKUP_RECORDS=100000 cargo
/// test -p jit-ssh-ca --test server_backup measure -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn measure_backup_and_restore() {
    let records: u64 = std::env::var("JIT_SSH_BACKUP_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let state_entries: u64 = std::env::var("JIT_SSH_BACKUP_STATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    {
        let log = jit_ssh_audit_disk::DiskAuditLog::open(&dir.path().join("audit")).unwrap();
        for start in (0..records).step_by(10_000) {
            let end = (start + 10_000).min(records);
            log.append_many(
                (start..end)
                    .map(|i| (Actor::System, bulk_event(i)))
                    .collect(),
            )
            .unwrap();
        }
        // State entries the size of an issued request (~2 KB).
        let db = sled::open(dir.path().join("state")).unwrap();
        let tree = db.open_tree("bulk").unwrap();
        for i in 0..state_entries {
            tree.insert(format!("{i:016}"), vec![b'x'; 2048]).unwrap();
        }
        db.flush().unwrap();
    }
    let key = signer();
    let t = Arc::new(TestCa::on_dir(dir, LIMITS, key.clone()));
    let mut alice = t.enroll("alice").await;
    issue(&t, "alice", &mut alice).await;
    let out = tempfile::tempdir().unwrap();
    let to = out.path().join("backup");
    let (ca, dir) = (t.ca.clone(), to.clone());
    let report = tokio::task::spawn_blocking(move || ca.backup(&dir, false, Actor::System))
        .await
        .unwrap()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    jit_ssh_ca::backup::restore::check_backup(&to, Some(key.public_key())).unwrap();
    let check_ms = started.elapsed().as_millis();
    let started = std::time::Instant::now();
    restore(&to, data.path(), Some(key.public_key())).unwrap();
    let restore_ms = started.elapsed().as_millis();
    println!("restore: checking alone {check_ms} ms");
    println!(
        "backup: {} audit records, {} state entries, {} bytes, took {} ms, writes held {} ms; restore (checks + write + reindex) {} ms",
        report.audit_records,
        report.state_entries,
        report.bytes,
        report.took_ms,
        report.writers_held_ms,
        restore_ms
    );
}

/// Recomputes every file's size and hash in the manifest and signs it
/// again with `key`, as only someone holding the CA key could: what is
/// left to catch a bad chain is the chain check itself.
fn resign(backup: &Path, key: &FileSigner, edit: impl FnOnce(&mut serde_json::Value)) {
    use sha2::Digest;
    let path = backup.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for f in m["files"].as_array_mut().unwrap() {
        let bytes = std::fs::read(backup.join(f["path"].as_str().unwrap())).unwrap();
        f["bytes"] = bytes.len().into();
        f["sha256"] = hex::encode(sha2::Sha256::digest(&bytes)).into();
    }
    edit(&mut m);
    let mut json = serde_json::to_vec_pretty(&m).unwrap();
    json.push(b'\n');
    let sig = key
        .sign_detached(jit_ssh_ca::backup::NAMESPACE, &json)
        .unwrap()
        .to_pem(ssh_key::LineEnding::LF)
        .unwrap();
    std::fs::write(&path, json).unwrap();
    std::fs::write(backup.join("manifest.json.sig"), sig).unwrap();
}

fn chain_lines(backup: &Path) -> Vec<String> {
    std::fs::read_to_string(backup.join("audit/chain.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_chain(backup: &Path, lines: &[String], tail: &str) {
    std::fs::write(
        backup.join("audit/chain.jsonl"),
        lines.join("\n") + "\n" + tail,
    )
    .unwrap();
}

#[tokio::test]
async fn a_broken_or_cut_chain_is_refused_even_in_a_backup_signed_again() {
    let (_t, key, _out, to) = small_backup().await;
    let lines = chain_lines(&to);
    assert!(lines.len() > 3);

    // A record edited in the middle.
    let e = refused(&to, |b| {
        let mut l = chain_lines(b);
        let mut rec: serde_json::Value = serde_json::from_str(&l[2]).unwrap();
        rec["time"] = "2020-01-01T00:00:00Z".into();
        l[2] = rec.to_string();
        write_chain(b, &l, "");
        resign(b, &key, |_| {});
    });
    assert!(
        e.contains("audit chain in the backup does not verify: record 3"),
        "{e}"
    );

    // Cut at a record boundary, the manifest made to agree: the
    // backup's checkpoint is gone.
    let e = refused(&to, |b| {
        let l = chain_lines(b);
        let kept = &l[..l.len() - 1];
        write_chain(b, kept, "");
        let head: serde_json::Value = serde_json::from_str(kept.last().unwrap()).unwrap();
        resign(b, &key, |m| {
            m["audit_records"] = kept.len().into();
            m["audit_head_hash"] = head["hash"].clone();
        });
    });
    assert!(e.contains("not the backup's checkpoint"), "{e}");

    // Cut in the middle of a record.
    let e = refused(&to, |b| {
        let l = chain_lines(b);
        write_chain(b, &l[..l.len() - 1], &l[l.len() - 1][..20]);
        resign(b, &key, |_| {});
    });
    assert!(e.contains("does not end at a record boundary"), "{e}");
}
