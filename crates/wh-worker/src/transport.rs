//! The worker's end of the secure channel.
//!
//! [`Transport::run`] registers with the raw API key (`POST /v1/workers/register`) for a JWT,
//! opens `GET /v1/workers/ws` with it, says `hello`, and then pumps the [`Outbox`] and the
//! inbound messages until the connection ends; then it reconnects with full-jitter exponential
//! backoff (0.5 s up to 30 s). The JWT is refreshed 2 minutes before it expires; the bearer
//! token is read at each connect, so a refreshed token applies at the next reconnect. A 401 at
//! register is terminal: the key is wrong or the worker is disabled, and looping would not fix
//! it. Inbound envelopes are verified and deduplicated by id before they are handed on.
//!
//! - [`outbox`]: what waits to be sent (reliable until acknowledged; bounded logs).
//! - [`net`]: TCP/TLS dialling, HTTP POSTs and the WebSocket handshake.

pub mod net;
pub mod outbox;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;
use wh_wsproto::messages::{Hello, Ping};
use wh_wsproto::token::WorkerToken;
use wh_wsproto::{Binding, Message, Signer, Verifier};

pub use net::Endpoint;
pub use outbox::Outbox;

use net::NetError;

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<Box<dyn net::Io>>,
    WsMessage,
>;

/// Sends `m`, for at most `limit`: a send blocked by a peer that stopped reading ends the
/// session as silence does.
async fn send_within(sink: &mut Sink, m: WsMessage, limit: Duration) -> Result<(), ConnectError> {
    match tokio::time::timeout(limit, sink.send(m)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ConnectError::Retry(Retry::Send(Box::new(e)))),
        Err(_) => Err(ConnectError::Retry(Retry::StoppedReading)),
    }
}

/// Settings of the transport.
#[derive(Clone)]
pub struct TransportConfig {
    pub endpoint: Endpoint,
    /// The raw API key; never logged.
    pub api_key: String,
    /// Refresh the JWT this long before it expires.
    pub refresh_margin: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Log lines kept while disconnected.
    pub log_cap: usize,
    /// Without any frame from the control plane for this long, reconnect.
    pub silence_limit: Duration,
}

impl TransportConfig {
    pub fn new(endpoint: Endpoint, api_key: String) -> TransportConfig {
        TransportConfig {
            endpoint,
            api_key,
            refresh_margin: Duration::from_secs(120),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            log_cap: 10_000,
            silence_limit: Duration::from_secs(60),
        }
    }
}

/// Why a `GET` from the control plane failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("not registered with the control plane yet")]
    NotRegistered,
    #[error("GET {path}: {source}")]
    Net { path: String, source: NetError },
}

/// Why the transport gave up for good.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("the control plane refused this worker's key (401): {0}; check the key or whether the worker is disabled")]
    Unauthorized(String),
}

/// Counters, for tests and logs.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Sessions tried (each register-and-connect attempt, successful or not).
    pub attempts: AtomicU64,
    pub connects: AtomicU64,
    pub refreshes: AtomicU64,
    pub duplicates_dropped: AtomicU64,
}

/// The worker's channel to the control plane.
pub struct Transport {
    config: TransportConfig,
    outbox: Mutex<Outbox>,
    wake: Notify,
    token: Mutex<Option<WorkerToken>>,
    connected: AtomicBool,
    inbound: mpsc::Sender<Message>,
    pub stats: TransportStats,
}

use wh_wsproto::now_ms;

impl Transport {
    /// A transport; verified messages from the control plane arrive on the receiver.
    pub fn new(config: TransportConfig) -> (Arc<Transport>, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(1024);
        let t = Transport {
            outbox: Mutex::new(Outbox::new(config.log_cap)),
            config,
            wake: Notify::new(),
            token: Mutex::new(None),
            connected: AtomicBool::new(false),
            inbound: tx,
            stats: TransportStats::default(),
        };
        (Arc::new(t), rx)
    }

