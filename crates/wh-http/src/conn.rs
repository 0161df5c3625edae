//! Per-connection guards that hyper does not provide in the shape we need.
//!
//! - Deadlines on every connection, in both protocols. A new connection must start its first
//!   request within the header timeout (no byte at all is no exception; over TLS the handshake
//!   has its own deadline). In HTTP/1 a request head must be complete within the header timeout
//!   of its first byte; in HTTP/2 the connection preface and every header block (HEADERS and its
//!   CONTINUATIONs, however trickled) must be. Between requests the idle deadline applies; in
//!   HTTP/2 "idle" means no open stream, and an idle connection is closed with GOAWAY
//!   ([`ConnState::idle_expired`]), never cut mid-stream. hyper's own `header_read_timeout`
//!   would count the idle time between keep-alive requests, and HTTP/2 has none.
//! - `Content-Length` together with `Transfer-Encoding`: hyper quietly drops the length and
//!   frames the body as chunked; we want a 400. Every HTTP/1 byte goes through a
//!   [`Framer`], which finds each head, pipelined ones included, and the finding reaches the
//!   request it belongs to ([`RequestGuard::conflicting_framing`]).
//!
//! [`TimedIo`] wraps the socket and owns one timer, polled only from `poll_read` in the
//! connection's own task: no extra task, no lock. [`ConnState`] is shared with the request path,
//! which marks requests in flight with a [`RequestGuard`] that lives until the response body is
//! done. Whatever the server attaches with [`TimedIo::hold`] (a connection-limit permit) lives
//! as long as the socket, through an upgrade (a WebSocket tunnel owns the socket).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::framing::{Finding, Framer};

const IDLE: u8 = 0;
const READING_HEAD: u8 = 1;
const IN_REQUEST: u8 = 2;
/// No head has conflicted.
const NONE: u32 = u32::MAX;

/// State shared between a connection's socket wrapper and its requests.
#[derive(Debug)]
pub struct ConnState {
    phase: AtomicU8,
    in_flight: AtomicU32,
    /// Requests started so far (the next one's index).
    started: AtomicU32,
    /// Index of the first head with both Content-Length and Transfer-Encoding.
    first_conflict: AtomicU32,
    /// The connection was upgraded (WebSocket): no more deadlines, it may idle as long as it likes.
    upgraded: AtomicBool,
    idle: Notify,
    /// Requests whose body is still arriving ([`ConnState::body_slot`]).
    bodies: AtomicU32,
}

impl Default for ConnState {
    fn default() -> Self {
        ConnState {
            // A new connection waits for its first request: the header deadline applies.
            phase: AtomicU8::new(READING_HEAD),
            in_flight: AtomicU32::new(0),
            started: AtomicU32::new(0),
            first_conflict: AtomicU32::new(NONE),
            upgraded: AtomicBool::new(false),
            idle: Notify::new(),
            bodies: AtomicU32::new(0),
        }
    }
}

impl ConnState {
    /// A request head was parsed: the header deadline no longer applies.
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Relaxed);
        self.phase.store(IN_REQUEST, Relaxed);
        let index = self.started.fetch_add(1, Relaxed);
        RequestGuard { state: self.clone(), index }
    }

    /// The connection is being handed to an upgrade; stop applying HTTP deadlines.
    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Relaxed);
    }

    /// A place for one more request with a body in progress, if fewer than `cap` have one:
    /// an HTTP/2 client could otherwise open every stream it may and never finish a body.
    pub fn body_slot(self: &Arc<Self>, cap: u32) -> Option<BodySlot> {
        let mut n = self.bodies.load(Relaxed);
        loop {
            if n >= cap {
                return None;
            }
            match self.bodies.compare_exchange_weak(n, n + 1, Relaxed, Relaxed) {
                Ok(_) => return Some(BodySlot(self.clone())),
                Err(now) => n = now,
            }
        }
    }

    /// Resolves when an HTTP/2 connection has had no open stream for the idle timeout: the
    /// server then shuts it down gracefully (GOAWAY).
    pub async fn idle_expired(&self) {
        self.idle.notified().await;
    }

    /// Resolves when the connection should close gracefully: the server stops (`stop`
    /// resolves), or an HTTP/2 connection idled out. The server then calls hyper's
    /// `graceful_shutdown` and keeps driving the connection to its end.
    pub async fn closing(&self, stop: impl Future<Output = ()>) {
        tokio::select! {
            _ = stop => {}
            _ = self.idle_expired() => {}
        }
    }
}

/// Marks a request in flight until dropped (with the response body, or with the request's
/// future if the client goes away first).
#[derive(Debug)]
pub struct RequestGuard {
    state: Arc<ConnState>,
    index: u32,
}

