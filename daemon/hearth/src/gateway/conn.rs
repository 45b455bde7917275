//! Connections: a cap on how many are open (with room kept for the
//! management API past it, and a clear 503 past that), and an idle cut for
//! connections with no request in flight and no byte either way.
//! (HTTP/1.1's header-read timeout, which also ends keep-alive connections
//! waiting for their next request, is hyper's own: `serve`.)

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How a new connection is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Served as any.
    Full,
    /// Past `max_connections`: served for the management API only.
    ManagementOnly,
    /// Past the reserve too: answered 503 and closed.
    Refused,
}

/// The open connections, counted against `max_connections` plus a reserve
/// for the management API.
pub struct ConnLimits {
    open: AtomicUsize,
    max: AtomicUsize,
    reserve: usize,
}

/// One counted connection; dropping it frees its place.
pub struct Slot {
    limits: Arc<ConnLimits>,
    pub admit: Admit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnLimits {
    pub fn new(max: usize, reserve: usize) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            open: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
            reserve,
        })
    }

    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn admit(self: &Arc<Self>) -> Slot {
        let n = self.open.fetch_add(1, Ordering::Relaxed);
        let max = self.max();
        let admit = if n < max {
            Admit::Full
        } else if n < max + self.reserve {
            Admit::ManagementOnly
        } else {
            Admit::Refused
        };
        Slot {
            limits: self.clone(),
            admit,
        }
    }
}

#[derive(Default)]
struct Counts {
    now: AtomicUsize,
    ever: AtomicUsize,
}

/// Requests in flight on one connection (while any is, it is never idle),
/// and whether it has had any.
#[derive(Clone, Default)]
pub struct InFlight(Arc<Counts>);

/// Held while a request (and its streamed answer) is in flight.
pub struct Busy(Arc<Counts>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

impl InFlight {
    pub fn busy(&self) -> Busy {
        self.0.now.fetch_add(1, Ordering::Relaxed);
        self.0.ever.fetch_add(1, Ordering::Relaxed);
        Busy(self.0.clone())
    }

    fn idle(&self) -> bool {
        self.0.now.load(Ordering::Relaxed) == 0
    }

    fn fresh(&self) -> bool {
        self.0.ever.load(Ordering::Relaxed) == 0
    }
}

/// How long, at a graceful stop, a connection accepted but with no request
/// yet is given for its first one (its bytes may already be on their way):
/// closing it at once would drop a call the client already sent.
const FIRST_REQUEST_AT_STOP: Duration = Duration::from_secs(2);

/// Serve one connection until it ends; once `stop` turns true, let the
/// request in flight (or, on a fresh connection, its first request) finish,
/// then close it.
pub async fn drive<C>(conn: C, mut stop: tokio::sync::watch::Receiver<bool>, in_flight: InFlight)
where
    C: hyper_util::server::graceful::GracefulConnection,
{
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|stopping| *stopping) => {}
    }
    if in_flight.fresh() {
        let until = tokio::time::Instant::now() + FIRST_REQUEST_AT_STOP;
        while in_flight.fresh() && tokio::time::Instant::now() < until {
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// A stream that fails reads with `TimedOut` once it has been idle (no
/// byte read or written, no request in flight) for `idle`.
pub struct Watched<S> {
    inner: S,
    idle: Duration,
    in_flight: InFlight,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, idle: Duration, in_flight: InFlight) -> Watched<S> {
        Watched {
            inner,
            idle,
            in_flight,
            last: Instant::now(),
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn touch(&mut self) {
        self.last = Instant::now();
    }

    /// Whether it has been idle too long; re-arms the timer otherwise.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let due = self.last + self.idle;
            if self.in_flight.idle() && Instant::now() >= due {
                return true;
            }
            let next = if self.in_flight.idle() {
                due
            } else {
                Instant::now() + self.idle
            };
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(next));
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if self.expired(cx) {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection idle past server.idle_timeout",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// 503 `too_many_connections`, with the setting that raises the limit.
pub fn too_many(message: String) -> hearth_api::ApiError {
    hearth_api::ApiError::new(
        hearth_api::ErrorCode::TooManyConnections,
        message,
        "retry shortly; raise max_connections in the [server] section of the configuration (or --max-connections) if the host has room",
    )
    .retry_after(1)
}

/// The answer to a connection past every limit: one 503 with a JSON body
/// naming the setting, then close.
pub fn refusal(max: usize) -> Vec<u8> {
    let error = too_many(format!("the daemon has {max} connections open, its limit"));
    let body = serde_json::to_string(&error.body()).unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
