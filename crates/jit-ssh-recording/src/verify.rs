//! Checking a recording against the host key before anyone plays it.
//!
//! Every chunk must be signed by the host key in [`crate::NAMESPACE`],
//! belong to the header's session, sit at its own index, name the
//! previous chunk's hash (chunk 0: the header line's), start no earlier
//! than the previous chunk ended, and hold exactly the events it claims.
//! Together: no chunk can be edited, dropped, reordered, duplicated or
//! inserted. Only the tail can go missing unnoticed, so a caller that holds
//! the audit record's final hash passes it, and a recording without its
//! end chunk or with another final hash is refused.

use std::time::Duration;

use ssh_key::PublicKey;

use crate::chain::{header_hash, ChainHash};
use crate::chunk::{Chunk, EndRecord, Totals};
use crate::event::{Event, EventKind, PayloadError};
use crate::header::{Header, HeaderError, RecordMode, SessionId};

/// A recording whose every chunk checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    pub(crate) header: Header,
    pub(crate) header_line: String,
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) end: Option<EndRecord>,
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
    let header = Header::parse_line(header_line)?;
    if chunks.is_empty() {
        return Err(VerifyError::Empty);
    }
    let mut state = Chain {
        session: &header.session.session_id,
        record: header.session.record,
        prev: header_hash(header_line),
        prev_end: Duration::ZERO,
        sums: Totals::default(),
        end: None,
    };
    for (position, chunk) in chunks.iter().enumerate() {
        let position = position as u64;
        state
            .check(position, chunk, host_key)
            .map_err(|problem| VerifyError::Chunk { position, problem })?;
    }
    let final_hash = state.prev;
    let end = state.end;
    if let Some(expected) = expected_final {
        if end.is_none() {
            return Err(VerifyError::NoEnd {
                last: chunks.len() as u64 - 1,
            });
        }
        if final_hash != *expected {
            return Err(VerifyError::FinalHash {
                found: final_hash,
                expected: *expected,
            });
        }
    }
    let mut chunks = chunks;
    if end.is_some() {
        chunks.pop();
    }
    Ok(Verified {
        header,
        header_line: header_line.to_owned(),
        chunks,
        end,
        final_hash,
    })
}

/// What the chunks so far established.
struct Chain<'a> {
    session: &'a SessionId,
    record: RecordMode,
    prev: ChainHash,
    prev_end: Duration,
    sums: Totals,
    end: Option<EndRecord>,
}

impl Chain<'_> {
    fn check(&mut self, position: u64, chunk: &Chunk, key: &PublicKey) -> Result<(), ChunkProblem> {
        // The signature first: until it holds, nothing the chunk says is
        // the host's word.
        if !chunk.signed_by(key) {
            return Err(ChunkProblem::Signature);
        }
        let b = chunk.body();
        if b.session_id != *self.session {
            return Err(ChunkProblem::SessionId {
                found: b.session_id.clone(),
                expected: self.session.clone(),
            });
        }
        if b.index != position {
            return Err(ChunkProblem::Index {
                expected: position,
                found: b.index,
            });
        }
        if b.prev != self.prev {
            return Err(ChunkProblem::Chain(if position == 0 {
                "header line"
            } else {
                "previous chunk"
            }));
        }
        if self.end.is_some() {
            return Err(ChunkProblem::AfterEnd);
        }
        if b.start < self.prev_end {
            return Err(ChunkProblem::Time {
                start: b.start,
                prev_end: self.prev_end,
            });
        }
        match &b.end_record {
            Some(end) => self.check_totals(&end.totals)?,
            None => self.check_events(chunk)?,
        }
        self.end = b.end_record;
        self.prev = chunk.hash();
        self.prev_end = b.end;
        Ok(())
    }

    fn check_events(&mut self, chunk: &Chunk) -> Result<(), ChunkProblem> {
        let b = chunk.body();
        let events = chunk_events(chunk).map_err(ChunkProblem::Payload)?;
        if events.len() as u64 != b.events {
            return Err(ChunkProblem::Payload(PayloadError::Count {
                expected: b.events,
                found: events.len() as u64,
            }));
        }
        let mut last = b.start;
        for (i, e) in events.iter().enumerate() {
            let event = i as u64;
            if e.time < last && e.time >= b.start {
                return Err(ChunkProblem::Payload(PayloadError::Backwards { event }));
            }
            if e.time < b.start || e.time > b.end {
                return Err(ChunkProblem::Payload(PayloadError::OutsideChunk {
                    event,
                    time: e.time,
                    start: b.start,
                    end: b.end,
                }));
            }
            if e.kind == EventKind::Input && self.record != RecordMode::Full {
                return Err(ChunkProblem::InputRecorded);
            }
            last = e.time;
        }
        self.sums.data_chunks += 1;
        self.sums.events += b.events;
        self.sums.raw_bytes += b.raw_len;
        self.sums.stored_bytes += b.payload.len() as u64;
        Ok(())
    }

    fn check_totals(&self, t: &Totals) -> Result<(), ChunkProblem> {
        let s = &self.sums;
        let what = if t.data_chunks != s.data_chunks {
            "data chunks"
        } else if t.events != s.events {
            "events"
        } else if t.raw_bytes != s.raw_bytes {
            "raw bytes"
        } else if t.stored_bytes != s.stored_bytes {
            "stored bytes"
        } else {
            return Ok(());
        };
        Err(ChunkProblem::Totals(what))
    }
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

    /// Totals as the chunks hold them.
    pub fn totals(&self) -> Totals {
        self.end.map(|e| e.totals).unwrap_or_default()
    }
}
