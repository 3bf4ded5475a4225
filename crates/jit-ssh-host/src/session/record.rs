//! The wrapper's side of recording: before the child starts it connects
//! to the host recorder, says who it is and waits for the recorder's yes
//! (no yes, no login); then it streams what the session shows (and, for
//! `full`, what is typed) and window size changes, and says how the
//! session ended. If the recorder goes away, [`Tap::lost`] fires and the
//! wrapper ends the session: a session that must be recorded does not go
//! on unrecorded. Protocol: crate::recorder::protocol.

use std::io::{IoSlice, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::recorder::protocol::{Accepted, Hello, Kind, MAX_FRAME};

/// How long the recorder has to answer the hello.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the recorder did not take the session.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("recording is required by policy (record = {record}) but no recorder is reachable at {socket}: {why}")]
    Unreachable {
        record: String,
        socket: String,
        why: String,
    },
    #[error("recording is required by policy (record = {record}) but the recorder refused this session: {why}")]
    Refused { record: String, why: String },
}

/// A connection the recorder accepted, not yet streaming.
pub struct Connected {
    stream: UnixStream,
    pub session: String,
    full: bool,
}

fn frame(kind: Kind, body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(5 + body.len());
    buf.push(kind as u8);
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
    buf
}

/// Connects to the recorder at `socket` and has `hello` accepted.
pub fn connect(socket: &Path, hello: &Hello) -> Result<Connected, RecordError> {
    let unreachable = |why: String| RecordError::Unreachable {
        record: hello.record.clone(),
        socket: socket.display().to_string(),
        why,
    };
    let refused = |why: String| RecordError::Refused {
        record: hello.record.clone(),
        why,
    };
    let mut stream = UnixStream::connect(socket).map_err(|e| unreachable(e.to_string()))?;
    let body = serde_json::to_vec(hello).map_err(|e| unreachable(e.to_string()))?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .and_then(|()| stream.write_all(&frame(Kind::Hello, &body)))
        .map_err(|e| unreachable(e.to_string()))?;
    let mut head = [0u8; 5];
    stream
        .read_exact(&mut head)
        .map_err(|e| unreachable(format!("no answer: {e}")))?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if len > MAX_FRAME {
        return Err(unreachable("an oversized answer".into()));
    }
    let mut answer = vec![0u8; len as usize];
    stream
        .read_exact(&mut answer)
        .map_err(|e| unreachable(format!("no answer: {e}")))?;
    match head[0] {
        b if b == Kind::Accepted as u8 => {
            let a: Accepted = serde_json::from_slice(&answer)
                .map_err(|e| unreachable(format!("an unreadable answer: {e}")))?;
            let _ = stream.set_read_timeout(None);
            Ok(Connected {
                stream,
                session: a.session,
                full: hello.record == "full",
            })
        }
        b if b == Kind::Refused as u8 => {
            Err(refused(String::from_utf8_lossy(&answer).into_owned()))
        }
        other => Err(unreachable(format!("an unknown answer ({other})"))),
    }
}

/// What the session hands the recorder; cheap to clone. Frames are
/// written to the recorder's socket by the thread that has them (the pty
/// output thread writes its own), whole under a lock, so a pty session
/// has no hand-off per chunk of output; async callers go through the
/// `*_async` methods, which write on a blocking thread so a recorder that
/// is behind never holds the session loop (deadlines, revocation).
#[derive(Clone)]
pub struct Tap {
    sink: Arc<Sink>,
    full: bool,
    /// Fires once when the recorder is gone, or is ending the session.
    pub lost: Arc<Notify>,
    /// Why, when the recorder said so before ending the session.
    ending: Arc<Mutex<Option<String>>>,
}

/// The recorder's socket (blocking): one writer at a time.
struct Sink {
    stream: Mutex<UnixStream>,
    /// A write failed or the session's end was sent: nothing more goes.
    closed: AtomicBool,
}

impl Connected {
    /// Starts streaming (inside the tokio runtime: the recorder's end of
    /// file is watched on a blocking thread).
    pub fn stream(self) -> std::io::Result<Tap> {
        let watch = self.stream.try_clone()?;
        let lost = Arc::new(Notify::new());
        let ending = Arc::new(Mutex::new(None));
        // After its yes the recorder sends at most why it ends the
        // session; that, end of file or an error means it is done with
        // this session.
        let (on_read, why) = (lost.clone(), ending.clone());
        tokio::task::spawn_blocking(move || {
            let mut watch = watch;
            if let Some(reason) = read_ending(&mut watch) {
                *why.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
            }
            on_read.notify_one();
        });
        Ok(Tap {
            sink: Arc::new(Sink {
                stream: Mutex::new(self.stream),
                closed: AtomicBool::new(false),
            }),
            full: self.full,
            lost,
            ending,
        })
    }
}

