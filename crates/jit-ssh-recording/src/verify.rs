//! Checking a recording against the host key before anyone plays it.
//!
//! Every chunk must be signed by the host key in [`crate::NAMESPACE`],
//! belong to the header's session, sit at its own index, name the
//! previous chunk's hash (chunk 0: the header line's), start no earlier
//! than the previous chunk ended, and hold exactly the events it claims.
//! Together: no chunk can be edited, dropped, reordered, duplicated or
//! inserted. Only the tail can go missing unnoticed, so a caller that holds
//! the audit record's final hash passes it, and a recording that does not
//! stop at exactly that hash is refused.

use std::time::Duration;

use ssh_key::PublicKey;

use crate::chain::ChainHash;
use crate::chunk::{Chunk, EndRecord, Totals};
use crate::event::{Event, PayloadError};
use crate::header::{Header, HeaderError, SessionId};
use crate::verifier::Verifier;

/// A recording whose every chunk checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    pub(crate) header: Header,
    pub(crate) header_line: String,
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) end: Option<EndRecord>,
    /// What the data chunks add up to.
    pub(crate) sums: Totals,
    pub(crate) final_hash: ChainHash,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("header: {0}")]
    Header(#[from] HeaderError),
    #[error("the recording has no chunks")]
    Empty,
    #[error("chunk {position}: {problem}")]
    Chunk {
        position: u64,
        problem: ChunkProblem,
    },
    #[error("the recording stops after chunk {last} without its end chunk: it was truncated (or the session is still open)")]
    NoEnd { last: u64 },
    #[error("the final chain hash is {found}, the audit record says {expected}")]
    FinalHash {
        found: ChainHash,
        expected: ChainHash,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ChunkProblem {
    #[error("signature does not verify with the host key")]
    Signature,
    #[error("belongs to session {found}, not {expected}")]
    SessionId {
        found: SessionId,
        expected: SessionId,
    },
    #[error("expected index {expected}, found {found}")]
    Index { expected: u64, found: u64 },
    #[error("previous hash does not match the {0}")]
    Chain(&'static str),
    #[error("starts at {start:?}, before the previous chunk ends at {prev_end:?}")]
    Time { start: Duration, prev_end: Duration },
    #[error("payload {0}")]
    Payload(#[source] PayloadError),
    #[error("records typed input, but the session's policy records output only")]
    InputRecorded,
    #[error("comes after the end chunk")]
    AfterEnd,
    #[error("the end chunk's totals do not match the chunks ({0})")]
    Totals(&'static str),
}

/// Checks `chunks` (in the order stored) against the header line and the
/// host's public key; `expected_final` is the final hash from the
/// `session_ended` audit record, when there is one.
pub fn verify(
    header_line: &str,
    chunks: Vec<Chunk>,
    host_key: &PublicKey,
    expected_final: Option<&ChainHash>,
) -> Result<Verified, VerifyError> {
    let mut v = Verifier::new(header_line, host_key.clone())?;
    if chunks.is_empty() {
        return Err(VerifyError::Empty);
    }
    for chunk in &chunks {
        v.push(chunk)?;
    }
    let state = v.finish(expected_final)?;
    let mut chunks = chunks;
    if state.end.is_some() {
        chunks.pop();
    }
    Ok(Verified {
        header: Header::parse_line(header_line)?,
        header_line: header_line.to_owned(),
        chunks,
        end: state.end,
        sums: state.sums,
        final_hash: state.prev,
    })
}

/// The events of a chunk whose signature was checked: decompressed to at
/// most the length it states, parsed, counted.
pub(crate) fn chunk_events(chunk: &Chunk) -> Result<Vec<Event>, PayloadError> {
    let b = chunk.body();
    let raw =
        zstd::bulk::decompress(&b.payload, b.raw_len as usize).map_err(PayloadError::Decompress)?;
    if raw.len() as u64 != b.raw_len {
        return Err(PayloadError::RawLength {
            expected: b.raw_len,
            found: raw.len() as u64,
        });
    }
    crate::event::parse_payload(&raw)
}

impl Verified {
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The exact header line the chain starts from.
    pub fn header_line(&self) -> &str {
        &self.header_line
    }

    /// The end chunk's record; `None` for a recording still open (or cut
    /// short, when no final hash was given to check).
    pub fn end(&self) -> Option<&EndRecord> {
        self.end.as_ref()
    }

    /// The last chunk's hash (the end chunk's, for an ended recording).
    pub fn final_hash(&self) -> ChainHash {
        self.final_hash
    }

    /// The data chunks, in order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The end chunk's totals; for an open recording, what its chunks add
    /// up to (no byte counts as read).
    pub fn totals(&self) -> Totals {
        self.end.map_or(self.sums, |e| e.totals)
    }
}
