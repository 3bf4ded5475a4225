//! One recorded session, from the wrapper's hello to its end: checks who
//! connected, writes the recording to the spool as the wrapper streams
//! it, and ends the sshd session itself when the wrapper goes away
//! without an end, stops answering past the certificate's deadline, or
//! the recording cannot be written (a session that must be recorded does
//! not go on unrecorded).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jit_ssh_recording::{Chunk, ChunkPolicy, EncodeError, Encoder, EndReason, Header, SessionId};
use ssh_key::PrivateKey;
use tokio::net::UnixStream;
use tokio::sync::Notify;

use super::identity::{establish, IdentityError};
use super::peer::{check, environ_var, PeerError};
use super::protocol::{read_frame, write_frame, Accepted, FrameError, Hello, Kind};
use super::reap::Watched;
use super::spool::{SessionSpool, Spool, SpoolError};
use crate::session::revocation::KrlWatch;

/// What every session handler shares.
pub struct Context {
    pub spool: Spool,
    pub host_key: PrivateKey,
    /// Where sync keeps ca-keys (the certificate must be signed by one).
    pub dir: PathBuf,
    pub passwd: PathBuf,
    /// The session wrapper's binary: a peer must run this file.
    pub wrapper: PathBuf,
    pub policy: ChunkPolicy,
    /// Wakes the uploader when chunks were written.
    pub uploads: Arc<Notify>,
    /// Logins sshd announced, and the wrappers that announced themselves.
    pub registry: super::expect::Shared,
    /// Connections not past their hello yet, per peer uid.
    pub pending: std::sync::Mutex<std::collections::HashMap<Caller, usize>>,
    /// The spool's free-space floor and cap.
    pub space: super::space::Guard,
    /// Turns true when the recorder is told to stop (SIGTERM: a restart,
    /// a shutdown): every session then ends with what it recorded saved.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// Why a session ends when the recorder stops, as the person reads it.
const STOPPING: &str = "the host's session recorder is stopping (a restart or shutdown of jit-ssh-host recorder), and this session must be recorded";

/// Who holds a connection not yet past its first frame: the peer's uid,
/// and whether its parent is a root sshd (sshd's principals command, run
/// as `AuthorizedPrincipalsCommandUser`, often `nobody`, or a root
/// login's wrapper). Counted apart, so that other processes of a shared
/// account like `nobody` cannot use up its slots and have every login
/// refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller {
    uid: u32,
    from_root_sshd: bool,
}

/// Connections one uid may hold before their hello: a local user who
/// opens many and says nothing delays only their own logins.
pub const MAX_PENDING_PER_UID: usize = 8;

/// A connection counted in [`Context::pending`] until dropped.
struct PendingSlot<'a> {
    ctx: &'a Context,
    caller: Caller,
}

impl<'a> PendingSlot<'a> {
    fn take(ctx: &'a Context, caller: Caller) -> Option<PendingSlot<'a>> {
        let mut p = ctx
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = p.entry(caller).or_insert(0);
        if *n >= MAX_PENDING_PER_UID {
            return None;
        }
        *n += 1;
        Some(PendingSlot { ctx, caller })
    }
}

impl Drop for PendingSlot<'_> {
    fn drop(&mut self) {
        let mut p = self
            .ctx
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = p.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.remove(&self.caller);
            }
        }
    }
}

/// How long a wrapper has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long past the certificate's `valid_before` the recorder leaves the
/// wrapper to end the session itself (with its notice) before it does.
const DEADLINE_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("the first message is not a hello")]
    NotHello,
    #[error("the hello does not parse: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the peer's credentials are unavailable: {0}")]
    Credentials(#[source] std::io::Error),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("process {0} already streams a session: one wrapper, one session")]
    Again(i32),
    #[error("sshd let this login in with certificate serial {serial} ({key_id}), but the wrapper's SSH_USER_AUTH shows serial {shown}")]
    NotTheLogin {
        serial: u64,
        key_id: String,
        shown: u64,
    },
    #[error("starting the recording: {0}")]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("{0}")]
    Space(super::space::Short),
}

