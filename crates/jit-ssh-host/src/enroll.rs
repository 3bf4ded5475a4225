//! `jit-ssh-host enroll`: a host with an enrollment token proves its host
//! key to the CA and gets a host certificate, so engineers' ssh trusts it
//! by certificate (no first-use prompt).
//!
//! The token names the user CA key's fingerprint, so everything the CA
//! answers is checked against a key the operator vouched for: the user CA
//! key set (installed as with `sync --bootstrap-fingerprint`), and the
//! signed document holding the host certificate and host CA keys. The
//! certificate itself must be a host certificate for this key and name,
//! signed by one of those host CA keys. Only then is anything written.

use std::path::{Path, PathBuf};

use serde::Serialize;
use ssh_key::certificate::CertType;
use ssh_key::{Certificate, HashAlg, LineEnding, PrivateKey, SshSig};

use jit_ssh_proto::hosts::{
    challenge_message, EnrolledDocument, EnrollmentToken, HostEnrollChallenge, HostEnrollFinish,
    HostEnrollStart, HostEnrolled, HOST_ENROLLED_KIND, HOST_ENROLLED_NAMESPACE,
    HOST_ENROLL_NAMESPACE, MAX_ENROLLED_BYTES,
};
use jit_ssh_proto::routes;

use crate::error::HostError;
use crate::failover::first_answering;
use crate::fetch::{check_ca_url, client, post_capped};
use crate::files::{check_dir, replace, CA_KEYS_FILE, KRL_FILE};
use crate::sync::now_unix;
use crate::trust::{self, Anchor};

pub struct EnrollOptions {
    /// The CA's replicas, in order of preference (at least one).
    pub ca_urls: Vec<reqwest::Url>,
    pub token: String,
    pub name: String,
    /// More names for the certificate (each one the token may enroll).
    pub aliases: Vec<String>,
    /// The host's private key (its `.pub` is what gets certified).
    pub key: PathBuf,
    /// Where sync keeps sshd's files (ca-keys, revoked.krl).
    pub dir: PathBuf,
    /// Where to write an sshd_config drop-in, if asked.
    pub sshd_config_dir: Option<PathBuf>,
    pub ca_cert: Option<PathBuf>,
    /// The drop-in's `AuthorizedPrincipalsCommand` program (`None`:
    /// `AuthorizedPrincipalsFile`).
    pub principals_command: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Enrolled {
    pub name: String,
    pub certificate: String,
    pub serial: u64,
    pub valid_before: u64,
    pub host_ca_keys: Vec<String>,
    /// The `HostCertificate` line for sshd_config.
    pub host_certificate_line: String,
    pub drop_in: Option<String>,
}

fn refused(why: impl Into<String>) -> HostError {
    HostError::SyncRefused(why.into())
}

/// `…/ssh_host_ed25519_key` → `…/ssh_host_ed25519_key-cert.pub`, where
/// sshd and ssh-keygen expect it.
pub fn cert_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push("-cert.pub");
    PathBuf::from(name)
}

pub async fn enroll(opts: &EnrollOptions) -> Result<Enrolled, HostError> {
    for url in &opts.ca_urls {
        check_ca_url(url)?;
    }
    // A replica that cannot be reached hands the whole enrollment to the
    // next; the token's secret goes only to replicas of the CA named.
    first_answering(&opts.ca_urls, |url| enroll_at(opts, url)).await
}

