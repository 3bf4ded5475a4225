//! Just enough of the ssh-agent protocol (draft-miller-ssh-agent): list
//! identities, add a key + certificate with a lifetime, remove one. The
//! private key goes from memory to the agent and nowhere else.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use ssh_key::{Certificate, PrivateKey};

use crate::error::ClientError;

const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const REMOVE_IDENTITY: u8 = 18;
const ADD_ID_CONSTRAINED: u8 = 25;
const SUCCESS: u8 = 6;
const CONSTRAIN_LIFETIME: u8 = 1;
const ED25519_CERT: &str = "ssh-ed25519-cert-v01@openssh.com";
/// Agents answer with far less; this bounds a broken one.
const MAX_MESSAGE: usize = 1 << 20;

pub struct Agent {
    stream: UnixStream,
}

/// An identity the agent holds.
pub struct Identity {
    pub blob: Vec<u8>,
    /// Set when the identity is a certificate.
    pub certificate: Option<Certificate>,
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(s);
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Some(head)
}

fn get_u32(buf: &mut &[u8]) -> Option<u32> {
    take(buf, 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn get_string<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = get_u32(buf)? as usize;
    take(buf, n)
}

impl Agent {
    /// Connects to `$SSH_AUTH_SOCK`.
    pub fn from_env() -> Result<Agent, ClientError> {
        let path = std::env::var_os("SSH_AUTH_SOCK")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ClientError::NoAgent("SSH_AUTH_SOCK is not set".into()))?;
        let stream = UnixStream::connect(&path).map_err(|e| {
            ClientError::NoAgent(format!("{} does not answer: {e}", path.to_string_lossy()))
        })?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| ClientError::NoAgent(e.to_string()))?;
        let mut agent = Agent { stream };
        // A socket that accepts but is no agent fails here, not later.
        agent.identities()?;
        Ok(agent)
    }

    fn call(&mut self, msg: &[u8]) -> Result<Vec<u8>, ClientError> {
        let broken =
            |e: std::io::Error| ClientError::NoAgent(format!("the agent stopped answering: {e}"));
        let mut framed = Vec::with_capacity(msg.len() + 4);
        put_string(&mut framed, msg);
        self.stream.write_all(&framed).map_err(broken)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(broken)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_MESSAGE {
            return Err(ClientError::NoAgent(format!(
                "the agent sent a {len}-byte message"
            )));
        }
        let mut reply = vec![0u8; len];
        self.stream.read_exact(&mut reply).map_err(broken)?;
        Ok(reply)
    }

    pub fn identities(&mut self) -> Result<Vec<Identity>, ClientError> {
        let reply = self.call(&[REQUEST_IDENTITIES])?;
        let bad = || ClientError::NoAgent("the agent's identity list is malformed".into());
        let mut buf = &reply[..];
        if take(&mut buf, 1) != Some(&[IDENTITIES_ANSWER][..]) {
            return Err(ClientError::NoAgent(
                "the agent refused to list identities".into(),
            ));
        }
        let n = get_u32(&mut buf).ok_or_else(bad)?;
        let mut out = Vec::new();
        for _ in 0..n {
            let blob = get_string(&mut buf).ok_or_else(bad)?.to_vec();
            let _comment = get_string(&mut buf).ok_or_else(bad)?;
            let mut b = &blob[..];
            let certificate = match get_string(&mut b) {
                Some(kind) if kind == ED25519_CERT.as_bytes() => Certificate::from_openssh(
                    &format!("{ED25519_CERT} {}", Base64::encode_string(&blob)),
                )
                .ok(),
                _ => None,
            };
            out.push(Identity { blob, certificate });
        }
        Ok(out)
    }

    /// Adds an ed25519 key with its certificate, removed by the agent
    /// after `lifetime`.
    pub fn add_certified(
        &mut self,
        key: &PrivateKey,
        cert_line: &str,
        lifetime: Duration,
        comment: &str,
    ) -> Result<(), ClientError> {
        let keypair = key
            .key_data()
            .ed25519()
            .ok_or_else(|| ClientError::Other(anyhow::anyhow!("the session key is not ed25519")))?;
        let cert_blob = cert_line
            .split_whitespace()
            .nth(1)
            .and_then(|b| Base64::decode_vec(b).ok())
            .ok_or_else(|| {
                ClientError::Other(anyhow::anyhow!("the CA sent a malformed certificate"))
            })?;
        let mut msg = vec![ADD_ID_CONSTRAINED];
        put_string(&mut msg, ED25519_CERT.as_bytes());
        put_string(&mut msg, &cert_blob);
        put_string(&mut msg, keypair.public.as_ref());
        let mut secret = keypair.private.to_bytes().to_vec();
        secret.extend_from_slice(keypair.public.as_ref());
        put_string(&mut msg, &secret);
        secret.fill(0);
        put_string(&mut msg, comment.as_bytes());
        msg.push(CONSTRAIN_LIFETIME);
        msg.extend_from_slice(
            &u32::try_from(lifetime.as_secs().max(1))
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        let reply = self.call(&msg);
        msg.fill(0);
        match reply?.first() {
            Some(&SUCCESS) => Ok(()),
            _ => Err(ClientError::NoAgent(
                "the agent refused the key and certificate".into(),
            )),
        }
    }

    pub fn remove(&mut self, blob: &[u8]) -> Result<(), ClientError> {
        let mut msg = vec![REMOVE_IDENTITY];
        put_string(&mut msg, blob);
        match self.call(&msg)?.first() {
            Some(&SUCCESS) => Ok(()),
            _ => Err(ClientError::NoAgent(
                "the agent refused to remove an identity".into(),
            )),
        }
    }
}
