//! Accepting client connections: one connection limit for the whole process (upgraded
//! connections count until they close), protocol detection (HTTP/1.1 and h2c), the deadlines
//! of [`crate::conn`], and graceful shutdown: on stop, and for an HTTP/2 connection with no
//! open stream for the idle timeout, a connection is closed with GOAWAY (HTTP/2) or after its
//! current response (HTTP/1). Every connection task, and every tunnel of an upgraded one, is
//! in the proxy's [`ProxyState::tracker`], which the shutdown drain waits for.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::conn::{ConnState, Guarded, TimedIo, Timeouts};
use crate::error::{respond, ConnError, ProxyError};
use crate::forward::ListenerContext;
use crate::headers::Peer;
use crate::state::ProxyState;
use crate::upstream::ClientSettings;

/// Requests of one HTTP/2 connection whose bodies may be in progress at once (of its 256
/// streams); more answer 429. Each holds an upstream request open.
pub const MAX_BODIES_IN_PROGRESS: u32 = 32;

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// A client must send a request's whole header block within this (slowloris guard).
    pub header_read_timeout: Duration,
    /// Largest request header block; more is answered 431.
    pub max_header_bytes: usize,
    /// Connections beyond this are closed on accept (and counted); for the whole process.
    pub max_connections: usize,
    /// A keep-alive connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 100_000,
            idle_timeout: Duration::from_secs(90),
        }
    }
}

/// Builds the hyper connection builder once for a listener.
pub fn builder(settings: &ServerSettings) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // Our own header deadline (crate::conn) starts at a request's first byte; hyper's would
        // also count the idle time between keep-alive requests.
        .header_read_timeout(None)
        .max_buf_size(settings.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(settings.max_header_bytes as u32)
        .keep_alive_interval(Some(settings.idle_timeout))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(256);
    b
}

/// A connection's place under the process-wide limit, and its count in the open-connections
/// gauge: held by the connection's socket, so an upgraded connection keeps it until its tunnel
/// closes.
struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.open_connections.fetch_sub(1, Relaxed);
    }
}

/// Accepts and serves connections on `listener` until `shutdown` fires; then stops accepting
/// and asks the connections to close gracefully. With `tls`, every connection is a TLS
/// handshake first (bounded by the header timeout). `permits` is the process-wide connection
/// limit, shared by every accept loop.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<ProxyState>,
    settings: ServerSettings,
    shutdown: CancellationToken,
    permits: Arc<Semaphore>,
    tls: Option<TlsAcceptor>,
) {
    let local = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let facts = Arc::new(ListenerContext::new(local, tls.is_some(), &ClientSettings::default()));
    let builder = Arc::new(builder(&settings));
    let timeouts = Timeouts { header: settings.header_read_timeout, idle: settings.idle_timeout };
    loop {
        let (stream, peer_addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = wh_http::accept::accept(&listener) => accepted,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            proxy.metrics.rejected_connections.fetch_add(1, Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        proxy.metrics.open_connections.fetch_add(1, Relaxed);
        let slot = Slot { _permit: permit, metrics: proxy.metrics.clone() };
        let conn = Conn {
            peer: Arc::new(Peer::new(peer_addr.ip(), proxy.trusted.contains(peer_addr.ip()))),
            proxy: proxy.clone(),
            facts: facts.clone(),
            builder: builder.clone(),
            shutdown: shutdown.clone(),
            timeouts,
        };
        let tls = tls.clone();
        proxy.tracker.spawn(async move {
            let result = match tls {
                None => conn.serve(stream, slot).await,
                Some(acceptor) => {
                    match tokio::time::timeout(timeouts.header, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => conn.serve(tls_stream, slot).await,
                        Ok(Err(e)) => Err(ConnError::TlsHandshake(e)),
                        Err(_) => Err(ConnError::TlsTimeout),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, peer = %peer_addr, "connection ended with an error");
            }
        });
    }
}

/// Everything one connection needs.
struct Conn {
    peer: Arc<Peer>,
    proxy: Arc<ProxyState>,
    facts: Arc<ListenerContext>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: CancellationToken,
    timeouts: Timeouts,
}

impl Conn {
    async fn serve<IO>(self, io: IO, slot: Slot) -> Result<(), ConnError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::new(ConnState::default());
        let io = TimedIo::new(io, state.clone(), self.timeouts).hold(slot);
        let Conn { peer, proxy, facts, shutdown, .. } = self;
        let service_state = state.clone();
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let (proxy, peer, facts, state) =
                (proxy.clone(), peer.clone(), facts.clone(), service_state.clone());
            async move {
                let guard = state.request_started();
                use http_body::Body as _;
                let resp = if guard.conflicting_framing() {
                    respond(&ProxyError::BadRequest("both Content-Length and Transfer-Encoding"))
                } else if req.version() == http::Version::HTTP_2 && !req.body().is_end_stream() {
                    match state.body_slot(MAX_BODIES_IN_PROGRESS) {
                        Some(slot) => proxy.handle(req, &peer, &facts, Some(slot)).await,
                        None => respond(&ProxyError::TooManyBodies),
                    }
                } else {
                    proxy.handle(req, &peer, &facts, None).await
                };
                if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                    state.mark_upgraded();
                }
                Ok::<_, std::convert::Infallible>(resp.map(|body| Guarded::new(body, guard)))
            }
        });
        let conn = self.builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let conn = conn.into_owned();
        tokio::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => return Ok(result?),
            _ = state.closing(shutdown.cancelled()) => conn.as_mut().graceful_shutdown(),
        }
        Ok(conn.await?)
    }
}
