//! `jit-ssh ssh-config` writes known_hosts from the CA's signed host CA
//! key set. Whoever answers for one of the CA URLs (with several
//! replicas, any of them) may replay an older validly signed set: one
//! from before a host was removed (its key no longer `@revoked`) or
//! before a host CA was retired. An older set than the one written last
//! changes nothing; a newer one is written.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use jit_ssh_e2e::fake_ca::FakeCa;
use jit_ssh_e2e::signed_ca::{fingerprint, key_set, now, sign, stderr};
use jit_ssh_e2e::{bin, have_tools, keygen, run, SSH_KEYGEN};

/// The wire names (jit-ssh-proto's `HOST_CA_KEYS_KIND` and namespace).
const HOST_CA_KEYS_KIND: &str = "jit-ssh-host-ca-keys/1";
const HOST_CA_KEYS_NAMESPACE: &str = "jit-ssh-host-ca-keys@jit-ssh";

fn pub_line(key: &Path) -> String {
    std::fs::read_to_string(key.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned()
}

/// The `/v1/host-ca-keys` answer, signed by `ca` at `issued_at`.
fn host_set(root: &Path, ca: &Path, host_ca: &Path, revoked: &[&Path], issued_at: u64) -> Vec<u8> {
    let document = serde_json::json!({
        "kind": HOST_CA_KEYS_KIND,
        "issued_at": issued_at,
        "keys": [pub_line(host_ca)],
        "patterns": ["*.dev"],
        "revoked_host_keys": revoked.iter().map(|k| pub_line(k)).collect::<Vec<_>>(),
    })
    .to_string();
    let signature = sign(root, ca, HOST_CA_KEYS_NAMESPACE, document.as_bytes());
    serde_json::to_vec(&serde_json::json!({"document": document, "signature": signature})).unwrap()
}

#[test]
fn an_older_host_ca_key_set_never_replaces_a_newer_one() {
    if !have_tools("known_hosts_replay", &[SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca = keygen(root, "ca");
    let host_ca = keygen(root, "host_ca");
    let removed = keygen(root, "removed_host");
    let t = now();
    let fake = FakeCa::start();
    fake.serve("/v1/ca-keys", key_set(root, &ca, &[&ca], t));
    let ssh_config = |extra: &[&str]| {
        let out = run(Command::new(bin("jit-ssh"))
            .env("JIT_SSH_CA_URL", &fake.url)
            .env("JIT_SSH_USER", "alice")
            .env("JIT_SSH_CONFIG", root.join("config.toml"))
            .args(["ssh-config", "--host", "*.dev"])
            .args(extra));
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let known_hosts = || std::fs::read_to_string(root.join("known_hosts")).unwrap();

    // The set after the host's removal: its key is @revoked.
    fake.serve(
        "/v1/host-ca-keys",
        host_set(root, &ca, &host_ca, &[&removed], t),
    );
    ssh_config(&["--ca-fingerprint", &fingerprint(&ca)]);
    let revoked_line = format!("@revoked * {}", pub_line(&removed));
    assert!(known_hosts().contains(&revoked_line), "{}", known_hosts());

    // A replay of the set from before the removal, validly signed.
    fake.serve(
        "/v1/host-ca-keys",
        host_set(root, &ca, &host_ca, &[], t - 3600),
    );
    ssh_config(&[]);
    assert!(
        known_hosts().contains(&revoked_line),
        "an older set un-revoked the removed host: {}",
        known_hosts()
    );

    // A newer set is written (here: the host enrolled again).
    fake.serve(
        "/v1/host-ca-keys",
        host_set(root, &ca, &host_ca, &[], t + 60),
    );
    ssh_config(&[]);
    assert!(!known_hosts().contains(&revoked_line), "{}", known_hosts());
}
