//! Body types of the forwarding path: no boxing, no buffering.
//!
//! Requests stream the client's body to the upstream ([`ReqBody::Incoming`]) or send nothing
//! (health checks, retried bodyless requests). Responses stream the upstream's body or carry a
//! small body the proxy made itself (errors, redirects, admin pages).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

pin_project_lite::pin_project! {
    /// Body sent to an upstream.
    #[project = ReqBodyProj]
    pub enum ReqBody {
        Incoming { #[pin] body: Incoming },
        Empty,
    }
}

pin_project_lite::pin_project! {
    /// Body sent to a client.
    #[project = RespBodyProj]
    pub enum RespBody {
        Upstream { #[pin] body: Incoming },
        Full { data: Option<Bytes> },
    }
}

impl ReqBody {
    pub fn incoming(body: Incoming) -> Self {
        ReqBody::Incoming { body }
    }
}

impl RespBody {
    pub fn upstream(body: Incoming) -> Self {
        RespBody::Upstream { body }
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
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.project() {
            ReqBodyProj::Incoming { body } => body.poll_frame(cx),
            ReqBodyProj::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Incoming { body } => body.is_end_stream(),
            ReqBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Incoming { body } => body.size_hint(),
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
            RespBodyProj::Upstream { body } => body.poll_frame(cx),
            RespBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Upstream { body } => body.is_end_stream(),
            RespBody::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Upstream { body } => body.size_hint(),
            RespBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
