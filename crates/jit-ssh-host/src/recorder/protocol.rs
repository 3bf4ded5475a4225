//! What the session wrapper and the recorder say to each other over the
//! recorder's unix socket (docs/sessions.md, "Wrapper and recorder").
//!
//! Every message is a frame: one kind byte, a big-endian `u32` length and
//! that many bytes. The wrapper opens with [`Kind::Hello`] (JSON
//! [`Hello`]) and waits for [`Kind::Accepted`] (JSON [`Accepted`]) or
//! [`Kind::Refused`] (a UTF-8 reason). Then it streams output, input and
//! resizes as they happen and closes with [`Kind::End`]. The recorder
//! stamps each frame with its own clock when it arrives; it takes no
//! time from the wrapper.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame either side sends or accepts (one pty read is at
/// most 64 KiB; a hello is a few hundred bytes).
pub const MAX_FRAME: u32 = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Hello = 1,
    Output = 2,
    Input = 3,
    /// `u16` columns, `u16` rows.
    Resize = 4,
    /// One byte: 1 exit, 2 expiry, 3 revoked.
    End = 5,
    /// From `jit-ssh-host principals` (sshd's AuthorizedPrincipalsCommand):
    /// JSON [`crate::recorder::expect::Expect`].
    Expect = 6,
    Accepted = 0x81,
    Refused = 0x82,
    /// From the recorder, at most once, when it ends the session itself
    /// (its spool is full): the reason, UTF-8, for the wrapper to show;
    /// the hang-up follows.
    Ending = 0x83,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Output,
            3 => Kind::Input,
            4 => Kind::Resize,
            5 => Kind::End,
            6 => Kind::Expect,
            0x81 => Kind::Accepted,
            0x82 => Kind::Refused,
            0x83 => Kind::Ending,
            _ => return None,
        })
    }
}

/// What the wrapper knows when the session starts. The recorder checks
/// what it can and takes the rest on trust (docs/sessions.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// 1.
    pub version: u32,
    /// The policy's record mode from the force-command: `output` or `full`.
    pub record: String,
    /// `--grant` of the force-command, if any.
    pub grant: Option<String>,
    /// The certificate's serial and key id, as the wrapper read them.
    pub serial: u64,
    pub key_id: String,
    /// The account the wrapper runs as.
    pub account: String,
    /// The wrapper's parent (sshd's session process).
    pub sshd_pid: u32,
    /// Terminal size at the start (0 x 0 without a pty).
    pub cols: u16,
    pub rows: u16,
    /// Whether the session has a pty.
    pub interactive: bool,
}

/// The recorder's yes: the session id the recording is filed under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    pub session: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the connection closed")]
    Closed,
    #[error("reading or writing the recorder socket: {0}")]
    Io(#[source] std::io::Error),
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("a frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLong(u32),
}

/// Reads one frame; [`FrameError::Closed`] at a clean end of stream
/// before a frame starts.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<(Kind, Vec<u8>), FrameError> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let kind = Kind::from_byte(head[0]).ok_or(FrameError::Kind(head[0]))?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await.map_err(FrameError::Io)?;
    Ok((kind, body))
}

/// Writes one frame (split by the caller into pieces of at most
/// [`MAX_FRAME`] bytes).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: Kind,
    body: &[u8],
) -> Result<(), FrameError> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l <= MAX_FRAME)
        .ok_or(FrameError::TooLong(u32::MAX))?;
    let mut buf = Vec::with_capacity(5 + body.len());
    buf.push(kind as u8);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf).await.map_err(FrameError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, Kind::Output, b"hello").await.unwrap();
        write_frame(&mut buf, Kind::End, &[1]).await.unwrap();
        let mut r = buf.as_slice();
        assert_eq!(
            read_frame(&mut r).await.unwrap(),
            (Kind::Output, b"hello".to_vec())
        );
        assert_eq!(read_frame(&mut r).await.unwrap(), (Kind::End, vec![1]));
        assert!(matches!(read_frame(&mut r).await, Err(FrameError::Closed)));
        let huge = [2u8, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut huge.as_slice()).await,
            Err(FrameError::TooLong(_))
        ));
        assert!(matches!(
            read_frame(&mut [9u8, 0, 0, 0, 0].as_slice()).await,
            Err(FrameError::Kind(9))
        ));
    }
}