fn log(line: &str) {
    eprintln!("jit-ssh-host recorder: {line}");
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn new_session_id() -> SessionId {
    use ssh_key::rand_core::RngCore;
    let mut r = [0u8; 12];
    ssh_key::rand_core::OsRng.fill_bytes(&mut r);
    // 10 digits, a dash, 24 hex: always a valid session id.
    SessionId::try_from(format!("{}-{}", now_unix(), hex::encode(r)))
        .unwrap_or_else(|_| unreachable_id())
}

#[allow(clippy::expect_used)]
fn unreachable_id() -> SessionId {
    SessionId::try_from("s").expect("a fixed valid id")
}

/// A session under way.
struct Recording {
    enc: Option<Encoder>,
    spool: SessionSpool,
    start: Instant,
    id: SessionId,
}

impl Recording {
    fn t(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records one data frame (output, input, a resize); `None` for a
    /// frame of another kind.
    fn data(&mut self, kind: Kind, b: &[u8]) -> Option<Result<(), String>> {
        self.data_at(self.t(), kind, b)
    }

    fn data_at(&mut self, t: Duration, kind: Kind, b: &[u8]) -> Option<Result<(), String>> {
        let pushed = match kind {
            Kind::Output => self.enc.as_mut().map(|e| e.push_output(t, b)),
            Kind::Input => self.enc.as_mut().map(|e| e.push_input(t, b)),
            Kind::Resize if b.len() == 4 => {
                let cols = u16::from_be_bytes([b[0], b[1]]);
                let rows = u16::from_be_bytes([b[2], b[3]]);
                self.enc.as_mut().map(|e| e.push_resize(t, cols, rows))
            }
            _ => return None,
        };
        Some(pushed.map_or(Ok(()), |r| self.store(r)))
    }

    fn store(&mut self, chunks: Result<Vec<Chunk>, EncodeError>) -> Result<(), String> {
        let chunks = chunks.map_err(|e| e.to_string())?;
        self.spool.append(&chunks).map_err(|e| e.to_string())
    }

    fn finish(&mut self, reason: EndReason) -> Result<(), String> {
        let t = self.t();
        let Some(enc) = self.enc.take() else {
            return Ok(());
        };
        let done = enc.finish(t, reason).map_err(|e| e.to_string())?;
        self.spool.append(&done.chunks).map_err(|e| e.to_string())?;
        self.spool.mark_ended().map_err(|e| e.to_string())
    }
}

/// The certificate's end: its deadline and the host's KRL, which the
/// wrapper enforces and the recorder enforces after it, should the
/// wrapper be stopped (SIGSTOP) or stuck.
struct Watch {
    deadline: Option<u64>,
    cert: ssh_key::Certificate,
    krl: KrlWatch,
    revoked_at: Option<Instant>,
}

impl Watch {
    fn overstayed(&mut self) -> Option<Outcome> {
        if self
            .deadline
            .is_some_and(|d| now_unix() >= d + DEADLINE_GRACE.as_secs())
        {
            return Some(Outcome::Expired);
        }
        if self.revoked_at.is_none() {
            // An unreadable KRL is not a revocation (as for the wrapper).
            if let Ok(Some(_)) = self.krl.check(std::slice::from_ref(&self.cert)) {
                self.revoked_at = Some(Instant::now());
            }
        }
        self.revoked_at
            .is_some_and(|at| at.elapsed() >= DEADLINE_GRACE)
            .then_some(Outcome::Revoked)
    }
}

/// Why the recorder stops listening to a session.
enum Outcome {
    /// The wrapper said the session ended, and why.
    Ended(EndReason),
    /// The wrapper went away without an end: the session is ended here.
    Lost(String),
    /// Past the deadline and the wrapper did not end it.
    Expired,
    /// Revoked in the KRL and the wrapper did not end it.
    Revoked,
    /// The recording cannot be written.
    Broken(String),
    /// The spool reached its cap or free-space floor.
    SpoolFull(super::space::Short),
    /// The recorder was told to stop.
    Stopping,
}

pub async fn handle(stream: UnixStream, ctx: Arc<Context>) {
    let Ok(cred) = stream.peer_cred() else {
        return;
    };
    let uid = cred.uid();
    let caller = Caller {
        uid,
        from_root_sshd: cred
            .pid()
            .and_then(super::peer::parent_of)
            .is_some_and(super::expect::is_root_sshd),
    };
    let Some(slot) = PendingSlot::take(&ctx, caller) else {
        log(&format!(
            "uid {uid} holds {MAX_PENDING_PER_UID} connections that have not said hello: refused another"
        ));
        return;
    };
    let (rd, mut wr) = stream.into_split();
    // Frames are small (a pty read, 4 KiB, each): one socket read takes
    // many of them rather than two reads a frame.
    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, rd);
    let first = tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut rd)).await;
    drop(slot);
    let first = match first {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            log(&format!("refused a connection: no hello: {e}"));
            return;
        }
        Err(_) => {
            log("refused a connection: no hello in time");
            return;
        }
    };
    if first.0 == Kind::Expect {
        let pid = wr.as_ref().peer_cred().ok().and_then(|c| c.pid());
        let answer = match serde_json::from_slice::<super::expect::Expect>(&first.1) {
            Ok(e) => pid.ok_or_else(|| "no peer pid".to_owned()).and_then(|pid| {
                super::expect::expect(&ctx.registry, pid, &e, &ctx.dir).map_err(|e| e.to_string())
            }),
            Err(e) => Err(e.to_string()),
        };
        match answer {
            Ok(watched) => {
                if let Some(mode) = watched {
                    log(&format!(
                        "sshd (pid {}) is letting in a certificate whose session runs through the wrapper (record {mode}): watching the login",
                        pid.and_then(super::peer::parent_of).unwrap_or(0)
                    ));
                }
                let _ = write_frame(&mut wr, Kind::Accepted, b"{\"session\":\"\"}").await;
            }
            Err(e) => {
                log(&format!("refused sshd's announcement of a login: {e}"));
                let _ = write_frame(&mut wr, Kind::Refused, e.as_bytes()).await;
            }
        }
        return;
    }
    let started = start(first, &ctx, wr.as_ref()).await;
    let (mut rec, mut watched, mut watch) = match started {
        Ok(s) => s,
        Err(e) => {
            log(&format!("refused a session: {e}"));
            let _ = write_frame(&mut wr, Kind::Refused, e.to_string().as_bytes()).await;
            return;
        }
    };
    let accepted = serde_json::to_vec(&Accepted {
        session: rec.id.to_string(),
    })
    .unwrap_or_default();
    if write_frame(&mut wr, Kind::Accepted, &accepted)
        .await
        .is_err()
    {
        // The wrapper left before it could start anything.
        let _ = rec.finish(EndReason::RecorderLost);
        ctx.uploads.notify_one();
        return;
    }
    // Frames are read by a task of their own: a read cut off by the
    // clock's tick in the select below would lose its bytes.
    let (frames_tx, mut frames) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let f = read_frame(&mut rd).await;
            let last = f.is_err();
            if frames_tx.send(f).await.is_err() || last {
                break;
            }
        }
    });
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    let mut stopping = ctx.stopping.clone();
    let outcome = loop {
        if *stopping.borrow_and_update() {
            break Outcome::Stopping;
        }
        tokio::select! {
            Ok(()) = stopping.changed() => {}
            frame = frames.recv() => {
                match frame.unwrap_or(Err(FrameError::Closed)) {
                    Ok((Kind::End, b)) => break Outcome::Ended(match b.first() {
                        Some(2) => EndReason::Expiry,
                        Some(3) => EndReason::Revoked,
                        _ => EndReason::Exit,
                    }),
                    Ok((k, b)) => match rec.data(k, &b) {
                        Some(Ok(())) => {}
                        Some(Err(e)) => break Outcome::Broken(e),
                        None => break Outcome::Lost(format!("unexpected message {k:?}")),
                    },
                    Err(FrameError::Closed) => break Outcome::Lost("the wrapper went away without ending the session".into()),
                    Err(e) => break Outcome::Lost(e.to_string()),
                }
                if let Err(short) = ctx.space.check() {
                    break Outcome::SpoolFull(short);
                }
            }
            _ = clock.tick() => {
                let t = rec.t();
                let cut = rec.enc.as_mut().map(|e| e.tick(t).map(|c| c.into_iter().collect::<Vec<_>>()));
                if let Some(r) = cut {
                    let any = r.as_ref().is_ok_and(|c| !c.is_empty());
                    if let Err(e) = rec.store(r) {
                        break Outcome::Broken(e);
                    }
                    if any {
                        ctx.uploads.notify_one();
                    }
                }
                if let Err(e) = rec.spool.sync() {
                    break Outcome::Broken(e.to_string());
                }
                if let Err(short) = ctx.space.check() {
                    break Outcome::SpoolFull(short);
                }
                watched.refresh();
                if let Some(o) = watch.overstayed() {
                    break o;
                }
            }
        }
    };
    let reason = match outcome {
        Outcome::Ended(r) => r,
        Outcome::Lost(why) | Outcome::Broken(why) => {
            let w = watched.clone();
            let did = tokio::task::spawn_blocking(move || w.hang_up()).await;
            log(&format!(
                "session {}: {why}: ended it ({})",
                rec.id,
                did.unwrap_or_default()
            ));
            EndReason::RecorderLost
        }
        Outcome::SpoolFull(short) => {
            tell_and_hang_up(
                &mut wr,
                (&mut rec, &mut frames),
                &watched,
                &short.to_string(),
            )
            .await;
            EndReason::SpoolFull
        }
        Outcome::Stopping => {
            // What it recorded so far is kept, ended and signed: a stop
            // loses nothing the person saw (a crash loses the last
            // chunk's worth, ended at the next start).
            tell_and_hang_up(&mut wr, (&mut rec, &mut frames), &watched, STOPPING).await;
            EndReason::RecorderLost
        }
        Outcome::Revoked => {
            let why = "the certificate was revoked and the wrapper did not end the session";
            hang_up(&mut rec, &mut frames, &watched, why).await;
            EndReason::Revoked
        }
        Outcome::Expired => {
            let why = "the certificate expired and the wrapper did not end the session";
            hang_up(&mut rec, &mut frames, &watched, why).await;
            EndReason::Expiry
        }
    };
    match rec.finish(reason) {
        Ok(()) => log(&format!("session {} ended ({})", rec.id, reason.as_str())),
        Err(e) => log(&format!("session {}: writing its end: {e}", rec.id)),
    }
    ctx.uploads.notify_one();
}

