//! `jit-ssh host sync`: installs a KRL that a real sshd enforces only when
//! a manifest signed by a trusted CA key names it, and keeps the old files
//! (exiting non-zero) on a tampered, truncated, wrongly signed, replayed or
//! rolled-back answer; reports a frozen KRL as stale by its signed time;
//! talks plain HTTP only to loopback, follows no redirect off the CA's
//! origin, reads no more than a capped body, follows no planted symlink.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jit_ssh_e2e::fake_ca::{Answer, FakeCa};
use jit_ssh_e2e::signed_ca::{
    fingerprint, host_sync, key_set, krl, manifest, now, sign, snapshot, stderr, user_cert,
    SignedCa, CA_KEYS_NS,
};
use jit_ssh_e2e::{
    bin, have_tools, keygen, login_name, run, run_ok, ssh_with_cert, with_max_rss, Sshd, SSH, SSHD,
    SSH_KEYGEN,
};

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "{}", stderr(out));
}

fn state(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("sync-state.json")).unwrap()).unwrap()
}

#[test]
fn host_sync_installs_only_what_verifies_and_sshd_enforces_it() {
    if !have_tools("host_sync", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca_key = keygen(root, "ca");
    let other_key = keygen(root, "not-the-ca");
    let host_dir: PathBuf = root.join("etc-ssh-jit-ssh");
    let t0 = now() - 300;

    let ca = SignedCa::start(root);
    let v1 = ca.publish(&ca_key, &[&ca_key], 1, "", t0);

    // First use needs the fingerprint; then the trusted keys are on disk.
    assert_eq!(ca.sync(&host_dir, &[]).status.code(), Some(2));
    assert_ok(&ca.sync(
        &host_dir,
        &["--bootstrap-fingerprint", &fingerprint(&ca_key)],
    ));

    // sshd with the installed files accepts two users' certificates.
    let account = login_name();
    let setup = run_ok(
        Command::new(bin("jit-ssh"))
            .args([
                "host",
                "setup",
                "--host",
                "db-1.dev",
                "--account",
                &account,
                "--dir",
            ])
            .arg(&host_dir),
    );
    assert!(setup.contains("RevokedKeys /"), "{setup}");
    // The session wrapper needs the certificate sshd accepted.
    assert!(setup.contains("\nExposeAuthInfo yes\n"), "{setup}");
    assert!(setup.contains("jit-ssh-host-recorder.socket"), "{setup}");
    // By default sshd asks jit-ssh-host for principals (so the recorder
    // hears of every wrapped login), never a file as well.
    assert!(
        setup.contains(
            "\nAuthorizedPrincipalsCommand /usr/local/bin/jit-ssh-host principals --dir /"
        ) && setup.contains("\nAuthorizedPrincipalsFile none\n"),
        "{setup}"
    );
    let (alice, bob) = (keygen(root, "alice"), keygen(root, "bob"));
    let (alice_cert, bob_cert) = (
        user_cert(&ca_key, &alice, &account, "1001"),
        user_cert(&ca_key, &bob, &account, "1002"),
    );
    let sshd = Sshd::start(
        root,
        &host_dir.join("ca-keys"),
        &host_dir.join("revoked.krl"),
        &host_dir.join("principals"),
    );
    let login = |key: &Path, cert: &Path| {
        ssh_with_cert(sshd.port(), &account, key, cert, &["true"])
            .status
            .success()
    };
    assert!(login(&alice, &alice_cert), "{}", sshd.log());

    // The CA revokes alice's serial: one sync later sshd refuses her, not bob.
    ca.publish(&ca_key, &[&ca_key], 2, "serial: 1001\n", t0 + 10);
    assert_ok(&ca.sync(&host_dir, &[]));
    assert!(!login(&alice, &alice_cert));
    assert!(login(&bob, &bob_cert), "{}", sshd.log());

    // Every bad answer leaves the files as they were, with a reason.
    let good = snapshot(&host_dir);
    let t1 = t0 + 20;
    let v3 = krl(root, &ca_key, 3, "serial: 1001\nserial: 1002\n");
    let honest_v3 = manifest(root, &ca_key, &v3, 3, t1);
    let mut tampered = v3.clone();
    *tampered.last_mut().unwrap() ^= 0x01;
    let dense_spec: String = (1..40_000u64)
        .step_by(2)
        .map(|s| format!("serial: {s}\n"))
        .collect();
    std::fs::write(root.join("dense.spec"), &dense_spec).unwrap();
    run_ok(
        Command::new(SSH_KEYGEN)
            .args(["-q", "-k", "-z", "4", "-s"])
            .arg(ca_key.with_extension("pub"))
            .arg("-f")
            .arg(root.join("dense.krl"))
            .arg(root.join("dense.spec")),
    );
    let unreadable = std::fs::read(root.join("dense.krl")).unwrap();
    let other_namespace = {
        // An honest manifest's document, signed for another purpose.
        let m: serde_json::Value = serde_json::from_slice(&honest_v3).unwrap();
        let doc = m["document"].as_str().unwrap().to_owned();
        let sig = sign(root, &ca_key, CA_KEYS_NS, doc.as_bytes());
        serde_json::to_vec(&serde_json::json!({"document": doc, "signature": sig})).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, &str)> = vec![
        (
            "tampered KRL",
            honest_v3.clone(),
            tampered,
            "does not match its signed manifest",
        ),
        (
            "truncated download",
            honest_v3.clone(),
            v3[..v3.len() / 2].to_vec(),
            "does not match",
        ),
        (
            "manifest by an untrusted key",
            manifest(root, &other_key, &v3, 3, t1),
            v3.clone(),
            "not signed by a CA key this host trusts",
        ),
        (
            "signature from another namespace",
            other_namespace,
            v3.clone(),
            "not signed by a CA key",
        ),
        (
            "KRL OpenSSH refuses",
            manifest(root, &ca_key, &unreadable, 3, t1),
            unreadable.clone(),
            "OpenSSH would refuse",
        ),
        (
            "rollback",
            manifest(root, &ca_key, &v1, 1, t1),
            v1.clone(),
            "rollback",
        ),
        (
            "signed in the future",
            manifest(root, &ca_key, &v3, 3, now() + 3600),
            v3.clone(),
            "in the future",
        ),
    ];
    for (what, signed_manifest, body, needle) in cases {
        ca.ca.serve("/v1/krl.manifest", signed_manifest);
        ca.ca.serve("/v1/krl", body);
        let out = ca.sync(&host_dir, &[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{what}: sync succeeded");
        assert!(
            err.contains(needle) && err.contains("left as they were"),
            "{what}: {err}"
        );
        assert_eq!(snapshot(&host_dir), good, "{what}: files changed");
        assert_eq!(state(&host_dir)["ok"], false, "{what}");
    }
    // A validly signed but older manifest (another replica's, or a replay)
    // changes nothing either, and is not an error.
    ca.ca
        .serve("/v1/krl.manifest", manifest(root, &ca_key, &v3, 3, t0));
    ca.ca.serve("/v1/krl", v3.clone());
    let out = ca.sync(&host_dir, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kept the held KRL"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&host_dir), good);

    // Unreachable CA, with a KRL signed long ago: the stale exit code.
    let url = ca.ca.url.clone();
    drop(ca);
    let out = host_sync(&url, &host_dir, &["--max-age", "1m"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(9), "{err}");
    assert!(
        err.contains("cannot reach the CA") && err.contains("stale: the KRL held"),
        "{err}"
    );
    assert_eq!(snapshot(&host_dir), good);
    let st = state(&host_dir);
    assert_eq!(
        (
            st["stale"].clone(),
            st["ok"].clone(),
            st["krl_version"].clone()
        ),
        (true.into(), false.into(), 2.into())
    );
    // And sshd still enforces the last good KRL.
    assert!(!login(&alice, &alice_cert));
    assert!(login(&bob, &bob_cert));
}

/// A CA (or whoever answers for it) replaying the same signed manifest
/// forever withholds later revocations: sync notices from the signed time.
/// (Run with `jit-ssh-host`, the host's own binary; the exit codes are the same.)
#[test]
fn a_frozen_krl_is_reported_stale_by_its_signed_time() {
    if !have_tools("host_sync", &[SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca_key = keygen(root, "ca");
    let dir = root.join("host");
    let ca = SignedCa::start(root);
    let fp = fingerprint(&ca_key);
    // Past the manifest's own valid_until (10 min after signing), a
    // generous --max-age does not help; the files are still the newest.
    ca.publish(&ca_key, &[&ca_key], 1, "", now() - 700);
    let out = ca.host_sync(&dir, &["--bootstrap-fingerprint", &fp, "--max-age", "1h"]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    assert_eq!(
        (state(&dir)["stale"].clone(), state(&dir)["ok"].clone()),
        (true.into(), true.into())
    );
    ca.publish(&ca_key, &[&ca_key], 2, "", now() - 300);
    assert_ok(&ca.host_sync(&dir, &["--max-age", "10m"]));
    assert_eq!(state(&dir)["stale"], false);
    // The same answer again, judged with a tighter bound: fetched fine, but stale.
    let out = ca.host_sync(&dir, &["--max-age", "1m"]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    assert!(stderr(&out).contains("signed 5m"), "{}", stderr(&out));
    assert_eq!(
        (state(&dir)["stale"].clone(), state(&dir)["ok"].clone()),
        (true.into(), true.into())
    );
    // A fresh one clears it.
    ca.publish(&ca_key, &[&ca_key], 3, "", now());
    assert_ok(&ca.host_sync(&dir, &["--max-age", "1m"]));
    assert_eq!(state(&dir)["stale"], false);
    assert_eq!(state(&dir)["krl_version"], 3);
}

/// An answerer that stalls cannot keep sync from reporting stale: the
/// whole sync has a deadline (40 s) inside the unit's 60 s start timeout.
#[test]
fn a_stalling_ca_still_gets_a_stale_verdict_within_the_deadline() {
    if !have_tools("host_sync", &[SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca_key = keygen(root, "ca");
    let dir = root.join("host");
    let ca = SignedCa::start(root);
    ca.publish(&ca_key, &[&ca_key], 1, "", now() - 300);
    let fp = fingerprint(&ca_key);
    assert_ok(&ca.host_sync(&dir, &["--bootstrap-fingerprint", &fp, "--max-age", "10m"]));
    ca.ca.answer(
        "/v1/ca-keys",
        Answer::Stall(std::time::Duration::from_secs(90)),
    );
    let started = std::time::Instant::now();
    let out = ca.host_sync(&dir, &["--max-age", "1m"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot reach the CA"),
        "{}",
        stderr(&out)
    );
    assert!(took.as_secs() < 55, "took {took:?}");
    assert_eq!(state(&dir)["stale"], true);
    // --max-age under the CA's one-minute re-signing is a usage error.
    assert_eq!(
        ca.host_sync(&dir, &["--max-age", "30s"]).status.code(),
        Some(2)
    );
}

#[test]
fn host_sync_refuses_unsafe_transport_bodies_and_files() {
    if !have_tools("host_sync", &[SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca_key = keygen(root, "ca");
    let dir = root.join("host");
    let ca = SignedCa::start(root);
    let t0 = now() - 60;
    ca.publish(&ca_key, &[&ca_key], 1, "", t0);
    let fp = fingerprint(&ca_key);

    // Plain http off loopback is refused before any connection.
    let out = host_sync(
        "http://jit-ssh-ca.invalid",
        &dir,
        &["--bootstrap-fingerprint", &fp],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing plain http"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("ca-keys").exists());

    let (out, baseline_kib) = with_max_rss(
        Command::new(bin("jit-ssh"))
            .args([
                "host",
                "sync",
                "--ca",
                &ca.ca.url,
                "--bootstrap-fingerprint",
                &fp,
                "--dir",
            ])
            .arg(&dir),
    );
    assert_ok(&out);
    let good = snapshot(&dir);

    // Redirects: within the CA's origin followed, to another origin refused.
    let elsewhere = FakeCa::start();
    elsewhere.serve("/v1/ca-keys", key_set(root, &ca_key, &[&ca_key], t0));
    ca.ca.answer(
        "/v1/ca-keys",
        Answer::Redirect(format!("{}/v1/ca-keys", elsewhere.url)),
    );
    let out = ca.sync(&dir, &[]);
    assert!(
        !out.status.success() && stderr(&out).contains("another origin"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&dir), good);
    ca.ca
        .serve("/v1/ca-keys-moved", key_set(root, &ca_key, &[&ca_key], t0));
    ca.ca.answer(
        "/v1/ca-keys",
        Answer::Redirect(format!("{}/v1/ca-keys-moved", ca.ca.url)),
    );
    assert_ok(&ca.sync(&dir, &[]));

    // Endless answers: cut at the cap, announced or not; memory stays flat.
    let three_gib = 3 << 30;
    for path in ["/v1/ca-keys", "/v1/krl.manifest", "/v1/krl"] {
        for announced in [true, false] {
            ca.publish(&ca_key, &[&ca_key], 1, "", t0);
            ca.ca.answer(
                path,
                Answer::Endless {
                    bytes: three_gib,
                    announced,
                },
            );
            let (out, kib) = with_max_rss(
                Command::new(bin("jit-ssh"))
                    .args(["host", "sync", "--ca", &ca.ca.url, "--dir"])
                    .arg(&dir),
            );
            let err = stderr(&out);
            assert!(
                !out.status.success() && err.contains("limit"),
                "{path} {announced}: {err}"
            );
            assert!(
                kib < baseline_kib + 8 * 1024,
                "{path} (announced: {announced}): peak RSS {kib} KiB vs {baseline_kib} KiB for a normal sync"
            );
            eprintln!("endless {path} announced={announced}: peak RSS {kib} KiB (normal sync {baseline_kib} KiB)");
            assert_eq!(snapshot(&dir), good);
        }
    }

    // A planted symlink at a temp name is not followed.
    ca.publish(&ca_key, &[&ca_key], 2, "", t0 + 1);
    let victim = root.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join(".revoked.krl.new")).unwrap();
    std::os::unix::fs::symlink(root.join("created-elsewhere"), dir.join(".ca-keys.new")).unwrap();
    assert_ok(&ca.sync(&dir, &[]));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!root.join("created-elsewhere").exists());
    assert!(std::fs::symlink_metadata(dir.join("revoked.krl"))
        .unwrap()
        .is_file());

    // A directory owned by someone else (not root, not us) is refused.
    // (Giving a directory away needs root: CI runs as root.)
    let theirs = root.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    if run(Command::new("chown").args(["65534"]).arg(&theirs))
        .status
        .success()
    {
        let out = ca.sync(&theirs, &["--bootstrap-fingerprint", &fp]);
        assert!(
            !out.status.success() && stderr(&out).contains("is owned by uid 65534"),
            "{}",
            stderr(&out)
        );
        assert!(!theirs.join("ca-keys").exists());
    } else {
        eprintln!("host_sync: not root, so the foreign-owner check was not exercised");
    }

    // A directory others may write to is refused.
    let good = snapshot(&dir);
    ca.publish(&ca_key, &[&ca_key], 3, "", t0 + 2);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = ca.sync(&dir, &[]);
    assert!(
        !out.status.success() && stderr(&out).contains("writable by group or others"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&dir), good);
}
