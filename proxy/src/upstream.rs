//! Connections to upstream servers: each listener (one per runtime thread) keeps its own pool of
//! idle HTTP/1.1 connections per server address, on hyper's connection API.
//!
//! Why not hyper-util's pooled `Client`: per request it hashes a (scheme, authority) key, needs
//! an absolute URI, runs a checkout future, and spawns a task that waits for the connection to
//! be idle before pooling it again. Here a server's address is parsed once at config compile
//! time ([`Target`]), requests carry their origin-form URI as is, and a connection goes back to
//! the pool from the task that read its response, when that body ends ([`Lease`] in
//! [`PooledBody`], [`body`]). A body dropped before its end closes the connection.
//!
//! Idle connections are taken newest first, dropped when closed by the server or idle longer
//! than `idle_timeout`, and at most `max_idle_per_host` are kept per address. They are kept per
//! thread (a thread-local map): with a runtime per core, a listener's requests and the
//! connections they use stay on one thread, and nothing on this path takes a lock.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::client::conn::TrySendError;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::util::FastMap;

mod body;
pub use body::{ClientBodyError, PooledBody, ReqBody};

/// Upstream connection settings.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle_per_host: usize,
    /// Largest upstream response header block (as the request side's limit); a larger one
    /// is a 502.
    pub max_response_header_bytes: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(90),
            max_idle_per_host: 1024,
            max_response_header_bytes: 64 * 1024,
        }
    }
}

/// Where an upstream server is: an address (the mesh's `10.50.0.12:31001`), or a name
/// resolved when a connection is made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Addr(SocketAddr),
    Name(Arc<str>),
}

impl Target {
    /// From a URL authority (`host:port`, port defaulting to 80).
    pub fn parse(authority: &http::uri::Authority) -> Target {
        let port = authority.port_u16().unwrap_or(80);
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => Target::Addr(SocketAddr::new(ip, port)),
            Err(_) => Target::Name(format!("{host}:{port}").into()),
        }
    }
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    #[error("connect timed out")]
    Timeout,
    #[error("handshake: {0}")]
    Handshake(#[from] hyper::Error),
}

struct Idle {
    sender: SendRequest<ReqBody>,
    since: Instant,
}

impl Idle {
    /// Still open, and not idle for `idle_timeout` yet.
    fn usable(&self, idle_timeout: Duration, now: Instant) -> bool {
        !self.sender.is_closed() && now.duration_since(self.since) < idle_timeout
    }
}

