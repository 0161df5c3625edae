//! The worker hub: one signed, verified WebSocket channel per connected worker.
//!
//! Each connection has a send task and a receive task; whichever ends first cancels the other
//! (axum's chat example). A newer connection of the same worker replaces the older one. Every
//! inbound envelope is verified (MAC, clock skew, replay window) before its payload is parsed;
//! rejections are counted by kind and logged. Verified messages reach the subsystems through
//! one bounded queue per [`Family`] ([`Routes`]): `hello`, `heartbeat` and `job.*` to the
//! scheduler, `container.*` to the containers task, `log.lines` to the log ingest, so a flood of
//! log lines holds up neither job results nor another worker's reports. The outbound queue per
//! worker is bounded too. The hub pings every 20 s and
//! declares a worker dead after 60 s of silence. No lock is held across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wh_wsproto::messages::{Ack, Family, Heartbeat, Ping};
use wh_wsproto::{Binding, Key, Message, Signer, Verifier};

use crate::workers::Worker;

/// How often the hub pings a worker.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A worker silent for this long is disconnected.
pub const DEAD_AFTER: Duration = Duration::from_secs(60);
/// Outbound messages queued per worker before `send` refuses.
pub const OUTBOUND_QUEUE: usize = 1024;
/// Ids of reliable envelopes remembered per worker (across reconnects) to drop resends.
pub use wh_wsproto::window::RECENT_IDS;

/// A verified message from a worker, for the subsystems.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub worker_id: Uuid,
    /// The connection it came on (each connection of a worker has a new one).
    pub conn: u64,
    pub message: Message,
}

/// Where verified messages go: one bounded queue per family.
#[derive(Debug, Clone)]
pub struct Routes {
    pub jobs: mpsc::Sender<Inbound>,
    pub containers: mpsc::Sender<Inbound>,
    pub logs: mpsc::Sender<Inbound>,
}

/// The receiving ends of [`Routes`], for the tasks that consume them
/// ([`crate::scheduler::run`]).
#[derive(Debug)]
pub struct Queues {
    pub jobs: mpsc::Receiver<Inbound>,
    pub containers: mpsc::Receiver<Inbound>,
    pub logs: mpsc::Receiver<Inbound>,
}

/// Routes and their queues, each holding up to `capacity` messages.
pub fn routes(capacity: usize) -> (Routes, Queues) {
    let (jobs, jobs_rx) = mpsc::channel(capacity);
    let (containers, containers_rx) = mpsc::channel(capacity);
    let (logs, logs_rx) = mpsc::channel(capacity);
    (
        Routes { jobs, containers, logs },
        Queues { jobs: jobs_rx, containers: containers_rx, logs: logs_rx },
    )
}

/// The next message of `queue`; `None` at `stop`, or once the hub is gone.
pub async fn next(
    queue: &mut mpsc::Receiver<Inbound>,
    stop: &CancellationToken,
) -> Option<Inbound> {
    tokio::select! {
        _ = stop.cancelled() => None,
        m = queue.recv() => m,
    }
}

impl Queues {
    /// Every family's messages in one queue, each family in its order (for a test or tool
    /// that watches everything a worker sends). Spawns a forwarder per family.
    pub fn merged(self) -> mpsc::Receiver<Inbound> {
        let (tx, rx) = mpsc::channel(1024);
        for mut queue in [self.jobs, self.containers, self.logs] {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(m) = queue.recv().await {
                    if tx.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
        rx
    }
}

impl Routes {
    fn of(&self, family: Family) -> Option<&mpsc::Sender<Inbound>> {
        match family {
            Family::Jobs => Some(&self.jobs),
            Family::Containers => Some(&self.containers),
            Family::Logs => Some(&self.logs),
            Family::Channel => None,
        }
    }
}

/// What the scheduler needs to know about a worker.
#[derive(Debug, Clone)]
pub struct WorkerHealth {
    pub connected: bool,
    /// The scheduler has applied this connection's `hello` (its inventory and the jobs it
    /// still runs): only then is the worker given jobs, so no job placed on the new
    /// connection is mistaken for one the worker lost.
    pub ready: bool,
    pub last_seen: SystemTime,
    pub last_heartbeat: Option<Heartbeat>,
}

/// Why a message could not be queued for a worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("worker is not connected")]
    NotConnected,
    #[error("worker's outbound queue is full")]
    QueueFull,
}

struct Conn {
    conn_id: u64,
    /// The key generation the connection authenticated with.
    generation: i32,
    outbound: mpsc::Sender<Message>,
    cancel: CancellationToken,
}

/// The hub.
pub struct Hub {
    conns: Mutex<HashMap<Uuid, Conn>>,
    health: Mutex<HashMap<Uuid, WorkerHealth>>,
    rejections: Mutex<BTreeMap<String, u64>>,
    recent_ids: Mutex<HashMap<Uuid, wh_wsproto::RecentIds>>,
    inbound: Routes,
    next_conn: AtomicU64,
    ping_interval: Duration,
    dead_after: Duration,
}

impl Hub {
    /// A hub delivering verified messages to `inbound`.
    pub fn new(inbound: Routes) -> Hub {
        Self::with_timing(inbound, PING_INTERVAL, DEAD_AFTER)
    }