/// How long after its hang-up the recorder still reads what the wrapper
/// sends, when it sends no end.
const DRAIN_AFTER: Duration = Duration::from_secs(1);
/// The most bytes read while hanging up: the wrapper's queue (64 frames
/// of 64 KiB) and what the socket holds, with room to spare.
const DRAIN_BYTES: usize = 16 << 20;

type Frames = tokio::sync::mpsc::Receiver<Result<(Kind, Vec<u8>), FrameError>>;

/// Ends the session from the root side, recording meanwhile what the
/// wrapper still sends: it queued those bytes before showing them, and
/// flushes its queue when it gets the hang-up, so the recording holds
/// everything the person saw. Frames are taken as fast as they come and
/// encoded after (the wrapper has a bounded time to flush before it is
/// killed); taking stops at the wrapper's end or end of file, after
/// [`DRAIN_BYTES`], or [`DRAIN_AFTER`] after the hang-up is done.
async fn hang_up(rec: &mut Recording, frames: &mut Frames, watched: &Watched, why: &str) {
    hang_up_after(Duration::ZERO, (rec, frames), watched, why).await;
}

/// How long a wrapper told why its session ends has to show it before
/// the hang-up.
const NOTICE_GRACE: Duration = Duration::from_millis(500);

/// Ends the session from the root side while the wrapper is alive: it
/// says `why` on the person's screen first (it shows the recorder's
/// reason), and the hang-up waits a moment for that.
async fn tell_and_hang_up(
    wr: &mut tokio::net::unix::OwnedWriteHalf,
    (rec, frames): (&mut Recording, &mut Frames),
    watched: &Watched,
    why: &str,
) {
    let told = tokio::time::timeout(NOTICE_GRACE, write_frame(wr, Kind::Ending, why.as_bytes()))
        .await
        .is_ok_and(|w| w.is_ok());
    let grace = if told { NOTICE_GRACE } else { Duration::ZERO };
    hang_up_after(grace, (rec, frames), watched, why).await;
}

