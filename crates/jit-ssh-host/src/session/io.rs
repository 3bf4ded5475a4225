//! The wrapper's own stdin and stdout as async streams, and copying
//! between streams, for non-interactive sessions (a pty session copies
//! on threads of its own: pty.rs). sshd's ends (pipes or a socketpair)
//! are put in non-blocking mode and driven by tokio's reactor; anything
//! tokio cannot poll (a regular file, /dev/null) falls back to tokio's
//! thread-backed stdin/stdout.

use std::os::fd::AsFd;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;

/// One read's worth: large enough that bulk output is not chopped small.
pub const CHUNK: usize = 64 * 1024;

pub type Reader = Box<dyn AsyncRead + Unpin + Send>;
pub type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// The wrapper's stdin (fd 0), polled by the reactor when it can be.
pub fn stdin() -> Reader {
    let polled = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| {
            rustix::io::ioctl_fionbio(&fd, true)?;
            pipe::Receiver::from_owned_fd_unchecked(fd)
        });
    match polled {
        Ok(r) => Box::new(r),
        Err(_) => Box::new(tokio::io::stdin()),
    }
}

/// The wrapper's stdout (fd 1), polled by the reactor when it can be.
pub fn stdout() -> Writer {
    let polled = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| {
            rustix::io::ioctl_fionbio(&fd, true)?;
            pipe::Sender::from_owned_fd_unchecked(fd)
        });
    match polled {
        Ok(w) => Box::new(w),
        Err(_) => Box::new(tokio::io::stdout()),
    }
}

/// Copies `from` to `to` until end of file (a read error, such as EIO
/// from a pty whose other side closed, counts as the end), then shuts
/// `to` down so the reader on its far side sees end of file; with a
/// `tap`, what passes is sent to the recorder first (as output, or as
/// input when `input`), and what it did not take is not passed on.
/// Returns the bytes copied.
pub async fn pump_recorded<R, W>(
    mut from: R,
    mut to: W,
    tap: Option<super::record::Tap>,
    input: bool,
) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(tap) = &tap {
            let recorded = if input {
                tap.input_async(&buf[..n]).await
            } else {
                tap.output_async(&buf[..n]).await
            };
            // Not recorded (the recorder is gone): not passed on either.
            if !recorded {
                break;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        total += n as u64;
    }
    let _ = to.flush().await;
    let _ = to.shutdown().await;
    total
}