    /// Same, with other ping and silence timings (tests).
    pub fn with_timing(inbound: Routes, ping_interval: Duration, dead_after: Duration) -> Hub {
        Hub {
            conns: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
            rejections: Mutex::new(BTreeMap::new()),
            recent_ids: Mutex::new(HashMap::new()),
            inbound,
            next_conn: AtomicU64::new(1),
            ping_interval,
            dead_after,
        }
    }

    /// Queues `msg` for `worker`.
    pub fn send(&self, worker: Uuid, msg: Message) -> Result<(), SendError> {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let conn = conns.get(&worker).ok_or(SendError::NotConnected)?;
        conn.outbound.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SendError::NotConnected,
        })
    }

    /// Queues `answers` for `worker`; one that cannot be queued is logged.
    pub fn answer(&self, worker: Uuid, answers: Vec<Message>) {
        for answer in answers {
            if let Err(e) = self.send(worker, answer) {
                tracing::warn!(%worker, error = %e, "cannot answer the worker");
            }
        }
    }

    /// Closes `worker`'s connection, if any (disabled or deleted workers).
    pub fn disconnect(&self, worker: Uuid) {
        if let Some(conn) = self.conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&worker) {
            conn.cancel.cancel();
        }
        self.set_connected(worker, false);
    }

    /// Ids of connected workers.
    pub fn connected(&self) -> Vec<Uuid> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect()
    }

    /// Connected workers with the key generation of their connection.
    fn connections(&self) -> Vec<(Uuid, i32)> {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.iter().map(|(id, c)| (*id, c.generation)).collect()
    }

    /// Health of every worker seen since start.
    pub fn health(&self) -> HashMap<Uuid, WorkerHealth> {
        self.health.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Rejected envelopes by kind (bad_mac, skew, replay, too_old, malformed, payload,
    /// wrong_worker, duplicate for resent reliable envelopes already processed, and not_yours
    /// for reports on jobs, deployments or containers of another worker).
    pub fn rejections(&self) -> BTreeMap<String, u64> {
        self.rejections.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Counts (and logs) a refused envelope or report of `worker` under `kind`.
    pub fn reject(&self, worker: Uuid, kind: &str, detail: &str) {
        tracing::warn!(%worker, kind, detail, "envelope rejected");
        *self
            .rejections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind.to_owned())
            .or_default() += 1;
    }

    /// Records a reliable envelope id; true when it was already processed (a resend).
    fn already_seen(&self, worker: Uuid, id: &str) -> bool {
        let mut all = self.recent_ids.lock().unwrap_or_else(|e| e.into_inner());
        !all.entry(worker).or_default().insert(id)
    }

    fn set_connected(&self, worker: Uuid, connected: bool) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let h = health.entry(worker).or_insert(WorkerHealth {
            connected,
            ready: false,
            last_seen: SystemTime::now(),
            last_heartbeat: None,
        });
        h.connected = connected;
        h.ready = false;
        if connected {
            h.last_seen = SystemTime::now();
        }
    }

    /// The scheduler has applied `worker`'s hello on connection `conn`: it may be given jobs
    /// (unless a newer connection replaced that one meanwhile).
    pub fn mark_ready(&self, worker: Uuid, conn: u64) {
        let current =
            self.conns.lock().unwrap_or_else(|e| e.into_inner()).get(&worker).map(|c| c.conn_id);
        if current != Some(conn) {
            return;
        }
        if let Some(h) = self.health.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&worker) {
            h.ready = true;
        }
    }

    fn seen(&self, worker: Uuid, heartbeat: Option<&Heartbeat>) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = health.get_mut(&worker) {
            h.last_seen = SystemTime::now();
            if let Some(hb) = heartbeat {
                h.last_heartbeat = Some(hb.clone());
            }
        }
    }

    /// Serves one authenticated worker's socket until either side ends it: envelopes are signed
    /// and verified with `key`, bound to the `connection` nonce the upgrade answer carried.
    pub async fn serve(
        self: Arc<Self>,
        worker: Worker,
        key: Key,
        connection: String,
        socket: WebSocket,
    ) {
        let (tx, mut rx) = mpsc::channel::<Message>(OUTBOUND_QUEUE);
        let cancel = CancellationToken::new();
        let conn_id = self.next_conn.fetch_add(1, Relaxed);
        if let Some(old) = self.conns.lock().unwrap_or_else(|e| e.into_inner()).insert(
            worker.id,
            Conn {
                conn_id,
                generation: worker.key_generation,
                outbound: tx.clone(),
                cancel: cancel.clone(),
            },
        ) {
            tracing::info!(worker = %worker.id, "a newer connection replaces the open one");
            old.cancel.cancel();
        }
        self.set_connected(worker.id, true);
        tracing::info!(worker = %worker.id, name = %worker.name, "worker connected");

        let (mut sink, mut stream) = socket.split();
        let mut signer = Signer::new(key.clone(), Binding::to_worker(&connection), 1);
        let ping_interval = self.ping_interval;
        let send_cancel = cancel.clone();
        let mut send_task = tokio::spawn(async move {
            let mut ping = tokio::time::interval(ping_interval);
            ping.tick().await;
            loop {
                let msg = tokio::select! {
                    _ = send_cancel.cancelled() => break,
                    m = rx.recv() => match m { Some(m) => m, None => break },
                    _ = ping.tick() => Message::Ping(Ping { nonce: crate::now_ms().to_string() }),
                };
                let text = signer.seal(&msg, crate::now_ms());
                if sink.send(WsMessage::Text(text.into())).await.is_err() {
                    break;
                }
            }
            let _ = sink.send(WsMessage::Close(None)).await;
        });

        let hub = self.clone();
        let recv_cancel = cancel.clone();
        let worker_id = worker.id;
        let dead_after = self.dead_after;
        let mut recv_task = tokio::spawn(async move {
            let mut verifier = Verifier::new(key, Binding::to_control_plane(&connection));
            loop {
                let frame = tokio::select! {
                    _ = recv_cancel.cancelled() => break,
                    f = tokio::time::timeout(dead_after, stream.next()) => f,
                };
                let text = match frame {
                    Err(_) => {
                        tracing::warn!(worker = %worker_id, "no message for {dead_after:?}; disconnecting");
                        break;
                    }
                    Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(WsMessage::Close(_)))) => break,
                    Ok(Some(Ok(WsMessage::Text(t)))) => t,
                    Ok(Some(Ok(_))) => continue, // binary, ping, pong frames: not our protocol
                };
                let opened = match verifier.open(text.as_bytes(), crate::now_ms()) {
                    Ok(v) => v,
                    Err(e) => {
                        hub.reject(worker_id, rejection_kind(&e), &e.to_string());
                        continue;
                    }
                };
                let message = match opened.message() {
                    Ok(m) => m,
                    Err(e) => {
                        hub.reject(worker_id, "payload", &e.to_string());
                        continue;
                    }
                };
                match &message {
                    Message::Hello(h) if h.worker_id != worker_id.to_string() => {
                        hub.reject(worker_id, "wrong_worker", &h.worker_id);
                        continue;
                    }
                    Message::Ping(p) => {
                        let _ = tx.try_send(Message::Pong(p.clone()));
                        hub.seen(worker_id, None);
                        continue;
                    }
                    Message::Heartbeat(hb) => hub.seen(worker_id, Some(hb)),
                    _ => hub.seen(worker_id, None),
                }
                let reliable = message.is_reliable();
                if reliable && hub.already_seen(worker_id, &opened.i) {
                    // A resend after a lost ack: acknowledge again, deliver nothing.
                    *hub.rejections
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry("duplicate".into())
                        .or_default() += 1;
                    let _ = tx.try_send(Message::Ack(Ack { ids: vec![opened.i] }));
                    continue;
                }
                // A message of the channel itself (a worker's pong or ack) needs no subsystem.
                let Some(queue) = hub.inbound.of(message.family()) else { continue };
                if queue.send(Inbound { worker_id, conn: conn_id, message }).await.is_err() {
                    break;
                }
                if reliable {
                    let _ = tx.try_send(Message::Ack(Ack { ids: vec![opened.i] }));
                }
            }
        });

        tokio::select! {
            _ = &mut send_task => recv_task.abort(),
            _ = &mut recv_task => send_task.abort(),
        }
        cancel.cancel();
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.get(&worker.id).is_some_and(|c| c.conn_id == conn_id) {
            conns.remove(&worker.id);
            drop(conns);
            self.set_connected(worker.id, false);
            tracing::info!(worker = %worker.id, "worker disconnected");
        }
    }

    /// Closes sockets of workers that were disabled or deleted, or whose key was rotated since
    /// they connected, every `every`, until `stop`.
    pub async fn enforce_enabled(
        self: Arc<Self>,
        pool: sqlx::PgPool,
        every: Duration,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let conns = self.connections();
            if conns.is_empty() {
                continue;
            }
            match crate::workers::unusable(&pool, &conns).await {
                Ok(gone) => {
                    for id in gone {
                        tracing::info!(worker = %id, "worker disabled, deleted or rotated; closing its connection");
                        self.disconnect(id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot check worker status"),
            }
        }
    }
}

fn rejection_kind(e: &wh_wsproto::Error) -> &'static str {
    use wh_wsproto::Error as E;
    match e {
        E::BadMac => "bad_mac",
        E::Skew { .. } => "skew",
        E::Replay { .. } => "replay",
        E::TooOld { .. } => "too_old",
        E::Payload { .. } => "payload",
        _ => "malformed",
    }
}
