//! The revocation spec that `ssh-keygen -k` reads, line by line:
//!
//! ```text
//! serial: 1234            # one serial (decimal, 0x hex or 0 octal)
//! serial: 1000-2000       # an inclusive range
//! id: jit-ssh:alice:...   # a certificate key id
//! key: ssh-ed25519 AAAA…  # a key, revoked by its exact blob
//! sha1: ssh-ed25519 AAAA… # a key, revoked by SHA-1 fingerprint
//! sha256: ssh-ed25519 AA… # a key, revoked by SHA-256 fingerprint
//! hash: SHA256:base64…    # a SHA-256 fingerprint as ssh-keygen -l prints it
//! ssh-ed25519 AAAA…       # a bare key: SHA-1; a bare certificate: its serial
//! ```
//!
//! `#` starts a comment anywhere on a line; keywords are case-insensitive;
//! serial and id lines need a CA scope. Errors name the file and line.

use base64ct::{Base64Unpadded, Encoding};
use ssh_key::{Certificate, PublicKey};

use crate::model::{CaScope, Krl};

/// A spec line that could not be applied; names the source and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {problem}")]
pub struct SpecError {
    pub source_name: String,
    pub line: usize,
    pub problem: String,
}

/// Applies every line of `text` to `krl`. `ca` is the scope for `serial:`
/// and `id:` lines (`None` when no CA was given). On error nothing about
/// the failing line is applied, but earlier lines are: callers that want
/// all-or-nothing apply to a copy.
pub fn apply(
    krl: &mut Krl,
    ca: Option<&CaScope>,
    text: &str,
    source_name: &str,
) -> Result<(), SpecError> {
    for (i, raw) in text.lines().enumerate() {
        let err = |problem: String| SpecError {
            source_name: source_name.to_owned(),
            line: i + 1,
            problem,
        };
        let line = clean(raw);
        if line.is_empty() {
            continue;
        }
        apply_line(krl, ca, line).map_err(err)?;
    }
    Ok(())
}

/// Leading blanks, a `#` comment and trailing blanks removed, as ssh-keygen does.
fn clean(raw: &str) -> &str {
    let no_comment = raw.split('#').next().unwrap_or("");
    no_comment
        .trim_start_matches([' ', '\t'])
        .trim_end_matches([' ', '\t', '\r'])
}

/// The rest of `line` after a case-insensitive `keyword`, blanks skipped.
fn after<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    let head = line.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| line[keyword.len()..].trim_start_matches([' ', '\t']))
}

fn apply_line(krl: &mut Krl, ca: Option<&CaScope>, line: &str) -> Result<(), String> {
    if let Some(rest) = after(line, "serial:") {
        let ca = ca.ok_or("revoking certificates by serial number requires a CA key")?;
        let (lo, hi) = parse_serial_spec(rest)?;
        return krl
            .revoke_serial_range(ca, lo, hi)
            .map_err(|e| e.to_string());
    }
    if let Some(rest) = after(line, "id:") {
        let ca = ca.ok_or("revoking certificates by key ID requires a CA key")?;
        return krl.revoke_key_id(ca, rest).map_err(|e| e.to_string());
    }
    if let Some(rest) = after(line, "hash:") {
        let b64 = rest
            .strip_prefix("SHA256:")
            .ok_or_else(|| format!("unsupported hash algorithm in {rest:?} (only SHA256: is)"))?;
        let digest = Base64Unpadded::decode_vec(b64.trim_end_matches('='))
            .map_err(|_| format!("invalid base64 in hash {rest:?}"))?;
        let digest: [u8; 32] = digest
            .try_into()
            .map_err(|d: Vec<u8>| format!("a SHA256 hash is 32 bytes, this one is {}", d.len()))?;
        krl.revoke_sha256(digest);
        return Ok(());
    }
    if let Some(rest) = after(line, "key:") {
        krl.revoke_key_explicit(&parse_key(rest)?.plain());
        return Ok(());
    }
    if let Some(rest) = after(line, "sha1:") {
        krl.revoke_key_sha1(&parse_key(rest)?.plain());
        return Ok(());
    }
    if let Some(rest) = after(line, "sha256:") {
        krl.revoke_key_sha256(&parse_key(rest)?.plain());
        return Ok(());
    }
    match parse_key(line)? {
        // As ssh-keygen: a bare certificate is revoked under its own CA, by
        // serial, or by key id when it has no serial.
        ParsedKey::Cert(cert) => {
            let scope = CaScope::of(&PublicKey::from(cert.signature_key().clone()));
            if cert.serial() == 0 {
                krl.revoke_key_id(&scope, cert.key_id())
                    .map_err(|e| e.to_string())
            } else {
                krl.revoke_serial(&scope, cert.serial())
                    .map_err(|e| e.to_string())
            }
        }
        ParsedKey::Plain(key) => {
            krl.revoke_key_sha1(&key);
            Ok(())
        }
    }
}