async fn enroll_at(opts: &EnrollOptions, ca_url: reqwest::Url) -> Result<Enrolled, HostError> {
    let token = EnrollmentToken::parse(&opts.token).ok_or_else(|| {
        HostError::Usage(
            "--token is not an enrollment token (jhe1.…, from `jit-ssh-ca host-token`)".into(),
        )
    })?;
    let key = PrivateKey::read_openssh_file(&opts.key).map_err(|e| {
        HostError::Usage(format!("reading the host key {}: {e}", opts.key.display()))
    })?;
    if key.is_encrypted() {
        return Err(HostError::Usage(format!(
            "{} is encrypted; sshd's host keys are not",
            opts.key.display()
        )));
    }
    check_dir(&opts.dir)?;
    let http = client(&ca_url, opts.ca_cert.as_deref())?;
    let base = ca_url.as_str().trim_end_matches('/').to_owned();
    let host_key = key
        .public_key()
        .to_openssh()
        .map_err(|e| HostError::Other(e.into()))?;

    // 1. The token (its secret goes only to the CA, over TLS) and the name.
    let challenge: HostEnrollChallenge = post_capped(
        &http,
        &format!("{base}{}", routes::HOSTS_ENROLL),
        &HostEnrollStart {
            token_id: token.id.clone(),
            token_secret: token.secret.clone(),
            name: opts.name.clone(),
            host_key: host_key.clone(),
            aliases: opts.aliases.clone(),
        },
        MAX_ENROLLED_BYTES,
    )
    .await?;
    // 2. The host key's signature over the CA's challenge.
    let sig = key
        .sign(
            HOST_ENROLL_NAMESPACE,
            HashAlg::Sha512,
            challenge_message(&challenge.id, &challenge.nonce).as_bytes(),
        )
        .and_then(|s| s.to_pem(LineEnding::LF))
        .map_err(|e| HostError::Other(e.into()))?;
    let answer: HostEnrolled = post_capped(
        &http,
        &format!(
            "{base}{}",
            routes::fill(routes::HOST_ENROLL_FINISH, "id", &challenge.id)
        ),
        &HostEnrollFinish { signature: sig },
        MAX_ENROLLED_BYTES,
    )
    .await?;

    // 3. Check everything against the key the token names.
    let now = now_unix();
    let accepted = trust::accept_key_set(
        &answer.ca_keys.signed,
        Anchor::Fingerprint(&token.ca_fingerprint),
        0,
        now,
    )?;
    let anchor = accepted
        .keys
        .iter()
        .find(|k| k.fingerprint(HashAlg::Sha256).to_string() == token.ca_fingerprint)
        .ok_or_else(|| refused("the CA key set lacks the key the token names"))?;
    let signed_ok = SshSig::from_pem(&answer.signature).is_ok_and(|s| {
        anchor
            .verify(HOST_ENROLLED_NAMESPACE, answer.document.as_bytes(), &s)
            .is_ok()
    });
    if !signed_ok {
        return Err(refused(
            "the enrollment answer is not signed by the CA key the token names",
        ));
    }
    let names: Vec<String> = std::iter::once(opts.name.clone())
        .chain(opts.aliases.iter().cloned())
        .collect();
    let doc: EnrolledDocument = serde_json::from_str(&answer.document)
        .map_err(|e| refused(format!("the enrollment answer is malformed: {e}")))?;
    if doc.kind != HOST_ENROLLED_KIND || doc.name != opts.name || doc.nonce != challenge.nonce {
        return Err(refused(
            "the enrollment answer is for another host or another enrollment",
        ));
    }
    let cert = check_certificate(
        &names,
        &doc.certificate,
        &doc.host_ca_keys,
        key.public_key(),
        now,
    )?;

    // 4. Write: the certificate beside the key, the user CA key set, and
    //    (asked for) the sshd_config drop-in.
    let cert_file = cert_path(&opts.key);
    replace(
        &cert_file,
        format!("{}\n", doc.certificate.trim()).as_bytes(),
    )?;
    crate::sync::install_key_set(&opts.dir, &accepted.keys, &answer.ca_keys.signed)?;
    // What makes each sync check in as this host and renew the certificate.
    let key_abs = std::fs::canonicalize(&opts.key).unwrap_or(opts.key.clone());
    crate::checkin::write_identity(
        &opts.dir,
        &crate::checkin::HostIdentity {
            name: doc.name.clone(),
            key: key_abs,
        },
    )?;
    // The KRL too, before any sshd_config names it: a missing RevokedKeys
    // file makes sshd refuse every key.
    crate::sync::sync(&crate::sync::SyncOptions {
        ca_urls: opts.ca_urls.clone(),
        dir: opts.dir.clone(),
        bootstrap_fingerprint: None,
        max_age: std::time::Duration::from_secs(600),
        ca_cert: opts.ca_cert.clone(),
    })
    .await?;
    let cert_abs = std::fs::canonicalize(&cert_file).unwrap_or(cert_file.clone());
    let host_certificate_line = format!("HostCertificate {}", cert_abs.display());
    let drop_in = match &opts.sshd_config_dir {
        Some(d) => Some(write_drop_in(
            d,
            &opts.dir,
            &host_certificate_line,
            opts.principals_command.as_deref(),
        )?),
        None => None,
    };
    Ok(Enrolled {
        name: doc.name,
        certificate: cert_file.display().to_string(),
        serial: cert.serial(),
        valid_before: cert.valid_before(),
        host_ca_keys: doc.host_ca_keys,
        host_certificate_line,
        drop_in,
    })
}