/// [`hang_up`], `grace` after the wrapper was told why (what it still
/// sends meanwhile is recorded as well).
async fn hang_up_after(
    grace: Duration,
    (rec, frames): (&mut Recording, &mut Frames),
    watched: &Watched,
    why: &str,
) {
    let w = watched.clone();
    let mut hang = tokio::task::spawn_blocking(move || {
        std::thread::sleep(grace);
        w.hang_up()
    });
    let mut did: Option<String> = None;
    let mut until = tokio::time::Instant::now() + Duration::from_secs(3600);
    let mut taken = Vec::new();
    let mut late = 0usize;
    while late < DRAIN_BYTES {
        tokio::select! {
            f = frames.recv() => match f {
                Some(Ok((k, b))) if k != Kind::End => {
                    late += b.len();
                    taken.push((rec.t(), k, b));
                }
                _ => break,
            },
            r = &mut hang, if did.is_none() => {
                did = Some(r.unwrap_or_default());
                until = tokio::time::Instant::now() + DRAIN_AFTER;
            }
            _ = tokio::time::sleep_until(until) => break,
        }
    }
    for (t, k, b) in taken {
        if !matches!(rec.data_at(t, k, &b), Some(Ok(()))) {
            break;
        }
    }
    let did = match did {
        Some(d) => d,
        None => hang.await.unwrap_or_default(),
    };
    log(&format!(
        "session {}: {why}: ended it ({did}; recorded the {late} bytes the wrapper still sent)",
        rec.id
    ));
}

