//! What a host decides about what the CA offers, with no I/O: a key set or a
//! KRL manifest is accepted only when its detached signature verifies with
//! a key the host already trusts, in that document's namespace, and it is
//! not older than what the host holds. The KRL must then be exactly the one
//! the manifest names. Everything else is refused with the reason.

use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, PublicKey, SshSig};

use jit_ssh_krl::Krl;
use jit_ssh_proto::signed::{
    CaKeySet, KrlManifest, SignedDocument, CA_KEYS_NAMESPACE, CA_KEY_SET_KIND, KRL_MANIFEST_KIND,
    KRL_MANIFEST_NAMESPACE,
};

/// A signing time this far past the host's clock is refused: accepting it
/// would make every honest answer after it look like a rollback.
pub const MAX_FUTURE_SECS: u64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the {what} signature is unreadable: {source}")]
    SignatureUnreadable {
        what: &'static str,
        #[source]
        source: ssh_key::Error,
    },
    #[error("the {what} is not signed by a CA key this host trusts (tampered, or signed by another key){hint}")]
    Untrusted { what: &'static str, hint: String },
    #[error("the {what} document is malformed: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("the offered {what} was signed at {offered}, before the one held (signed at {held}); refusing a replayed or rolled-back answer")]
    Older {
        what: &'static str,
        offered: u64,
        held: u64,
    },
    #[error(
        "the {what} is signed {ahead} s in the future; check this host's clock (and the CA's)"
    )]
    Future { what: &'static str, ahead: u64 },
    #[error("no CA key has the bootstrap fingerprint {0}")]
    NoBootstrapKey(String),
    #[error("the CA's KRL version {offered} is older than the held {held}; refusing a rollback")]
    KrlRollback { offered: u64, held: u64 },
    #[error("the KRL does not match its signed manifest ({0})")]
    KrlMismatch(String),
    #[error("the KRL is one OpenSSH would refuse: {0}")]
    KrlUnreadable(String),
}

/// Which keys may vouch for a new key set.
pub enum Anchor<'a> {
    /// The keys in the host's `ca-keys` file.
    Held(&'a [PublicKey]),
    /// First use: the key with this SHA-256 fingerprint, checked by a person.
    Fingerprint(&'a str),
}

/// Parses OpenSSH public key lines, skipping blanks and comments.
pub fn parse_keys(text: &str) -> Result<Vec<PublicKey>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| PublicKey::from_openssh(l).map_err(|e| format!("CA key line {l:?}: {e}")))
        .collect()
}

/// Verifies `signed` with one of `keys`; returns the signing key.
fn verify<'k>(
    signed: &SignedDocument,
    namespace: &str,
    what: &'static str,
    keys: impl IntoIterator<Item = &'k PublicKey>,
) -> Result<&'k PublicKey, Refusal> {
    let sig = SshSig::from_pem(&signed.signature)
        .map_err(|source| Refusal::SignatureUnreadable { what, source })?;
    keys.into_iter()
        .find(|k| {
            k.verify(namespace, signed.document.as_bytes(), &sig)
                .is_ok()
        })
        .ok_or_else(|| Refusal::Untrusted {
            what,
            hint: String::new(),
        })
}

fn not_future(what: &'static str, issued_at: u64, now: u64) -> Result<(), Refusal> {
    match issued_at.checked_sub(now) {
        Some(ahead) if ahead > MAX_FUTURE_SECS => Err(Refusal::Future { what, ahead }),
        _ => Ok(()),
    }
}

/// A verified key set and its parsed keys.
pub struct AcceptedKeys {
    pub set: CaKeySet,
    pub keys: Vec<PublicKey>,
}

