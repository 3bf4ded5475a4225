//! Connection hygiene for the HTTP(S) listener: a cap on connections held
//! at once, and closing connections that hold a slot without doing
//! anything (slowloris). The header timeout is hyper's (and axum-server's
//! first-request timeout for a connection's first request); the body
//! timeout is [`crate::http`]'s; this module adds the cap and the idle rule:
//!
//! - a connection with no request being handled for `idle_timeout` is
//!   closed, however many bytes trickle in (a request is "being handled"
//!   from its dispatch until its response has been written out, so long
//!   polls and large responses are safe);
//! - a write the client does not read for `idle_timeout` fails.
//!
//! Both are enforced in the stream under TLS, so they also bound a TLS
//! connection whatever happens above it.

use std::collections::HashMap;
use std::future::{ready, Future, Ready};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::connections::ConnectionLimits;

/// The acceptor: takes a slot or closes the connection, then wraps the
/// stream and the connection's service so they share its [`Activity`].
#[derive(Clone)]
pub struct Guard {
    slots: Arc<Semaphore>,
    max: usize,
    per_address: PerAddress,
    idle_timeout: Duration,
    /// Milliseconds since `started` of the last "connection cap reached"
    /// warning, so a flood logs once per interval rather than per connection.
    last_warning: Arc<AtomicU64>,
    started: Instant,
}

impl Guard {
    pub fn new(limits: &ConnectionLimits) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            max: limits.max_connections,
            per_address: PerAddress {
                held: Arc::default(),
                max: limits.max_per_address,
            },
            idle_timeout: limits.idle_timeout,
            last_warning: Arc::new(AtomicU64::new(0)),
            started: Instant::now(),
        }
    }

    /// Connections holding a slot now (for metrics).
    pub fn open_counter(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let (slots, max) = (self.slots.clone(), self.max);
        move || max.saturating_sub(slots.available_permits())
    }

    fn warn_full(&self) {
        const EVERY_MS: u64 = 10_000;
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= EVERY_MS)
            && self
                .last_warning
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "connection limit reached: new connections are closed until some end \
                 (raise [connections] max if this is legitimate load)"
            );
        }
    }
}

/// Where a connection comes from, for the per-address cap.
pub trait PeerIp {
    fn peer_ip(&self) -> Option<IpAddr>;
}

impl PeerIp for tokio::net::TcpStream {
    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer_addr().ok().map(|a| a.ip())
    }
}

/// Connections held per client address. An IPv6 address counts by its /64
/// (one subscriber's prefix), so rotating addresses within it gains nothing.
#[derive(Clone)]
struct PerAddress {
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max: usize,
}

impl PerAddress {
    /// A slot for `ip`, or `None` when it holds `max` already.
    fn take(&self, ip: IpAddr) -> Option<AddressSlot> {
        let key = crate::service::client_key(ip);
        let mut held = self.held.lock().ok()?;
        let n = held.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            key,
            held: self.held.clone(),
        })
    }
}

/// Gives its address's slot back when the connection ends.
pub struct AddressSlot {
    key: IpAddr,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut held) = self.held.lock() {
            if let Some(n) = held.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    held.remove(&self.key);
                }
            }
        }
    }
}

impl<I, S> axum_server::accept::Accept<I, S> for Guard
where
    I: AsyncRead + AsyncWrite + Unpin + PeerIp,
{
    type Stream = Guarded<I>;
    type Service = Tracked<S>;
    type Future = Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        // An address over its share is closed before it can take a slot
        // everyone else needs.
        let address_slot = match stream.peer_ip() {
            Some(ip) => match self.per_address.take(ip) {
                Some(s) => Some(s),
                None => {
                    return ready(Err(io::Error::other(
                        "connection limit for this address reached",
                    )))
                }
            },
            None => None,
        };
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            self.warn_full();
            // Dropping `stream` closes it.
            return ready(Err(io::Error::other("connection limit reached")));
        };
        let activity = Arc::new(Activity::new());
        ready(Ok((
            Guarded {
                inner: stream,
                _slot: slot,
                _address_slot: address_slot,
                activity: activity.clone(),
                idle_timeout: self.idle_timeout,
                write_stalled_since: None,
                unflushed: false,
                timer: Box::pin(tokio::time::sleep(self.idle_timeout)),
            },
            Tracked {
                inner: service,
                activity,
            },
        )))
    }
}

/// Descriptors the CA needs besides connections: store, audit log,
/// admin socket, outbound HTTP.
const OTHER_FILES: u64 = 64;

/// Logs a warning when `[connections] max` cannot be reached because the
/// process may not open that many files: past the limit, accepting fails
/// (EMFILE) for everyone instead of the cap closing the newest.
pub fn warn_if_over_file_limit(limits: &ConnectionLimits) {
    let Some(soft) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| open_files_soft_limit(&t))
    else {
        return;
    };
    let wanted = limits.max_connections as u64 + OTHER_FILES;
    if wanted > soft {
        tracing::warn!(
            max_connections = limits.max_connections,
            open_file_limit = soft,
            "[connections] max is above what the open-file limit allows; lower it or raise \
             the limit (ulimit -n, systemd LimitNOFILE)"
        );
    }
}

/// The soft "Max open files" from `/proc/self/limits` text.
fn open_files_soft_limit(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What the stream needs to know about the requests on its connection.
struct Activity {
    in_flight: AtomicUsize,
    /// When the connection last became idle (opened, or its last response
    /// written out).
    idle_since: Mutex<Instant>,
    /// A response body ended since the stream was last flushed: the next
    /// flush is when that response has been written out.
    draining: AtomicBool,
    /// The task reading the connection, woken when it becomes idle so it
    /// arms the idle timer.
    reader: Mutex<Option<Waker>>,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            draining: AtomicBool::new(false),
            reader: Mutex::new(None),
        }
    }

    /// When the connection counts as idle for too long, if it is idle.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self
            .idle_since
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|e| *e.into_inner());
        Some(since + timeout)
    }

    fn became_idle(&self) {
        if let Ok(mut t) = self.idle_since.lock() {
            *t = Instant::now();
        }
    }
}

