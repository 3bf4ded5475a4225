//! The certificate sshd authenticated this session with, read from the
//! file `$SSH_USER_AUTH` names (sshd writes it with `ExposeAuthInfo yes`):
//! one line per authentication method, `publickey TYPE BASE64` for a key.
//! Everything here fails closed: no readable certificate, no session.

use ssh_key::Certificate;

/// Why the wrapper cannot tell which certificate this session runs on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthInfoError {
    #[error("sshd did not expose the certificate (SSH_USER_AUTH is unset): the host needs `ExposeAuthInfo yes` in sshd_config (see docs/sessions.md)")]
    NotExposed,
    #[error("the certificate file {path} sshd exposed cannot be read: {why}")]
    Unreadable { path: String, why: String },
    #[error("sshd's authentication record {path} holds no certificate: this session did not log in with a jit-ssh certificate")]
    NoCertificate { path: String },
    #[error("the certificate in {path} cannot be parsed: {why}")]
    Unparseable { path: String, why: String },
}

/// The certificates in the text of an `SSH_USER_AUTH` file (`path` is for
/// messages). Plain keys and other methods are skipped; a certificate
/// line that does not parse is an error, not skipped.
pub fn certificates_in(text: &str, path: &str) -> Result<Vec<Certificate>, AuthInfoError> {
    let mut certs = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("publickey") {
            continue;
        }
        let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
            continue;
        };
        if !kind.ends_with("-cert-v01@openssh.com") {
            continue;
        }
        let cert = Certificate::from_openssh(&format!("{kind} {blob}")).map_err(|e| {
            AuthInfoError::Unparseable {
                path: path.to_owned(),
                why: e.to_string(),
            }
        })?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(AuthInfoError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads the certificates of this session from `$SSH_USER_AUTH`.
pub fn session_certificates(
    var: Option<std::ffi::OsString>,
) -> Result<Vec<Certificate>, AuthInfoError> {
    let path = var.ok_or(AuthInfoError::NotExposed)?;
    let shown = path.to_string_lossy().into_owned();
    // sshd's file is a few hundred bytes; a huge one is not sshd's.
    let text = read_bounded(std::path::Path::new(&path), 64 * 1024).map_err(|why| {
        AuthInfoError::Unreadable {
            path: shown.clone(),
            why,
        }
    })?;
    certificates_in(&text, &shown)
}

fn read_bounded(path: &std::path::Path, max: u64) -> Result<String, String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    read_bounded_from(f, max)
}

/// At most `max` bytes of text from `f`.
pub(crate) fn read_bounded_from(f: std::fs::File, max: u64) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    f.take(max + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > max {
        return Err(format!("over {max} bytes"));
    }
    Ok(text)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ssh_key::certificate::{Builder, CertType};
    use ssh_key::{Algorithm, PrivateKey};

    pub(crate) fn cert(serial: u64, valid_before: u64) -> Certificate {
        let ca = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).unwrap();
        cert_by(&ca, serial, valid_before)
    }

    pub(crate) fn cert_by(ca: &PrivateKey, serial: u64, valid_before: u64) -> Certificate {
        let mut rng = ssh_key::rand_core::OsRng;
        let user = PrivateKey::random(&mut rng, Algorithm::Ed25519).unwrap();
        let mut b = Builder::new_with_random_nonce(
            &mut rng,
            user.public_key().key_data().clone(),
            0,
            valid_before,
        )
        .unwrap();
        b.serial(serial).unwrap();
        b.key_id(format!("jit-ssh:alice:g:{serial}")).unwrap();
        b.cert_type(CertType::User).unwrap();
        b.valid_principal("oncall@db.dev").unwrap();
        b.sign(ca).unwrap()
    }

    #[test]
    fn finds_the_certificate_among_the_methods() {
        let c = cert(7, 2_000_000_000);
        let text = format!(
            "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOv\n{}\nkeyboard-interactive\n",
            format_args!("publickey {}", c.to_openssh().unwrap())
        );
        let found = certificates_in(&text, "/tmp/sshauth.x").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].serial(), 7);
    }

    #[test]
    fn no_certificate_or_a_broken_one_is_refused() {
        assert_eq!(
            certificates_in("publickey ssh-ed25519 AAAA\n", "f"),
            Err(AuthInfoError::NoCertificate { path: "f".into() })
        );
        assert!(matches!(
            certificates_in(
                "publickey ssh-ed25519-cert-v01@openssh.com AAAAnotbase64\n",
                "f"
            ),
            Err(AuthInfoError::Unparseable { .. })
        ));
        assert_eq!(session_certificates(None), Err(AuthInfoError::NotExposed));
        assert!(matches!(
            session_certificates(Some("/nonexistent/sshauth".into())),
            Err(AuthInfoError::Unreadable { .. })
        ));
    }
}
