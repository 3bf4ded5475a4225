//! The host side: `jit-ssh host sync` keeps sshd's CA keys and KRL current;
//! `jit-ssh host setup` writes principals files and prints sshd_config.
//!
//! sync never leaves sshd without a valid KRL (a missing or unreadable
//! `RevokedKeys` file makes sshd refuse every key): it verifies everything
//! first — the CA keys against the ones it already trusts, the KRL's
//! detached signature against those keys, the KRL against OpenSSH's own
//! limits, its version against the one it holds — and only then replaces
//! the files (write, fsync, rename). On any failure the old files stay.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use ssh_key::{HashAlg, PublicKey, SshSig};

use jit_ssh_krl::Krl;
use jit_ssh_proto::api::CaKeys;
use jit_ssh_proto::routes;

use crate::error::ClientError;

pub const CA_KEYS_FILE: &str = "ca-keys";
pub const KRL_FILE: &str = "revoked.krl";

pub struct SyncOptions {
    pub ca_url: reqwest::Url,
    pub dir: PathBuf,
    pub bootstrap_fingerprint: Option<String>,
    pub max_age: Duration,
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Synced {
    pub krl_version: u64,
    pub revoked_serials: u64,
    pub ca_keys: usize,
}

fn fail(why: impl Into<String>) -> ClientError {
    ClientError::SyncRefused(why.into())
}

fn parse_keys(text: &str) -> Result<Vec<PublicKey>, ClientError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| PublicKey::from_openssh(l).map_err(|e| fail(format!("CA key line {l:?}: {e}"))))
        .collect()
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

