//! The streaming encoder a recorder feeds as the session runs.
//!
//! Events are appended as asciicast v2 lines to the open chunk; the chunk
//! is cut (compressed, chained, signed and handed back) when it holds
//! [`ChunkPolicy::max_raw_bytes`] or spans [`ChunkPolicy::max_span`].
//! The encoder has no clock: [`Encoder::tick`] with the current session
//! time cuts a chunk that has been open too long while the terminal is
//! quiet. Times are since the session started; one earlier than the last
//! event's is taken as the last event's (asciicast times never go back).

use std::time::Duration;

use ssh_key::PrivateKey;

use crate::chain::{header_hash, ChainHash};
use crate::chunk::{Chunk, ChunkBody, EndReason, EndRecord, Totals};
use crate::event::{write_line, EventKind};
use crate::header::{Header, HeaderError, RecordMode, SessionId};
use crate::signer::ChunkSigner;
use crate::utf8::Utf8Carry;

/// Where chunks are cut; the caller's choice.
#[derive(Debug, Clone, Copy)]
pub struct ChunkPolicy {
    /// Cut once the open chunk holds this many event-line bytes
    /// (1 KiB to 1 MiB). One read larger than this is split into several
    /// events.
    pub max_raw_bytes: usize,
    /// Cut once the open chunk's events span this long.
    pub max_span: Duration,
    /// zstd level (1–19). 9 gains 15% in size for a third of the speed
    /// (benches/throughput.rs).
    pub zstd_level: i32,
}