impl RequestGuard {
    /// This request's head carried both Content-Length and Transfer-Encoding (HTTP/1).
    pub fn conflicting_framing(&self) -> bool {
        self.state.first_conflict.load(Relaxed) == self.index
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.state.in_flight.fetch_sub(1, Relaxed) == 1 {
            self.state.phase.store(IDLE, Relaxed);
        }
    }
}

/// A request's place among its connection's bodies in progress; freed when dropped.
#[derive(Debug)]
pub struct BodySlot(Arc<ConnState>);

impl Drop for BodySlot {
    fn drop(&mut self) {
        self.0.bodies.fetch_sub(1, Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request's [`RequestGuard`] alive until it is done.
    pub struct Guarded<B> {
        #[pin]
        inner: B,
        guard: Option<RequestGuard>,
    }
}

impl<B> Guarded<B> {
    pub fn new(inner: B, guard: RequestGuard) -> Self {
        Guarded { inner, guard: Some(guard) }
    }
}

impl<B: Body<Data = Bytes>> Body for Guarded<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let r = this.inner.poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.guard.take();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Timeouts applied by [`TimedIo`].
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
}

/// Which protocol the connection speaks, found from its first bytes.
#[derive(Debug)]
enum Protocol {
    Unknown,
    Http1(Framer),
    Http2(H2Scan),
}

pin_project_lite::pin_project! {
    /// A socket with first-byte, header and idle deadlines, and the HTTP/1 framing scan.
    pub struct TimedIo<T> {
        #[pin]
        inner: T,
        state: Arc<ConnState>,
        timer: Pin<Box<Sleep>>,
        // The phase the timer is armed for, and the request count when it was armed.
        armed: u8,
        armed_at: u32,
        timeouts: Timeouts,
        protocol: Protocol,
        first: [u8; 4],
        first_len: u8,
        idle_signalled: bool,
        held: Option<Box<dyn Send + Sync>>,
    }
}

impl<T> TimedIo<T> {
    pub fn new(inner: T, state: Arc<ConnState>, timeouts: Timeouts) -> Self {
        TimedIo {
            inner,
            state,
            timer: Box::pin(tokio::time::sleep(timeouts.header)),
            armed: READING_HEAD,
            armed_at: 0,
            timeouts,
            protocol: Protocol::Unknown,
            first: [0; 4],
            first_len: 0,
            idle_signalled: false,
            held: None,
        }
    }

    /// Keeps `value` until the socket is dropped (after any upgrade).
    pub fn hold(mut self, value: impl Send + Sync + 'static) -> Self {
        self.held = Some(Box::new(value));
        self
    }
}

impl<T: AsyncRead> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.state.upgraded.load(Relaxed) {
            return this.inner.poll_read(cx, buf);
        }
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let new = &buf.filled()[before..];
            if new.is_empty() {
                return Poll::Ready(Ok(()));
            }
            // The first four bytes tell HTTP/2's preface (`PRI `) from an HTTP/1 method; a
            // client may send them one at a time.
            let mut pending = [0u8; 4];
            let mut decided_now = false;
            let mut from = new;
            if let Protocol::Unknown = this.protocol {
                let n = (4 - usize::from(*this.first_len)).min(new.len());
                this.first[usize::from(*this.first_len)..][..n].copy_from_slice(&new[..n]);
                *this.first_len += n as u8;
                if *this.first_len == 4 {
                    pending = *this.first;
                    decided_now = true;
                    from = &new[n..];
                    *this.protocol = if &pending == b"PRI " {
                        Protocol::Http2(H2Scan::default())
                    } else {
                        Protocol::Http1(Framer::default())
                    };
                }
            }
            let head: &[u8] = if decided_now { &pending } else { &[] };
            match this.protocol {
                Protocol::Http1(framer) => {
                    if this.state.phase.load(Relaxed) == IDLE {
                        // A new request's first byte: its header deadline starts now.
                        this.state.phase.store(READING_HEAD, Relaxed);
                    }
                    for bytes in [head, from] {
                        if let Finding::Conflicting(index) = framer.feed(bytes) {
                            let _ = this
                                .state
                                .first_conflict
                                .compare_exchange(NONE, index, Relaxed, Relaxed);
                        }
                    }
                }
                Protocol::Http2(scan) => {
                    scan.feed(head);
                    scan.feed(from);
                }
                Protocol::Unknown => {}
            }
        }
        let phase =
            arm(this.timer, this.armed, this.armed_at, this.state, this.protocol, this.timeouts);
        if !matches!(result, Poll::Pending) {
            return result;
        }
        if phase == IN_REQUEST || this.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        match (phase, &*this.protocol) {
            // HTTP/2: a graceful close (GOAWAY) by the server, which waits on `idle_expired`.
            (IDLE, Protocol::Http2(_)) => {
                if !*this.idle_signalled {
                    *this.idle_signalled = true;
                    this.state.idle.notify_one();
                }
                Poll::Pending
            }
            (IDLE, _) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout"))),
            _ => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "request header timeout")))
            }
        }
    }
}

