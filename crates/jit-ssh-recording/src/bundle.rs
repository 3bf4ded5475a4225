//! A whole recording in one file or stream, for export and offline
//! verification: `"jit-ssh-recording/1\n"`, then `u32 len, header line`,
//! then each stored chunk as `u32 len, chunk` (see [`Chunk::to_bytes`]),
//! until the end of the input.

use std::io::{Read, Write};

use crate::chunk::{Chunk, ParseError};
use crate::header::MAX_HEADER_BYTES;

const MAGIC: &[u8] = b"jit-ssh-recording/1\n";
/// The most bytes of one stored chunk in a bundle.
const MAX_CHUNK_BYTES: u32 = (crate::MAX_PAYLOAD_BYTES + 8192) as u32;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("reading the recording: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a jit-ssh recording (bad magic)")]
    Magic,
    #[error("the header line is {0} bytes, over the limit")]
    HeaderTooLong(u32),
    #[error("the header line is not UTF-8")]
    HeaderNotUtf8,
    #[error("chunk {position}: {len} bytes, over the limit")]
    ChunkTooLong { position: u64, len: u32 },
    #[error("chunk {position}: the input ends inside it")]
    Truncated { position: u64 },
    #[error("chunk {position}: {source}")]
    Chunk {
        position: u64,
        #[source]
        source: ParseError,
    },
}

pub fn write(mut w: impl Write, header_line: &str, chunks: &[Chunk]) -> std::io::Result<()> {
    w.write_all(MAGIC)?;
    w.write_all(&(header_line.len() as u32).to_be_bytes())?;
    w.write_all(header_line.as_bytes())?;
    for c in chunks {
        let bytes = c.to_bytes();
        w.write_all(&(bytes.len() as u32).to_be_bytes())?;
        w.write_all(&bytes)?;
    }
    w.flush()
}

/// Reads a bundle: the header line and the parsed (not yet verified) chunks.
pub fn read(mut r: impl Read) -> Result<(String, Vec<Chunk>), BundleError> {
    let mut magic = [0u8; MAGIC.len()];
    r.read_exact(&mut magic).map_err(|_| BundleError::Magic)?;
    if magic != MAGIC {
        return Err(BundleError::Magic);
    }
    let len = read_len(&mut r)?.ok_or(BundleError::Magic)?;
    if len as usize > MAX_HEADER_BYTES {
        return Err(BundleError::HeaderTooLong(len));
    }
    let mut line = vec![0u8; len as usize];
    r.read_exact(&mut line)?;
    let line = String::from_utf8(line).map_err(|_| BundleError::HeaderNotUtf8)?;
    let mut chunks = Vec::new();
    let mut position = 0u64;
    while let Some(len) = read_len(&mut r).map_err(|_| BundleError::Truncated { position })? {
        if len > MAX_CHUNK_BYTES {
            return Err(BundleError::ChunkTooLong { position, len });
        }
        let mut bytes = vec![0u8; len as usize];
        r.read_exact(&mut bytes)
            .map_err(|_| BundleError::Truncated { position })?;
        chunks.push(
            Chunk::from_bytes(&bytes).map_err(|source| BundleError::Chunk { position, source })?,
        );
        position += 1;
    }
    Ok((line, chunks))
}

/// A `u32` length, or `None` at a clean end of input.
fn read_len(r: &mut impl Read) -> Result<Option<u32>, BundleError> {
    let mut b = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut b[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(BundleError::Io(std::io::ErrorKind::UnexpectedEof.into())),
            n => got += n,
        }
    }
    Ok(Some(u32::from_be_bytes(b)))
}
