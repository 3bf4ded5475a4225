//! `jit-ssh-host principals`: sshd's `AuthorizedPrincipalsCommand` on a
//! host with the recorder. Prints the account's principals file (what
//! `AuthorizedPrincipalsFile DIR/principals/%u` would read) and, for a
//! certificate whose signed force-command records the session, first
//! tells the host recorder that sshd is letting it in, so the recorder
//! can end the login if no session wrapper announces itself (a shell
//! startup file that skips the wrapper). If the recorder cannot be told,
//! nothing is printed and sshd refuses the login (fail closed).
//!
//! ```text
//! AuthorizedPrincipalsCommand /usr/local/bin/jit-ssh-host principals --dir /etc/ssh/jit-ssh %u %T %k
//! AuthorizedPrincipalsCommandUser root
//! ```

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::HostError;
use crate::recorder::expect::{runs_wrapper_policy, wrapper_record_mode, Expect};
use crate::recorder::protocol::Kind;

#[derive(Debug, Clone, clap::Args)]
pub struct PrincipalsOptions {
    /// Where the principals files are (DIR/principals/ACCOUNT).
    #[arg(long, default_value = "/etc/ssh/jit-ssh")]
    pub dir: PathBuf,
    /// The host recorder's socket.
    #[arg(long, default_value = crate::recorder::SOCKET)]
    pub recorder_socket: PathBuf,
    /// sshd's %u.
    pub account: String,
    /// sshd's %T (the key's type; the blob's own is used).
    pub cert_type: String,
    /// sshd's %k (the certificate, base64).
    pub cert: String,
}

fn tell_recorder(socket: &Path, e: &Expect) -> Result<(), String> {
    let mut s = UnixStream::connect(socket).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(e).map_err(|e| e.to_string())?;
    let mut frame = vec![Kind::Expect as u8];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    s.write_all(&frame).map_err(|e| e.to_string())?;
    let mut head = [0u8; 5];
    s.read_exact(&mut head)
        .map_err(|e| format!("no answer: {e}"))?;
    if head[0] == Kind::Accepted as u8 {
        return Ok(());
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]).min(4096);
    let mut why = vec![0u8; len as usize];
    let _ = s.read_exact(&mut why);
    Err(String::from_utf8_lossy(&why).into_owned())
}

/// The type name a key or certificate blob starts with.
fn blob_type(b64: &str) -> Option<String> {
    use base64::Engine;
    let blob = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    let name = blob.get(4..4 + len)?;
    let name = std::str::from_utf8(name).ok()?;
    name.bytes()
        .all(|b| b.is_ascii_graphic())
        .then(|| name.to_owned())
}

pub fn run(o: &PrincipalsOptions) -> Result<(), HostError> {
    if let Some(text) = principals(o)? {
        print!("{text}");
    }
    Ok(())
}

/// What to print: the account's principals, or `None` (nothing: sshd
/// refuses the certificate).
fn principals(o: &PrincipalsOptions) -> Result<Option<String>, HostError> {
    let simple = !o.account.is_empty()
        && !o.account.starts_with('.')
        && o.account
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !simple {
        return Err(HostError::Usage(format!("account {:?}", o.account)));
    }
    // sshd's %T names the key's plain type (`ssh-ed25519`); the blob
    // names its own, the certificate's.
    let Some(kind) = blob_type(&o.cert) else {
        eprintln!("jit-ssh-host principals: refusing: the key sshd passed is not base64");
        return Ok(None);
    };
    let openssh = format!("{kind} {}", o.cert);
    let cert = match ssh_key::Certificate::from_openssh(&openssh) {
        Ok(c) => Some(c),
        // A certificate that does not parse here may be one that must be
        // recorded: no principals (sshd refuses it).
        Err(e) if kind.ends_with("-cert-v01@openssh.com") => {
            eprintln!("jit-ssh-host principals: refusing a certificate that does not parse: {e}");
            return Ok(None);
        }
        Err(_) => None,
    };
    if let Some(cert) = cert {
        if runs_wrapper_policy(&cert) {
            let e = Expect {
                account: o.account.clone(),
                certificate: openssh,
            };
            if let Err(why) = tell_recorder(&o.recorder_socket, &e) {
                // sshd logs the command's stderr; no principals, no login.
                // record = "off" too: the recorder is what ends a login
                // whose shell startup file skipped the wrapper, and such a
                // login would otherwise outlive its certificate.
                eprintln!(
                    "jit-ssh-host principals: refusing certificate serial {} for {}: its session runs through the wrapper (record {}), and the recorder at {}, which ends it should a shell startup file skip the wrapper, was not told: {why}",
                    cert.serial(),
                    o.account,
                    wrapper_record_mode(&cert).unwrap_or("?"),
                    o.recorder_socket.display()
                );
                return Ok(None);
            }
        }
    }
    let path = o.dir.join("principals").join(&o.account);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(String::new())),
        Err(e) => Err(HostError::Usage(format!("{}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate (`TYPE BASE64`) whose force-command is `fc`.
    fn cert_forcing(fc: &str) -> (String, String) {
        let line = crate::test_cert::forcing(fc).to_openssh().unwrap();
        let mut words = line.split_whitespace();
        (
            words.next().unwrap().to_owned(),
            words.next().unwrap().to_owned(),
        )
    }

    fn options(dir: &Path, cert: (String, String)) -> PrincipalsOptions {
        PrincipalsOptions {
            dir: dir.to_owned(),
            recorder_socket: dir.join("recorder.sock"),
            account: "oncall".into(),
            cert_type: cert.0,
            cert: cert.1,
        }
    }

    #[test]
    fn an_unrecorded_wrapper_certificate_is_announced_and_refused_unheard() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("principals")).unwrap();
        std::fs::write(dir.path().join("principals/oncall"), "oncall@db-1\n").unwrap();
        let off = cert_forcing("/usr/local/bin/jit-ssh-host session --record off --grant g");
        // No recorder: no principals, so sshd refuses the login.
        assert_eq!(principals(&options(dir.path(), off.clone())).unwrap(), None);
        // A certificate without the wrapper needs no recorder.
        let plain = cert_forcing("");
        assert_eq!(
            principals(&options(dir.path(), plain)).unwrap().as_deref(),
            Some("oncall@db-1\n")
        );
        // A recorder that answers hears of the record=off login.
        let o = options(dir.path(), off.clone());
        let listener = std::os::unix::net::UnixListener::bind(&o.recorder_socket).unwrap();
        let heard = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = [0u8; 5];
            s.read_exact(&mut head).unwrap();
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).unwrap();
            let answer = b"{\"session\":\"\"}";
            let mut frame = vec![Kind::Accepted as u8];
            frame.extend_from_slice(&(answer.len() as u32).to_be_bytes());
            frame.extend_from_slice(answer);
            s.write_all(&frame).unwrap();
            (head[0], serde_json::from_slice::<Expect>(&body).unwrap())
        });
        assert_eq!(principals(&o).unwrap().as_deref(), Some("oncall@db-1\n"));
        let (kind, e) = heard.join().unwrap();
        assert_eq!(kind, Kind::Expect as u8);
        assert_eq!(e.account, "oncall");
        assert_eq!(e.certificate, format!("{} {}", off.0, off.1));
    }
}
