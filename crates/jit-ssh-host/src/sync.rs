//! `jit-ssh host sync`: fetch what the CA offers, accept it only as
//! [`super::trust`] allows, then replace the files; on any refusal the old
//! files stay as they were, byte for byte.
//!
//! sync never leaves sshd without a valid KRL (a missing or unreadable
//! `RevokedKeys` file makes sshd refuse every key): the KRL is written only
//! after it matched a manifest signed by a trusted key.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use ssh_key::PublicKey;

use jit_ssh_krl::Krl;
use jit_ssh_proto::api::CaKeys;
use jit_ssh_proto::routes;
use jit_ssh_proto::signed::{
    CaKeySet, KrlManifest, SignedDocument, CA_KEYS_NAMESPACE, KRL_MANIFEST_NAMESPACE,
    MAX_CA_KEYS_BYTES, MAX_KRL_BYTES, MAX_MANIFEST_BYTES,
};

use crate::error::HostError;
use crate::failover::first_answering;
use crate::fetch::{check_ca_url, client, get_capped};
use crate::files::{
    check_dir, read_opt, read_signed, read_state, replace, write_signed, write_state, SyncState,
    CA_KEYS_FILE, CA_KEYS_SIGNED_FILE, KRL_FILE, KRL_MANIFEST_FILE, LOCK_FILE,
};
use crate::trust::{self, Anchor, HeldKrl, Refusal};

pub struct SyncOptions {
    /// The CA's replicas, in order of preference (at least one).
    pub ca_urls: Vec<reqwest::Url>,
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
    /// The installed manifest's and key set's signing times (Unix seconds).
    pub krl_signed_at: u64,
    pub ca_keys_signed_at: u64,
    /// The CA URL that answered (the first reachable of `--ca-url`).
    pub ca_url: String,
    /// An enrolled host's check-in after the sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkin: Option<crate::checkin::CheckedIn>,
}