thread_local! {
    /// This thread's idle connections, by pool and address.
    static IDLE: RefCell<IdleMap> = RefCell::default();
    /// Connections pooled on this thread since its last [`sweep`].
    static PUTS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Every this many connections pooled on a thread, its map drops closed and expired connections
/// and the addresses left without any: apps move to new ports on every deploy, and their old
/// addresses must not pile up.
const SWEEP_EVERY: u32 = 4096;

type IdleMap = FastMap<(u64, Target), VecDeque<Idle>>;

/// Runs `f` on this thread's idle map; `None` (nothing pooled, nothing taken) when the map is
/// gone (a body dropped while its thread exits) or in use, rather than a panic.
fn with_idle<R>(f: impl FnOnce(&mut IdleMap) -> R) -> Option<R> {
    IDLE.try_with(|cell| cell.try_borrow_mut().ok().map(|mut idle| f(&mut idle))).ok().flatten()
}

fn sweep(idle: &mut IdleMap, idle_timeout: Duration, now: Instant) {
    idle.retain(|_, queue| {
        queue.retain(|c| c.usable(idle_timeout, now));
        !queue.is_empty()
    });
}

/// One listener's upstream connections (the idle ones live in [`IDLE`]).
pub struct Pool {
    id: u64,
    settings: ClientSettings,
}

/// A connection held for one request; see [`Lease::release`].
pub struct Lease {
    sender: SendRequest<ReqBody>,
    target: Target,
    pool: Arc<Pool>,
    /// How long it sat in the pool; `None` for a new connection. A request a pooled connection
    /// fails to send may be tried on a new one.
    pub idle_for: Option<Duration>,
}

impl Pool {
    /// The largest response header block accepted from an upstream.
    pub fn max_response_header_bytes(&self) -> usize {
        self.settings.max_response_header_bytes
    }

    pub fn new(settings: ClientSettings) -> Arc<Pool> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Arc::new(Pool { id: NEXT.fetch_add(1, Relaxed), settings })
    }

    /// An idle connection to `target` that is ready for a request, or a new one.
    pub async fn checkout(self: &Arc<Self>, target: &Target) -> Result<Lease, ConnectError> {
        while let Some((mut sender, idle_for)) = self.take_idle(target) {
            // Ready at once, normally: it went back to the pool when its last response ended.
            // One that is still finishing (its request body, say) waits at the back.
            let ready = std::future::poll_fn(|cx| Poll::Ready(sender.poll_ready(cx))).await;
            match ready {
                Poll::Ready(Ok(())) => {
                    return Ok(self.lease(sender, target.clone(), Some(idle_for)));
                }
                Poll::Ready(Err(_)) => continue, // closed by the server
                Poll::Pending => {
                    self.put_back_oldest(target, sender);
                    break;
                }
            }
        }
        self.connect(target).await
    }

    /// A new connection, not from the pool.
    pub async fn connect(self: &Arc<Self>, target: &Target) -> Result<Lease, ConnectError> {
        let connect = async {
            match target {
                Target::Addr(addr) => TcpStream::connect(addr).await,
                Target::Name(name) => TcpStream::connect(&**name).await,
            }
        };
        let stream = tokio::time::timeout(self.settings.connect_timeout, connect)
            .await
            .map_err(|_| ConnectError::Timeout)??;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(self.settings.max_response_header_bytes.max(8192))
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(self.lease(sender, target.clone(), None))
    }

    fn lease(
        self: &Arc<Self>,
        sender: SendRequest<ReqBody>,
        target: Target,
        idle_for: Option<Duration>,
    ) -> Lease {
        Lease { sender, target, pool: self.clone(), idle_for }
    }

    /// The newest usable idle connection to `target`, with how long it was idle.
    fn take_idle(&self, target: &Target) -> Option<(SendRequest<ReqBody>, Duration)> {
        with_idle(|idle| {
            let queue = idle.get_mut(&(self.id, target.clone()))?;
            let now = Instant::now();
            while let Some(c) = queue.pop_back() {
                if c.usable(self.settings.idle_timeout, now) {
                    return Some((c.sender, now.duration_since(c.since)));
                }
            }
            None
        })
        .flatten()
    }

    fn put_back_oldest(&self, target: &Target, sender: SendRequest<ReqBody>) {
        with_idle(|idle| {
            if let Some(queue) = idle.get_mut(&(self.id, target.clone())) {
                queue.push_front(Idle { sender, since: Instant::now() });
            }
        });
    }

    fn put(&self, target: Target, sender: SendRequest<ReqBody>) {
        if self.settings.max_idle_per_host == 0 || sender.is_closed() {
            return;
        }
        let now = Instant::now();
        with_idle(|idle| {
            let puts = PUTS.get() + 1;
            if puts >= SWEEP_EVERY {
                sweep(idle, self.settings.idle_timeout, now);
            }
            PUTS.set(puts % SWEEP_EVERY);
            let queue = idle.entry((self.id, target)).or_default();
            // The oldest first: expired or closed ones go as others come back.
            while queue.front().is_some_and(|c| !c.usable(self.settings.idle_timeout, now)) {
                queue.pop_front();
            }
            if queue.len() >= self.settings.max_idle_per_host {
                queue.pop_front();
            }
            queue.push_back(Idle { sender, since: now });
        });
    }
}

impl Lease {
    /// Sends `req` (origin-form URI, `Host` set). A request the connection could not take is
    /// handed back in the error.
    pub fn send(
        &mut self,
        req: Request<ReqBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, TrySendError<Request<ReqBody>>>> {
        self.sender.try_send_request(req)
    }

    /// The response's body has ended: the connection may serve another request.
    pub fn release(self) {
        self.pool.put(self.target, self.sender);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender over an in-memory pipe; with `live` false its connection is gone (closed).
    async fn sender(live: bool) -> SendRequest<ReqBody> {
        let (ours, theirs) = tokio::io::duplex(1024);
        let (sender, conn) = http1::handshake(TokioIo::new(ours)).await.unwrap();
        if live {
            tokio::spawn(async move {
                let _theirs = theirs;
                let _ = conn.await;
            });
        }
        sender
    }

    #[tokio::test]
    async fn sweeps_drop_closed_and_expired_connections_and_empty_addresses() {
        let timeout = Duration::from_secs(90);
        let now = Instant::now();
        let addr = |port| (0, Target::Addr(SocketAddr::from(([127, 0, 0, 1], port))));
        let mut idle = IdleMap::default();
        let fresh = Idle { sender: sender(true).await, since: now };
        let closed = Idle { sender: sender(false).await, since: now };
        let expired = Idle { sender: sender(true).await, since: now - timeout };
        idle.insert(addr(1), VecDeque::from([closed, fresh]));
        idle.insert(addr(2), VecDeque::from([expired]));
        idle.insert(addr(3), VecDeque::new());
        sweep(&mut idle, timeout, now);
        assert_eq!(idle.len(), 1, "only the address with a live, young connection stays");
        assert_eq!(idle[&addr(1)].len(), 1);
        assert!(!idle[&addr(1)][0].sender.is_closed());
    }

    #[test]
    fn targets_parse_addresses_and_keep_names() {
        let t = |s: &str| Target::parse(&s.parse().unwrap());
        assert_eq!(t("10.50.0.12:31001"), Target::Addr("10.50.0.12:31001".parse().unwrap()));
        assert_eq!(t("10.50.0.12"), Target::Addr("10.50.0.12:80".parse().unwrap()));
        assert_eq!(t("[::1]:8080"), Target::Addr("[::1]:8080".parse().unwrap()));
        assert_eq!(t("backend:8080"), Target::Name("backend:8080".into()));
    }
}