/// The recorder's defaults, measured on 100 MB of `ls -lR /usr` text and
/// 34 MB of random printable lines in 64 KiB reads (docs/sessions.md,
/// the benchmark): 256 KiB chunks sign a quarter as often as 64 KiB ones
/// and store 7% less; zstd level 1 costs a tenth less CPU than 3 on text
/// and half on what hardly compresses, for 1% more bytes.
impl Default for ChunkPolicy {
    fn default() -> Self {
        ChunkPolicy {
            max_raw_bytes: 256 * 1024,
            max_span: Duration::from_secs(10),
            zstd_level: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("chunk policy: max_raw_bytes must be 1 KiB to 1 MiB and zstd_level 1 to 19")]
    Policy,
    #[error("compressing a chunk: {0}")]
    Compress(#[source] std::io::Error),
    #[error("signing a chunk with the host key: {0}")]
    Sign(#[source] ssh_key::Error),
}

/// What [`Encoder::finish`] hands back: the last chunks to store, and
/// what the CA's `session_ended` audit record names.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The last data chunk (if events were still open) and the end chunk.
    pub chunks: Vec<Chunk>,
    /// The end chunk's hash: the recording's final chain hash.
    pub final_hash: ChainHash,
    /// The end chunk's armored SSHSIG.
    pub final_signature: String,
    pub end: EndRecord,
}

pub struct Encoder {
    key: ChunkSigner,
    /// One compression context for the whole session (creating one per
    /// chunk cost a third of the encoder's time).
    zstd: zstd::bulk::Compressor<'static>,
    policy: ChunkPolicy,
    session_id: SessionId,
    record: RecordMode,
    header_line: String,
    index: u64,
    prev: ChainHash,
    buf: Vec<u8>,
    events: u64,
    start: Duration,
    last: Duration,
    output: Utf8Carry,
    input: Utf8Carry,
    totals: Totals,
}

impl Encoder {
    /// A recording of the session `header` describes, signed with the
    /// host key `key`.
    pub fn new(header: &Header, key: PrivateKey, policy: ChunkPolicy) -> Result<Self, EncodeError> {
        if !(1024..=1024 * 1024).contains(&policy.max_raw_bytes)
            || !(1..=19).contains(&policy.zstd_level)
        {
            return Err(EncodeError::Policy);
        }
        let header_line = header.to_line()?;
        Ok(Encoder {
            zstd: zstd::bulk::Compressor::new(policy.zstd_level).map_err(EncodeError::Compress)?,
            key: ChunkSigner::new(key),
            policy,
            session_id: header.session.session_id.clone(),
            record: header.session.record,
            prev: header_hash(&header_line),
            header_line,
            index: 0,
            buf: Vec::with_capacity(policy.max_raw_bytes + 1024),
            events: 0,
            start: Duration::ZERO,
            last: Duration::ZERO,
            output: Utf8Carry::default(),
            input: Utf8Carry::default(),
            totals: Totals::default(),
        })
    }

    /// The exact header line (no newline) the chunks chain from.
    pub fn header_line(&self) -> &str {
        &self.header_line
    }

    /// Terminal output read at `t`.
    pub fn push_output(&mut self, t: Duration, bytes: &[u8]) -> Result<Vec<Chunk>, EncodeError> {
        self.totals.output_bytes += bytes.len() as u64;
        let text = self.output.decode(bytes);
        self.push_text(t, EventKind::Output, &text)
    }

    /// What the person typed at `t`; recorded only under
    /// [`RecordMode::Full`] (under `output` only counted).
    pub fn push_input(&mut self, t: Duration, bytes: &[u8]) -> Result<Vec<Chunk>, EncodeError> {
        self.totals.input_bytes += bytes.len() as u64;
        if self.record != RecordMode::Full {
            return Ok(Vec::new());
        }
        let text = self.input.decode(bytes);
        self.push_text(t, EventKind::Input, &text)
    }

    /// The window became `cols` x `rows` at `t`.
    pub fn push_resize(
        &mut self,
        t: Duration,
        cols: u16,
        rows: u16,
    ) -> Result<Vec<Chunk>, EncodeError> {
        let mut out = Vec::new();
        self.push_event(t, EventKind::Resize, &format!("{cols}x{rows}"), &mut out)?;
        Ok(out)
    }

    /// Cuts the open chunk if its first event is `max_span` before `now`.
    pub fn tick(&mut self, now: Duration) -> Result<Option<Chunk>, EncodeError> {
        if self.events > 0 && now.saturating_sub(self.start) >= self.policy.max_span {
            return self.cut().map(Some);
        }
        Ok(None)
    }

    /// Cuts the open chunk now, if it holds any event.
    pub fn flush(&mut self) -> Result<Option<Chunk>, EncodeError> {
        if self.events == 0 {
            return Ok(None);
        }
        self.cut().map(Some)
    }

    /// Ends the recording at `t`: what was left of a split character, the
    /// open chunk, and the signed end chunk.
    pub fn finish(mut self, t: Duration, reason: EndReason) -> Result<Finished, EncodeError> {
        let mut chunks = Vec::new();
        let tail = self.output.finish();
        if !tail.is_empty() {
            self.push_event(t, EventKind::Output, &tail, &mut chunks)?;
        }
        let tail = self.input.finish();
        if !tail.is_empty() {
            self.push_event(t, EventKind::Input, &tail, &mut chunks)?;
        }
        chunks.extend(self.flush()?);
        let t = whole_micros(t).max(self.last);
        self.totals.data_chunks = self.index;
        let end = EndRecord {
            reason,
            totals: self.totals,
        };
        let body = ChunkBody {
            session_id: self.session_id.clone(),
            index: self.index,
            prev: self.prev,
            start: t,
            end: t,
            events: 0,
            raw_len: 0,
            payload: Vec::new(),
            end_record: Some(end),
        };
        let last = Chunk::sign_with(body, &self.key).map_err(EncodeError::Sign)?;
        let final_hash = last.hash();
        let final_signature = last.signature().to_owned();
        chunks.push(last);
        Ok(Finished {
            chunks,
            final_hash,
            final_signature,
            end,
        })
    }

    fn push_text(
        &mut self,
        t: Duration,
        kind: EventKind,
        text: &str,
    ) -> Result<Vec<Chunk>, EncodeError> {
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let piece = split_at_most(rest, self.policy.max_raw_bytes);
            self.push_event(t, kind, piece, &mut out)?;
            rest = &rest[piece.len()..];
        }
        Ok(out)
    }

    fn push_event(
        &mut self,
        t: Duration,
        kind: EventKind,
        data: &str,
        out: &mut Vec<Chunk>,
    ) -> Result<(), EncodeError> {
        let t = whole_micros(t).max(self.last);
        // Cut before an event that would stretch the chunk past its span.
        if self.events > 0 && t - self.start >= self.policy.max_span {
            out.push(self.cut()?);
        }
        if self.events == 0 {
            self.start = t;
        }
        self.last = t;
        write_line(&mut self.buf, t, kind, data);
        self.events += 1;
        if self.buf.len() >= self.policy.max_raw_bytes {
            out.push(self.cut()?);
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<Chunk, EncodeError> {
        let payload = self
            .zstd
            .compress(&self.buf)
            .map_err(EncodeError::Compress)?;
        let body = ChunkBody {
            session_id: self.session_id.clone(),
            index: self.index,
            prev: self.prev,
            start: self.start,
            end: self.last,
            events: self.events,
            raw_len: self.buf.len() as u64,
            payload,
            end_record: None,
        };
        let chunk = Chunk::sign_with(body, &self.key).map_err(EncodeError::Sign)?;
        self.totals.events += self.events;
        self.totals.raw_bytes += self.buf.len() as u64;
        self.totals.stored_bytes += chunk.body().payload.len() as u64;
        self.index += 1;
        self.prev = chunk.hash();
        self.buf.clear();
        self.events = 0;
        Ok(chunk)
    }
}

/// Times are kept in whole microseconds, as the lines write them.
fn whole_micros(t: Duration) -> Duration {
    Duration::new(t.as_secs(), t.subsec_micros() * 1000)
}

/// The longest prefix of `s` of at most `max` bytes ending on a character
/// boundary (at least one character, so the caller always advances).
fn split_at_most(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    if end == 0 {
        end = s.char_indices().nth(1).map_or(s.len(), |(i, _)| i);
    }
    &s[..end]
}
