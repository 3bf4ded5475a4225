//! The recorder (root) reads `SSH_USER_AUTH` from an environment the
//! user controls: only sshd's kind of file is opened.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use jit_ssh_recording::SessionId;
use ssh_key::{Algorithm, PrivateKey};

use super::*;
use crate::session::auth_info::tests::cert_by;

/// A process whose exec'd environment names `auth` as `SSH_USER_AUTH`.
struct Wrapper(std::process::Child);

impl Wrapper {
    fn with_auth_info(auth: &Path) -> (Wrapper, Peer) {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .env_clear()
            .env("SSH_USER_AUTH", auth)
            .spawn()
            .unwrap();
        let peer = Peer {
            uid: rustix::process::getuid().as_raw(),
            pid: i32::try_from(child.id()).unwrap(),
            account: "oncall".into(),
            sshd_pid: 1,
            sid: 0,
        };
        std::thread::sleep(Duration::from_millis(100));
        (Wrapper(child), peer)
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A name of sshd's kind, removed when dropped.
struct TmpName(PathBuf);

impl TmpName {
    fn new(tag: &str) -> TmpName {
        TmpName(PathBuf::from(format!(
            "{AUTH_INFO_PREFIX}review-{}-{tag}",
            std::process::id()
        )))
    }
}

impl Drop for TmpName {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn hello() -> Hello {
    Hello {
        version: 1,
        record: "output".into(),
        grant: Some("g".into()),
        serial: 7,
        key_id: "jit-ssh:alice:g:7".into(),
        account: "oncall".into(),
        sshd_pid: 1,
        cols: 0,
        rows: 0,
        interactive: false,
    }
}

fn id() -> SessionId {
    SessionId::try_from("1700000000-000000000000000000000000").unwrap()
}

/// A host dir trusting a fresh CA, and an sshd-style file text with a
/// certificate of that CA (serial 7, `oncall@db.dev`).
fn trusted_auth_info() -> (tempfile::TempDir, String) {
    let ca = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(crate::files::CA_KEYS_FILE),
        ca.public_key().to_openssh().unwrap(),
    )
    .unwrap();
    let cert = cert_by(&ca, 7, crate::sync::now_unix() + 3600);
    (dir, format!("publickey {}\n", cert.to_openssh().unwrap()))
}

/// `establish` on another thread: `None` if it did not return in time.
fn establish_in_time(peer: Peer, dir: PathBuf) -> Option<Result<String, String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = establish(&peer, &hello(), &dir, id())
            .map(|e| e.info.host)
            .map_err(|e| e.to_string());
        let _ = tx.send(r);
    });
    rx.recv_timeout(Duration::from_secs(3)).ok()
}

#[test]
fn sshds_file_is_read() {
    let (dir, text) = trusted_auth_info();
    let name = TmpName::new("good");
    std::fs::write(&name.0, text).unwrap();
    let (_w, peer) = Wrapper::with_auth_info(&name.0);
    let got = establish_in_time(peer, dir.path().into()).expect("in time");
    assert_eq!(got, Ok("db.dev".to_owned()));
}

#[test]
fn a_fifo_named_by_ssh_user_auth_does_not_hang_the_recorder() {
    let (dir, _) = trusted_auth_info();
    let name = TmpName::new("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&name.0)
        .status()
        .unwrap();
    assert!(made.success());
    let (_w, peer) = Wrapper::with_auth_info(&name.0);
    let got = establish_in_time(peer, dir.path().into());
    // Before: the open blocked for good (a worker thread of the recorder
    // gone per connection; two and no recorded login gets an answer).
    let got = got.expect("establish returned (it blocked on the FIFO)");
    assert!(got.unwrap_err().contains("not a regular file"));
}

#[test]
fn root_opens_no_file_of_the_users_choosing() {
    let (dir, text) = trusted_auth_info();
    // A file elsewhere (here: a valid one; on a host, /dev/watchdog or a
    // root-only file) is not opened at all.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = elsewhere.path().join("auth");
    std::fs::write(&other, &text).unwrap();
    let (_w, peer) = Wrapper::with_auth_info(&other);
    let got = establish_in_time(peer, dir.path().into()).expect("in time");
    assert!(got.unwrap_err().contains("not a file sshd writes"));
    // Nor a symlink of sshd's name to it.
    let link = TmpName::new("link");
    std::os::unix::fs::symlink(&other, &link.0).unwrap();
    let (_w, peer) = Wrapper::with_auth_info(&link.0);
    let got = establish_in_time(peer, dir.path().into()).expect("in time");
    assert!(got.is_err(), "{got:?}");
}

#[test]
fn the_wrapper_must_run_as_the_certificates_force_command() {
    let cert = crate::test_cert::forcing;
    let (w, peer) = Wrapper::with_auth_info(Path::new("/nonexistent"));
    // The test's process runs `sleep 30`.
    assert!(runs_force_command(peer.pid, &cert("sleep 30")).is_ok());
    let got = runs_force_command(peer.pid, &cert("sleep 30 --record output"));
    assert!(
        matches!(got, Err(IdentityError::NotForced { .. })),
        "{got:?}"
    );
    drop(w);
}
