//! One signed chunk of a recording, and its stored form.
//!
//! The signed *body* (docs/recording-format.md):
//!
//! ```text
//! "jit-ssh-recording-chunk/1\n"
//! u8  kind             0 data, 1 end
//! u32 len, session id  (ASCII)
//! u64 index            0, 1, 2 … in recording order; the end chunk is last
//! [32] previous hash   chunk 0: header_hash(header line); then SHA-256(previous body)
//! u64 start, u64 end   microseconds since the session started
//! u64 events           event lines in the payload
//! u64 raw length       decompressed payload bytes
//! u32 len, payload     zstd frame of asciicast v2 event lines (empty in an end chunk)
//! end chunk only: u8 reason, u64 data chunks, u64 events, u64 raw bytes,
//!                 u64 stored bytes, u64 output bytes, u64 input bytes
//! ```
//!
//! all integers big-endian. A chunk's hash is SHA-256 of its body; its
//! signature is an SSHSIG (armored, as `ssh-keygen -Y sign` writes it)
//! over the body in [`crate::NAMESPACE`]. Stored form:
//! `u32 len, body, u32 len, signature`.

use std::time::Duration;

use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use crate::chain::{body_hash, ChainHash};
use crate::header::SessionId;
use crate::signer::ChunkSigner;
use crate::wire::{put_framed, put_u64, Reader};
use crate::{MAX_PAYLOAD_BYTES, MAX_RAW_CHUNK_BYTES, NAMESPACE};

const MAGIC: &[u8] = b"jit-ssh-recording-chunk/1\n";
/// The most bytes of an armored signature.
const MAX_SIGNATURE_BYTES: u64 = 4096;
/// The most bytes of a body: the payload and room for every other field.
const MAX_BODY_BYTES: u64 = MAX_PAYLOAD_BYTES + 1024;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The shell or command exited.
    Exit,
    /// The certificate's validity ended.
    Expiry,
    /// The certificate was revoked.
    Revoked,
    /// The recorder lost the session (the wrapper went away unannounced).
    RecorderLost,
    /// The recorder ended the session: its spool reached the host's cap or
    /// free-space floor, and the session cannot go on unrecorded.
    SpoolFull,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Exit => "exit",
            EndReason::Expiry => "expiry",
            EndReason::Revoked => "revoked",
            EndReason::RecorderLost => "recorder-lost",
            EndReason::SpoolFull => "spool-full",
        }
    }

    fn code(self) -> u8 {
        match self {
            EndReason::Exit => 1,
            EndReason::Expiry => 2,
            EndReason::Revoked => 3,
            EndReason::RecorderLost => 4,
            EndReason::SpoolFull => 5,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => EndReason::Exit,
            2 => EndReason::Expiry,
            3 => EndReason::Revoked,
            4 => EndReason::RecorderLost,
            5 => EndReason::SpoolFull,
            _ => return None,
        })
    }
}

