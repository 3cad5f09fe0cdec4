//! Connections that cannot be held open for nothing.
//!
//! The HTTP layer underneath (hyper, as axum serves it) has no timeouts of its own: a client
//! that sends half its headers, stalls in the middle of an upload or leaves a keep-alive
//! connection idle keeps a task, a socket and the upload read so far for ever. Every
//! accepted connection is wrapped in [`IdleTimeout`]: once it has neither received nor sent
//! a byte for [`IDLE_TIMEOUT`] while the server waits on it, it is closed.
//!
//! Bytes of a request's head do not keep the connection open on their own: the head must be
//! complete within [`IDLE_TIMEOUT`] of its first byte, so that a client trickling its headers
//! a byte at a time (a "slowloris") is closed like one that sends nothing.
//!
//! The clock stops while a request is being handled ([`ConnectionActivity`], marked by the
//! request middleware): hyper keeps a read pending then, to notice a client that hangs up,
//! and a search that queues for an engine thread, or a long upload being analysed, must not
//! be cut off for it. A request whose upload stalls is answered by the form reader's own
//! timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// How long a connection may go without a byte in either direction while the server waits
/// on it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A TCP listener whose connections close after [`IDLE_TIMEOUT`] without traffic.
pub struct IdleClosingListener {
    inner: TcpListener,
    timeout: Duration,
}

impl IdleClosingListener {
    /// Wraps `inner`; its connections close after `timeout` without traffic.
    pub fn new(inner: TcpListener, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

impl Listener for IdleClosingListener {
    type Io = IdleTimeout<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, address) = Listener::accept(&mut self.inner).await;
        (IdleTimeout::new(stream, self.timeout), address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Whether one connection has a request being handled, shared by the connection and the
/// request middleware (it reaches the middleware as `ConnectInfo`).
#[derive(Clone, Debug, Default)]
pub struct ConnectionActivity(Arc<Activity>);

#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    /// A request ended since the connection last looked: its idle time starts then.
    ended: AtomicBool,
    /// When the connection was accepted.
    opened: std::time::Instant,
    /// Bytes received on the connection so far.
    received_bytes: AtomicU64,
    /// When the last of them arrived, microseconds after `opened`.
    last_received_us: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            ended: AtomicBool::new(false),
            opened: std::time::Instant::now(),
            received_bytes: AtomicU64::new(0),
            last_received_us: AtomicU64::new(0),
        }
    }
}

impl ConnectionActivity {
    /// Marks a request as being handled until the guard is dropped.
    pub fn request(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(&self.0))
    }

    /// Bytes received on the connection so far, and when the last of them arrived (when the
    /// connection was accepted, before the first): how an upload's handler sees it progress.
    pub fn received(&self) -> (u64, std::time::Instant) {
        let activity = &self.0;
        let last = Duration::from_micros(activity.last_received_us.load(Ordering::SeqCst));
        (
            activity.received_bytes.load(Ordering::SeqCst),
            activity.opened + last,
        )
    }

    fn note_received(&self, bytes: usize) {
        let activity = &self.0;
        let since_open = u64::try_from(activity.opened.elapsed().as_micros()).unwrap_or(u64::MAX);
        activity
            .last_received_us
            .store(since_open, Ordering::SeqCst);
        activity
            .received_bytes
            .fetch_add(bytes as u64, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, IdleClosingListener>> for ConnectionActivity {
    fn connect_info(stream: IncomingStream<'_, IdleClosingListener>) -> Self {
        stream.io().activity.clone()
    }
}

/// A request being handled (see [`ConnectionActivity::request`]).
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A stream that fails with [`io::ErrorKind::TimedOut`] once a read or write has waited
/// `timeout` since the last byte went either way, unless a request is being handled, or
/// `timeout` since the first byte of a request's head that is still incomplete.
pub struct IdleTimeout<S> {
    inner: S,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    activity: ConnectionActivity,
    /// Bytes of a request's head have arrived and the request is not handled yet: further
    /// bytes of it do not move the deadline.
    receiving_head: bool,
}

impl<S> IdleTimeout<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            activity: ConnectionActivity::default(),
            receiving_head: false,
        }
    }

    /// Bytes were read. While a request is handled they are its body, and traffic. Otherwise
    /// they belong to the next request's head: its first bytes start the head's clock, the
    /// rest must arrive before that clock runs out.
    fn received(&mut self) {
        let activity = &self.activity.0;
        if activity.in_flight.load(Ordering::SeqCst) > 0 {
            self.receiving_head = false;
            self.traffic();
        } else if activity.ended.swap(false, Ordering::SeqCst) || !self.receiving_head {
            self.receiving_head = true;
            self.traffic();
        }
    }

    fn traffic(&mut self) {
        let next = Instant::now() + self.timeout;
        self.deadline.as_mut().reset(next);
    }

    /// A write's result: bytes written are traffic; a write that must wait may time out.
    fn written(
        &mut self,
        polled: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    self.traffic();
                }
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => self.check_idle(cx),
        }
    }

    /// For an operation that must wait: an error once the connection has been idle too long.
    fn check_idle<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let activity = &self.activity.0;
        if activity.in_flight.load(Ordering::SeqCst) > 0 {
            // Not idle: the inner stream's pending operation will wake the task.
            return Poll::Pending;
        }
        if activity.ended.swap(false, Ordering::SeqCst) {
            self.receiving_head = false;
            self.traffic();
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no data for {} s", self.timeout.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                let received = buf.filled().len() - before;
                if received > 0 {
                    self.activity.note_received(received);
                    self.received();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.check_idle(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.written(polled, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.check_idle(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.written(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
