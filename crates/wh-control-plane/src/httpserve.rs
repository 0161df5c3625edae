//! The API's HTTP server: the axum router on hyper, with the limits a server facing the
//! internet needs (`axum::serve` has none of them):
//! - a request's header block must arrive within [`HttpLimits::header_read`] of its first byte,
//!   and a keep-alive connection with no request in flight closes after [`HttpLimits::idle`]
//!   (the deadlines of `wh_http::conn`, shared with wh-proxy);
//! - a request body that stops moving for [`HttpLimits::body_idle`] fails (no total deadline:
//!   an upload that keeps moving is never cut);
//! - at most [`HttpLimits::max_connections`] connections, and [`HttpLimits::per_ip`] per client
//!   address: one client holding half-sent requests cannot starve everyone else;
//! - shutdown stops accepting, lets requests in flight finish for at most [`HttpLimits::drain`]
//!   (a `wh logs -f` stream never finishes by itself), then closes what is left.
//!
//! WebSocket upgrades (the worker hub) leave the deadlines behind once upgraded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wh_http::body::IdleBody;
use wh_http::conn::{ConnState, Guarded, TimedIo, Timeouts};

/// Connection limits of the API server.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub header_read: Duration,
    pub idle: Duration,
    pub body_idle: Duration,
    pub max_connections: usize,
    pub per_ip: usize,
    pub drain: Duration,
}

impl Default for HttpLimits {
    /// Headers within 10 s, 60 s idle, 30 s without body data, 4,096 connections and 256 per
    /// address, 30 s to drain.
    fn default() -> Self {
        HttpLimits {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            body_idle: Duration::from_secs(30),
            max_connections: 4096,
            per_ip: 256,
            drain: Duration::from_secs(30),
        }
    }
}

/// Open connections per client address; a slot is given back when its guard drops.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

struct Slot(Arc<PerIp>, IpAddr);

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<Slot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Slot(self.clone(), ip))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Serves `router` on `listener` until `stop`, then drains as [`HttpLimits`] says.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header deadline is TimedIo's, from a request's first byte.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None).keep_alive(true);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(128);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(PerIp::default());
    let timeouts = Timeouts { header: limits.header_read, idle: limits.idle };
    let mut conns = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = wh_http::accept::accept(&listener) => accepted,
            // Reap finished connection tasks as we go.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (Ok(permit), Some(slot)) =
            (permits.clone().try_acquire_owned(), per_ip.take(peer.ip(), limits.per_ip))
        else {
            tracing::debug!(%peer, "connection over the limit closed");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::new(ConnState::default());
        let io = TimedIo::new(stream, state.clone(), timeouts);
        let router = router.clone();
        let service_state = state.clone();
        let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let (router, state) = (router.clone(), service_state.clone());
            req.extensions_mut().insert(ConnectInfo(peer));
            let req = req.map(|b| axum::body::Body::new(IdleBody::new(b, limits.body_idle)));
            async move {
                let guard = state.request_started();
                let resp = if guard.conflicting_framing() {
                    use axum::response::IntoResponse;
                    crate::api::ApiError::BadRequest(
                        "both Content-Length and Transfer-Encoding".into(),
                    )
                    .into_response()
                } else {
                    match tower::ServiceExt::oneshot(router, req).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    }
                };
                if resp.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
                    state.mark_upgraded();
                }
                Ok::<_, std::convert::Infallible>(resp.map(|body| Guarded::new(body, guard)))
            }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
        let closing = stop.clone();
        conns.spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = state.closing(closing.cancelled()) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop((permit, slot));
        });
    }
    drop(listener);
    let drained = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.drain, drained).await.is_err() {
        tracing::warn!(
            open = conns.len(),
            "requests still running after the {:?} drain; closing them",
            limits.drain
        );
    }
    conns.shutdown().await;
    Ok(())
}