/// What a whole recording holds, as the end chunk states it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Data chunks (the end chunk's index).
    pub data_chunks: u64,
    pub events: u64,
    /// Decompressed asciicast event bytes.
    pub raw_bytes: u64,
    /// Compressed payload bytes.
    pub stored_bytes: u64,
    /// Terminal output bytes as the recorder read them (before UTF-8
    /// repair); signed, but not recomputable from the events.
    pub output_bytes: u64,
    /// Typed bytes the recorder read (counted in `output` mode too, where
    /// they are not recorded).
    pub input_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRecord {
    pub reason: EndReason,
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkBody {
    pub session_id: SessionId,
    pub index: u64,
    pub prev: ChainHash,
    pub start: Duration,
    pub end: Duration,
    pub events: u64,
    pub raw_len: u64,
    pub payload: Vec<u8>,
    /// `Some` in the end chunk only.
    pub end_record: Option<EndRecord>,
}

/// A signed chunk. Its body bytes are kept as signed, so hashing and
/// verifying never depend on re-encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    body: ChunkBody,
    body_bytes: Vec<u8>,
    signature: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("ends inside {0}")]
    Truncated(&'static str),
    #[error("{field} is {len} bytes, at most {max}")]
    TooLong {
        field: &'static str,
        len: u64,
        max: u64,
    },
    #[error("not a jit-ssh recording chunk (bad magic)")]
    Magic,
    #[error("unknown chunk kind {0}")]
    Kind(u8),
    #[error("unknown end reason {0}")]
    EndReason(u8),
    #[error("bad session id")]
    SessionId,
    #[error("time range starts after it ends")]
    TimeRange,
    #[error("raw length {0} is over the limit")]
    RawLength(u64),
    #[error("an end chunk carries events")]
    EndWithEvents,
    #[error("{0} bytes after the chunk")]
    TrailingBytes(usize),
    #[error("the signature is not text")]
    SignatureText,
    #[error("the signature is not an armored SSHSIG: {0}")]
    Signature(#[source] ssh_key::Error),
}

impl ChunkBody {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + 128 + self.payload.len());
        out.extend_from_slice(MAGIC);
        out.push(u8::from(self.end_record.is_some()));
        put_framed(&mut out, self.session_id.as_str().as_bytes());
        put_u64(&mut out, self.index);
        out.extend_from_slice(&self.prev.0);
        put_u64(&mut out, micros(self.start));
        put_u64(&mut out, micros(self.end));
        put_u64(&mut out, self.events);
        put_u64(&mut out, self.raw_len);
        put_framed(&mut out, &self.payload);
        if let Some(e) = &self.end_record {
            out.push(e.reason.code());
            let t = &e.totals;
            for v in [
                t.data_chunks,
                t.events,
                t.raw_bytes,
                t.stored_bytes,
                t.output_bytes,
                t.input_bytes,
            ] {
                put_u64(&mut out, v);
            }
        }
        out
    }

    fn parse(bytes: &[u8]) -> Result<ChunkBody, ParseError> {
        let mut r = Reader::new(bytes);
        if r.take(MAGIC.len(), "magic")? != MAGIC {
            return Err(ParseError::Magic);
        }
        let kind = r.u8("kind")?;
        if kind > 1 {
            return Err(ParseError::Kind(kind));
        }
        let id = r.framed("session id", crate::header::MAX_SESSION_ID_CHARS as u64)?;
        let session_id = std::str::from_utf8(id)
            .ok()
            .and_then(|s| SessionId::try_from(s).ok())
            .ok_or(ParseError::SessionId)?;
        let index = r.u64("index")?;
        let prev = ChainHash(r.array32("previous hash")?);
        let start = Duration::from_micros(r.u64("start")?);
        let end = Duration::from_micros(r.u64("end")?);
        if start > end {
            return Err(ParseError::TimeRange);
        }
        let events = r.u64("events")?;
        let raw_len = r.u64("raw length")?;
        if raw_len > MAX_RAW_CHUNK_BYTES {
            return Err(ParseError::RawLength(raw_len));
        }
        let payload = r.framed("payload", MAX_PAYLOAD_BYTES)?.to_vec();
        let end_record = if kind == 1 {
            if events != 0 || raw_len != 0 || !payload.is_empty() {
                return Err(ParseError::EndWithEvents);
            }
            let code = r.u8("end reason")?;
            let reason = EndReason::from_code(code).ok_or(ParseError::EndReason(code))?;
            let totals = Totals {
                data_chunks: r.u64("totals")?,
                events: r.u64("totals")?,
                raw_bytes: r.u64("totals")?,
                stored_bytes: r.u64("totals")?,
                output_bytes: r.u64("totals")?,
                input_bytes: r.u64("totals")?,
            };
            Some(EndRecord { reason, totals })
        } else {
            None
        };
        r.finish()?;
        Ok(ChunkBody {
            session_id,
            index,
            prev,
            start,
            end,
            events,
            raw_len,
            payload,
            end_record,
        })
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Chunk {
    /// Signs `body` with the host key.
    pub fn sign(body: ChunkBody, key: &PrivateKey) -> Result<Chunk, ssh_key::Error> {
        let body_bytes = body.encode();
        let signature = key
            .sign(NAMESPACE, HashAlg::Sha512, &body_bytes)?
            .to_pem(LineEnding::LF)?;
        Ok(Chunk {
            body,
            body_bytes,
            signature,
        })
    }

    /// [`Chunk::sign`] with a key prepared for signing many chunks.
    pub fn sign_with(body: ChunkBody, signer: &ChunkSigner) -> Result<Chunk, ssh_key::Error> {
        let body_bytes = body.encode();
        let signature = signer.sign(NAMESPACE, &body_bytes)?;
        Ok(Chunk {
            body,
            body_bytes,
            signature,
        })
    }

    pub fn body(&self) -> &ChunkBody {
        &self.body
    }

    /// The exact bytes signed and hashed.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.body_bytes
    }

    /// The armored SSHSIG over [`Chunk::signed_bytes`].
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// SHA-256 of the body: what the next chunk names as its previous hash.
    pub fn hash(&self) -> ChainHash {
        body_hash(&self.body_bytes)
    }

    /// Whether `key` signed this chunk in [`NAMESPACE`].
    pub fn signed_by(&self, key: &PublicKey) -> bool {
        SshSig::from_pem(&self.signature)
            .is_ok_and(|sig| key.verify(NAMESPACE, &self.body_bytes, &sig).is_ok())
    }

    /// The stored form: `u32 len, body, u32 len, signature`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body_bytes.len() + self.signature.len() + 8);
        put_framed(&mut out, &self.body_bytes);
        put_framed(&mut out, self.signature.as_bytes());
        out
    }

    /// Parses the stored form strictly: every length checked against its
    /// limit, no unknown kind or reason, no trailing byte. The signature
    /// is parsed, not verified ([`crate::verify()`] does that).
    pub fn from_bytes(bytes: &[u8]) -> Result<Chunk, ParseError> {
        let mut r = Reader::new(bytes);
        let body_bytes = r.framed("body", MAX_BODY_BYTES)?;
        let sig = r.framed("signature", MAX_SIGNATURE_BYTES)?;
        r.finish()?;
        let body = ChunkBody::parse(body_bytes)?;
        let signature = std::str::from_utf8(sig).map_err(|_| ParseError::SignatureText)?;
        SshSig::from_pem(signature).map_err(ParseError::Signature)?;
        Ok(Chunk {
            body,
            body_bytes: body_bytes.to_vec(),
            signature: signature.to_owned(),
        })
    }
}
