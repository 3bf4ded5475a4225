//! The client's trust of hosts: host CA keys written as `@cert-authority`
//! lines in a known_hosts file jit-ssh keeps beside its settings, so plain
//! ssh trusts enrolled hosts by certificate and never asks "are you sure".
//!
//! Nothing here is taken on the network's word. The user CA key set is
//! accepted as hosts accept it (signed by a key already held, or on first
//! use by the key `--ca-fingerprint` names); the host CA key set must be
//! signed by one of those keys, in its own namespace.

use std::path::{Path, PathBuf};

use jit_ssh_host::failover::first_answering;
use jit_ssh_host::fetch::{client, get_capped};
use jit_ssh_host::files::replace;
use jit_ssh_host::sync::{held_key_set_time, held_keys, install_key_set};
use jit_ssh_host::trust::{self, Anchor};
use jit_ssh_proto::api::CaKeys;
use jit_ssh_proto::hosts::{HostCaKeySet, HOST_CA_KEYS_KIND, HOST_CA_KEYS_NAMESPACE};
use jit_ssh_proto::routes;
use jit_ssh_proto::signed::{SignedDocument, MAX_CA_KEYS_BYTES};

use crate::error::ClientError;
use crate::settings::Settings;

pub const KNOWN_HOSTS_FILE: &str = "known_hosts";

fn refused(why: impl Into<String>) -> ClientError {
    ClientError::SyncRefused(why.into())
}

/// The folder beside the settings file, made private if missing.
pub fn dir() -> Result<PathBuf, ClientError> {
    let settings = crate::settings::file_path()
        .ok_or_else(|| ClientError::Usage("no HOME: set JIT_SSH_CONFIG".into()))?;
    let dir = settings
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| refused(format!("creating {}: {e}", dir.display())))?;
    }
    Ok(dir)
}

/// GETs `path` from the first replica that answers (each answer is
/// checked against keys already held, whichever replica gave it).
async fn fetch(settings: &Settings, path: &str) -> Result<Vec<u8>, ClientError> {
    first_answering(&settings.ca_urls, |url| async move {
        let http = client(&url, settings.ca_cert.as_deref())?;
        let base = url.as_str().trim_end_matches('/');
        get_capped(&http, &format!("{base}{path}"), MAX_CA_KEYS_BYTES).await
    })
    .await
    .map_err(ClientError::from)
}

/// Fetches and checks the CA's key sets; writes `known_hosts` in `dir`.
/// Returns its path and how many host CA keys it holds.
pub async fn refresh(
    settings: &Settings,
    dir: &Path,
    ca_fingerprint: Option<&str>,
) -> Result<(PathBuf, usize), ClientError> {
    let now = jit_ssh_host::sync::now_unix();

    // The user CA keys: held (and rotated like a host's), or first use.
    let held = held_keys(dir)?;
    let held_time = held
        .as_deref()
        .map_or(0, |keys| held_key_set_time(dir, keys));
    let anchor = match (&held, ca_fingerprint) {
        (_, Some(fp)) => Anchor::Fingerprint(fp),
        (Some(keys), None) => Anchor::Held(keys),
        (None, None) => {
            return Err(ClientError::Usage(
                "jit-ssh holds no CA key yet: run `jit-ssh ssh-config --ca-fingerprint SHA256:…` once (the fingerprint from your CA's operator)".into(),
            ))
        }
    };
    let body = fetch(settings, routes::CA_KEYS).await?;
    let offered: CaKeys = serde_json::from_slice(&body)
        .map_err(|e| refused(format!("the CA's key set is unreadable: {e}")))?;
    let keys = match trust::accept_key_set(&offered.signed, anchor, held_time, now) {
        Ok(accepted) => {
            install_key_set(dir, &accepted.keys, &offered.signed)?;
            accepted.keys
        }
        // Another replica's (or a replayed) older set: keep what is held.
        Err(trust::Refusal::Older { .. }) if held.is_some() => held.unwrap_or_default(),
        Err(e) => return Err(jit_ssh_host::HostError::from(e).into()),
    };

    // The host CA keys, signed by one of those keys.
    let body = fetch(settings, routes::HOST_CA_KEYS).await?;
    let signed: SignedDocument = serde_json::from_slice(&body)
        .map_err(|e| refused(format!("the CA's host CA key set is unreadable: {e}")))?;
    if trust::reverify(&signed, HOST_CA_KEYS_NAMESPACE, &keys).is_none() {
        return Err(refused(
            "the host CA key set is not signed by a CA key jit-ssh trusts",
        ));
    }
    let set: HostCaKeySet = serde_json::from_str(&signed.document)
        .map_err(|e| refused(format!("the host CA key set is malformed: {e}")))?;
    if set.kind != HOST_CA_KEYS_KIND {
        return Err(refused(format!(
            "the host CA key set has kind {:?}",
            set.kind
        )));
    }
    // A validly signed set older than the one written last (another
    // replica signing at its own moment, or a replay bringing back a
    // removed host's key or a retired host CA) changes nothing.
    let path = dir.join(KNOWN_HOSTS_FILE);
    if let Some(held) = held_host_set_time(dir) {
        if set.issued_at < held.issued_at {
            return Ok((path, held.host_cas));
        }
    }
    let host_cas = trust::parse_keys(&set.keys.join("\n")).map_err(refused)?;
    let patterns: Vec<&str> = set
        .patterns
        .iter()
        .map(String::as_str)
        .filter(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-*?".contains(c))
        })
        .collect();
    if patterns.is_empty() || host_cas.is_empty() {
        return Err(refused("the CA names no host CA key or host pattern"));
    }
    let mut text = String::from(
        "# Written by jit-ssh (`jit-ssh ssh-config`): hosts enrolled with the jit-ssh\n\
         # CA are trusted by their host certificate. Do not edit; it is rewritten.\n",
    );
    for k in &host_cas {
        let line = k.to_openssh().map_err(|e| ClientError::Other(e.into()))?;
        text.push_str(&format!("@cert-authority {} {line}\n", patterns.join(",")));
    }
    // Removed hosts: their keys are refused even if a certificate for
    // them is still valid.
    for k in trust::parse_keys(&set.revoked_host_keys.join("\n")).map_err(refused)? {
        let line = k.to_openssh().map_err(|e| ClientError::Other(e.into()))?;
        text.push_str(&format!("@revoked * {line}\n"));
    }
    replace(&path, text.as_bytes())?;
    let held = HeldHostSet {
        issued_at: set.issued_at,
        host_cas: host_cas.len(),
    };
    let json = serde_json::to_vec(&held).map_err(|e| ClientError::Other(e.into()))?;
    replace(&dir.join(HOST_SET_FILE), &json)?;
    Ok((path, host_cas.len()))
}

/// Beside `known_hosts`: the signed time of the host CA key set it was
/// written from, so an older set is never written over it.
const HOST_SET_FILE: &str = "host-ca-keys.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct HeldHostSet {
    issued_at: u64,
    host_cas: usize,
}

/// What `known_hosts` was last written from (`None` before the first
/// write, or when the file is unreadable: then any validly signed set
/// is taken, as on first use).
fn held_host_set_time(dir: &Path) -> Option<HeldHostSet> {
    let bytes = std::fs::read(dir.join(HOST_SET_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}
