//! Verifying one chunk at a time, as chunks arrive: the CA checks each
//! upload against the host key and what it already holds, without
//! reading the recording back. [`ChainState`] is all a verifier carries
//! from one chunk to the next, so a caller can store it between uploads
//! and [`Verifier::resume`] later.

use std::time::Duration;

use ssh_key::PublicKey;

use crate::chain::{header_hash, ChainHash};
use crate::chunk::{Chunk, EndRecord, Totals};
use crate::event::{EventKind, PayloadError};
use crate::header::{Header, RecordMode, SessionId};
use crate::verify::{chunk_events, ChunkProblem, VerifyError};

/// What the chunks so far established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// The index (and position) the next chunk must have.
    pub next_index: u64,
    /// The hash the next chunk must name: the last chunk's, or the header
    /// line's before chunk 0. After the end chunk: the final hash.
    pub prev: ChainHash,
    /// Where the last chunk ended; the next may not start earlier.
    pub prev_end: Duration,
    /// What the data chunks so far add up to.
    pub sums: Totals,
    /// The end chunk's record, once it came.
    pub end: Option<EndRecord>,
}

pub struct Verifier {
    session: SessionId,
    record: RecordMode,
    key: PublicKey,
    state: ChainState,
}

impl Verifier {
    /// Before chunk 0 of the recording `header_line` starts.
    pub fn new(header_line: &str, host_key: PublicKey) -> Result<Self, VerifyError> {
        let state = ChainState {
            next_index: 0,
            prev: header_hash(header_line),
            prev_end: Duration::ZERO,
            sums: Totals::default(),
            end: None,
        };
        Verifier::resume(header_line, host_key, state)
    }

    /// Where an earlier verifier of the same recording left off.
    pub fn resume(
        header_line: &str,
        host_key: PublicKey,
        state: ChainState,
    ) -> Result<Self, VerifyError> {
        let header = Header::parse_line(header_line)?;
        Ok(Verifier {
            session: header.session.session_id,
            record: header.session.record,
            key: host_key,
            state,
        })
    }

    pub fn state(&self) -> &ChainState {
        &self.state
    }

    /// Checks the next chunk; a refused chunk changes nothing, and the
    /// error names its position.
    pub fn push(&mut self, chunk: &Chunk) -> Result<(), VerifyError> {
        let position = self.state.next_index;
        self.check(chunk)
            .map_err(|problem| VerifyError::Chunk { position, problem })
    }

    /// After the last chunk: with the audit record's final hash, the
    /// recording must stop at exactly that hash. That is the end chunk's
    /// hash, or, for a session whose recorder died before writing one
    /// (the CA then records the last chunk it received), that chunk's.
    pub fn finish(self, expected_final: Option<&ChainHash>) -> Result<ChainState, VerifyError> {
        let s = self.state;
        match expected_final {
            Some(expected) if s.prev != *expected && s.end.is_none() => Err(VerifyError::NoEnd {
                last: s.next_index.saturating_sub(1),
            }),
            Some(expected) if s.prev != *expected => Err(VerifyError::FinalHash {
                found: s.prev,
                expected: *expected,
            }),
            _ => Ok(s),
        }
    }

    fn check(&mut self, chunk: &Chunk) -> Result<(), ChunkProblem> {
        // The signature first: until it holds, nothing the chunk says is
        // the host's word.
        if !chunk.signed_by(&self.key) {
            return Err(ChunkProblem::Signature);
        }
        let b = chunk.body();
        let s = &self.state;
        if b.session_id != self.session {
            return Err(ChunkProblem::SessionId {
                found: b.session_id.clone(),
                expected: self.session.clone(),
            });
        }
        if b.index != s.next_index {
            return Err(ChunkProblem::Index {
                expected: s.next_index,
                found: b.index,
            });
        }
        if b.prev != s.prev {
            return Err(ChunkProblem::Chain(if s.next_index == 0 {
                "header line"
            } else {
                "previous chunk"
            }));
        }
        if s.end.is_some() {
            return Err(ChunkProblem::AfterEnd);
        }
        if b.start < s.prev_end {
            return Err(ChunkProblem::Time {
                start: b.start,
                prev_end: s.prev_end,
            });
        }
        let sums = match &b.end_record {
            Some(end) => check_totals(&s.sums, &end.totals)?,
            None => self.check_events(chunk)?,
        };
        self.state = ChainState {
            next_index: s.next_index + 1,
            prev: chunk.hash(),
            prev_end: b.end,
            sums,
            end: b.end_record,
        };
        Ok(())
    }

    /// The sums with this data chunk added, if its events check out.
    fn check_events(&self, chunk: &Chunk) -> Result<Totals, ChunkProblem> {
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
            if e.time < b.start || e.time > b.end {
                return Err(ChunkProblem::Payload(PayloadError::OutsideChunk {
                    event,
                    time: e.time,
                    start: b.start,
                    end: b.end,
                }));
            }
            if e.time < last {
                return Err(ChunkProblem::Payload(PayloadError::Backwards { event }));
            }
            if e.kind == EventKind::Input && self.record != RecordMode::Full {
                return Err(ChunkProblem::InputRecorded);
            }
            last = e.time;
        }
        let mut sums = self.state.sums;
        sums.data_chunks += 1;
        sums.events += b.events;
        sums.raw_bytes += b.raw_len;
        sums.stored_bytes += b.payload.len() as u64;
        Ok(sums)
    }
}

/// The sums, if the end chunk's totals agree with them.
fn check_totals(sums: &Totals, t: &Totals) -> Result<Totals, ChunkProblem> {
    let what = if t.data_chunks != sums.data_chunks {
        "data chunks"
    } else if t.events != sums.events {
        "events"
    } else if t.raw_bytes != sums.raw_bytes {
        "raw bytes"
    } else if t.stored_bytes != sums.stored_bytes {
        "stored bytes"
    } else {
        return Ok(*sums);
    };
    Err(ChunkProblem::Totals(what))
}
