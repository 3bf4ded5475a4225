//! A fake CA that publishes what host sync fetches — the signed CA key set,
//! the signed KRL manifest and the KRL — signed by `ssh-keygen -Y sign`
//! (so OpenSSH's SSHSIG and ours are shown to agree), with whatever keys,
//! times and bytes a test chooses: the honest CA's answers, and forged,
//! replayed or mismatched ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fake_ca::FakeCa;
use crate::{bin, run, run_ok, SSH_KEYGEN};

pub const CA_KEYS_NS: &str = "jit-ssh-ca-keys@jit-ssh";
pub const MANIFEST_NS: &str = "jit-ssh-krl-manifest@jit-ssh";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `ssh-keygen -Y sign -n NS` over `data` with `key`; the armored signature.
pub fn sign(dir: &Path, key: &Path, ns: &str, data: &[u8]) -> String {
    let f = dir.join("to-sign");
    std::fs::write(&f, data).unwrap();
    let _ = std::fs::remove_file(dir.join("to-sign.sig"));
    run_ok(
        Command::new(SSH_KEYGEN)
            .args(["-q", "-Y", "sign", "-n", ns, "-f"])
            .arg(key)
            .arg(&f),
    );
    std::fs::read_to_string(dir.join("to-sign.sig")).unwrap()
}

fn pub_line(key: &Path) -> String {
    std::fs::read_to_string(key.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned()
}

/// The `/v1/ca-keys` answer: `keys` (private key paths; their .pub are
/// published) signed by `signer` at `issued_at`.
pub fn key_set(dir: &Path, signer: &Path, keys: &[&Path], issued_at: u64) -> Vec<u8> {
    let lines: Vec<String> = keys.iter().map(|k| pub_line(k)).collect();
    let document = serde_json::json!({
        "kind": "jit-ssh-ca-keys/1", "issued_at": issued_at, "keys": lines,
    })
    .to_string();
    let signature = sign(dir, signer, CA_KEYS_NS, document.as_bytes());
    serde_json::to_vec(&serde_json::json!({
        "keys": lines, "document": document, "signature": signature,
    }))
    .unwrap()
}

/// The `/v1/krl.manifest` answer for `krl`, signed by `signer`.
pub fn manifest(dir: &Path, signer: &Path, krl: &[u8], version: u64, issued_at: u64) -> Vec<u8> {
    use sha2::Digest;
    let document = serde_json::json!({
        "kind": "jit-ssh-krl-manifest/1",
        "krl_version": version,
        "krl_sha256": hex::encode(sha2::Sha256::digest(krl)),
        "krl_size": krl.len(),
        "issued_at": issued_at,
        "valid_until": issued_at + 600,
    })
    .to_string();
    let signature = sign(dir, signer, MANIFEST_NS, document.as_bytes());
    serde_json::to_vec(&serde_json::json!({"document": document, "signature": signature})).unwrap()
}

/// A KRL built by `jit-ssh-ca krl build` with `version` and `spec`,
/// scoped to the CA key `ca` (a private key path; its .pub is used).
pub fn krl(dir: &Path, ca: &Path, version: u64, spec: &str) -> Vec<u8> {
    let spec_path = dir.join(format!("spec{version}"));
    std::fs::write(&spec_path, spec).unwrap();
    let out = dir.join(format!("krl{version}"));
    run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args([
                "krl",
                "build",
                "--krl-version",
                &version.to_string(),
                "--ca",
            ])
            .arg(ca.with_extension("pub"))
            .arg(&spec_path)
            .arg("-o")
            .arg(&out),
    );
    std::fs::read(out).unwrap()
}

/// A fake CA and a host directory synced from it.
pub struct SignedCa {
    pub root: PathBuf,
    pub ca: FakeCa,
}

impl SignedCa {
    pub fn start(root: &Path) -> SignedCa {
        SignedCa {
            root: root.to_owned(),
            ca: FakeCa::start(),
        }
    }

    /// Publishes the key set `keys` and the KRL (`version`, `spec`, scoped
    /// to `signer`), both signed by `signer` at `issued_at`.
    pub fn publish(
        &self,
        signer: &Path,
        keys: &[&Path],
        version: u64,
        spec: &str,
        issued_at: u64,
    ) -> Vec<u8> {
        let k = krl(&self.root, signer, version, spec);
        self.ca
            .serve("/v1/ca-keys", key_set(&self.root, signer, keys, issued_at));
        self.ca.serve(
            "/v1/krl.manifest",
            manifest(&self.root, signer, &k, version, issued_at),
        );
        self.ca.serve("/v1/krl", k.clone());
        k
    }

    /// `jit-ssh host sync` against this CA.
    pub fn sync(&self, dir: &Path, extra: &[&str]) -> Output {
        host_sync(&self.ca.url, dir, extra)
    }

    /// `jit-ssh-host sync` against this CA.
    pub fn host_sync(&self, dir: &Path, extra: &[&str]) -> Output {
        jit_ssh_host_sync(&self.ca.url, dir, extra)
    }
}

/// `jit-ssh host sync` (the client's alias, as older hosts run it).
pub fn host_sync(url: &str, dir: &Path, extra: &[&str]) -> Output {
    run(Command::new(bin("jit-ssh"))
        .args(["host", "sync", "--ca", url, "--dir"])
        .arg(dir)
        .args(extra))
}

/// `jit-ssh-host sync`, the host's own binary (what the systemd unit runs).
pub fn jit_ssh_host_sync(url: &str, dir: &Path, extra: &[&str]) -> Output {
    run(Command::new(bin("jit-ssh-host"))
        .args(["sync", "--ca-url", url, "--dir"])
        .arg(dir)
        .args(extra))
}

/// The SHA256 fingerprint of a key pair's public half.
pub fn fingerprint(key: &Path) -> String {
    run_ok(
        Command::new(SSH_KEYGEN)
            .arg("-lf")
            .arg(key.with_extension("pub")),
    )
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_owned()
}

/// What sshd reads and what sync judges the next answer by.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    [
        "revoked.krl",
        "ca-keys",
        "ca-keys.signed.json",
        "krl.manifest.json",
    ]
    .iter()
    .map(|f| {
        (
            f.to_string(),
            std::fs::read(dir.join(f)).unwrap_or_default(),
        )
    })
    .collect()
}

/// A user certificate for `key` signed by the CA key `ca` (ssh-keygen),
/// for `account@db-1.dev`, valid an hour.
pub fn user_cert(ca: &Path, key: &Path, account: &str, serial: &str) -> PathBuf {
    run_ok(
        Command::new(SSH_KEYGEN)
            .args(["-q", "-s"])
            .arg(ca)
            .args([
                "-I",
                "jit-ssh:test:g:1",
                "-n",
                &format!("{account}@db-1.dev"),
            ])
            .args(["-V", "+1h", "-z", serial])
            .arg(key.with_extension("pub")),
    );
    PathBuf::from(format!("{}-cert.pub", key.display()))
}

/// A command's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