enum ParsedKey {
    Plain(PublicKey),
    Cert(Box<Certificate>),
}

impl ParsedKey {
    /// The key itself, without any certificate around it.
    fn plain(self) -> PublicKey {
        match self {
            ParsedKey::Plain(k) => k,
            ParsedKey::Cert(c) => PublicKey::from(c.public_key().clone()),
        }
    }
}

fn parse_key(text: &str) -> Result<ParsedKey, String> {
    if let Ok(key) = PublicKey::from_openssh(text) {
        return Ok(ParsedKey::Plain(key));
    }
    Certificate::from_openssh(text)
        .map(|c| ParsedKey::Cert(Box::new(c)))
        .map_err(|e| format!("invalid key: {e}"))
}

/// `N` or `A-B` with `B > A`, each as C's `strtoull(…, 0)` reads it.
fn parse_serial_spec(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let lo = parse_c_u64(a).ok_or_else(|| format!("invalid serial {text:?}"))?;
    let Some(b) = b else {
        return Ok((lo, lo));
    };
    let hi = parse_c_u64(b).ok_or_else(|| format!("invalid serial {text:?}"))?;
    if hi <= lo {
        return Err(format!("invalid serial range {lo}:{hi}"));
    }
    Ok((lo, hi))
}

/// Decimal, `0x` hexadecimal or leading-`0` octal, like `strtoull(s, _, 0)`.
fn parse_c_u64(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok();
    }
    if s.len() > 1 && s.starts_with('0') {
        return u64::from_str_radix(&s[1..], 8).ok();
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHppLVxNkVrrvBEtzq4lbTMjV/B4Y90FsiCOrQhjXQYB TEST FIXTURE ONLY - jit-ssh krl tests CA";

    fn ca() -> CaScope {
        CaScope::of(&PublicKey::from_openssh(CA).unwrap())
    }

    #[test]
    fn reads_serials_ranges_ids_and_comments() {
        let mut krl = Krl::new();
        let spec = "# header\n  serial: 5\nSERIAL: 0x10 # hex\nserial: 010\nserial: 100-200\n\nid: jit-ssh:alice:g1:7  \n";
        apply(&mut krl, Some(&ca()), spec, "spec").unwrap();
        let rc = krl.revoked_certs(&ca()).unwrap();
        assert!(rc.serials.contains(5) && rc.serials.contains(16) && rc.serials.contains(8));
        assert!(rc.serials.contains(100) && rc.serials.contains(200) && !rc.serials.contains(201));
        assert!(rc.key_ids.contains("jit-ssh:alice:g1:7"));
    }

    #[test]
    fn errors_name_the_line() {
        let mut krl = Krl::new();
        for (spec, needle) in [
            ("serial: 1\nserial: x\n", "spec:2: invalid serial"),
            ("serial: 0\n", "spec:1: serial 0"),
            ("serial: 9-3\n", "spec:1: invalid serial range"),
            ("serial: 5-5\n", "invalid serial range"),
            ("serial: 18446744073709551616\n", "invalid serial"),
            ("hash: MD5:abc\n", "unsupported hash"),
            ("key: not-a-key\n", "invalid key"),
        ] {
            let e = apply(&mut krl, Some(&ca()), spec, "spec").unwrap_err();
            assert!(e.to_string().contains(needle), "{spec:?} gave {e}");
        }
        let e = apply(&mut krl, None, "serial: 3\n", "spec").unwrap_err();
        assert!(e.to_string().contains("requires a CA key"), "{e}");
    }

    #[test]
    fn keys_and_hashes() {
        let mut krl = Krl::new();
        let key = PublicKey::from_openssh(CA).unwrap();
        let fp = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
        let spec = format!("key: {CA}\nsha1: {CA}\nsha256: {CA}\nhash: {fp}\n{CA}\n");
        apply(&mut krl, None, &spec, "spec").unwrap();
        assert_eq!(krl.explicit_keys().count(), 1);
        assert_eq!(krl.sha1s().count(), 1);
        assert_eq!(krl.sha256s().count(), 1); // sha256: and hash: name the same key
        assert!(krl.is_key_revoked(&key));
    }
}
