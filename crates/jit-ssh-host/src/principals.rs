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
use crate::recorder::expect::{records, Expect};
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
        return Ok(());
    };
    let openssh = format!("{kind} {}", o.cert);
    let cert = match ssh_key::Certificate::from_openssh(&openssh) {
        Ok(c) => Some(c),
        // A certificate that does not parse here may be one that must be
        // recorded: no principals (sshd refuses it).
        Err(e) if kind.ends_with("-cert-v01@openssh.com") => {
            eprintln!("jit-ssh-host principals: refusing a certificate that does not parse: {e}");
            return Ok(());
        }
        Err(_) => None,
    };
    if let Some(cert) = cert {
        if records(&cert) {
            let e = Expect {
                account: o.account.clone(),
                certificate: openssh,
            };
            if let Err(why) = tell_recorder(&o.recorder_socket, &e) {
                // sshd logs the command's stderr; no principals, no login.
                eprintln!(
                    "jit-ssh-host principals: refusing certificate serial {} for {}: recording is required and the recorder at {} was not told: {why}",
                    cert.serial(),
                    o.account,
                    o.recorder_socket.display()
                );
                return Ok(());
            }
        }
    }
    let path = o.dir.join("principals").join(&o.account);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            print!("{text}");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(HostError::Usage(format!("{}: {e}", path.display()))),
    }
}