impl From<Refusal> for HostError {
    fn from(r: Refusal) -> Self {
        HostError::SyncRefused(r.to_string())
    }
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The keys in `dir`'s `ca-keys` file, `None` when there is none.
pub fn held_keys(dir: &Path) -> Result<Option<Vec<PublicKey>>, HostError> {
    read_opt(dir, CA_KEYS_FILE)?
        .map(|b| {
            trust::parse_keys(&String::from_utf8_lossy(&b)).map_err(|e| {
                HostError::SyncRefused(format!("{}: {e}", dir.join(CA_KEYS_FILE).display()))
            })
        })
        .transpose()
}

/// The held key set's signing time, if it still verifies with the held keys.
pub fn held_key_set_time(dir: &Path, keys: &[PublicKey]) -> u64 {
    read_signed(dir, CA_KEYS_SIGNED_FILE)
        .filter(|d| trust::reverify(d, CA_KEYS_NAMESPACE, keys).is_some())
        .and_then(|d| serde_json::from_str::<CaKeySet>(&d.document).ok())
        .map_or(0, |s| s.issued_at)
}

/// Writes an accepted key set: its keys to `ca-keys` (what sshd reads),
/// and the signed document beside it (what the next answer is judged
/// against). Returns the key lines.
pub fn install_key_set(
    dir: &Path,
    keys: &[PublicKey],
    signed: &SignedDocument,
) -> Result<Vec<String>, HostError> {
    let lines = key_lines(keys)?;
    replace(
        &dir.join(CA_KEYS_FILE),
        format!("{}\n", lines.join("\n")).as_bytes(),
    )?;
    write_signed(dir, CA_KEYS_SIGNED_FILE, signed)?;
    Ok(lines)
}

fn key_lines(keys: &[PublicKey]) -> Result<Vec<String>, HostError> {
    keys.iter()
        .map(|k| k.to_openssh())
        .collect::<Result<_, _>>()
        .map_err(|e| HostError::Other(e.into()))
}

/// The held manifest, if it verifies with one of `keys`.
fn held_manifest(dir: &Path, keys: &[PublicKey]) -> Option<KrlManifest> {
    read_signed(dir, KRL_MANIFEST_FILE)
        .filter(|d| trust::reverify(d, KRL_MANIFEST_NAMESPACE, keys).is_some())
        .and_then(|d| trust::read_manifest(&d).ok())
}

fn held_krl(dir: &Path, keys: &[PublicKey]) -> HeldKrl {
    let version = read_opt(dir, KRL_FILE)
        .ok()
        .flatten()
        .and_then(|b| Krl::decode(&b).ok())
        .map_or(0, |k| k.version);
    HeldKrl {
        issued_at: held_manifest(dir, keys).map_or(0, |m| m.issued_at),
        version,
    }
}

async fn fetch_signed(
    http: &reqwest::Client,
    url: &str,
    cap: u64,
) -> Result<SignedDocument, HostError> {
    let body = get_capped(http, url, cap).await?;
    serde_json::from_slice(&body)
        .map_err(|e| HostError::SyncRefused(format!("{url}: unreadable answer: {e}")))
}

/// A manifest and the KRL it names, both checked.
type FetchedKrl = (SignedDocument, KrlManifest, Vec<u8>, Krl);

/// The manifest and the KRL it names, both checked; `None` when the CA's
/// manifest is validly signed but older than the held one (another
/// replica's, or a replay): the held KRL stays. A revocation landing
/// between the two fetches is retried once.
async fn fetch_krl(
    http: &reqwest::Client,
    base: &str,
    keys: &[PublicKey],
    held: HeldKrl,
    now: u64,
) -> Result<Option<FetchedKrl>, HostError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let signed = fetch_signed(
            http,
            &format!("{base}{}", routes::KRL_MANIFEST),
            MAX_MANIFEST_BYTES,
        )
        .await?;
        let manifest = match trust::accept_manifest(&signed, keys, held, now) {
            Err(Refusal::Older { .. }) => return Ok(None),
            other => other?,
        };
        let cap = manifest.krl_size.min(MAX_KRL_BYTES);
        let bytes = get_capped(http, &format!("{base}{}", routes::KRL), cap).await?;
        match trust::check_krl(&bytes, &manifest) {
            Ok(krl) => return Ok(Some((signed, manifest, bytes, krl))),
            Err(Refusal::KrlMismatch(_)) if tries < 2 => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One sync at a time per directory: a second one waits, then judges the
/// CA's answer against what the first installed.
async fn lock_dir(dir: &Path) -> Result<std::fs::File, HostError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| HostError::SyncRefused(format!("opening {}: {e}", path.display())))?;
    // Polled, so the whole sync's deadline still holds while waiting.
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(HostError::SyncRefused(format!(
                    "locking {}: {e}",
                    path.display()
                )))
            }
        }
    }
}

pub async fn sync(opts: &SyncOptions) -> Result<Synced, HostError> {
    for url in &opts.ca_urls {
        check_ca_url(url)?;
    }
    check_dir(&opts.dir)?;
    let _lock = lock_dir(&opts.dir).await?;
    // Each replica signs the same key set and KRL; one that cannot be
    // reached (or answers 5xx) hands over to the next, nothing else does.
    first_answering(&opts.ca_urls, |url| sync_from(opts, url)).await
}

