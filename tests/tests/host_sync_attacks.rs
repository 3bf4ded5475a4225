//! The critical host-sync attack, end to end: whoever answers for the CA URL
//! offers CA key sets it made up (the real key plus theirs, theirs alone,
//! unsigned, replayed) and a KRL of their own. After each, the host's files
//! are byte-identical and a real sshd still refuses the attacker's
//! certificate and still enforces the last good KRL. And the honest way to
//! change keys — a rotation where the old key vouches for the next — works,
//! with logins at every step.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use jit_ssh_e2e::signed_ca::{
    fingerprint, key_set, krl, manifest, now, snapshot, stderr, user_cert, SignedCa,
};
use jit_ssh_e2e::{
    bin, have_tools, keygen, login_name, run_ok, ssh_with_cert, Sshd, SSH, SSHD, SSH_KEYGEN,
};

/// A host directory with principals for `account`, and sshd reading it.
fn host(root: &Path, name: &str, account: &str) -> (PathBuf, PathBuf) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    run_ok(
        Command::new(bin("jit-ssh"))
            .args([
                "host",
                "setup",
                "--host",
                "db-1.dev",
                "--account",
                account,
                "--dir",
            ])
            .arg(&dir),
    );
    let principals = dir.join("principals");
    (dir, principals)
}

/// (what, key set answer, manifest answer, KRL, expected words)
type Attack = (&'static str, Vec<u8>, Vec<u8>, Vec<u8>, &'static str);

