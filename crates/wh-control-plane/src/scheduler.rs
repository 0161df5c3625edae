//! The scheduler: places pending jobs on workers and turns worker reports into job outcomes.
//!
//! [`run`] starts the control plane's worker-message pipeline, each part a task of its own,
//! supervised (a panic is logged, counted and the task starts again with the same queue):
//! - [`placement`]: claims pending jobs for healthy workers and pushes them over the hub, on a
//!   NOTIFY, a tick, or a wake-up from the reports (a worker ready, a job finished);
//! - [`reports`]: the `hello`, `heartbeat` and `job.*` messages (leases, fenced results);
//! - [`sweeps`]: every second, expired leases and deployments past their state's deadline
//!   fail visibly, and finished uploads are dropped;
//! - [`crate::containers::ingest`]: `container.*` (inventory events, stats, orphans stopped);
//! - [`crate::logingest`]: `log.lines`, batched.
//!
//! The hub queues each family separately ([`crate::hub::Routes`]); [`handle`] applies one
//! message of any family at once (tests use it).

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, Mutex, Notify};
use tokio_util::sync::CancellationToken;
use wh_wsproto::messages::Family;
use wh_wsproto::Message;

use crate::hub::{Hub, Inbound, Queues};

pub mod placement;
pub mod reports;
pub mod sweeps;

pub use placement::{assign_pending, decide, healthy, place, PrepareError};

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// A job's lease; workers extend it with acks and progress.
    pub lease: Duration,
    /// The interval workers send heartbeats at; 3 missed make a worker unhealthy.
    pub heartbeat_interval: Duration,
    /// Opens app env vars, which deploy jobs carry to the worker (over the signed channel only).
    pub env: Option<std::sync::Arc<crate::secrets::Sealer>>,
    /// How long a superseded deployment keeps running after the switch, so the proxy has applied
    /// the new route and in-flight requests finish before its container is stopped.
    pub drain: Duration,
    /// Where runtime log lines from workers go.
    pub logs: Option<std::sync::Arc<crate::logbus::LogBus>>,
    /// Fault injection for tests: when set, the scheduler panics at its next turn (and clears
    /// it), to show that its supervisor brings it back.
    pub inject_panic: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Where claim waits and the sweep's lag are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Connected git providers: apps made from their repositories clone with a fresh token.
    pub forges: Option<Arc<crate::gitproviders::Forges>>,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(120),
            heartbeat_interval: Duration::from_secs(10),
            env: None,
            drain: Duration::from_secs(30),
            logs: None,
            inject_panic: Default::default(),
            metrics: Default::default(),
            forges: None,
        }
    }
}

/// Runs the pipeline until `stop` (or until the hub is gone: nothing can arrive any more).
/// Every task is held in one `JoinSet`; one ending before `stop` is logged as an error.
pub async fn run(
    pool: PgPool,
    hub: Arc<Hub>,
    settings: SchedulerSettings,
    queues: Queues,
    stop: CancellationToken,
) {
    let done = stop.child_token();
    let wake = Arc::new(Notify::new());
    let shared = |q: mpsc::Receiver<Inbound>| Arc::new(Mutex::new(q));
    let (jobs, containers, logs) =
        (shared(queues.jobs), shared(queues.containers), shared(queues.logs));
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(wh_cmd::supervise("scheduler", done.clone(), {
        let (pool, hub, settings, wake, done) =
            (pool.clone(), hub.clone(), settings.clone(), wake.clone(), done.clone());
        move || {
            placement::run(pool.clone(), hub.clone(), settings.clone(), wake.clone(), done.clone())
        }
    }));
    tasks.spawn(wh_cmd::supervise("scheduler-reports", done.clone(), {
        let (pool, hub, settings, wake, done) =
            (pool.clone(), hub.clone(), settings.clone(), wake.clone(), done.clone());
        move || {
            let (pool, hub, settings, wake, done, jobs) = (
                pool.clone(),
                hub.clone(),
                settings.clone(),
                wake.clone(),
                done.clone(),
                jobs.clone(),
            );
            async move {
                let mut queue = jobs.lock().await;
                reports::run(&pool, &hub, &settings, &mut queue, &wake, &done).await;
                // The hub is gone: nothing can arrive any more.
                done.cancel();
            }
        }
    }));
    tasks.spawn(wh_cmd::supervise("scheduler-sweeps", done.clone(), {
        let (pool, metrics, done) = (pool.clone(), settings.metrics.clone(), done.clone());
        move || sweeps::run(pool.clone(), metrics.clone(), Duration::from_secs(1), done.clone())
    }));
    tasks.spawn(wh_cmd::supervise("containers", done.clone(), {
        let (pool, hub, done) = (pool.clone(), hub.clone(), done.clone());
        move || {
            let (pool, hub, done, containers) =
                (pool.clone(), hub.clone(), done.clone(), containers.clone());
            async move {
                let mut queue = containers.lock().await;
                crate::containers::ingest::run(&pool, &hub, &mut queue, &done).await;
            }
        }
    }));
    tasks.spawn(wh_cmd::supervise("log-ingest", done.clone(), {
        let (pool, hub, bus, done) =
            (pool.clone(), hub.clone(), settings.logs.clone(), done.clone());
        move || {
            let (pool, hub, bus, done, logs) =
                (pool.clone(), hub.clone(), bus.clone(), done.clone(), logs.clone());
            async move {
                let mut queue = logs.lock().await;
                crate::logingest::run(&pool, &hub, bus.as_deref(), &mut queue, &done).await;
            }
        }
    }));
    while let Some(ended) = tasks.join_next().await {
        if !done.is_cancelled() {
            tracing::error!(outcome = ?ended, "a scheduler task ended before the control plane stopped");
        }
    }
}

/// Applies one worker message of any family now; returns the answers for its worker. A report
/// on a job, deployment or container that is not the worker's own changes nothing and is
/// counted by the hub as `not_yours`.
pub async fn handle(
    pool: &PgPool,
    hub: &Hub,
    settings: &SchedulerSettings,
    msg: Inbound,
) -> Vec<Message> {
    match msg.message.family() {
        Family::Jobs => reports::handle(pool, hub, settings, msg).await,
        Family::Containers => crate::containers::ingest::handle(pool, hub, msg).await,
        Family::Logs => {
            crate::logingest::ingest(pool, hub, settings.logs.as_deref(), &[msg]).await;
            Vec::new()
        }
        Family::Channel => Vec::new(),
    }
}