/// The longest reason shown from an ending frame.
const MAX_REASON: usize = 1024;

/// Reads until the recorder's ending frame (its reason, printable
/// characters only: it goes to the person's terminal), end of file or an
/// error; anything else it might send is skipped.
fn read_ending(watch: &mut UnixStream) -> Option<String> {
    loop {
        let mut head = [0u8; 5];
        watch.read_exact(&mut head).ok()?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_FRAME as usize {
            return None;
        }
        let mut body = vec![0u8; len];
        watch.read_exact(&mut body).ok()?;
        if head[0] == Kind::Ending as u8 {
            let text: String = String::from_utf8_lossy(&body)
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_REASON)
                .collect();
            return Some(text);
        }
    }
}

/// Writes one frame (header and body) in full, without copying the body.
fn write_frame(stream: &mut UnixStream, kind: Kind, body: &[u8]) -> std::io::Result<()> {
    let mut head = [0u8; 5];
    head[0] = kind as u8;
    head[1..].copy_from_slice(&(body.len() as u32).to_be_bytes());
    let mut parts = [IoSlice::new(&head), IoSlice::new(body)];
    let mut parts = &mut parts[..];
    while !parts.is_empty() {
        match stream.write_vectored(parts) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Tap {
    /// Why the recorder ended the session, when it said so.
    pub fn ending(&self) -> Option<String> {
        self.ending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Blocks while the recorder is behind. False: not recorded (the
    /// recorder is gone, or the session's end was sent).
    fn send(&self, kind: Kind, body: &[u8]) -> bool {
        let mut stream = self
            .sink
            .stream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.sink.closed.load(Ordering::Acquire) {
            return false;
        }
        for piece in body.chunks(MAX_FRAME as usize) {
            if write_frame(&mut stream, kind, piece).is_err() {
                self.sink.closed.store(true, Ordering::Release);
                self.lost.notify_one();
                return false;
            }
        }
        true
    }

    /// What the session shows, before it is shown. Blocks when the
    /// recorder is behind; false when it was not recorded, and then it
    /// must not be shown.
    pub fn output(&self, bytes: &[u8]) -> bool {
        self.send(Kind::Output, bytes)
    }

    /// What was typed; sent only under `full` (true otherwise).
    pub fn input(&self, bytes: &[u8]) -> bool {
        !self.full || self.send(Kind::Input, bytes)
    }

    /// [`Tap::output`] from async code: waits, off the runtime's thread.
    pub async fn output_async(&self, bytes: &[u8]) -> bool {
        let (tap, bytes) = (self.clone(), bytes.to_vec());
        tokio::task::spawn_blocking(move || tap.output(&bytes))
            .await
            .unwrap_or(false)
    }

    /// [`Tap::input`] from async code.
    pub async fn input_async(&self, bytes: &[u8]) -> bool {
        if !self.full {
            return true;
        }
        let (tap, bytes) = (self.clone(), bytes.to_vec());
        tokio::task::spawn_blocking(move || tap.input(&bytes))
            .await
            .unwrap_or(false)
    }

    /// A new window size; never waits (called from the session loop).
    pub fn resize(&self, cols: u16, rows: u16) {
        let mut b = cols.to_be_bytes().to_vec();
        b.extend_from_slice(&rows.to_be_bytes());
        let tap = self.clone();
        tokio::task::spawn_blocking(move || tap.send(Kind::Resize, &b));
    }

    /// How the session ended (1 exit, 2 expiry, 3 revoked); then the
    /// connection's write side is shut, so the recorder sees the end even
    /// while other holders of the tap (a thread still blocked on stdin)
    /// live on. Blocks: call it off the runtime's thread.
    pub fn end(&self, reason: u8) {
        // One lock: no output frame after the end.
        let mut stream = self
            .sink
            .stream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !self.sink.closed.swap(true, Ordering::AcqRel) {
            let _ = write_frame(&mut stream, Kind::End, &[reason]);
        }
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_recorders_reason_is_read_past_other_frames_and_shown_without_control_characters() {
        let (mut recorder, mut wrapper) = UnixStream::pair().unwrap();
        write_frame(&mut recorder, Kind::Accepted, b"{}").unwrap();
        write_frame(
            &mut recorder,
            Kind::Ending,
            b"this host's recording spool is full\x1b[2J\r\n",
        )
        .unwrap();
        assert_eq!(
            read_ending(&mut wrapper).as_deref(),
            Some("this host's recording spool is full[2J")
        );
        // End of file without a reason: none.
        drop(recorder);
        assert_eq!(read_ending(&mut wrapper), None);
    }
}
