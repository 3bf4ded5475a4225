//! Review finding: restore checks a backup's files (SHA-256 against the
//! signed manifest) and then opens them again to write the data
//! directory. Someone who can write where backups are kept serves the
//! checked bytes to the checks and other bytes to the import: here
//! `state.dump` is a FIFO that answers the hash check and the dump check
//! with the real dump, and the import with the real dump plus one entry
//! (`roles["mallory"] = ["admin"]`). Restore accepts it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../src/store/sled_reopen.rs"]
mod sled_reopen;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use common::TestCa;

use jit_ssh_audit::Actor;
use jit_ssh_ca::backup::restore::restore;
use jit_ssh_ca::signer::FileSigner;

fn entry(tree: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&u16::try_from(tree.len()).unwrap().to_be_bytes());
    out.extend_from_slice(tree);
    out.extend_from_slice(&u32::try_from(key.len()).unwrap().to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&u32::try_from(value.len()).unwrap().to_be_bytes());
    out.extend_from_slice(value);
    out
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

#[tokio::test]
async fn a_backup_file_swapped_after_its_check_is_restored() {
    let key = Arc::new(FileSigner::new(
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap(),
    ));
    let t = TestCa::on_dir(tempfile::tempdir().unwrap(), "", key.clone());
    let _alice = t.enroll("alice").await;
    let out = tempfile::tempdir().unwrap();
    let to = out.path().join("backup");
    let (ca, dir) = (t.ca.clone(), to.clone());
    tokio::task::spawn_blocking(move || ca.backup(&dir, false, Actor::System))
        .await
        .unwrap()
        .unwrap();

    // The attacker's copy of the backup: state.dump becomes a FIFO.
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("copy");
    copy_dir(&to, &copy);
    let dump = copy.join("state.dump");
    let good = std::fs::read(&dump).unwrap();
    std::fs::remove_file(&dump).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&dump)
        .status()
        .unwrap();
    assert!(made.success());
    let mut evil = good.clone();
    evil.extend(entry(b"roles", b"mallory", br#"["admin"]"#));
    let fifo = dump.clone();
    let server = std::thread::spawn(move || {
        // Open 1: the manifest's SHA-256; open 2: the dump check; open 3:
        // the import.
        for bytes in [&good, &good, &evil] {
            let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let _ = w.write_all(bytes);
            drop(w);
            // Let the reader see EOF and close before the next open.
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    });

    let target = work.path().join("target");
    let (c, tg) = (copy.clone(), target.clone());
    let restored = tokio::task::spawn_blocking(move || restore(&c, &tg, None))
        .await
        .unwrap();
    // A refused FIFO is never opened: the writer stays blocked in its
    // first open and ends with the test process (not joined).
    drop(server);
    eprintln!("restore: {:?}", restored.as_ref().map(|_| ()));
    // The swap is refused (a FIFO is not a file a backup holds), or never
    // seen (restore reads each file once, into a private copy).
    if let Err(e) = &restored {
        assert!(e.to_string().contains("state.dump"), "{e}");
    }
    // No state at all is a refusal too; a state held locked is not.
    let state = target.join(jit_ssh_ca::server::STATE_DIR);
    let db = state
        .exists()
        .then(|| sled_reopen::until_unlocked(|| sled::open(&state)));
    let mallory = db
        .as_ref()
        .and_then(|db| db.open_tree("roles").unwrap().get("mallory").unwrap());
    assert!(
        restored.is_err() || mallory.is_none(),
        "restore accepted a state.dump the manifest never vouched for: roles[mallory] = {:?}",
        mallory.map(|v| String::from_utf8_lossy(&v).into_owned())
    );
}
