//! Body types of the forwarding path: no boxing, no buffering.
//!
//! Requests stream the client's body to the upstream ([`ReqBody::Incoming`]) or send nothing
//! (health checks, retried bodyless requests). Responses stream the upstream's body or carry a
//! small body the proxy made itself (errors, redirects, admin pages). An upstream body carries
//! the [`Lease`] of its connection and gives it back to the pool when it has ended.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::upstream::Lease;

pin_project_lite::pin_project! {
    /// Body sent to an upstream.
    #[project = ReqBodyProj]
    pub enum ReqBody {
        Incoming { #[pin] body: wh_http::body::IdleBody<Incoming>, slot: Option<wh_http::conn::BodySlot> },
        Empty,
    }
}

pin_project_lite::pin_project! {
    /// Body sent to a client.
    #[project = RespBodyProj]
    pub enum RespBody {
        Upstream { #[pin] body: Incoming, lease: ReturnOnEnd },
        Full { data: Option<Bytes> },
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

/// An upstream connection that goes back to its pool if, and only if, its body ended: one
/// dropped half-read (the client left) is closed instead.
pub struct ReturnOnEnd {
    lease: Option<Lease>,
    ended: bool,
}

impl Drop for ReturnOnEnd {
    fn drop(&mut self) {
        if let (true, Some(lease)) = (self.ended, self.lease.take()) {
            lease.release();
        }
    }
}

impl RespBody {
    /// `lease`: the connection `body` arrives on, pooled again once the body has ended.
    pub fn upstream(body: Incoming, lease: Option<Lease>) -> Self {
        use http_body::Body as _;
        let ended = body.is_end_stream();
        RespBody::Upstream { body, lease: ReturnOnEnd { lease, ended } }
    }

    pub fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        RespBody::Full { data: (!data.is_empty()).then_some(data) }
    }

    pub fn empty() -> Self {
        RespBody::Full { data: None }
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

impl Body for RespBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.project() {
            RespBodyProj::Upstream { mut body, lease } => {
                let r = body.as_mut().poll_frame(cx);
                match &r {
                    Poll::Ready(None) => lease.ended = true,
                    Poll::Ready(Some(Ok(_))) => lease.ended = body.is_end_stream(),
                    Poll::Ready(Some(Err(_))) => lease.lease = None,
                    Poll::Pending => {}
                }
                r
            }
            RespBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Upstream { body, .. } => body.is_end_stream(),
            RespBody::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Upstream { body, .. } => body.size_hint(),
            RespBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
