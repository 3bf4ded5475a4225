//! An interactive session: the child runs on a new pty the wrapper owns,
//! so the wrapper sits between the person's terminal (sshd's pty) and the
//! shell. The outer terminal is put in raw mode (the inner pty does the
//! line editing and echo), window-size changes are passed on at SIGWINCH,
//! and the terminal's settings are restored on the way out.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::termios::{self, OptionalActions, Termios};

use super::command::Plan;
use super::record::Tap;
use super::{fdio, io};

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

/// Gives the inner pty the outer terminal's window size.
pub fn pass_size(master: &OwnedFd) {
    if let Ok(w) = termios::tcgetwinsize(std::io::stdin().as_fd()) {
        let _ = termios::tcsetwinsize(master, w);
    }
}

/// The person's screen (the wrapper's stdout): the child's output and the
/// wrapper's own lines, each written whole, one writer at a time.
#[derive(Clone, Default)]
pub struct Screen {
    lock: Arc<Mutex<()>>,
}

impl Screen {
    /// Blocks while the person's side is not reading (flow control):
    /// never call it on the session loop's thread.
    pub fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let _one = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let stdout = std::io::stdout();
        fdio::write_all(&stdout.as_fd(), bytes)
    }
}

/// A child on a new pty, with its output going to the screen.
pub struct PtyChild {
    pub child: tokio::process::Child,
    /// The inner pty's master, for window-size changes.
    pub master: Arc<OwnedFd>,
    /// Ends when the pty's output ends (every holder of its slave closed),
    /// everything before it shown.
    pub output_done: tokio::task::JoinHandle<u64>,
}

/// Starts `plan` on a new pty sized like the outer terminal; its output
/// goes to `screen`, the person's keystrokes come from the wrapper's stdin;
/// both also go to the recorder through `tap`, output before it is shown.
///
/// Each direction is one blocking thread doing read → recorder → write,
/// not async tasks: under bulk output the runtime's wake-ups, task
/// hand-offs and the copy into a message per pty read (at most 4 KiB)
/// cost the wrapper about half again the CPU of a plain copy (docs/sessions.md,
/// the benchmark), CPU that sshd and the child then lack on a small host.
pub fn spawn(plan: &Plan, screen: Screen, tap: Option<Tap>) -> std::io::Result<PtyChild> {
    let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
    if let Some(size) = outer_size() {
        let _ = pty.resize(size);
    }
    let child = pty_process::Command::new(&plan.program)
        .arg0(&plan.arg0)
        .args(&plan.args)
        .spawn(pts)
        .map_err(std::io::Error::other)?;
    // Out of the reactor (which would otherwise wake at every chunk the
    // pty makes ready): only the two threads below use it. Recorded, it
    // stays non-blocking and output is read in bursts: one frame per 4 KiB
    // pty read costs the recorder more than the bursts cost here. Not
    // recorded, a blocking read and a write per pty read is the cheapest
    // copy (docs/sessions.md, the benchmark).
    let master = Arc::new(OwnedFd::from(pty));
    let burst = tap.is_some();
    if !burst {
        rustix::io::ioctl_fionbio(&*master, false)?;
    }
    let (from_pty, keys_tap) = (master.clone(), tap.clone());
    let output_done = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; io::CHUNK];
        let mut total = 0u64;
        loop {
            let read = if burst { fdio::read_burst } else { fdio::read };
            let n = match read(&from_pty, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            total += n as u64;
            // Not recorded (the recorder is gone, or the session's end
            // was sent): not shown.
            if tap.as_ref().is_some_and(|t| !t.output(&buf[..n])) {
                break;
            }
            if screen.write(&buf[..n]).is_err() {
                break;
            }
        }
        total
    });
    // Keystrokes. This thread may stay blocked on stdin after the session
    // ends; the wrapper does not wait for it (see `run`).
    let to_pty = master.clone();
    tokio::task::spawn_blocking(move || {
        let stdin = std::io::stdin();
        let stdin = stdin.as_fd();
        let mut buf = vec![0u8; 4096];
        loop {
            let n = match fdio::read(&stdin, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if keys_tap.as_ref().is_some_and(|t| !t.input(&buf[..n])) {
                break;
            }
            if fdio::write_all(&*to_pty, &buf[..n]).is_err() {
                break;
            }
        }
    });
    Ok(PtyChild {
        child,
        master,
        output_done,
    })
}
