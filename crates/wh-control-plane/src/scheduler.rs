//! The scheduler: places pending jobs on workers and turns worker reports into job outcomes.
//!
//! Placement: a job for an app that already runs goes to that app's worker while it is healthy;
//! otherwise to the healthy worker with the lowest utilisation (the larger of its CPU and memory
//! shares from its latest heartbeat), ties broken by fewer running jobs. A worker is healthy
//! while connected and heard from within 3 heartbeat intervals. The job is claimed for that
//! worker (lease + fencing attempt) and pushed over the hub; if it cannot be delivered it goes
//! back to pending. Worker reports extend the lease (ack, progress) or complete the attempt
//! (result; a stale attempt is refused and logged); heartbeats extend the leases of the jobs
//! they list. Inventories (`hello`), container events and stats go to [`crate::containers`];
//! containers no deployment accounts for are answered with `container.stop`. Expired leases,
//! and deployments past their state's deadline, fail visibly every second.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use wh_wsproto::job::{Job, JobKind, Source};

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wh_wsproto::messages::{ContainerStop, JobAssign};
use wh_wsproto::Message;

use crate::hub::{Hub, Inbound, WorkerHealth};
use crate::queue::{self, CompleteError, Decision, Pending, Waiter};

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
        }
    }
}

/// Why a job could not be prepared for its worker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    #[error("cannot open the app's {what}: {why}")]
    Open { what: String, why: crate::secrets::SecretError },
    #[error(transparent)]
    Job(#[from] wh_wsproto::job::JobError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A claimed job as its worker gets it: read from the stored row, and for a deploy the app's
/// secrets opened (env vars, repository credentials). Only the assignment carries them, over
/// the signed channel; the `jobs` row never does.
async fn prepare(
    pool: &PgPool,
    settings: &SchedulerSettings,
    job: &queue::Claimed,
) -> Result<Job, PrepareError> {
    let mut typed = Job::from_stored(&job.kind, &job.payload)?;
    let Job::Deploy(deploy) = &mut typed else { return Ok(typed) };
    let (Some(sealer), Some(deployment)) = (&settings.env, job.deployment_id) else {
        return Ok(typed);
    };
    let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
        "SELECT e.app_id, e.key, e.value_sealed FROM env_vars e JOIN deployments d ON d.app_id = e.app_id WHERE d.id = $1",
    )
    .bind(deployment)
    .fetch_all(pool)
    .await?;
    for (app, key, sealed) in rows {
        let value = sealer
            .open(&sealed, app)
            .map_err(|why| PrepareError::Open { what: format!("env var {key}"), why })?;
        deploy.env.insert(key, String::from_utf8_lossy(&value).into_owned());
    }
    if let Some(credentials) = crate::repos::credentials(pool, sealer, deployment).await? {
        if let Source::Git { repo_auth, .. } = &mut deploy.source {
            *repo_auth = Some(credentials);
        }
    }
    Ok(typed)
}

/// A worker's placement score: (utilisation, running jobs); lower is better.
fn score(h: &WorkerHealth) -> (f64, usize) {
    let Some(hb) = &h.last_heartbeat else { return (0.0, 0) };
    let mem = if hb.stats.memory_total_mb > 0 {
        hb.stats.memory_used_mb as f64 / hb.stats.memory_total_mb as f64
    } else {
        0.0
    };
    (hb.stats.cpu.max(mem), hb.running_jobs.len())
}

/// Healthy workers at `now`.
pub fn healthy(
    health: &HashMap<Uuid, WorkerHealth>,
    interval: Duration,
    now: SystemTime,
) -> Vec<(Uuid, (f64, usize))> {
    health
        .iter()
        .filter(|(_, h)| {
            h.connected
                && h.ready
                && now.duration_since(h.last_seen).unwrap_or_default() <= interval * 3
        })
        .map(|(id, h)| (*id, score(h)))
        .collect()
}

