//! [`IdleBody`]: a request body that fails when no frame arrives for a while, so a client that
//! starts a body and stops sending cannot hold a request (and what it reserved) forever. There
//! is no total deadline: a large upload that keeps moving is never cut.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Why an [`IdleBody`] ended early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError<E> {
    #[error("no request body data for {0:?}")]
    Idle(Duration),
    #[error(transparent)]
    Inner(E),
}

pin_project_lite::pin_project! {
    /// `inner`, failing with [`BodyError::Idle`] when `idle` passes without a frame.
    pub struct IdleBody<B> {
        #[pin]
        inner: B,
        idle: Duration,
        timer: Pin<Box<Sleep>>,
    }
}

impl<B> IdleBody<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        IdleBody { inner, idle, timer: Box::pin(tokio::time::sleep(idle)) }
    }
}

impl<B: Body<Data = Bytes>> Body for IdleBody<B> {
    type Data = Bytes;
    type Error = BodyError<B::Error>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(r) => {
                this.timer.as_mut().reset(Instant::now() + *this.idle);
                Poll::Ready(r.map(|f| f.map_err(BodyError::Inner)))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Idle(*this.idle)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_moving_fails_and_one_that_moves_does_not() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        let body = IdleBody::new(
            http_body_util::StreamBody::new(tokio_stream_from(rx)),
            Duration::from_secs(5),
        );
        // Four frames 4 s apart (never idle for 5 s), then silence.
        let sender = tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await.unwrap();
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(tx);
        });
        let started = Instant::now();
        let Err(err) = body.collect().await else { panic!("a stalled body must fail") };
        assert!(matches!(err, BodyError::Idle(_)), "{err}");
        // 16 s of moving data, then 5 s of silence.
        assert_eq!(started.elapsed().as_secs(), 21);
        sender.abort();
    }

    fn tokio_stream_from<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_core::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