/// Replaces `path` atomically: temp file, fsync, rename, fsync the directory.
fn replace(path: &Path, data: &[u8]) -> Result<(), ClientError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.new",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let io =
        |e: std::io::Error| ClientError::Other(anyhow::anyhow!("writing {}: {e}", path.display()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

async fn get(
    http: &reqwest::Client,
    url: String,
) -> Result<(Vec<u8>, Option<String>), ClientError> {
    let unreachable = |e: reqwest::Error| ClientError::CaUnreachable {
        url: url.clone(),
        detail: e.to_string(),
    };
    let res = http.get(&url).send().await.map_err(unreachable)?;
    if !res.status().is_success() {
        return Err(fail(format!("{url} answered {}", res.status())));
    }
    let version = res
        .headers()
        .get(routes::KRL_VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = res.bytes().await.map_err(unreachable)?;
    Ok((body.to_vec(), version))
}

/// The held KRL's age, for the staleness warning.
pub fn held_krl_age(dir: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(dir.join(KRL_FILE))
        .and_then(|m| m.modified())
        .ok()?;
    SystemTime::now().duration_since(modified).ok()
}

pub async fn sync(opts: &SyncOptions) -> Result<Synced, ClientError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(p) = &opts.ca_cert {
        let pem = std::fs::read(p)
            .map_err(|e| ClientError::Usage(format!("--ca-cert {}: {e}", p.display())))?;
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(&pem)
                .map_err(|e| ClientError::Usage(format!("--ca-cert: {e}")))?,
        );
    }
    let http = builder.build().map_err(|e| ClientError::Other(e.into()))?;
    let base = opts.ca_url.as_str().trim_end_matches('/').to_owned();

    // 1. Which keys may sign: those already trusted, or on first use the
    //    one matching --bootstrap-fingerprint.
    let held_keys = match std::fs::read_to_string(opts.dir.join(CA_KEYS_FILE)) {
        Ok(text) => Some(parse_keys(&text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(fail(format!(
                "reading {}: {e}",
                opts.dir.join(CA_KEYS_FILE).display()
            )))
        }
    };
    let (body, _) = get(&http, format!("{base}{}", routes::CA_KEYS)).await?;
    let offered: CaKeys =
        serde_json::from_slice(&body).map_err(|e| fail(format!("CA keys answer: {e}")))?;
    let offered = parse_keys(&offered.keys.join("\n"))?;
    let trusted: Vec<PublicKey> = match (&held_keys, &opts.bootstrap_fingerprint) {
        (Some(held), _) => {
            // Rotation must overlap: a new set shares a key with the old.
            if !offered.iter().any(|k| held.iter().any(|h| same_key(h, k))) {
                return Err(fail("the CA offers keys that share none with the trusted ones; refusing (rotate with an overlap, see ca-keys.example)"));
            }
            held.clone()
        }
        (None, Some(fp)) => {
            let matching: Vec<PublicKey> = offered
                .iter()
                .filter(|k| k.fingerprint(HashAlg::Sha256).to_string() == *fp)
                .cloned()
                .collect();
            if matching.is_empty() {
                return Err(fail(format!("no CA key has the bootstrap fingerprint {fp}")));
            }
            matching
        }
        (None, None) => {
            return Err(ClientError::Usage(format!(
                "{} holds no trusted CA keys; the first sync needs --bootstrap-fingerprint SHA256:… (from `ssh-keygen -lf ca_key.pub` on the CA)",
                opts.dir.display()
            )))
        }
    };

    // 2. The KRL and its signature, from the same version.
    let (mut krl_bytes, mut v1) = get(&http, format!("{base}{}", routes::KRL)).await?;
    let (mut sig_text, mut v2) = get(&http, format!("{base}{}", routes::KRL_SIG)).await?;
    if v1 != v2 {
        // A revocation landed between the two; try once more.
        (krl_bytes, v1) = get(&http, format!("{base}{}", routes::KRL)).await?;
        (sig_text, v2) = get(&http, format!("{base}{}", routes::KRL_SIG)).await?;
        if v1 != v2 {
            return Err(fail("the KRL keeps changing between fetches; try again"));
        }
    }
    let sig =
        SshSig::from_pem(&sig_text).map_err(|e| fail(format!("KRL signature unreadable: {e}")))?;
    if !trusted
        .iter()
        .any(|k| k.verify(routes::KRL_NAMESPACE, &krl_bytes, &sig).is_ok())
    {
        return Err(fail("the KRL's signature does not verify with a trusted CA key (tampered, truncated, or signed by another key)"));
    }
    let krl = Krl::decode(&krl_bytes)
        .map_err(|e| fail(format!("the KRL is one OpenSSH would refuse: {e}")))?;
    if let Ok(held) = std::fs::read(opts.dir.join(KRL_FILE)) {
        if let Ok(held) = Krl::decode(&held) {
            if krl.version < held.version {
                return Err(fail(format!(
                    "the CA's KRL version {} is older than the held {}; refusing a rollback",
                    krl.version, held.version
                )));
            }
        }
    }

    // 3. Everything checked: replace, KRL first.
    std::fs::create_dir_all(&opts.dir)
        .map_err(|e| fail(format!("creating {}: {e}", opts.dir.display())))?;
    replace(&opts.dir.join(KRL_FILE), &krl_bytes)?;
    let keys: Vec<String> = offered.iter().filter_map(|k| k.to_openssh().ok()).collect();
    replace(
        &opts.dir.join(CA_KEYS_FILE),
        format!("{}\n", keys.join("\n")).as_bytes(),
    )?;
    Ok(Synced {
        krl_version: krl.version,
        revoked_serials: krl.cert_sections().map(|(_, rc)| rc.serials.len()).sum(),
        ca_keys: keys.len(),
    })
}

fn simple_name(s: &str, what: &str) -> Result<(), ClientError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ClientError::Usage(format!(
            "{what} {s:?} may hold only letters, digits, '.', '_' and '-'"
        )))
    }
}

/// Writes `DIR/principals/ACCOUNT` (one `ACCOUNT@HOST` line) for each
/// account and returns the sshd_config lines to add.
pub fn setup(dir: &Path, host: &str, accounts: &[String]) -> Result<String, ClientError> {
    simple_name(host, "host")?;
    let host = host.to_ascii_lowercase();
    let principals = dir.join("principals");
    std::fs::create_dir_all(&principals)
        .map_err(|e| fail(format!("creating {}: {e}", principals.display())))?;
    // sshd wants absolute paths.
    let dir = std::fs::canonicalize(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    for a in accounts {
        simple_name(a, "account")?;
        replace(&principals.join(a), format!("{a}@{host}\n").as_bytes())?;
    }
    Ok(format!(
        "# jit-ssh: add to /etc/ssh/sshd_config, then `sshd -t` and reload sshd.\n\
         # Run `jit-ssh host sync` first: a missing RevokedKeys file locks everyone out.\n\
         TrustedUserCAKeys {0}/{CA_KEYS_FILE}\nRevokedKeys {0}/{KRL_FILE}\nAuthorizedPrincipalsFile {0}/principals/%u\n",
        dir.display()
    ))
}
