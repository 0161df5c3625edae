//! The two bodies that cross an upstream connection, and the pooling rule that goes with them.
//!
//! [`ReqBody`] is what is sent: the client's body, streamed and cut when it stops moving, or
//! nothing. [`PooledBody`] is what comes back: the upstream's body carrying the [`Lease`] of its
//! connection, which goes back to the pool if, and only if, the body was read to its end. One
//! dropped half-read (the client left) or that failed closes the connection instead.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::Lease;

pin_project_lite::pin_project! {
    /// Body sent to an upstream.
    #[project = ReqBodyProj]
    pub enum ReqBody {
        Incoming { #[pin] body: wh_http::body::IdleBody<Incoming>, slot: Option<wh_http::conn::BodySlot> },
        Empty,
    }
}

/// A client's body failed: it broke its framing (hyper's error) or stopped sending.
pub type ClientBodyError = wh_http::body::BodyError<hyper::Error>;

impl ReqBody {
    /// The client's body, cut when no byte arrives for `idle` (no total deadline: a long
    /// upload that keeps moving is never cut). `slot` is its place among the connection's
    /// bodies in progress, freed when the body is done with.
    pub fn incoming(
        body: Incoming,
        idle: std::time::Duration,
        slot: Option<wh_http::conn::BodySlot>,
    ) -> Self {
        ReqBody::Incoming { body: wh_http::body::IdleBody::new(body, idle), slot }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        match self.project() {
            ReqBodyProj::Incoming { body, .. } => body.poll_frame(cx),
            ReqBodyProj::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Incoming { body, .. } => body.is_end_stream(),
            ReqBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Incoming { body, .. } => body.size_hint(),
            ReqBody::Empty => SizeHint::with_exact(0),
        }
    }
}

pin_project_lite::pin_project! {
    /// An upstream's response body; its connection is pooled again once the body has ended.
    pub struct PooledBody {
        #[pin]
        body: Incoming,
        lease: Option<Lease>,
        ended: bool,
    }

    impl PinnedDrop for PooledBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let (true, Some(lease)) = (*this.ended, this.lease.take()) {
                lease.release();
            }
        }
    }
}

impl PooledBody {
    /// `lease`: the connection `body` arrives on (none when it must not be reused).
    pub fn new(body: Incoming, lease: Option<Lease>) -> Self {
        let ended = body.is_end_stream();
        PooledBody { body, lease, ended }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let r = this.body.as_mut().poll_frame(cx);
        match &r {
            Poll::Ready(None) => *this.ended = true,
            Poll::Ready(Some(Ok(_))) => *this.ended = this.body.is_end_stream(),
            Poll::Ready(Some(Err(_))) => *this.lease = None,
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
