//! Placement: which worker a pending job goes to, and getting it there.
//!
//! A job for an app that already runs goes to that app's worker while it is healthy; otherwise
//! to the healthy worker with the lowest utilisation (the larger of its CPU and memory shares
//! from its latest heartbeat), ties broken by fewer running jobs. A worker is healthy while
//! connected, ready (its `hello` applied) and heard from within 3 heartbeat intervals. The job
//! is claimed for that worker (lease + fencing attempt), prepared (its secrets opened) and
//! pushed over the hub; if it cannot be delivered it goes back to pending.
//!
//! [`run`] places on a NOTIFY of `wh_jobs` (a job was enqueued), a one-second tick, and a
//! wake-up from the reports task (a worker became ready, a job finished), never after every
//! message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wh_wsproto::job::{Job, JobKind, Source};
use wh_wsproto::messages::JobAssign;
use wh_wsproto::Message;

use super::SchedulerSettings;
use crate::hub::{Hub, WorkerHealth};
use crate::queue::{self, Decision, Pending, Waiter};

/// Why a job could not be prepared for its worker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    #[error("cannot open the app's {what}: {why}")]
    Open { what: String, why: crate::secrets::SecretError },
    #[error("cannot get a clone token from the git provider: {0}")]
    Forge(#[from] crate::gitproviders::ForgeError),
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
    let mut typed = Job::from_stored(job.kind.as_str(), &job.payload)?;
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
    // A connected provider's repository clones with the connection's current token; any other
    // with the credentials its URL came with.
    let connected = match &settings.forges {
        Some(forges) => crate::gitproviders::clone_credentials(pool, forges, deployment).await?,
        None => None,
    };
    let credentials = match connected {
        Some(c) => Some(c),
        None => crate::repos::credentials(pool, sealer, deployment).await?,
    };
    if let Some(credentials) = credentials {
        if let Some(Source::Git { repo_auth, .. }) = deploy.source.git_mut() {
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
    if job.kind == JobKind::Retire {
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
        None if job.kind == JobKind::Retire => Decision::Settle(format!(
            "the worker {} is away; its containers of this deployment are stopped when it reports them",
            job.deployment_worker.map_or("?".to_owned(), |w| w.to_string())
        )),
        None => Decision::Wait,
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
        settings.metrics.claimed(Duration::from_secs_f64(job.waited_secs.max(0.0)));
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

/// Places jobs until `stop`: at once, then on every NOTIFY, tick or `wake`.
pub(super) async fn run(
    pool: PgPool,
    hub: Arc<Hub>,
    settings: SchedulerSettings,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut waiter = Waiter::new(&pool, Duration::from_secs(1)).await;
    loop {
        if settings.inject_panic.swap(false, std::sync::atomic::Ordering::SeqCst) {
            panic!("injected into the scheduler by a test");
        }
        assign_pending(&pool, &hub, &settings).await;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = waiter.wait() => {}
            _ = wake.notified() => {}
        }
    }
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
            kind: JobKind::Deploy,
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
            kind: JobKind::Retire,
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