/// Accepts `offered` when a trusted key signed it and it is not older than
/// the set held (signed at `held_issued_at`, 0 when none is held).
pub fn accept_key_set(
    offered: &SignedDocument,
    anchor: Anchor<'_>,
    held_issued_at: u64,
    now: u64,
) -> Result<AcceptedKeys, Refusal> {
    const WHAT: &str = "CA key set";
    let malformed = |detail: String| Refusal::Malformed { what: WHAT, detail };
    let set: CaKeySet =
        serde_json::from_str(&offered.document).map_err(|e| malformed(e.to_string()))?;
    let keys = parse_keys(&set.keys.join("\n")).map_err(malformed)?;
    match anchor {
        Anchor::Held(held) => {
            verify(offered, CA_KEYS_NAMESPACE, WHAT, held).map_err(|e| match e {
                Refusal::Untrusted { what, .. } => Refusal::Untrusted {
                    what,
                    hint: "; a host that missed a rotation step re-bootstraps, see docs/hosts.md"
                        .into(),
                },
                e => e,
            })?;
        }
        Anchor::Fingerprint(fp) => {
            let key = keys
                .iter()
                .find(|k| k.fingerprint(HashAlg::Sha256).to_string() == fp)
                .ok_or_else(|| Refusal::NoBootstrapKey(fp.to_owned()))?;
            verify(offered, CA_KEYS_NAMESPACE, WHAT, [key])?;
        }
    }
    if set.kind != CA_KEY_SET_KIND {
        return Err(malformed(format!("kind {:?}", set.kind)));
    }
    if keys.is_empty() {
        return Err(malformed("it names no key".into()));
    }
    if set.issued_at < held_issued_at {
        return Err(Refusal::Older {
            what: WHAT,
            offered: set.issued_at,
            held: held_issued_at,
        });
    }
    not_future(WHAT, set.issued_at, now)?;
    Ok(AcceptedKeys { set, keys })
}

/// What the host holds of the KRL: the manifest's signing time and the
/// KRL's version (0 and 0 when none).
#[derive(Debug, Clone, Copy, Default)]
pub struct HeldKrl {
    pub issued_at: u64,
    pub version: u64,
}

/// Accepts a manifest signed by one of `keys`, not older than the held one.
pub fn accept_manifest(
    offered: &SignedDocument,
    keys: &[PublicKey],
    held: HeldKrl,
    now: u64,
) -> Result<KrlManifest, Refusal> {
    const WHAT: &str = "KRL manifest";
    verify(offered, KRL_MANIFEST_NAMESPACE, WHAT, keys)?;
    let m = read_manifest(offered)?;
    if m.issued_at < held.issued_at {
        return Err(Refusal::Older {
            what: WHAT,
            offered: m.issued_at,
            held: held.issued_at,
        });
    }
    not_future(WHAT, m.issued_at, now)?;
    if m.krl_version < held.version {
        return Err(Refusal::KrlRollback {
            offered: m.krl_version,
            held: held.version,
        });
    }
    Ok(m)
}

/// Parses a manifest whose signature was already checked.
pub fn read_manifest(signed: &SignedDocument) -> Result<KrlManifest, Refusal> {
    let malformed = |detail: String| Refusal::Malformed {
        what: "KRL manifest",
        detail,
    };
    let m: KrlManifest =
        serde_json::from_str(&signed.document).map_err(|e| malformed(e.to_string()))?;
    if m.kind != KRL_MANIFEST_KIND {
        return Err(malformed(format!("kind {:?}", m.kind)));
    }
    Ok(m)
}

/// Checks a held document again (the files could predate this version or
/// be damaged): `Some` only when it still verifies with `keys`.
pub fn reverify(signed: &SignedDocument, namespace: &str, keys: &[PublicKey]) -> Option<()> {
    verify(signed, namespace, "held document", keys)
        .ok()
        .map(|_| ())
}

/// The KRL must be byte for byte the one the manifest names, and one
/// OpenSSH reads.
pub fn check_krl(bytes: &[u8], manifest: &KrlManifest) -> Result<Krl, Refusal> {
    if bytes.len() as u64 != manifest.krl_size {
        return Err(Refusal::KrlMismatch(format!(
            "{} bytes, the manifest says {}",
            bytes.len(),
            manifest.krl_size
        )));
    }
    if hex::encode(Sha256::digest(bytes)) != manifest.krl_sha256 {
        return Err(Refusal::KrlMismatch("its SHA-256 differs".into()));
    }
    let krl = Krl::decode(bytes).map_err(|e| Refusal::KrlUnreadable(e.to_string()))?;
    if krl.version != manifest.krl_version {
        return Err(Refusal::KrlMismatch(format!(
            "version {}, the manifest says {}",
            krl.version, manifest.krl_version
        )));
    }
    Ok(krl)
}