/// Where `job` should go among `candidates`. A `retire` job must go to the worker that ran the
/// deployment it retires (see [`decide`] for when that worker is away).
pub fn place(job: &Pending, candidates: &[(Uuid, (f64, usize))]) -> Option<Uuid> {
    if job.kind() == Some(JobKind::Retire) {
        return job.deployment_worker.filter(|w| candidates.iter().any(|(c, _)| c == w));
    }
    if let Some(w) = job.app_worker.filter(|w| candidates.iter().any(|(c, _)| c == w)) {
        return Some(w);
    }
    candidates
        .iter()
        .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(a.1 .1.cmp(&b.1 .1)).then(a.0.cmp(&b.0)))
        .map(|(id, _)| *id)
}

/// What to do with `job` now: place it, or, for a `retire` job whose worker is away (offline,
/// disabled, decommissioned), settle it without that worker: the superseded containers are
/// stopped when the worker reports them again (adoption stops a superseded deployment's
/// containers once no retire job is left). Anything else unplaceable waits.
pub fn decide(job: &Pending, candidates: &[(Uuid, (f64, usize))]) -> Decision {
    match place(job, candidates) {
        Some(w) => Decision::Claim(w.to_string()),
        None if job.kind() == Some(JobKind::Retire) => Decision::Settle(format!(
            "the worker {} is away; its containers of this deployment are stopped when it reports them",
            job.deployment_worker.map_or("?".to_owned(), |w| w.to_string())
        )),
        None => Decision::Wait,
    }
}

/// Runs until `stop`, supervised: a panic (a bug, or tenant input nobody foresaw) is logged and
/// the scheduler starts again with the same inbound queue, so workers keep their channel and
/// leases keep expiring.
pub async fn run(
    pool: PgPool,
    hub: std::sync::Arc<Hub>,
    settings: SchedulerSettings,
    inbound: mpsc::Receiver<Inbound>,
    stop: CancellationToken,
) {
    let inbound = std::sync::Arc::new(tokio::sync::Mutex::new(inbound));
    // Ends with `stop`, or when the hub is gone (nothing can arrive any more).
    let done = stop.child_token();
    wh_cmd::supervise("scheduler", done.clone(), || {
        let (pool, hub, settings, inbound, stop) =
            (pool.clone(), hub.clone(), settings.clone(), inbound.clone(), done.clone());
        async move {
            let mut inbound = inbound.lock().await;
            run_once(&pool, &hub, &settings, &mut inbound, &stop).await
        }
    })
    .await
}

/// One life of the scheduler (see [`run`]).
async fn run_once(
    pool: &PgPool,
    hub: &Hub,
    settings: &SchedulerSettings,
    inbound: &mut mpsc::Receiver<Inbound>,
    stop: &CancellationToken,
) {
    let mut waiter = Waiter::new(pool, Duration::from_secs(1)).await;
    let mut expiry = tokio::time::interval(Duration::from_secs(1));
    loop {
        if settings.inject_panic.swap(false, std::sync::atomic::Ordering::SeqCst) {
            panic!("injected into the scheduler by a test");
        }
        assign_pending(pool, hub, settings).await;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = waiter.wait() => {}
            _ = expiry.tick() => {
                match queue::expire_leases(pool).await {
                    Ok(ids) if !ids.is_empty() => tracing::warn!(jobs = ?ids, "job leases expired; jobs failed"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot expire leases"),
                }
                match crate::deployments::expire(pool).await {
                    Ok(ids) if !ids.is_empty() => tracing::warn!(deployments = ?ids, "deployments timed out"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot expire deployments"),
                }
                if let Err(e) = crate::deployments::drop_finished_sources(pool).await {
                    tracing::warn!(error = %e, "cannot drop finished sources");
                }
            }
            msg = inbound.recv() => match msg {
                Some(m) => {
                    let worker = m.worker_id;
                    for answer in handle(pool, hub, settings, m).await {
                        if let Err(e) = hub.send(worker, answer) {
                            tracing::warn!(%worker, error = %e, "cannot answer the worker");
                        }
                    }
                }
                None => {
                    stop.cancel();
                    return;
                }
            },
        }
    }
}

/// Places every pending job that has a healthy worker to go to.
pub async fn assign_pending(pool: &PgPool, hub: &Hub, settings: &SchedulerSettings) {
    loop {
        let candidates = healthy(&hub.health(), settings.heartbeat_interval, SystemTime::now());
        if candidates.is_empty() {
            return;
        }
        let claimed = queue::claim_for(pool, settings.lease, |job| decide(job, &candidates)).await;
        let (job, worker) = match claimed {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim jobs");
                return;
            }
        };
        let Ok(worker_id) = worker.parse::<Uuid>() else { return };
        let prepared = prepare(pool, settings, &job).await;
        let typed = match prepared {
            Ok(p) => p,
            Err(e) => {
                // Fails now, with the reason, instead of timing out while queued.
                let reason = e.to_string();
                tracing::error!(job = job.id, error = %reason, "cannot prepare a job");
                if queue::complete(pool, job.id, job.attempt, &worker, Err(&reason)).await.is_ok() {
                    let failed = crate::deployments::finish(
                        pool,
                        job.id,
                        worker_id,
                        false,
                        Some(&reason),
                        None,
                        settings.drain,
                    )
                    .await;
                    if let Err(e) = failed {
                        tracing::error!(error = %e, "cannot fail the deployment");
                    }
                }
                continue;
            }
        };
        let assign = Message::JobAssign(JobAssign {
            job_id: job.id,
            attempt: job.attempt,
            job: typed,
            lease_expires_ms: crate::now_ms() + settings.lease.as_millis() as i64,
        });
        match hub.send(worker_id, assign) {
            Ok(()) => {
                tracing::info!(job = job.id, attempt = job.attempt, %worker_id, "job assigned")
            }
            Err(e) => {
                tracing::warn!(job = job.id, %worker_id, error = %e, "job could not be delivered; back to pending");
                let _ = queue::release(pool, job.id, job.attempt).await;
                return;
            }
        }
    }
}

