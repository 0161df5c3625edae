//! Per-connection guards that hyper does not provide in the shape we need.
//!
//! - Header timeout from the first byte: hyper's `header_read_timeout` starts as soon as it waits
//!   for a request head, so an idle keep-alive connection is closed after the header timeout. Here
//!   the header deadline starts with the first byte of a request, and a separate idle deadline
//!   (no request in flight) applies between requests.
//! - `Content-Length` together with `Transfer-Encoding`: hyper quietly drops the length and frames
//!   the body as chunked; we want a 400. The raw head bytes are scanned as they are read (a small
//!   byte-at-a-time state machine, HTTP/1 only) and the finding is handed to the request path.
//!
//! [`TimedIo`] wraps the socket and owns one timer, polled only from `poll_read` in the
//! connection's own task: no extra task, no lock. [`ConnState`] is shared with the request path,
//! which marks requests in flight with a [`RequestGuard`] that lives until the response body is
//! done.

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
use tokio::time::{Instant, Sleep};

const IDLE: u8 = 0;
const READING_HEAD: u8 = 1;
const IN_REQUEST: u8 = 2;

/// State shared between a connection's socket wrapper and its requests.
#[derive(Debug, Default)]
pub struct ConnState {
    phase: AtomicU8,
    in_flight: AtomicU32,
    conflicting_framing: AtomicBool,
    /// The connection was upgraded (WebSocket): no more deadlines, it may idle as long as it likes.
    upgraded: AtomicBool,
}

impl ConnState {
    /// A request head was parsed: the header deadline no longer applies.
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Relaxed);
        self.phase.store(IN_REQUEST, Relaxed);
        RequestGuard(self.clone())
    }

    /// The connection is being handed to an upgrade; stop applying HTTP deadlines.
    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Relaxed);
    }

    /// True (once) when the head just read carried both Content-Length and Transfer-Encoding.
    pub fn take_conflicting_framing(&self) -> bool {
        self.conflicting_framing.load(Relaxed) && self.conflicting_framing.swap(false, Relaxed)
    }
}

/// Marks a request in flight until dropped (with the response body, or with the request's
/// future if the client goes away first).
#[derive(Debug)]
pub struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Relaxed) == 1 {
            self.0.phase.store(IDLE, Relaxed);
        }
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

pin_project_lite::pin_project! {
    /// A socket with header and idle deadlines, and an HTTP/1 head scanner.
    pub struct TimedIo<T> {
        #[pin]
        inner: T,
        state: Arc<ConnState>,
        timer: Pin<Box<Sleep>>,
        armed: u8,
        timeouts: Timeouts,
        scan: HeadScan,
        // None until the first bytes tell HTTP/1 from HTTP/2.
        http2: Option<bool>,
    }
}

impl<T> TimedIo<T> {
    pub fn new(inner: T, state: Arc<ConnState>, timeouts: Timeouts) -> Self {
        TimedIo {
            inner,
            state,
            timer: Box::pin(tokio::time::sleep(timeouts.header)),
            armed: READING_HEAD,
            timeouts,
            scan: HeadScan::default(),
            http2: None,
        }
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
        match this.inner.poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if new.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                let http2 = *this.http2.get_or_insert_with(|| new.starts_with(b"PRI "));
                if http2 {
                    return Poll::Ready(Ok(()));
                }
                let mut phase = this.state.phase.load(Relaxed);
                if phase == IDLE {
                    this.state.phase.store(READING_HEAD, Relaxed);
                    phase = READING_HEAD;
                    *this.scan = HeadScan::default();
                    this.timer.as_mut().reset(Instant::now() + this.timeouts.header);
                    *this.armed = READING_HEAD;
                }
                if phase == READING_HEAD && !this.scan.done && this.scan.feed(new) {
                    this.state.conflicting_framing.store(true, Relaxed);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let phase = this.state.phase.load(Relaxed);
                if phase == IN_REQUEST {
                    return Poll::Pending;
                }
                if *this.armed != phase {
                    // Idle since the last response ended: the idle deadline starts now.
                    this.timer.as_mut().reset(Instant::now() + this.timeouts.idle);
                    *this.armed = phase;
                }
                if this.timer.as_mut().poll(cx).is_ready() {
                    let what =
                        if phase == IDLE { "idle timeout" } else { "request header timeout" };
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
                }
                Poll::Pending
            }
            other => other,
        }
    }
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