/// Counts one request as being handled until dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.became_idle();
        self.0.draining.store(true, Ordering::Release);
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(w) = self.0.reader.lock().ok().and_then(|mut w| w.take()) {
                w.wake();
            }
        }
    }
}

/// A connection's stream with the idle and stalled-write rules.
pub struct Guarded<I> {
    inner: I,
    _slot: OwnedSemaphorePermit,
    _address_slot: Option<AddressSlot>,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    write_stalled_since: Option<Instant>,
    /// Bytes were written and not yet flushed: a response (or part of
    /// one) is on its way out, which is not idleness.
    unflushed: bool,
    timer: Pin<Box<Sleep>>,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

impl<I> Guarded<I> {
    /// Ready(true) once `deadline` has passed; otherwise arms the timer so
    /// the task is woken then.
    fn expired(&mut self, deadline: Instant, cx: &mut Context<'_>) -> bool {
        if Instant::now() >= deadline {
            return true;
        }
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }

    fn after_write(
        &mut self,
        polled: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Pending => match self.write_pending(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
            Poll::Ready(Ok(n)) => {
                self.write_stalled_since = None;
                self.unflushed |= n > 0;
                Poll::Ready(Ok(n))
            }
            ready => ready,
        }
    }

    fn write_pending(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let since = *self.write_stalled_since.get_or_insert_with(Instant::now);
        if self.expired(since + self.idle_timeout, cx) {
            return Err(timed_out("the client stopped reading"));
        }
        Ok(())
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Guarded<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => {
                if let Ok(mut w) = this.activity.reader.lock() {
                    *w = Some(cx.waker().clone());
                }
                // Idle: nothing being handled and nothing being sent.
                // Bytes arriving do not count, or a trickle would keep the
                // slot for ever.
                let sending = this.unflushed || this.write_stalled_since.is_some();
                if let Some(deadline) = this
                    .activity
                    .idle_deadline(this.idle_timeout)
                    .filter(|_| !sending)
                {
                    if this.expired(deadline, cx) {
                        return Poll::Ready(Err(timed_out("idle connection")));
                    }
                }
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Guarded<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after_write(polled, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => match this.write_pending(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
            Poll::Ready(Ok(())) => {
                this.write_stalled_since = None;
                this.unflushed = false;
                // A finished response is now out: idleness starts here.
                // (Other writes — an HTTP/2 PING answer — do not move it.)
                if this.activity.draining.swap(false, Ordering::AcqRel) {
                    this.activity.became_idle();
                }
                Poll::Ready(Ok(()))
            }
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => match this.write_pending(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
            ready => ready,
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The connection's service, counting each request as being handled until
/// its response body is done.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<Request<B>> for Tracked<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let in_flight = InFlight::new(self.activity.clone());
        let response = self.inner.call(req);
        Box::pin(async move {
            let res = response.await?;
            // The body keeps the request counted until it is sent (or
            // dropped with the connection).
            Ok(res.map(|body| {
                Body::new(HoldWhile {
                    body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// A response body holding something until it is dropped.
struct HoldWhile<T> {
    body: Body,
    _in_flight: T,
}

impl<T: Unpin + Send + 'static> http_body::Body for HoldWhile<T> {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Instant as StdInstant;

    use axum::routing::get;
    use axum::Router;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        max_connections: 10,
        max_per_address: 10,
    };

    async fn serve() -> String {
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(2500)).await;
                    "done"
                }),
            )
            .route("/big", get(|| async { vec![b'x'; 64 << 20] }))
            .route("/medium", get(|| async { vec![b'x'; 16 << 20] }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = crate::server::guarded(listener, Guard::new(&LIMITS), &LIMITS).unwrap();
        tokio::spawn(server.serve(app.into_make_service()));
        addr
    }

    #[test]
    fn the_open_file_limit_is_read_from_proc() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max cpu time              unlimited            unlimited            seconds\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(open_files_soft_limit(text), Some(1024));
        assert_eq!(open_files_soft_limit("Max open files unlimited x"), None);
    }

    #[tokio::test]
    async fn a_request_being_handled_is_not_idle() {
        let addr = serve().await;
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let start = StdInstant::now();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out);
        // 2.5 s of handling, more than twice the idle timeout: answered.
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("done"),
            "{text}"
        );
        assert!(start.elapsed() >= Duration::from_millis(2500));
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut() {
        let addr = serve().await;
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        // Read nothing for 2.5 s: the server's writes stall.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        // What the socket buffers held, not the 64 MiB body.
        assert!(got < 32 << 20, "read {got} bytes");
    }

    #[tokio::test]
    async fn a_large_response_read_slowly_is_not_idle() {
        let addr = serve().await;
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /medium HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let start = StdInstant::now();
        let mut got = 0usize;
        // At most 64 KiB per 10 ms: 16 MiB take over 2.5 s, more than
        // twice the idle timeout, with steady progress.
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match s.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => panic!("cut after {got} bytes: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            start.elapsed() > Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert!(got > 16 << 20, "read {got} bytes");
    }

    #[tokio::test]
    async fn a_kept_alive_connection_is_closed_when_idle() {
        let addr = serve().await;
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 404"));
        let start = StdInstant::now();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an idle kept-alive connection stayed open")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
    }
}
