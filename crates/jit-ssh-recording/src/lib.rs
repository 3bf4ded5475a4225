//! Session recordings: what a host recorder writes, the CA stores and an
//! auditor plays.
//!
//! A recording is an asciicast v2 header line ([`Header`]) and a sequence
//! of [`Chunk`]s. Each chunk carries zstd-compressed asciicast v2 event
//! lines, the hash of the chunk before it (chunk 0: the hash of the
//! header line) and an SSHSIG by the host key in [`NAMESPACE`]; a last
//! *end* chunk names why the session ended and the totals. The end
//! chunk's hash is the recording's final chain hash: the CA puts it and
//! the end chunk's signature into the `session_ended` audit record, so the
//! audit chain vouches for every byte before it.
//!
//! - [`Encoder`]: the recorder feeds events as they come and gets signed
//!   chunks back, cut at a size or time bound the caller sets.
//! - [`verify()`]: signatures, chain, indices, times, payloads; names the
//!   first bad chunk. [`Verifier`] does the same one chunk at a time, as
//!   uploads arrive.
//! - [`Verified`]: plays the events with speed and idle limit, or writes
//!   the plain asciicast v2 file stock `asciinema` reads.
//! - [`Chunk::to_bytes`] / [`Chunk::from_bytes`] and [`bundle`]: the
//!   stored form (docs/recording-format.md).
//!
//! Pure: no sockets, processes, clocks or files beyond the readers and
//! writers a caller hands in. It owns neither the policy (which sessions
//! are recorded) nor storage or upload.

pub mod bundle;
pub mod chain;
pub mod chunk;
pub mod encoder;
pub mod event;
pub mod header;
mod json_str;
pub mod play;
pub mod signer;
pub mod space;
pub mod utf8;
pub mod verifier;
pub mod verify;
mod wire;

pub use chain::ChainHash;
pub use chunk::{Chunk, ChunkBody, EndReason, EndRecord, ParseError, Totals};
pub use encoder::{ChunkPolicy, EncodeError, Encoder, Finished};
pub use event::{Event, EventKind, PayloadError};
pub use header::{Header, HeaderError, RecordMode, SessionId, SessionInfo};
pub use play::{Frame, PlayOptions, Player};
pub use signer::ChunkSigner;
pub use verifier::{ChainState, Verifier};
pub use verify::{verify, ChunkProblem, Verified, VerifyError};

/// SSHSIG namespace of recording chunks: a host key's signature over a
/// chunk cannot be taken for its signature over anything else.
pub const NAMESPACE: &str = "jit-ssh-recording@jit-ssh";

/// The most decompressed bytes one chunk may hold; a decoder never
/// allocates more for a chunk (a zstd bomb stops here).
pub const MAX_RAW_CHUNK_BYTES: u64 = 8 * 1024 * 1024;
/// The most compressed payload bytes one chunk may carry.
pub const MAX_PAYLOAD_BYTES: u64 = 8 * 1024 * 1024;
