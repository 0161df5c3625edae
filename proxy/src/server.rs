//! Accepting client connections: limits, protocol detection (HTTP/1.1 and h2c), header-read
//! timeouts, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::conn::{ConnState, Guarded, TimedIo, Timeouts};
use crate::error::{respond, ProxyError};
use crate::forward::{ClientSettings, Listener, Proxy};
use crate::headers::Peer;

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// A client must send a request's whole header block within this (slowloris guard).
    pub header_read_timeout: Duration,
    /// Largest request header block; more is answered 431.
    pub max_header_bytes: usize,
    /// Connections beyond this are closed on accept (and counted).
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

/// Accepts and serves connections on `listener` until `shutdown` fires; then stops accepting.
/// With `tls`, every connection is a TLS handshake first (bounded by the header timeout).
/// Every connection is watched by `graceful`, whose owner drains them.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    settings: ServerSettings,
    shutdown: CancellationToken,
    graceful: Arc<GracefulShutdown>,
    tls: Option<TlsAcceptor>,
) {
    let local = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let facts = Arc::new(Listener::new(local, tls.is_some(), &ClientSettings::default()));
    let builder = Arc::new(builder(&settings));
    let permits = Arc::new(Semaphore::new(settings.max_connections));
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
        let conn = Conn {
            peer: Arc::new(Peer::new(peer_addr.ip(), proxy.trusted.contains(peer_addr.ip()))),
            proxy: proxy.clone(),
            facts: facts.clone(),
            builder: builder.clone(),
            graceful: graceful.clone(),
            timeouts,
        };
        let metrics = proxy.metrics.clone();
        metrics.open_connections.fetch_add(1, Relaxed);
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                None => conn.serve(stream).await,
                Some(acceptor) => {
                    match tokio::time::timeout(timeouts.header, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => conn.serve(tls_stream).await,
                        Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, peer = %peer_addr, "connection ended with an error");
            }
            metrics.open_connections.fetch_sub(1, Relaxed);
            drop(permit);
        });
    }
}

/// Everything one connection needs.
struct Conn {
    peer: Arc<Peer>,
    proxy: Arc<Proxy>,
    facts: Arc<Listener>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    graceful: Arc<GracefulShutdown>,
    timeouts: Timeouts,
}

impl Conn {
    async fn serve<IO>(self, io: IO) -> Result<(), String>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::new(ConnState::default());
        let io = TimedIo::new(io, state.clone(), self.timeouts);
        let Conn { peer, proxy, facts, .. } = self;
        let service = service_fn(move |req| {
            let (proxy, peer, facts, state) =
                (proxy.clone(), peer.clone(), facts.clone(), state.clone());
            async move {
                let guard = state.request_started();
                let resp = if state.take_conflicting_framing() {
                    respond(&ProxyError::BadRequest("both Content-Length and Transfer-Encoding"))
                } else {
                    proxy.handle(req, &peer, &facts).await
                };
                if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                    state.mark_upgraded();
                }
                Ok::<_, std::convert::Infallible>(resp.map(|body| Guarded::new(body, guard)))
            }
        });
        let conn =
            self.builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
        self.graceful.watch(conn).await.map_err(|e| e.to_string())
    }
}
