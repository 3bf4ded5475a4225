//! After each sync an enrolled host checks in: it signs the CA's nonce,
//! its current host certificate and what it holds with the host key, and
//! installs the new host certificate the CA returns when the old one has
//! less than a third of its validity left. The answer must be signed by a
//! user CA key already held and name this check-in's nonce; the new
//! certificate must be a host certificate for this key and name from the
//! host CA keys that answer names.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ssh_key::{HashAlg, LineEnding, PrivateKey, SshSig};

use jit_ssh_proto::host_checkin::{
    checkin_message, CheckedInDocument, HostCheckedIn, HostCheckin, HostCheckinStart, HostReport,
    HOST_CHECKED_IN_KIND, HOST_CHECKED_IN_NAMESPACE, HOST_CHECKIN_NAMESPACE, MAX_CHECKED_IN_BYTES,
};
use jit_ssh_proto::hosts::HostEnrollChallenge;
use jit_ssh_proto::routes;

use crate::enroll::{cert_path, check_certificate};
use crate::error::HostError;
use crate::fetch::post_capped;
use crate::files::{check_dir, read_opt, replace, CheckinState, SyncState};
use crate::sync::{held_keys, now_unix};

/// Beside sshd's files: which host this is and where its key is, written
/// by enroll. Its presence is what makes sync check in.
pub const HOST_FILE: &str = "host.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIdentity {
    pub name: String,
    /// The host's private key; its certificate is `KEY-cert.pub`.
    pub key: PathBuf,
}

pub fn read_identity(dir: &Path) -> Result<Option<HostIdentity>, HostError> {
    read_opt(dir, HOST_FILE)?
        .map(|b| {
            serde_json::from_slice(&b).map_err(|e| {
                HostError::Usage(format!(
                    "{}: {e}; enroll again to rewrite it",
                    dir.join(HOST_FILE).display()
                ))
            })
        })
        .transpose()
}

pub fn write_identity(dir: &Path, id: &HostIdentity) -> Result<(), HostError> {
    let bytes = serde_json::to_vec_pretty(id).map_err(|e| HostError::Other(e.into()))?;
    replace(&dir.join(HOST_FILE), &bytes)
}

/// What a check-in did.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedIn {
    pub name: String,
    /// The new certificate's serial (a decimal string, as every serial)
    /// when it was renewed.
    pub renewed_serial: Option<String>,
    pub cert_valid_before: u64,
    pub sshd_reloaded: bool,
}

impl CheckinState {
    /// What `sync-state.json` says after a check-in as `name` at `now`:
    /// a failure keeps the last success's time and certificate end.
    pub fn after(
        previous: CheckinState,
        name: &str,
        done: Result<&CheckedIn, &HostError>,
        now: u64,
    ) -> CheckinState {
        match done {
            Ok(c) => CheckinState {
                name: c.name.clone(),
                ok: true,
                error: None,
                last_ok_at: Some(now),
                cert_valid_before: Some(c.cert_valid_before),
                renewed_serial: c.renewed_serial.clone(),
            },
            Err(e) => CheckinState {
                name: name.to_owned(),
                ok: false,
                error: Some(e.to_string()),
                renewed_serial: None,
                ..previous
            },
        }
    }
}

fn refused(why: impl Into<String>) -> HostError {
    HostError::CheckinRefused(why.into())
}

/// What the last sync found, as the CA's inventory shows it.
fn report(state: &SyncState) -> HostReport {
    HostReport {
        krl_version: state.krl_version,
        krl_signed_at: state.krl_signed_at,
        ca_keys_signed_at: state.ca_keys_signed_at,
        last_error: state.last_error.clone(),
    }
}