    /// Queues a message for the control plane (sent now if connected, else after reconnecting).
    pub fn send(&self, msg: Message) {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner()).push(msg);
        self.wake.notify_one();
    }

    /// Whether a session is open right now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Relaxed)
    }

    /// The worker id the control plane gave us (after the first registration).
    pub fn worker_id(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|t| t.worker_id.clone())
    }

    /// Reliable messages not yet acknowledged.
    pub fn pending_reliable(&self) -> usize {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner()).pending_reliable()
    }

    /// `GET path` from the control plane with this worker's JWT (e.g. an uploaded source);
    /// at most `limit` bytes within `timeout`.
    pub async fn fetch(
        &self,
        path: &str,
        limit: usize,
        timeout: Duration,
    ) -> Result<bytes::Bytes, FetchError> {
        let token = self.bearer().ok_or(FetchError::NotRegistered)?;
        self.config
            .endpoint
            .get(path, &token.token, limit, timeout)
            .await
            .map_err(|e| FetchError::Net { path: path.to_owned(), source: e })
    }

    /// The current bearer token (read at each connect: a refreshed token applies next time).
    fn bearer(&self) -> Option<WorkerToken> {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs until `stop`, or until the control plane refuses our key.
    pub async fn run(
        self: Arc<Self>,
        hello: impl Fn(&str) -> Hello + Send + Sync,
        stop: CancellationToken,
    ) -> Result<(), TransportError> {
        let mut failures: u32 = 0;
        loop {
            if stop.is_cancelled() {
                return Ok(());
            }
            self.stats.attempts.fetch_add(1, Relaxed);
            match self.connect_once(&hello, &stop).await {
                Ok(()) => failures = 0,
                Err(ConnectError::Terminal(e)) => return Err(e),
                Err(ConnectError::Retry(why)) => {
                    failures += 1;
                    tracing::warn!(error = %why, "control plane unreachable");
                }
            }
            if stop.is_cancelled() {
                return Ok(());
            }
            let wait = full_jitter(self.config.backoff_min, self.config.backoff_max, failures);
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn register(&self) -> Result<WorkerToken, ConnectError> {
        match self.config.endpoint.post("/v1/workers/register", &self.config.api_key).await {
            Ok(body) => parse_token(&body).map_err(|e| ConnectError::Retry(Retry::Token(e))),
            Err(NetError::Status(401, body)) => {
                Err(ConnectError::Terminal(TransportError::Unauthorized(body)))
            }
            Err(e) => Err(ConnectError::Retry(Retry::Net(e))),
        }
    }

    async fn connect_once(
        &self,
        hello: &(impl Fn(&str) -> Hello + Sync),
        stop: &CancellationToken,
    ) -> Result<(), ConnectError> {
        let token = match self.bearer() {
            Some(t) if t.expires_at * 1000 > now_ms() + 5_000 => t,
            _ => {
                let t = self.register().await?;
                *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.clone());
                t
            }
        };
        let (ws, connection) =
            match self.config.endpoint.websocket("/v1/workers/ws", &token.token).await {
                Ok(ws) => ws,
                Err(NetError::Status(401, _)) => {
                    // Token refused (expired, or the secret changed): register again next time.
                    self.token.lock().unwrap_or_else(|e| e.into_inner()).take();
                    return Err(ConnectError::Retry(Retry::TokenRefused));
                }
                Err(e) => return Err(ConnectError::Retry(Retry::Net(e))),
            };
        self.stats.connects.fetch_add(1, Relaxed);
        self.connected.store(true, Relaxed);
        tracing::info!(worker = %token.worker_id, "connected to the control plane");
        let result = self.session(ws, &token, &connection, hello, stop).await;
        self.connected.store(false, Relaxed);
        self.outbox.lock().unwrap_or_else(|e| e.into_inner()).requeue_in_flight();
        result
    }

    async fn session(
        &self,
        ws: tokio_tungstenite::WebSocketStream<Box<dyn net::Io>>,
        token: &WorkerToken,
        connection: &str,
        hello: &(impl Fn(&str) -> Hello + Sync),
        stop: &CancellationToken,
    ) -> Result<(), ConnectError> {
        let worker_id = token.worker_id.as_str();
        let key = token.channel_key.clone();
        let mut signer = Signer::new(key.clone(), Binding::to_control_plane(connection), 1);
        let mut verifier = Verifier::new(key, Binding::to_worker(connection));
        let mut recent = wh_wsproto::RecentIds::default();
        let (mut sink, mut stream) = ws.split();
        let limit = self.config.silence_limit;
        let hello_text = signer.seal(&Message::Hello(hello(worker_id)), now_ms());
        send_within(&mut sink, WsMessage::Text(hello_text.into()), limit).await?;
        self.wake.notify_one();
        // Only what the control plane sends proves it is there: our own sends never do.
        let mut heard = tokio::time::Instant::now();
        // A token refresh runs beside the session, never blocking pings or the outbox.
        let refresh = futures_util::future::Fuse::terminated();
        tokio::pin!(refresh);
        loop {
            use futures_util::future::{FusedFuture, FutureExt};
            let refresh_at = self.bearer().map_or(i64::MAX, |t| {
                t.expires_at * 1000 - self.config.refresh_margin.as_millis() as i64
            });
            let until_refresh =
                Duration::from_millis(refresh_at.saturating_sub(now_ms()).max(0) as u64);
            let refreshing = !refresh.is_terminated();
            tokio::select! {
                _ = stop.cancelled() => {
                    let _ = send_within(&mut sink, WsMessage::Close(None), limit).await;
                    return Ok(());
                }
                _ = self.wake.notified() => {
                    let batch = self.outbox.lock().unwrap_or_else(|e| e.into_inner()).take();
                    for (id, msg) in batch {
                        let text = match id {
                            Some(id) => signer.seal_with_id(&msg, &id, now_ms()),
                            None => signer.seal(&msg, now_ms()),
                        };
                        send_within(&mut sink, WsMessage::Text(text.into()), limit).await?;
                    }
                }
                _ = tokio::time::sleep(until_refresh), if !refreshing => {
                    refresh.set(self.refresh().fuse());
                }
                _ = &mut refresh, if refreshing => {}
                _ = tokio::time::sleep_until(heard + self.config.silence_limit) => {
                    return Err(ConnectError::Retry(Retry::Silent));
                }
                frame = stream.next() => {
                    heard = tokio::time::Instant::now();
                    let text = match frame {
                        None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return Ok(()),
                        Some(Ok(WsMessage::Text(t))) => t,
                        Some(Ok(_)) => continue,
                    };
                    let opened = match verifier.open(text.as_bytes(), now_ms()) {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!(error = %e, "envelope from the control plane rejected");
                            continue;
                        }
                    };
                    if !recent.insert(&opened.i) {
                        self.stats.duplicates_dropped.fetch_add(1, Relaxed);
                        continue;
                    }
                    // The type only: payloads carry secrets (env vars), never logged.
                    tracing::trace!(t = %opened.t, s = opened.s, "envelope received");
                    match opened.message() {
                        Ok(Message::Ack(ack)) => self.outbox.lock().unwrap_or_else(|e| e.into_inner()).ack(&ack.ids),
                        Ok(Message::Ping(Ping { nonce })) => {
                            let pong = signer.seal(&Message::Pong(Ping { nonce }), now_ms());
                            send_within(&mut sink, WsMessage::Text(pong.into()), limit).await?;
                        }
                        Ok(Message::Pong(_)) => {}
                        Ok(other) => {
                            if self.inbound.send(other).await.is_err() {
                                return Ok(());
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "message from the control plane not understood"),
                    }
                }
            }
        }
    }

    /// Exchanges the current JWT for a fresh one; on refusal, forgets it (re-register next time).
    async fn refresh(&self) {
        let Some(current) = self.bearer() else { return };
        match self.config.endpoint.post("/v1/workers/refresh-token", &current.token).await {
            Ok(body) => match parse_token(&body) {
                Ok(t) => {
                    *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
                    self.stats.refreshes.fetch_add(1, Relaxed);
                    tracing::debug!("worker token refreshed");
                }
                Err(e) => tracing::warn!(error = %e, "token refresh answer not understood"),
            },
            Err(NetError::Status(401, _)) => {
                tracing::warn!("token refresh refused; will register again");
                self.token.lock().unwrap_or_else(|e| e.into_inner()).take();
            }
            Err(e) => {
                tracing::warn!(error = %e, "token refresh failed; retrying shortly");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

enum ConnectError {
    Terminal(TransportError),
    Retry(Retry),
}

/// Why a session ended or could not start; the transport tries again after a backoff.
#[derive(Debug, thiserror::Error)]
enum Retry {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("register answer not understood: {0}")]
    Token(serde_json::Error),
    #[error("token refused")]
    TokenRefused,
    #[error("send: {0}")]
    Send(Box<tokio_tungstenite::tungstenite::Error>),
    #[error("the control plane stopped reading")]
    StoppedReading,
    #[error("the control plane went silent")]
    Silent,
}

fn parse_token(body: &[u8]) -> Result<WorkerToken, serde_json::Error> {
    serde_json::from_slice(body)
}

/// Full jitter (AWS architecture blog): uniform in [0, min(max, base·2^n)].
fn full_jitter(base: Duration, max: Duration, failures: u32) -> Duration {
    let cap = base.saturating_mul(1u32 << failures.min(16)).min(max);
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    cap.mul_f64(u64::from_le_bytes(r) as f64 / u64::MAX as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten minutes of an unreachable control plane, on paused time: the transport keeps trying,
    /// and backs off (full jitter up to 30 s) instead of hammering it. A transport that does not
    /// back off never lets virtual time pass, so the runtime has a real-time bound as well.
    #[test]
    fn an_unreachable_control_plane_is_retried_with_backoff() {
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap();
            let counts = rt.block_on(async {
                let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let url = format!("http://{}", closed.local_addr().unwrap());
                drop(closed);
                let endpoint = Endpoint::parse(&url, None).unwrap();
                let (transport, _rx) = Transport::new(TransportConfig::new(endpoint, "k".into()));
                let stop = CancellationToken::new();
                let hello = |id: &str| Hello { worker_id: id.into(), ..Default::default() };
                let run = tokio::spawn(transport.clone().run(hello, stop.clone()));
                tokio::time::sleep(Duration::from_secs(600)).await;
                stop.cancel();
                assert!(run.await.unwrap().is_ok());
                let stats = &transport.stats;
                (stats.attempts.load(Relaxed), stats.connects.load(Relaxed))
            });
            let _ = done.send(counts);
        });
        let (attempts, connects) = outcome
            .recv_timeout(Duration::from_secs(60))
            .expect("ten virtual minutes never passed: the transport retries without waiting");
        // With waits averaging 15 s once capped, ten minutes hold a few dozen attempts.
        assert!((10..=200).contains(&attempts), "{attempts} attempts in 10 minutes");
        assert_eq!(connects, 0);
    }

    #[test]
    fn full_jitter_stays_under_the_cap() {
        let (base, max) = (Duration::from_millis(500), Duration::from_secs(30));
        for n in 0..40 {
            let cap = base.saturating_mul(1 << n.min(16)).min(max);
            assert!(full_jitter(base, max, n) <= cap);
        }
    }
}