/// The certificate must be a host certificate for exactly this key and
/// these names (in any order), currently valid, signed by one of the host
/// CA keys.
pub fn check_certificate(
    names: &[String],
    certificate: &str,
    host_ca_keys: &[String],
    host_key: &ssh_key::PublicKey,
    now: u64,
) -> Result<Certificate, HostError> {
    let cert = Certificate::from_openssh(certificate.trim())
        .map_err(|e| refused(format!("the host certificate is unreadable: {e}")))?;
    let host_cas: Vec<ssh_key::PublicKey> = trust::parse_keys(&host_ca_keys.join("\n"))
        .map_err(|e| refused(format!("host CA keys: {e}")))?;
    let fingerprints: Vec<_> = host_cas
        .iter()
        .map(|k| k.fingerprint(HashAlg::Sha256))
        .collect();
    cert.validate_at(now, &fingerprints)
        .map_err(|e| refused(format!("the host certificate does not check out: {e}")))?;
    if cert.cert_type() != CertType::Host
        || cert.public_key() != host_key.key_data()
        || !same_names(cert.valid_principals(), names)
    {
        return Err(refused(
            "the certificate is not a host certificate for this key and these names",
        ));
    }
    Ok(cert)
}

/// Equal as sets: the CA sorts and de-duplicates aliases.
pub fn same_names(got: &[String], want: &[String]) -> bool {
    let sorted = |v: &[String]| {
        let mut v: Vec<String> = v.iter().map(|n| n.to_ascii_lowercase()).collect();
        v.sort();
        v.dedup();
        v
    };
    sorted(got) == sorted(want)
}

/// `DIR/50-jit-ssh.conf` for sshd_config's `Include …/sshd_config.d/*.conf`.
fn write_drop_in(
    sshd_config_dir: &Path,
    sync_dir: &Path,
    host_certificate_line: &str,
    principals_command: Option<&Path>,
) -> Result<String, HostError> {
    let sync_dir = std::fs::canonicalize(sync_dir).unwrap_or(sync_dir.to_owned());
    let path = sshd_config_dir.join("50-jit-ssh.conf");
    let principals = crate::setup::principals_lines(&sync_dir, principals_command)?;
    let text = format!(
        "# Written by `jit-ssh-host enroll`: the host certificate engineers' ssh\n\
         # trusts, and the CA keys and KRL `jit-ssh-host sync` keeps current.\n\
         {host_certificate_line}\n\
         TrustedUserCAKeys {0}/{CA_KEYS_FILE}\n\
         RevokedKeys {0}/{KRL_FILE}\n\
         {principals}\
         # For the session wrapper: it reads the certificate sshd accepted.\n\
         ExposeAuthInfo yes\n",
        sync_dir.display()
    );
    replace(&path, text.as_bytes())?;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod drop_in_tests {
    use super::*;

    #[test]
    fn the_drop_in_has_sshd_ask_jit_ssh_host_for_principals_unless_told_otherwise() {
        let d = tempfile::tempdir().unwrap();
        let cmd = Path::new("/usr/local/bin/jit-ssh-host");
        write_drop_in(d.path(), d.path(), "HostCertificate /x", Some(cmd)).unwrap();
        let text = std::fs::read_to_string(d.path().join("50-jit-ssh.conf")).unwrap();
        assert!(text.contains("\nAuthorizedPrincipalsFile none\n"), "{text}");
        assert!(
            text.contains(
                "\nAuthorizedPrincipalsCommand /usr/local/bin/jit-ssh-host principals --dir /"
            ),
            "{text}"
        );
        assert!(text.contains("\nExposeAuthInfo yes\n"), "{text}");
        write_drop_in(d.path(), d.path(), "HostCertificate /x", None).unwrap();
        let text = std::fs::read_to_string(d.path().join("50-jit-ssh.conf")).unwrap();
        assert!(text.contains("\nAuthorizedPrincipalsFile /"), "{text}");
        assert!(!text.contains("AuthorizedPrincipalsCommand"), "{text}");
    }
}