/// Checks in as the host `dir`'s [`HOST_FILE`] names; `reload_sshd` is
/// the pid file of the sshd to send SIGHUP after a renewal.
pub async fn checkin(
    http: &reqwest::Client,
    base: &str,
    dir: &Path,
    id: &HostIdentity,
    state: &SyncState,
    reload_sshd: Option<&Path>,
) -> Result<CheckedIn, HostError> {
    // Sync refuses a directory others may write; so does the check-in,
    // which reads from it which key to sign with (and so where the
    // certificate goes) and which CA keys may sign the answer.
    check_dir(dir)?;
    let key = PrivateKey::read_openssh_file(&id.key)
        .map_err(|e| HostError::Usage(format!("reading the host key {}: {e}", id.key.display())))?;
    let cert_file = cert_path(&id.key);
    let certificate = std::fs::read_to_string(&cert_file).map_err(|e| {
        HostError::Usage(format!(
            "reading the host certificate {}: {e}",
            cert_file.display()
        ))
    })?;
    let keys = held_keys(dir)?
        .ok_or_else(|| HostError::Usage(format!("{} holds no trusted CA keys", dir.display())))?;
    let report = serde_json::to_string(&report(state)).map_err(|e| HostError::Other(e.into()))?;

    let challenge: HostEnrollChallenge = post_capped(
        http,
        &format!("{base}{}", routes::HOSTS_CHECKIN),
        &HostCheckinStart {
            name: id.name.clone(),
        },
        MAX_CHECKED_IN_BYTES,
    )
    .await?;
    let signature = key
        .sign(
            HOST_CHECKIN_NAMESPACE,
            HashAlg::Sha512,
            checkin_message(&challenge.id, &challenge.nonce, &certificate, &report).as_bytes(),
        )
        .and_then(|s| s.to_pem(LineEnding::LF))
        .map_err(|e| HostError::Other(e.into()))?;
    let answer: HostCheckedIn = post_capped(
        http,
        &format!(
            "{base}{}",
            routes::fill(routes::HOST_CHECKIN_FINISH, "id", &challenge.id)
        ),
        &HostCheckin {
            certificate: certificate.trim().to_owned(),
            report,
            signature,
        },
        MAX_CHECKED_IN_BYTES,
    )
    .await?;

    let signed_ok = SshSig::from_pem(&answer.signature).is_ok_and(|sig| {
        keys.iter().any(|k| {
            k.verify(HOST_CHECKED_IN_NAMESPACE, answer.document.as_bytes(), &sig)
                .is_ok()
        })
    });
    if !signed_ok {
        return Err(refused(
            "the check-in answer is not signed by a CA key this host holds",
        ));
    }
    let doc: CheckedInDocument = serde_json::from_str(&answer.document)
        .map_err(|e| refused(format!("the check-in answer is malformed: {e}")))?;
    if doc.kind != HOST_CHECKED_IN_KIND || doc.name != id.name || doc.nonce != challenge.nonce {
        return Err(refused(
            "the check-in answer is for another host or another check-in",
        ));
    }
    let current = ssh_key::Certificate::from_openssh(certificate.trim())
        .map_err(|e| HostError::Usage(format!("{}: {e}", cert_file.display())))?;
    let Some(new) = doc.certificate.as_deref() else {
        return Ok(CheckedIn {
            name: doc.name,
            renewed_serial: None,
            cert_valid_before: current.valid_before(),
            sshd_reloaded: false,
        });
    };
    // The same names as the certificate it replaces.
    let cert = check_certificate(
        current.valid_principals(),
        new,
        &doc.host_ca_keys,
        key.public_key(),
        now_unix(),
    )?;
    replace(&cert_file, format!("{}\n", new.trim()).as_bytes())?;
    let sshd_reloaded = match reload_sshd {
        Some(pid_file) => {
            reload(pid_file)?;
            true
        }
        None => false,
    };
    Ok(CheckedIn {
        name: doc.name,
        renewed_serial: Some(cert.serial().to_string()),
        cert_valid_before: cert.valid_before(),
        sshd_reloaded,
    })
}

/// SIGHUP to the sshd whose pid `pid_file` holds: sshd re-executes itself
/// and reads the new certificate; open sessions are not touched.
fn reload(pid_file: &Path) -> Result<(), HostError> {
    let text = std::fs::read_to_string(pid_file).map_err(|e| {
        refused(format!(
            "the certificate was renewed but sshd was not reloaded: reading {}: {e}",
            pid_file.display()
        ))
    })?;
    let pid = text
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 1)
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| {
            refused(format!(
                "the certificate was renewed but sshd was not reloaded: {} holds no pid",
                pid_file.display()
            ))
        })?;
    // A stale pid file may name a process that reused sshd's pid: SIGHUP
    // kills most programs, so only an sshd is signalled.
    let comm =
        std::fs::read_to_string(format!("/proc/{}/comm", pid.as_raw_nonzero())).unwrap_or_default();
    if !comm.trim().starts_with("sshd") {
        return Err(refused(format!(
            "the certificate was renewed but sshd was not reloaded: pid {} in {} is {:?}, not sshd (a stale pid file?); reload sshd yourself",
            pid.as_raw_nonzero(),
            pid_file.display(),
            comm.trim()
        )));
    }
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).map_err(|e| {
        refused(format!(
            "the certificate was renewed but sshd (pid {}) was not reloaded: {e}",
            pid.as_raw_nonzero()
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A pid file naming a process that is not sshd (a stale file whose
    /// pid was reused) gets no signal: this test process would die of it.
    #[test]
    fn reload_signals_only_an_sshd() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("sshd.pid");
        std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
        let e = reload(&pid_file).unwrap_err().to_string();
        assert!(e.contains("not sshd"), "{e}");
        std::fs::write(&pid_file, "1\n").unwrap();
        assert!(reload(&pid_file).is_err());
        std::fs::write(&pid_file, "nonsense").unwrap();
        assert!(reload(&pid_file)
            .unwrap_err()
            .to_string()
            .contains("holds no pid"));
    }

    /// Whoever may write the sync directory decides who logs in, so sync
    /// refuses it; the check-in must not then trust its host.json (which
    /// key signs, where the certificate is written) or its CA keys (who
    /// may sign the answer), nor talk to the CA.
    #[test]
    fn no_check_in_from_a_directory_others_may_write() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
        let key_path = dir.path().join("host_key");
        std::fs::write(
            &key_path,
            key.to_openssh(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        std::fs::write(
            cert_path(&key_path),
            "ssh-ed25519-cert-v01@openssh.com AAAA\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(crate::files::CA_KEYS_FILE),
            key.public_key().to_openssh().unwrap(),
        )
        .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let ca = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ca.set_nonblocking(true).unwrap();
        let base = format!("http://{}", ca.local_addr().unwrap());
        let id = HostIdentity {
            name: "db-1.dev".into(),
            key: key_path,
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = rt.block_on(checkin(
            &http,
            &base,
            dir.path(),
            &id,
            &SyncState::default(),
            None,
        ));
        let err = got.unwrap_err().to_string();
        assert!(ca.accept().is_err(), "the CA was asked ({err})");
        assert!(err.contains("writable by group or others"), "{err}");
    }
}