/// The app whose log lines `worker` may send for `deployment`: the deployment must be of the
/// app named, and the worker must run it (live or superseded there) or hold its job.
async fn log_owner(
    pool: &PgPool,
    worker: Uuid,
    app: &str,
    deployment: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT d.app_id FROM deployments d JOIN apps a ON a.id = d.app_id
         WHERE d.id = $1 AND a.slug = $2
           AND (d.worker_id = $3 OR EXISTS (SELECT 1 FROM jobs j
                                            WHERE j.deployment_id = d.id AND j.claimed_by = $4))",
    )
    .bind(deployment)
    .bind(app)
    .bind(worker)
    .bind(worker.to_string())
    .fetch_optional(pool)
    .await
}

/// Runtime lines go to the log bus; build lines also to their deployment's `build_log`. Lines
/// for a deployment the worker does not run are refused (counted as `not_yours`).
async fn record_logs(
    pool: &PgPool,
    hub: &Hub,
    settings: &SchedulerSettings,
    worker: Uuid,
    l: &wh_wsproto::messages::LogLines,
) {
    use wh_wsproto::messages::Stream;
    let Some(deployment) = l.deployment_id else {
        hub.reject(worker, "not_yours", "log lines without a deployment");
        return;
    };
    let app = match log_owner(pool, worker, &l.app, deployment).await {
        Ok(Some(app)) => app,
        Ok(None) => {
            hub.reject(worker, "not_yours", &format!("log lines for deployment {deployment}"));
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot check whose log lines these are");
            return;
        }
    };
    let stream = |s: Stream| match s {
        Stream::Build => "build",
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    if let Some(bus) = &settings.logs {
        let mut entries: Vec<crate::logbus::Entry> = Vec::with_capacity(l.lines.len() + 1);
        if l.dropped > 0 {
            entries.push(crate::logbus::Entry {
                ts_ms: crate::now_ms(),
                stream: "system",
                line: format!("[{} lines dropped by the worker]", l.dropped),
                deployment_id: l.deployment_id,
            });
        }
        entries.extend(l.lines.iter().map(|x| crate::logbus::Entry {
            ts_ms: x.ts_ms,
            stream: stream(x.stream),
            line: x.line.clone(),
            deployment_id: l.deployment_id,
        }));
        bus.push(app, entries);
    }
    let build: String = l
        .lines
        .iter()
        .filter(|x| x.stream == Stream::Build)
        .map(|x| {
            let mut line = x.line.clone();
            crate::logbus::clip(&mut line);
            line + "\n"
        })
        .collect();
    if !build.is_empty() {
        let appended = sqlx::query(
            "UPDATE deployments SET build_log = right(build_log || $2, 1048576), \
             build_log_total = build_log_total + octet_length($2) WHERE id = $1",
        )
        .bind(deployment)
        .bind(build)
        .execute(pool)
        .await;
        if let Err(e) = appended {
            tracing::warn!(error = %e, "cannot store build output");
        }
    }
}

/// `container.stop` for the containers `found`, if any (a failed lookup is logged, not answered).
pub(crate) fn stop_message(
    found: Result<Vec<String>, sqlx::Error>,
    worker: Uuid,
    reason: &str,
) -> Option<Message> {
    match found {
        Ok(ids) if ids.is_empty() => None,
        Ok(ids) => {
            tracing::info!(%worker, containers = ?ids, reason, "telling the worker to stop containers");
            Some(Message::ContainerStop(ContainerStop {
                container_ids: ids,
                reason: reason.into(),
            }))
        }
        Err(e) => {
            tracing::warn!(%worker, error = %e, "cannot record the worker's containers");
            None
        }
    }
}

/// Applies one worker report; returns the answers to send back to that worker. A report
/// on a job, deployment or container that is not the worker's own changes nothing and is counted
/// by the hub as `not_yours`.
pub async fn handle(
    pool: &PgPool,
    hub: &Hub,
    settings: &SchedulerSettings,
    msg: Inbound,
) -> Vec<Message> {
    let worker = msg.worker_id.to_string();
    let result = match &msg.message {
        Message::Hello(h) => {
            // Jobs it held and no longer runs (it restarted) fail now, not at lease expiry.
            match queue::fail_abandoned(pool, &worker, &h.running_jobs).await {
                Ok(ids) if !ids.is_empty() => {
                    tracing::warn!(worker = %msg.worker_id, jobs = ?ids, "the worker came back without jobs it held; failed")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot fail abandoned jobs"),
            }
            let unknown = crate::containers::adopt(pool, msg.worker_id, &h.containers).await;
            hub.mark_ready(msg.worker_id, msg.conn);
            return stop_message(
                unknown,
                msg.worker_id,
                "no deployment that should run on this worker",
            )
            .into_iter()
            .collect();
        }
        Message::Heartbeat(hb) => {
            if let Err(e) =
                queue::extend_running(pool, &worker, &hb.running_jobs, settings.lease).await
            {
                tracing::warn!(error = %e, "cannot extend leases from a heartbeat");
            }
            // Jobs it still runs that ended here (cancelled, timed out, lease lost): stop them.
            return match queue::not_held(pool, &worker, &hb.running_jobs).await {
                Ok(ended) => ended
                    .into_iter()
                    .map(|(job_id, attempt)| {
                        Message::JobCancel(wh_wsproto::messages::JobCancel {
                            job_id,
                            attempt,
                            reason: "the job ended on the control plane".into(),
                        })
                    })
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check the jobs a worker runs");
                    Vec::new()
                }
            };
        }
        Message::ContainerEvent(e) => {
            match crate::containers::event(pool, msg.worker_id, e).await {
                Ok(true) => {}
                Ok(false) => hub.reject(
                    msg.worker_id,
                    "not_yours",
                    &format!("container event for deployment {}", e.deployment_id),
                ),
                Err(err) => tracing::warn!(error = %err, "cannot record a container event"),
            }
            Ok(())
        }
        Message::ContainerStats(s) => {
            let orphans = crate::containers::stats(pool, msg.worker_id, s).await;
            return stop_message(orphans, msg.worker_id, "the app was deleted")
                .into_iter()
                .collect();
        }
        Message::JobAck(r) => {
            queue::extend(pool, r.job_id, r.attempt, &worker, settings.lease).await
        }
        Message::JobProgress(p) => {
            let extended = queue::extend(pool, p.job_id, p.attempt, &worker, settings.lease).await;
            if extended.is_ok() {
                if let Err(e) = crate::deployments::progress(pool, p.job_id, p.stage).await {
                    tracing::warn!(error = %e, "cannot record deployment progress");
                }
            }
            extended
        }
        Message::JobResult(r) => {
            let outcome = if r.ok {
                Ok(())
            } else {
                Err(r.error.as_deref().unwrap_or("failed without a reason"))
            };
            let completed = queue::complete(pool, r.job_id, r.attempt, &worker, outcome).await;
            if completed.is_ok() {
                let finished = crate::deployments::finish(
                    pool,
                    r.job_id,
                    msg.worker_id,
                    r.ok,
                    r.error.as_deref(),
                    r.output.as_ref(),
                    settings.drain,
                )
                .await;
                if let Err(e) = finished {
                    tracing::error!(error = %e, "cannot record the deployment outcome");
                }
            }
            completed
        }
        Message::LogLines(l) => {
            record_logs(pool, hub, settings, msg.worker_id, l).await;
            Ok(())
        }
        _ => Ok(()),
    };
    match result {
        Ok(()) => {}
        Err(CompleteError::Stale { job, attempt }) => {
            tracing::warn!(worker = %msg.worker_id, job, attempt, "report for a stale attempt refused")
        }
        Err(CompleteError::NotClaimant { job, .. }) => {
            hub.reject(msg.worker_id, "not_yours", &format!("report on job {job}"))
        }
        Err(CompleteError::Db(e)) => tracing::error!(error = %e, "cannot record a job report"),
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wh_wsproto::messages::{Heartbeat, HostStats};

    fn health(cpu: f64, mem: (u64, u64), jobs: usize, seen_ago: Duration) -> WorkerHealth {
        WorkerHealth {
            connected: true,
            ready: true,
            last_seen: SystemTime::now() - seen_ago,
            last_heartbeat: Some(Heartbeat {
                stats: HostStats {
                    cpu,
                    memory_used_mb: mem.0,
                    memory_total_mb: mem.1,
                    ..Default::default()
                },
                running_jobs: (0..jobs as i64).collect(),
            }),
        }
    }

    #[test]
    fn placement_prefers_the_apps_worker_then_the_least_loaded() {
        let (a, b, c, stale) =
            (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3), Uuid::from_u128(4));
        let mut h = HashMap::new();
        h.insert(a, health(0.9, (100, 1000), 0, Duration::ZERO));
        h.insert(b, health(0.2, (800, 1000), 0, Duration::ZERO)); // memory 80 % dominates
        h.insert(c, health(0.3, (100, 1000), 5, Duration::ZERO));
        h.insert(stale, health(0.0, (0, 1000), 0, Duration::from_secs(31)));
        let candidates = healthy(&h, Duration::from_secs(10), SystemTime::now());
        assert_eq!(candidates.len(), 3, "a worker silent for 3 intervals is unhealthy");
        let job = Pending {
            id: 1,
            kind: JobKind::Deploy.as_str().into(),
            deployment_id: None,
            app_worker: None,
            deployment_worker: None,
        };
        assert_eq!(place(&job, &candidates), Some(c));
        assert_eq!(
            place(&Pending { app_worker: Some(a), ..job.clone() }, &candidates),
            Some(a),
            "jobs follow their app"
        );
        assert_eq!(
            place(&Pending { app_worker: Some(stale), ..job.clone() }, &candidates),
            Some(c),
            "unless its worker is gone"
        );
        let tie = [(a, (0.5, 2)), (b, (0.5, 1))];
        assert_eq!(place(&job, &tie), Some(b), "ties go to fewer running jobs");
        assert_eq!(place(&job, &[]), None);
        let retire = Pending {
            kind: JobKind::Retire.as_str().into(),
            deployment_worker: Some(a),
            app_worker: Some(c),
            ..job.clone()
        };
        assert_eq!(
            place(&retire, &candidates),
            Some(a),
            "a retire job goes where the old deployment ran"
        );
        let away = Pending { deployment_worker: Some(stale), ..retire };
        assert_eq!(place(&away, &candidates), None, "never to another worker");
        assert!(
            matches!(decide(&away, &candidates), Decision::Settle(_)),
            "settled without its worker, which stops the containers when it reports them"
        );
        assert_eq!(decide(&job, &[]), Decision::Wait, "a deploy waits for a worker");
    }
}
