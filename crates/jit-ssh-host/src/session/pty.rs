//! An interactive session: the child runs on a new pty the wrapper owns,
//! so the wrapper sits between the person's terminal (sshd's pty) and the
//! shell. The outer terminal is put in raw mode (the inner pty does the
//! line editing and echo), window-size changes are passed on at SIGWINCH,
//! and the terminal's settings are restored on the way out.

use std::os::fd::{AsFd, BorrowedFd};

use rustix::termios::{self, OptionalActions, Termios};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::command::Plan;
use super::io;
use super::record::Tap;

/// The outer terminal's settings before raw mode, put back on drop.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter(tty: BorrowedFd<'_>) -> std::io::Result<Self> {
        let saved = termios::tcgetattr(tty)?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(tty, OptionalActions::Now, &raw)?;
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &self.saved);
    }
}

/// The outer terminal's window size, for the inner pty.
pub fn outer_size() -> Option<pty_process::Size> {
    let w = termios::tcgetwinsize(std::io::stdin().as_fd()).ok()?;
    Some(pty_process::Size::new_with_pixel(
        w.ws_row,
        w.ws_col,
        w.ws_xpixel,
        w.ws_ypixel,
    ))
}

/// The outer terminal's columns and rows, for the recording.
pub fn outer_cols_rows() -> Option<(u16, u16)> {
    let w = termios::tcgetwinsize(std::io::stdin().as_fd()).ok()?;
    Some((w.ws_col, w.ws_row))
}

/// What goes into the inner pty: keystrokes, or a new window size.
pub enum ToPty {
    Keys(Vec<u8>),
    Resize(pty_process::Size),
}

/// A child on a new pty, with its output going to the screen writer.
pub struct PtyChild {
    pub child: tokio::process::Child,
    /// Keystrokes and resizes for the inner pty.
    pub to_pty: mpsc::Sender<ToPty>,
    /// Ends when the pty's output ends (every holder of its slave closed).
    pub output_done: tokio::task::JoinHandle<u64>,
}

/// Starts `plan` on a new pty sized like the outer terminal; its output
/// goes to `screen`, the person's keystrokes come from the wrapper's stdin;
/// both also go to the recorder through `tap`, output before it is shown.
pub fn spawn(
    plan: &Plan,
    screen: mpsc::Sender<Vec<u8>>,
    tap: Option<Tap>,
) -> std::io::Result<PtyChild> {
    let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
    if let Some(size) = outer_size() {
        let _ = pty.resize(size);
    }
    let child = pty_process::Command::new(&plan.program)
        .arg0(&plan.arg0)
        .args(&plan.args)
        .spawn(pts)
        .map_err(std::io::Error::other)?;
    let (mut out, mut inner) = pty.into_split();
    let keys_tap = tap.clone();
    let output_done = tokio::spawn(async move {
        let mut buf = vec![0u8; io::CHUNK];
        let mut total = 0u64;
        loop {
            let n = io::read_burst(&mut out, &mut buf).await;
            if n == 0 {
                break;
            }
            total += n as u64;
            if let Some(t) = &tap {
                t.output(&buf[..n]).await;
            }
            if screen.send(buf[..n].to_vec()).await.is_err() {
                break;
            }
        }
        total
    });
    let (to_pty, mut rx) = mpsc::channel::<ToPty>(16);
    // The pty's write half both takes keystrokes and resizes it: one task
    // owns it and does both, in order.
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            match m {
                ToPty::Keys(k) => {
                    if inner.write_all(&k).await.is_err() {
                        break;
                    }
                }
                ToPty::Resize(size) => {
                    let _ = inner.resize(size);
                }
            }
        }
    });
    let keys = to_pty.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut stdin = io::stdin();
        let mut buf = vec![0u8; 4096];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(t) = &keys_tap {
                        t.input(&buf[..n]).await;
                    }
                    if keys.send(ToPty::Keys(buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    Ok(PtyChild {
        child,
        to_pty,
        output_done,
    })
}

/// Writes the screen: the child's output and the wrapper's own lines.
pub async fn screen_writer(mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut out = io::stdout();
    while let Some(mut chunk) = rx.recv().await {
        // What queued up while the last write waited goes out in one
        // write (in order), not one per message.
        while chunk.len() < io::CHUNK {
            match rx.try_recv() {
                Ok(more) => chunk.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if out.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = out.flush().await;
}