/// The hello, the checks, and a recording started in the spool.
async fn start(
    (kind, body): (Kind, Vec<u8>),
    ctx: &Context,
    stream: &UnixStream,
) -> Result<(Recording, Watched, Watch), Refused> {
    let cred = stream.peer_cred().map_err(Refused::Credentials)?;
    if kind != Kind::Hello {
        return Err(Refused::NotHello);
    }
    let hello: Hello = serde_json::from_slice(&body)?;
    let pid = cred
        .pid()
        .ok_or_else(|| Refused::Credentials(std::io::Error::other("no pid")))?;
    let id = new_session_id();
    // /proc, the certificate file and the name service: blocking work,
    // kept off the two async workers every session's frames need.
    let (passwd, wrapper, dir) = (ctx.passwd.clone(), ctx.wrapper.clone(), ctx.dir.clone());
    let (uid, sid) = (cred.uid(), id.clone());
    let (peer, est, hello) = tokio::task::spawn_blocking(move || {
        let peer = check(uid, pid, &hello.account, hello.sshd_pid, &passwd, &wrapper)?;
        let est = establish(&peer, &hello, &dir, sid)?;
        Ok::<_, Refused>((peer, est, hello))
    })
    .await
    .map_err(|e| Refused::Credentials(std::io::Error::other(e.to_string())))??;
    if let Some((serial, key_id)) = super::expect::login_of(&ctx.registry, peer.sshd_pid) {
        if serial != est.cert.serial() || key_id != est.cert.key_id() {
            return Err(Refused::NotTheLogin {
                serial,
                key_id,
                shown: est.cert.serial(),
            });
        }
    }
    // After the checks, so that only a login that would otherwise be
    // recorded is told the spool is full; measured afresh.
    ctx.space.check_now().map_err(Refused::Space)?;
    // Only once every check passed: an announced process is let run.
    if !super::expect::announced(&ctx.registry, peer.pid) {
        return Err(Refused::Again(peer.pid));
    }
    let info = est.info;
    let mut env = BTreeMap::new();
    for name in ["TERM", "SHELL", "SSH_ORIGINAL_COMMAND"] {
        if let Some(v) = environ_var(peer.pid, name) {
            env.insert(name.to_owned(), v);
        }
    }
    let header = Header {
        width: if hello.cols == 0 { 80 } else { hello.cols },
        height: if hello.rows == 0 { 24 } else { hello.rows },
        timestamp: now_unix(),
        env,
        session: info,
    };
    let enc = Encoder::new(&header, ctx.host_key.clone(), ctx.policy)?;
    let spool = ctx.spool.create(&id, enc.header_line())?;
    log(&format!(
        "session {id}: {} as {} on {} (serial {}, grant {}, record {:?}, sshd pid {})",
        header.session.user,
        header.session.account,
        header.session.host,
        header.session.serial,
        header.session.grant_id,
        header.session.record,
        peer.sshd_pid
    ));
    let watched =
        Watched::new(&peer).with_cgroup(super::expect::cgroup_of(&ctx.registry, peer.sshd_pid));
    Ok((
        Recording {
            enc: Some(enc),
            spool,
            start: Instant::now(),
            id,
        },
        watched,
        Watch {
            deadline: est.deadline,
            cert: est.cert,
            krl: KrlWatch::new(&ctx.dir),
            revoked_at: None,
        },
    ))
}