/// The phase the connection is in now, with the timer re-armed if it changed: a head being
/// read gets the header deadline, an idle connection the idle deadline (from the moment it
/// became idle), a request in flight none.
fn arm(
    timer: &mut Pin<Box<Sleep>>,
    armed: &mut u8,
    armed_at: &mut u32,
    state: &ConnState,
    protocol: &Protocol,
    timeouts: &Timeouts,
) -> u8 {
    let shared = state.phase.load(Relaxed);
    let phase = match protocol {
        Protocol::Http2(scan) if scan.reading_header() => READING_HEAD,
        Protocol::Http2(_) if state.in_flight.load(Relaxed) > 0 => IN_REQUEST,
        Protocol::Http2(_) => IDLE,
        _ => shared,
    };
    let started = state.started.load(Relaxed);
    if phase != *armed || (phase == IDLE && started != *armed_at) {
        let after = if phase == READING_HEAD { timeouts.header } else { timeouts.idle };
        if phase != IN_REQUEST {
            timer.as_mut().reset(Instant::now() + after);
        }
        *armed = phase;
        *armed_at = started;
    }
    phase
}

impl<T: AsyncWrite> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// HTTP/2 frame boundaries, as far as deadlines need them: the 24-byte preface, then 9-byte
/// frame headers; a HEADERS frame opens a header block that ends with the frame (or
/// CONTINUATION) carrying END_HEADERS.
#[derive(Debug, Clone, Default)]
struct H2Scan {
    preface_seen: u8,
    header: [u8; 9],
    header_len: u8,
    payload_left: u32,
    in_block: bool,
    /// The current frame is HEADERS or CONTINUATION with END_HEADERS.
    ends_block: bool,
}

const PREFACE_LEN: u8 = 24;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

impl H2Scan {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.preface_seen < PREFACE_LEN {
                let take = usize::from(PREFACE_LEN - self.preface_seen).min(bytes.len());
                self.preface_seen += take as u8;
                bytes = &bytes[take..];
            } else if self.payload_left > 0 {
                let take = (self.payload_left as usize).min(bytes.len());
                self.payload_left -= take as u32;
                bytes = &bytes[take..];
                if self.payload_left == 0 {
                    self.frame_done();
                }
            } else {
                self.header[usize::from(self.header_len)] = bytes[0];
                self.header_len += 1;
                bytes = &bytes[1..];
                if self.header_len == 9 {
                    self.header_len = 0;
                    let h = self.header;
                    let kind = h[3];
                    if kind == HEADERS || kind == CONTINUATION {
                        self.in_block = true;
                        self.ends_block = h[4] & END_HEADERS != 0;
                    } else {
                        self.ends_block = false;
                    }
                    self.payload_left = u32::from_be_bytes([0, h[0], h[1], h[2]]);
                    if self.payload_left == 0 {
                        self.frame_done();
                    }
                }
            }
        }
    }

    fn frame_done(&mut self) {
        if self.ends_block {
            self.in_block = false;
            self.ends_block = false;
        }
    }

    /// The preface, a frame header, or a header block is still arriving.
    fn reading_header(&self) -> bool {
        self.preface_seen < PREFACE_LEN || self.header_len > 0 || self.in_block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, len: u32) -> Vec<u8> {
        let l = len.to_be_bytes();
        let mut f = vec![l[1], l[2], l[3], kind, flags, 0, 0, 0, 1];
        f.resize(9 + len as usize, 0);
        f
    }

    #[test]
    fn h2_header_blocks_are_tracked_across_frames_and_reads() {
        let mut s = H2Scan::default();
        assert!(s.reading_header(), "before the preface");
        s.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert!(!s.reading_header());
        s.feed(&frame(0x4, 0, 6)); // SETTINGS
        assert!(!s.reading_header());
        let headers = frame(HEADERS, 0, 10);
        s.feed(&headers[..5]);
        assert!(s.reading_header(), "half a frame header");
        s.feed(&headers[5..]);
        assert!(s.reading_header(), "HEADERS without END_HEADERS");
        let cont = frame(CONTINUATION, END_HEADERS, 4);
        s.feed(&cont[..11]);
        assert!(s.reading_header(), "the CONTINUATION is not complete");
        s.feed(&cont[11..]);
        assert!(!s.reading_header());
        s.feed(&frame(HEADERS, END_HEADERS, 0));
        assert!(!s.reading_header());
        s.feed(&frame(0x0, 0, 100)); // DATA
        assert!(!s.reading_header());
    }

    proptest::proptest! {
        #[test]
        fn h2_scan_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..8)) {
            let mut s = H2Scan::default();
            for c in &chunks {
                s.feed(c);
            }
        }
    }
}