#[test]
fn forged_ca_key_sets_change_nothing_and_sshd_keeps_refusing_the_attacker() {
    if !have_tools("host_sync_attacks", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let real = keygen(root, "real-ca");
    let evil = keygen(root, "attacker-ca");
    let account = login_name();
    let (dir, principals) = host(root, "etc-ssh-jit-ssh", &account);
    let ca = SignedCa::start(root);
    let t0 = now() - 300;
    ca.publish(&real, &[&real], 1, "", t0);
    let out = ca.sync(&dir, &["--bootstrap-fingerprint", &fingerprint(&real)]);
    assert!(out.status.success(), "{}", stderr(&out));
    // alice is revoked by the real CA, bob is not.
    let good_krl = ca.publish(&real, &[&real], 2, "serial: 1001\n", t0 + 10);
    assert!(ca.sync(&dir, &[]).status.success());
    let good = snapshot(&dir);

    let sshd = Sshd::start(
        root,
        &dir.join("ca-keys"),
        &dir.join("revoked.krl"),
        &principals,
    );
    let (alice, bob, mallory) = (
        keygen(root, "alice"),
        keygen(root, "bob"),
        keygen(root, "mallory"),
    );
    let alice_cert = user_cert(&real, &alice, &account, "1001");
    let bob_cert = user_cert(&real, &bob, &account, "1002");
    let mallory_cert = user_cert(&evil, &mallory, &account, "7");
    let login = |key: &Path, cert: &Path| {
        ssh_with_cert(sshd.port(), &account, key, cert, &["true"])
            .status
            .success()
    };
    assert!(login(&bob, &bob_cert), "{}", sshd.log());
    assert!(!login(&alice, &alice_cert));
    assert!(!login(&mallory, &mallory_cert));

    let t1 = t0 + 60;
    let evil_krl = krl(root, &evil, 99, "");
    let honest_manifest = manifest(root, &real, &good_krl, 2, t1);
    let real_and_evil_signed_by_real_then_swapped = {
        // The real CA's signature over {real}, beside a document naming {real, evil}.
        let honest: serde_json::Value =
            serde_json::from_slice(&key_set(root, &real, &[&real], t1)).unwrap();
        let forged: serde_json::Value =
            serde_json::from_slice(&key_set(root, &evil, &[&real, &evil], t1)).unwrap();
        serde_json::to_vec(&serde_json::json!({
            "keys": forged["keys"], "document": forged["document"], "signature": honest["signature"],
        }))
        .unwrap()
    };
    let unsigned = {
        let forged: serde_json::Value =
            serde_json::from_slice(&key_set(root, &evil, &[&real, &evil], t1)).unwrap();
        serde_json::to_vec(&serde_json::json!({
            "keys": forged["keys"], "document": forged["document"], "signature": "",
        }))
        .unwrap()
    };
    let attacks: Vec<Attack> = vec![
        (
            "{real, attacker} with no signature",
            unsigned,
            honest_manifest.clone(),
            good_krl.clone(),
            "signature is unreadable",
        ),
        (
            "{real, attacker} under the real key's signature of another set",
            real_and_evil_signed_by_real_then_swapped,
            honest_manifest.clone(),
            good_krl.clone(),
            "not signed by a CA key this host trusts",
        ),
        (
            "{real, attacker} signed by the attacker (overlapping)",
            key_set(root, &evil, &[&real, &evil], t1),
            honest_manifest.clone(),
            good_krl.clone(),
            "not signed by a CA key this host trusts",
        ),
        (
            "{attacker} and an empty KRL v99, all signed by the attacker",
            key_set(root, &evil, &[&evil], t1),
            manifest(root, &evil, &evil_krl, 99, t1),
            evil_krl.clone(),
            "not signed by a CA key this host trusts",
        ),
        (
            "the real set, with the attacker's empty KRL v99",
            key_set(root, &real, &[&real], t1),
            manifest(root, &evil, &evil_krl, 99, t1),
            evil_krl.clone(),
            "not signed by a CA key this host trusts",
        ),
    ];
    for (what, keys, signed_manifest, krl_bytes, needle) in attacks {
        ca.ca.serve("/v1/ca-keys", keys);
        ca.ca.serve("/v1/krl.manifest", signed_manifest);
        ca.ca.serve("/v1/krl", krl_bytes);
        let out = ca.sync(&dir, &[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{what}: sync succeeded");
        assert!(err.contains(needle), "{what}: {err}");
        assert_eq!(snapshot(&dir), good, "{what}: files changed");
        assert!(
            !login(&mallory, &mallory_cert),
            "{what}: the attacker's certificate logged in"
        );
        assert!(
            !login(&alice, &alice_cert),
            "{what}: a revoked certificate logged in"
        );
        assert!(login(&bob, &bob_cert), "{what}: {}", sshd.log());
    }
    // A replay of an older real key set (with the attacker's KRL) is not
    // installed either: the older set is ignored, the KRL refused.
    ca.ca
        .serve("/v1/ca-keys", key_set(root, &real, &[&real], t0 - 100));
    ca.ca
        .serve("/v1/krl.manifest", manifest(root, &evil, &evil_krl, 99, t1));
    ca.ca.serve("/v1/krl", evil_krl.clone());
    let out = ca.sync(&dir, &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("kept the held one") && err.contains("not signed by a CA key"),
        "{err}"
    );
    assert_eq!(snapshot(&dir), good);
    assert!(!login(&mallory, &mallory_cert) && !login(&alice, &alice_cert));
}

#[test]
fn rotation_through_signed_key_sets_keeps_logins_working() {
    if !have_tools("host_sync_attacks", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (a, b) = (keygen(root, "ca-a"), keygen(root, "ca-b"));
    let account = login_name();
    let (dir, principals) = host(root, "host-1", &account);
    let (missed, _) = host(root, "host-2", &account);
    let ca = SignedCa::start(root);
    // Signed minutes ago, still inside the manifests' 10-minute validity.
    let t = now() - 300;

    // The CA signs with A and publishes {A}.
    ca.publish(&a, &[&a], 1, "", t);
    for d in [&dir, &missed] {
        let out = ca.sync(d, &["--bootstrap-fingerprint", &fingerprint(&a)]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let sshd = Sshd::start(
        root,
        &dir.join("ca-keys"),
        &dir.join("revoked.krl"),
        &principals,
    );
    let (alice, bob) = (keygen(root, "alice"), keygen(root, "bob"));
    let by_a = user_cert(&a, &alice, &account, "11");
    let by_b = user_cert(&b, &bob, &account, "22");
    let login = |key: &Path, cert: &Path| {
        ssh_with_cert(sshd.port(), &account, key, cert, &["true"])
            .status
            .success()
    };
    assert!(login(&alice, &by_a), "{}", sshd.log());
    assert!(!login(&bob, &by_b));

    // Stage: A vouches for {A, B}; host-1 syncs, host-2 misses it.
    ca.publish(&a, &[&a, &b], 2, "", t + 10);
    let out = ca.sync(&dir, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("ca-keys"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert!(login(&alice, &by_a), "{}", sshd.log());
    assert!(login(&bob, &by_b), "{}", sshd.log());

    // Activate and retire: B signs {B} and the KRL; A's certificates stop.
    ca.publish(&b, &[&b], 3, "", t + 20);
    let out = ca.sync(&dir, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(login(&bob, &by_b), "{}", sshd.log());
    assert!(!login(&alice, &by_a));

    // host-2 missed the middle step: {B} by B is refused, with a pointer.
    let before = snapshot(&missed);
    let out = ca.sync(&missed, &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("not signed by a CA key this host trusts") && err.contains("docs/hosts.md"),
        "{err}"
    );
    assert_eq!(snapshot(&missed), before);
    // Recovery as docs/hosts.md says: bootstrap again from B's fingerprint.
    for f in ["ca-keys", "ca-keys.signed.json"] {
        std::fs::remove_file(missed.join(f)).unwrap();
    }
    let out = ca.sync(&missed, &["--bootstrap-fingerprint", &fingerprint(&b)]);
    assert!(out.status.success(), "{}", stderr(&out));
}
