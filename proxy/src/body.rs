//! The body sent to a client: no boxing, no buffering. It streams an upstream's
//! [`PooledBody`] or carries a small body the proxy made itself (errors, redirects, admin
//! pages). What is sent upstream is [`crate::upstream::ReqBody`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::upstream::PooledBody;

pin_project_lite::pin_project! {
    /// Body sent to a client.
    #[project = RespBodyProj]
    pub enum RespBody {
        Upstream { #[pin] body: PooledBody },
        Full { data: Option<Bytes> },
    }
}

impl RespBody {
    /// An upstream's body, its connection pooled again once it has ended.
    pub fn upstream(body: PooledBody) -> Self {
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