/// Finds `Content-Length` and `Transfer-Encoding` header lines in an HTTP/1 head, across reads.
#[derive(Debug, Default, Clone)]
struct HeadScan {
    /// Bytes of the current line matched so far against both names (`None`: no longer matching).
    cl: Option<u8>,
    te: Option<u8>,
    line_len: u32,
    first_line: bool,
    seen_cl: bool,
    seen_te: bool,
    done: bool,
    started: bool,
}

const CL: &[u8] = b"content-length:";
const TE: &[u8] = b"transfer-encoding:";

impl HeadScan {
    /// Feeds head bytes; returns true when the head ended with both headers present.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        if !self.started {
            *self = HeadScan {
                started: true,
                first_line: true,
                cl: Some(0),
                te: Some(0),
                ..HeadScan::default()
            };
        }
        for &b in bytes {
            if b == b'\n' {
                if self.line_len == 0 && !self.first_line {
                    self.done = true;
                    return self.seen_cl && self.seen_te;
                }
                self.first_line = false;
                self.line_len = 0;
                self.cl = Some(0);
                self.te = Some(0);
                continue;
            }
            if b == b'\r' && self.line_len == 0 {
                continue;
            }
            self.line_len = self.line_len.saturating_add(1);
            if self.first_line {
                continue;
            }
            let lower = b.to_ascii_lowercase();
            for (state, name, seen) in
                [(&mut self.cl, CL, &mut self.seen_cl), (&mut self.te, TE, &mut self.seen_te)]
            {
                if let Some(i) = *state {
                    if (i as usize) < name.len() && name[i as usize] == lower {
                        *state = Some(i + 1);
                        if i as usize + 1 == name.len() {
                            *seen = true;
                        }
                    } else if (i as usize) < name.len() {
                        *state = None;
                    }
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> (bool, bool) {
        let mut s = HeadScan::default();
        let mut hit = false;
        for c in chunks {
            hit |= s.feed(c);
        }
        (hit, s.done)
    }

    #[test]
    fn finds_both_framing_headers_in_any_order_and_split() {
        assert_eq!(
            scan(&[b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"]),
            (true, true)
        );
        assert_eq!(scan(&[b"POST / HTTP/1.1\r\ntransfer-ENCODING: chunked\r\nHost: x\r\ncontent-length: 5\r\n\r\n"]), (true, true));
        assert_eq!(
            scan(&[
                b"POST / HTTP/1.1\r\nContent-Le",
                b"ngth: 5\r\nTransfer-Enc",
                b"oding: chunked\r\n",
                b"\r\n"
            ]),
            (true, true)
        );
    }

    #[test]
    fn ordinary_heads_pass() {
        assert_eq!(scan(&[b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"]), (false, true));
        assert_eq!(
            scan(&[
                b"GET / HTTP/1.1\r\nX-Content-Length: 5\r\nX-Transfer-Encoding: chunked\r\n\r\n"
            ]),
            (false, true)
        );
        assert_eq!(
            scan(&[b"GET /content-length: HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"]),
            (false, true)
        );
        assert_eq!(scan(&[b"GET / HTTP/1.1\nHost: a\n\n"]), (false, true));
        assert_eq!(scan(&[b"GET / HTTP/1.1\r\nHost: a\r\n"]), (false, false));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..8)) {
            let mut s = HeadScan::default();
            for c in &chunks {
                let _ = s.feed(c);
            }
        }
    }
}