/// One whole sync against the replica at `ca_url` (the directory locked).
async fn sync_from(opts: &SyncOptions, ca_url: reqwest::Url) -> Result<Synced, HostError> {
    let dir = opts.dir.as_path();
    let now = now_unix();
    let http = client(&ca_url, opts.ca_cert.as_deref())?;
    let base = ca_url.as_str().trim_end_matches('/').to_owned();

    // 1. The key set, vouched for by a key already held (or, on first use,
    //    by the key a person named by fingerprint).
    let held = held_keys(dir)?;
    let (anchor, held_time) = match (&held, &opts.bootstrap_fingerprint) {
        (Some(keys), _) => (Anchor::Held(keys), held_key_set_time(dir, keys)),
        (None, Some(fp)) => (Anchor::Fingerprint(fp), 0),
        (None, None) => {
            return Err(HostError::Usage(format!(
                "{} holds no trusted CA keys; the first sync needs --bootstrap-fingerprint SHA256:… (from `ssh-keygen -lf ca_key.pub` on the CA)",
                dir.display()
            )))
        }
    };
    let url = format!("{base}{}", routes::CA_KEYS);
    let body = get_capped(&http, &url, MAX_CA_KEYS_BYTES).await?;
    let offered: CaKeys = serde_json::from_slice(&body)
        .map_err(|e| HostError::SyncRefused(format!("{url}: unreadable answer: {e}")))?;
    // A validly signed set older than the held one changes nothing: with
    // several CA replicas each signs at its own moment, and a replay gains
    // nothing either (freshness is judged by the held manifest's time).
    let (keys, new_set) = match trust::accept_key_set(&offered.signed, anchor, held_time, now) {
        Ok(accepted) => (accepted.keys, Some(accepted.set)),
        Err(Refusal::Older { .. }) if held.is_some() => {
            eprintln!("jit-ssh: the CA's key set was signed before the one held (another replica, or a replay): kept the held one");
            (held.clone().unwrap_or_default(), None)
        }
        Err(e) => return Err(e.into()),
    };

    // 2. The manifest, signed by a key of that set, and the KRL it names.
    //    The held manifest may be signed by a key the new set dropped.
    let all_keys: Vec<PublicKey> = keys.iter().chain(held.iter().flatten()).cloned().collect();
    let held_krl = held_krl(dir, &all_keys);
    let fetched = fetch_krl(&http, &base, &keys, held_krl, now).await?;

    // 3. Everything checked: replace, KRL first.
    let (krl_version, revoked_serials, krl_signed_at) = match fetched {
        Some((manifest_doc, manifest, krl_bytes, krl)) => {
            replace(&dir.join(KRL_FILE), &krl_bytes)?;
            write_signed(dir, KRL_MANIFEST_FILE, &manifest_doc)?;
            (
                krl.version,
                krl.cert_sections().map(|(_, rc)| rc.serials.len()).sum(),
                manifest.issued_at,
            )
        }
        None => {
            eprintln!("jit-ssh: the CA's KRL manifest was signed before the one held (another replica, or a replay): kept the held KRL");
            let held = held_manifest(dir, &all_keys);
            let revoked = read_opt(dir, KRL_FILE)?
                .and_then(|b| Krl::decode(&b).ok())
                .map_or(0, |k| {
                    k.cert_sections().map(|(_, rc)| rc.serials.len()).sum()
                });
            (held_krl.version, revoked, held.map_or(0, |m| m.issued_at))
        }
    };
    let ca_keys_signed_at = match new_set {
        Some(set) => {
            install_key_set(dir, &keys, &offered.signed)?;
            set.issued_at
        }
        None => held_time,
    };
    Ok(Synced {
        krl_version,
        revoked_serials,
        ca_keys: keys.len(),
        krl_signed_at,
        ca_keys_signed_at,
        ca_url: ca_url.to_string(),
        checkin: None,
    })
}

/// What the host holds now, judged by signed times only: stale when the
/// held manifest is missing, older than `max_age`, or past its
/// `valid_until`. Records it in the state file for monitors.
pub fn record_state(
    dir: &Path,
    max_age: Duration,
    outcome: Result<&Synced, &HostError>,
) -> SyncState {
    let now = now_unix();
    let keys = held_keys(dir).ok().flatten().unwrap_or_default();
    let manifest = held_manifest(dir, &keys);
    let key_set = read_signed(dir, CA_KEYS_SIGNED_FILE)
        .filter(|d| trust::reverify(d, CA_KEYS_NAMESPACE, &keys).is_some())
        .and_then(|d| serde_json::from_str::<CaKeySet>(&d.document).ok());
    let previous = read_state(dir).unwrap_or_default();
    let stale = manifest
        .as_ref()
        .is_none_or(|m| now.saturating_sub(m.issued_at) > max_age.as_secs() || now > m.valid_until);
    let state = SyncState {
        checked_at: now,
        ok: outcome.is_ok(),
        last_error: outcome.err().map(ToString::to_string),
        last_success_at: if outcome.is_ok() {
            Some(now)
        } else {
            previous.last_success_at
        },
        krl_version: held_krl(dir, &keys).version,
        krl_signed_at: manifest.as_ref().map(|m| m.issued_at),
        krl_valid_until: manifest.as_ref().map(|m| m.valid_until),
        ca_keys_signed_at: key_set.map(|s| s.issued_at),
        ca_keys: keys.len(),
        stale,
        max_age_secs: max_age.as_secs(),
        checkin: previous.checkin,
    };
    if dir.is_dir() {
        if let Err(e) = write_state(dir, &state) {
            eprintln!("jit-ssh: warning: {e}");
        }
    }
    state
}
