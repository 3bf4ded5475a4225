//! A unix-socket proxy in front of a test cluster that plays a frozen
//! replica: it forwards bytes both ways until a client sends a message
//! containing its trigger, forwards that message, and from then on
//! forwards nothing in either direction on any connection, sockets kept
//! open (a paused VM, a SIGSTOPped process, a partition that drops
//! packets without a reset), until [`Proxy::thaw`].
//!
//! It listens at `DIR/.s.PGSQL.PORT` with the cluster's port number, so
//! a `[storage]` url naming `host=DIR port=PORT` reaches it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

#[derive(Default)]
struct State {
    /// Freeze once a client sends this (then disarmed), and whether that
    /// message is forwarded first.
    trigger: Option<(Vec<u8>, bool)>,
    frozen: bool,
    stopping: bool,
    /// Every socket opened, to shut down when the proxy stops.
    sockets: Vec<UnixStream>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    /// Blocks while frozen; `false` once the proxy stops.
    fn wait_thawed(&self) -> bool {
        let mut s = self.state.lock().unwrap();
        while s.frozen && !s.stopping {
            s = self.changed.wait(s).unwrap();
        }
        !s.stopping
    }
}

pub struct Proxy {
    dir: tempfile::TempDir,
    socket: PathBuf,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Forwards `DIR/.s.PGSQL.port` (a new temp dir) to `upstream_dir`'s.
    pub fn start(upstream_dir: &Path, port: u16) -> Proxy {
        let dir = tempfile::Builder::new()
            .prefix("jit-proxy-")
            .tempdir_in("/tmp")
            .unwrap();
        let name = format!(".s.PGSQL.{port}");
        let socket = dir.path().join(&name);
        let upstream = upstream_dir.join(&name);
        let listener = UnixListener::bind(&socket).unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.state.lock().unwrap().stopping {
                    return;
                }
                let Ok(client) = client else { return };
                let Ok(server) = UnixStream::connect(&upstream) else {
                    continue;
                };
                {
                    let mut st = s.state.lock().unwrap();
                    st.sockets.push(client.try_clone().unwrap());
                    st.sockets.push(server.try_clone().unwrap());
                }
                pump(
                    s.clone(),
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    true,
                );
                pump(s.clone(), server, client, false);
            }
        });
        Proxy {
            dir,
            socket,
            shared,
        }
    }

    /// The dir to name as the url's `host`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Freezes everything right after forwarding a client message that
    /// contains `needle`.
    pub fn freeze_after(&self, needle: &str) {
        self.shared.state.lock().unwrap().trigger = Some((needle.as_bytes().to_vec(), true));
    }

    /// Freezes everything when a client message contains `needle`, that
    /// message held back (it reaches the server only after [`Proxy::thaw`]).
    pub fn freeze_before(&self, needle: &str) {
        self.shared.state.lock().unwrap().trigger = Some((needle.as_bytes().to_vec(), false));
    }

    pub fn is_frozen(&self) -> bool {
        self.shared.state.lock().unwrap().frozen
    }

    /// Forwards again what was held back, and everything after.
    pub fn thaw(&self) {
        self.shared.state.lock().unwrap().frozen = false;
        self.shared.changed.notify_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let sockets = {
            let mut s = self.shared.state.lock().unwrap();
            s.stopping = true;
            std::mem::take(&mut s.sockets)
        };
        self.shared.changed.notify_all();
        for s in sockets {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wakes the accept loop, which sees `stopping`.
        let _ = UnixStream::connect(&self.socket);
    }
}

/// Copies `from` to `to` on a thread of its own; the client's side
/// (`upstream`) looks for the trigger.
fn pump(shared: Arc<Shared>, mut from: UnixStream, mut to: UnixStream, upstream: bool) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        // The end of the previous read, so a trigger split over two reads
        // is still seen.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !shared.wait_thawed() {
                return;
            }
            if upstream {
                let mut seen = std::mem::take(&mut tail);
                let old = seen.len();
                seen.extend_from_slice(&buf[..n]);
                let mut hold = false;
                {
                    let mut s = shared.state.lock().unwrap();
                    if let Some((needle, forward)) = s.trigger.clone() {
                        // Only an occurrence that ends in this read (one
                        // already forwarded never triggers again).
                        let from = (old + 1).saturating_sub(needle.len());
                        if seen[from..]
                            .windows(needle.len())
                            .any(|w| w == needle.as_slice())
                        {
                            // Before forwarding: the server's reply to
                            // this message is already held back.
                            s.trigger = None;
                            s.frozen = true;
                            hold = !forward;
                        }
                    }
                }
                tail = seen[seen.len().saturating_sub(256)..].to_vec();
                if hold && !shared.wait_thawed() {
                    return;
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        // Pass the end on once thawed (a frozen partition delivers nothing).
        if shared.wait_thawed() {
            let _ = to.shutdown(Shutdown::Write);
        }
    });
}
