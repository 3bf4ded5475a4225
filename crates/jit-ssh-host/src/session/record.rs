//! The wrapper's side of recording: before the child starts it connects
//! to the host recorder, says who it is and waits for the recorder's yes
//! (no yes, no login); then it streams what the session shows (and, for
//! `full`, what is typed) and window size changes, and says how the
//! session ended. If the recorder goes away, [`Tap::lost`] fires and the
//! wrapper ends the session: a session that must be recorded does not go
//! on unrecorded. Protocol: crate::recorder::protocol.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

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

/// What the session loop hands the recorder; cheap to clone.
#[derive(Clone)]
pub struct Tap {
    tx: mpsc::Sender<Vec<u8>>,
    full: bool,
    /// Fires once when the recorder is gone.
    pub lost: Arc<Notify>,
}

/// The task writing to the recorder; wait for it after [`Tap::end`].
pub struct Streaming {
    pub tap: Tap,
    pub writer: tokio::task::JoinHandle<()>,
}

impl Connected {
    /// Starts streaming (inside the tokio runtime).
    pub fn stream(self) -> std::io::Result<Streaming> {
        self.stream.set_nonblocking(true)?;
        let stream = tokio::net::UnixStream::from_std(self.stream)?;
        let (mut rd, mut wr) = stream.into_split();
        let lost = Arc::new(Notify::new());
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        let on_write = lost.clone();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Some(buf) = rx.recv().await {
                // An empty message is the wrapper's last: see `end`.
                if buf.is_empty() {
                    break;
                }
                if wr.write_all(&buf).await.is_err() {
                    on_write.notify_one();
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
        // The recorder sends nothing after its yes: end of file (or an
        // error) means it is gone.
        let on_read = lost.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut b = [0u8; 64];
            loop {
                match rd.read(&mut b).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            on_read.notify_one();
        });
        Ok(Streaming {
            tap: Tap {
                tx,
                full: self.full,
                lost,
            },
            writer,
        })
    }
}

impl Tap {
    async fn send(&self, kind: Kind, body: &[u8]) {
        for piece in body.chunks(MAX_FRAME as usize) {
            if self.tx.send(frame(kind, piece)).await.is_err() {
                self.lost.notify_one();
                return;
            }
        }
    }

    /// What the session showed. Waits when the recorder is behind:
    /// nothing reaches the screen unrecorded.
    pub async fn output(&self, bytes: &[u8]) {
        self.send(Kind::Output, bytes).await;
    }

    /// What was typed; sent only under `full`.
    pub async fn input(&self, bytes: &[u8]) {
        if self.full {
            self.send(Kind::Input, bytes).await;
        }
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        let mut b = cols.to_be_bytes().to_vec();
        b.extend_from_slice(&rows.to_be_bytes());
        let _ = self.tx.try_send(frame(Kind::Resize, &b));
    }

    /// How the session ended (1 exit, 2 expiry, 3 revoked); then the
    /// writer closes the connection (other holders of the tap, such as a
    /// reader still blocked on stdin, do not keep it open).
    pub async fn end(&self, reason: u8) {
        self.send(Kind::End, &[reason]).await;
        let _ = self.tx.send(Vec::new()).await;
    }
}
