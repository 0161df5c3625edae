//! The body sent to a client: no boxing, no buffering. It streams an upstream's
//! [`PooledBody`] (compressed on the way by [`encoder`] when a `compress` middleware chose a
//! coding) or carries a small body the proxy made itself (errors, redirects, admin pages).
//! What is sent upstream is [`crate::upstream::ReqBody`].

pub mod encoder;

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
        Compressed { #[pin] body: PooledBody, encoder: Option<Box<encoder::Encoder>> },
        Full { data: Option<Bytes> },
    }
}

impl RespBody {
    /// An upstream's body, its connection pooled again once it has ended.
    pub fn upstream(body: PooledBody) -> Self {
        RespBody::Upstream { body }
    }

    /// An upstream's body compressed with `encoder` on the way.
    pub fn compressed(body: PooledBody, encoder: encoder::Encoder) -> Self {
        RespBody::Compressed { body, encoder: Some(Box::new(encoder)) }
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
            RespBodyProj::Compressed { mut body, encoder } => loop {
                let Some(enc) = encoder.as_mut() else { return Poll::Ready(None) };
                match std::task::ready!(body.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        // Trailers do not survive a change of coding; data is compressed.
                        let Ok(data) = frame.into_data() else { continue };
                        match enc.write(&data) {
                            Ok(out) if out.is_empty() => continue,
                            Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                            // An in-memory encoder cannot fail; end the body if it does.
                            Err(_) => {
                                *encoder = None;
                                return Poll::Ready(None);
                            }
                        }
                    }
                    Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                    None => {
                        let rest = encoder.take().and_then(|e| (*e).finish().ok());
                        return Poll::Ready(
                            rest.filter(|r| !r.is_empty()).map(|r| Ok(Frame::data(r))),
                        );
                    }
                }
            },
            RespBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Upstream { body } => body.is_end_stream(),
            RespBody::Compressed { encoder, .. } => encoder.is_none(),
            RespBody::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Upstream { body } => body.size_hint(),
            RespBody::Compressed { .. } => SizeHint::default(),
            RespBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
