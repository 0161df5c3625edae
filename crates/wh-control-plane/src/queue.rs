//! The job queue: the `jobs` table, claimed with `FOR UPDATE SKIP LOCKED`.
//!
//! - Enqueue inside the caller's transaction, together with the state change that needs the job;
//!   a trigger NOTIFYs `wh_jobs` at commit, so a waiting claimer wakes at once ([`Waiter`] also
//!   polls every second in case a notification is lost).
//! - A claim sets a lease and increments `attempt`, the fencing token: a completion carrying an
//!   older attempt is refused ([`CompleteError::Stale`]), so a worker that lost its lease cannot
//!   overwrite a newer outcome.
//! - An expired lease fails the job visibly, and its deployment with it (the architecture: no
//!   silent in-process retries).

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use wh_wsproto::job::JobKind;

use crate::deployments::DeploymentState;

mod types;
pub use types::{JobState, Kind};

/// The NOTIFY channel.
pub const CHANNEL: &str = "wh_jobs";

/// A claimed job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    #[sqlx(try_from = "Kind")]
    pub kind: JobKind,
    pub payload: serde_json::Value,
    pub attempt: i32,
    pub deployment_id: Option<i64>,
    /// Seconds it was runnable before this claim.
    pub waited_secs: f64,
}

/// What a claim returns: the [`Claimed`] columns.
const CLAIMED: &str =
    "id, kind, payload, attempt, deployment_id, extract(epoch FROM now() - run_after)::float8 AS waited_secs";

/// Why a completion was refused.
#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    /// The job was claimed again since (or its lease expired): this attempt is stale.
    #[error("stale attempt: job {job} is no longer held by attempt {attempt}")]
    Stale { job: i64, attempt: i32 },
    /// The job is held by another claimer (a worker reporting on what is not its own).
    #[error("job {job} is not held by {claimer}")]
    NotClaimant { job: i64, claimer: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Adds a typed job ([`wh_wsproto::job`]) in the caller's transaction; returns its id.
pub async fn enqueue_job(
    tx: &mut PgConnection,
    job: &wh_wsproto::job::Job,
) -> Result<i64, sqlx::Error> {
    enqueue_job_after(tx, job, Duration::ZERO).await
}

/// [`enqueue_job`], not to be claimed before `after`.
pub async fn enqueue_job_after(
    tx: &mut PgConnection,
    job: &wh_wsproto::job::Job,
    after: Duration,
) -> Result<i64, sqlx::Error> {
    let deployment = Some(job.deployment_id());
    enqueue_after(tx, job.kind(), &job.payload(), deployment, after).await
}

/// Adds a job in the caller's transaction; returns its id. The payload is not checked here;
/// the platform's jobs go through [`enqueue_job`], which writes a typed one.
pub async fn enqueue(
    tx: &mut PgConnection,
    kind: JobKind,
    payload: &serde_json::Value,
    deployment_id: Option<i64>,
) -> Result<i64, sqlx::Error> {
    enqueue_after(tx, kind, payload, deployment_id, Duration::ZERO).await
}

/// Adds a job that becomes runnable after `delay`.
pub async fn enqueue_after(
    tx: &mut PgConnection,
    kind: JobKind,
    payload: &serde_json::Value,
    deployment_id: Option<i64>,
    delay: Duration,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO jobs (kind, payload, deployment_id, run_after)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING id",
    )
    .bind(Kind(kind))
    .bind(payload)
    .bind(deployment_id)
    .bind(delay.as_secs_f64())
    .fetch_one(tx)
    .await
}

/// Claims the oldest runnable job for `claimer` with a lease of `lease`.
pub async fn claim(
    pool: &PgPool,
    claimer: &str,
    lease: Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    sqlx::query_as::<_, Claimed>(&format!(
        "UPDATE jobs SET state = $3, attempt = attempt + 1, claimed_by = $1,
                lease_expires_at = now() + make_interval(secs => $2)
         WHERE id = (SELECT id FROM jobs WHERE state = $4 AND run_after <= now()
                     ORDER BY run_after, id FOR UPDATE SKIP LOCKED LIMIT 1)
         RETURNING {CLAIMED}"
    ))
    .bind(claimer)
    .bind(lease.as_secs_f64())
    .bind(JobState::Claimed)
    .bind(JobState::Pending)
    .fetch_optional(pool)
    .await
}

/// The oldest runnable job, as a scheduler sees it before choosing where it goes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pending {
    pub id: i64,
    #[sqlx(try_from = "Kind")]
    pub kind: JobKind,
    pub deployment_id: Option<i64>,
    /// The worker the job's app runs on now, if any (jobs follow their app).
    pub app_worker: Option<uuid::Uuid>,
    /// The worker the job's deployment ran on (a `retire` job must go there).
    pub deployment_worker: Option<uuid::Uuid>,
}

/// What the scheduler decides for a pending job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Claim it for this claimer.
    Claim(String),
    /// Leave it pending (its worker is away for now); look at the next one.
    Wait,
    /// It can never run as asked: end it (cancelled) with this reason, and look further.
    Settle(String),
}

/// How many runnable jobs one [`claim_for`] looks at, oldest first.
pub const CLAIM_WINDOW: i64 = 64;

/// Claims the oldest runnable job that `choose` places (the scheduler's placement),
/// atomically: the jobs looked at are locked (SKIP LOCKED) while choosing. Jobs `choose` makes
/// wait stay pending without holding up the ones behind them (one job for an offline worker
/// used to stop all placement); jobs it settles are cancelled with its reason. `None` when no
/// job among the oldest [`CLAIM_WINDOW`] can be placed now.
pub async fn claim_for(
    pool: &PgPool,
    lease: Duration,
    mut choose: impl FnMut(&Pending) -> Decision,
) -> Result<Option<(Claimed, String)>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let pending: Vec<Pending> = sqlx::query_as(
        "SELECT j.id, j.kind, j.deployment_id, a.worker_id AS app_worker, d.worker_id AS deployment_worker
         FROM jobs j
         LEFT JOIN deployments d ON d.id = j.deployment_id
         LEFT JOIN apps a ON a.id = d.app_id
         WHERE j.state = $2 AND j.run_after <= now()
         ORDER BY j.run_after, j.id
         FOR UPDATE OF j SKIP LOCKED LIMIT $1",
    )
    .bind(CLAIM_WINDOW)
    .bind(JobState::Pending)
    .fetch_all(&mut *tx)
    .await?;
    let mut claimed = None;
    for job in &pending {
        match choose(job) {
            Decision::Wait => continue,
            Decision::Settle(reason) => {
                sqlx::query(
                    "UPDATE jobs SET state = $3, error = $2, finished_at = now() WHERE id = $1",
                )
                .bind(job.id)
                .bind(&reason)
                .bind(JobState::Cancelled)
                .execute(&mut *tx)
                .await?;
            }
            Decision::Claim(claimer) => {
                let row = sqlx::query_as::<_, Claimed>(&format!(
                    "UPDATE jobs SET state = $4, attempt = attempt + 1, claimed_by = $2,
                            lease_expires_at = now() + make_interval(secs => $3)
                     WHERE id = $1 RETURNING {CLAIMED}"
                ))
                .bind(job.id)
                .bind(&claimer)
                .bind(lease.as_secs_f64())
                .bind(JobState::Claimed)
                .fetch_one(&mut *tx)
                .await?;
                claimed = Some((row, claimer));
                break;
            }
        }
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Gives a claimed job back (it could not be delivered); the attempt counter stays raised, so
/// anything the lost attempt reports later is refused.
pub async fn release(pool: &PgPool, job: i64, attempt: i32) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET state = $3, claimed_by = NULL, lease_expires_at = NULL
         WHERE id = $1 AND attempt = $2 AND state = $4",
    )
    .bind(job)
    .bind(attempt)
    .bind(JobState::Pending)
    .bind(JobState::Claimed)
    .execute(pool)
    .await
    .map(drop)
}

/// Extends the lease of a job still held by `attempt` of `claimer`.
pub async fn extend(
    pool: &PgPool,
    job: i64,
    attempt: i32,
    claimer: &str,
    lease: Duration,
) -> Result<(), CompleteError> {
    let done = sqlx::query(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND attempt = $2 AND state = $5 AND claimed_by = $4",
    )
    .bind(job)
    .bind(attempt)
    .bind(lease.as_secs_f64())
    .bind(claimer)
    .bind(JobState::Claimed)
    .execute(pool)
    .await?;
    refused_unless(pool, done.rows_affected() == 1, job, attempt, claimer).await
}

/// `Ok` when an update of `job` by `claimer` applied; else why not: another claimer holds it
/// (or held it last), or this attempt is stale.
async fn refused_unless(
    pool: &PgPool,
    applied: bool,
    job: i64,
    attempt: i32,
    claimer: &str,
) -> Result<(), CompleteError> {
    if applied {
        return Ok(());
    }
    let holder: Option<Option<String>> =
        sqlx::query_scalar("SELECT claimed_by FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_optional(pool)
            .await?;
    match holder {
        Some(Some(h)) if h != claimer => {
            Err(CompleteError::NotClaimant { job, claimer: claimer.to_owned() })
        }
        None => Err(CompleteError::NotClaimant { job, claimer: claimer.to_owned() }),
        _ => Err(CompleteError::Stale { job, attempt }),
    }
}

/// Extends the leases of the jobs `worker` says it is still running (its heartbeat), so a long
/// build keeps its lease while the worker lives and loses it soon after the worker dies.
pub async fn extend_running(
    pool: &PgPool,
    worker: &str,
    jobs: &[i64],
    lease: Duration,
) -> Result<u64, sqlx::Error> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3)
         WHERE id = ANY($1) AND claimed_by = $2 AND state = $4",
    )
    .bind(jobs)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .bind(JobState::Claimed)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Of the jobs `claimer` says it runs, those it no longer holds (ended here: cancelled, timed
/// out, failed at lease expiry, or claimed by someone else since), as (job, attempt) for the
/// worker to stop.
pub async fn not_held(
    pool: &PgPool,
    claimer: &str,
    running: &[i64],
) -> Result<Vec<(i64, i32)>, sqlx::Error> {
    if running.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT id, attempt FROM jobs
         WHERE id = ANY($1) AND NOT (state = $3 AND claimed_by = $2)",
    )
    .bind(running)
    .bind(claimer)
    .bind(JobState::Claimed)
    .fetch_all(pool)
    .await
}

/// Records the outcome of `attempt` of `claimer`; `Err(reason)` fails the job.
pub async fn complete(
    pool: &PgPool,
    job: i64,
    attempt: i32,
    claimer: &str,
    outcome: Result<(), &str>,
) -> Result<(), CompleteError> {
    let (state, error) = match outcome {
        Ok(()) => (JobState::Succeeded, None),
        Err(reason) => (JobState::Failed, Some(reason)),
    };
    let done = sqlx::query(
        "UPDATE jobs SET state = $3, error = $4, finished_at = now(), lease_expires_at = NULL
         WHERE id = $1 AND attempt = $2 AND state = $6 AND claimed_by = $5",
    )
    .bind(job)
    .bind(attempt)
    .bind(state)
    .bind(error)
    .bind(claimer)
    .bind(JobState::Claimed)
    .execute(pool)
    .await?;
    refused_unless(pool, done.rows_affected() == 1, job, attempt, claimer).await
}

/// Fails every job whose lease has expired, and the deployment it was for, saying why.
/// Returns the failed job ids.
pub async fn expire_leases(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let expired: Vec<(i64, Option<i64>, Option<String>)> = sqlx::query_as(
        "UPDATE jobs SET state = $1, finished_at = now(),
                error = 'lease expired: worker ' || coalesce(claimed_by, '?') || ' stopped reporting'
         WHERE state = $2 AND lease_expires_at < now()
         RETURNING id, deployment_id, claimed_by",
    )
    .bind(JobState::Failed)
    .bind(JobState::Claimed)
    .fetch_all(&mut *tx)
    .await?;
    fail_deployments(&mut tx, &expired, "stopped reporting before its lease expired").await?;
    tx.commit().await?;
    Ok(expired.into_iter().map(|(id, _, _)| id).collect())
}

/// Fails the jobs `claimer` holds but does not list among those it runs (it says so in its
/// `hello`: it restarted, or never got the assignment), and their deployments, at once instead
/// of at lease expiry. Returns the failed job ids.
pub async fn fail_abandoned(
    pool: &PgPool,
    claimer: &str,
    running: &[i64],
) -> Result<Vec<i64>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let failed: Vec<(i64, Option<i64>, Option<String>)> = sqlx::query_as(
        "UPDATE jobs SET state = $3, finished_at = now(), lease_expires_at = NULL,
                error = 'worker ' || claimed_by || ' came back without this job (it restarted)'
         WHERE state = $4 AND claimed_by = $1 AND id <> ALL($2)
         RETURNING id, deployment_id, claimed_by",
    )
    .bind(claimer)
    .bind(running)
    .bind(JobState::Failed)
    .bind(JobState::Claimed)
    .fetch_all(&mut *tx)
    .await?;
    fail_deployments(&mut tx, &failed, "came back without it (it restarted)").await?;
    tx.commit().await?;
    Ok(failed.into_iter().map(|(id, _, _)| id).collect())
}

/// Fails the deployments of failed jobs `(job, deployment, claimer)` still in progress:
/// "job N failed: the worker W <what happened>".
async fn fail_deployments(
    tx: &mut PgConnection,
    jobs: &[(i64, Option<i64>, Option<String>)],
    what: &str,
) -> Result<(), sqlx::Error> {
    for (job, deployment, claimer) in jobs {
        let Some(d) = deployment else { continue };
        sqlx::query(
            "UPDATE deployments SET state = $3, updated_at = now(), state_deadline = NULL,
                    error = $2
             WHERE id = $1 AND state <> ALL($4)",
        )
        .bind(d)
        .bind(format!("job {job} failed: the worker {} {what}", claimer.as_deref().unwrap_or("?")))
        .bind(DeploymentState::Failed)
        .bind(DeploymentState::ENDED)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Waits for enqueued work: a NOTIFY on [`CHANNEL`], or at most `poll` as a fallback.
pub struct Waiter {
    listener: Option<PgListener>,
    pool: PgPool,
    poll: Duration,
}

impl Waiter {
    pub async fn new(pool: &PgPool, poll: Duration) -> Waiter {
        let mut w = Waiter { listener: None, pool: pool.clone(), poll };
        w.listen().await;
        w
    }

    async fn listen(&mut self) {
        match PgListener::connect_with(&self.pool).await {
            Ok(mut l) => match l.listen(CHANNEL).await {
                Ok(()) => self.listener = Some(l),
                Err(e) => tracing::warn!(error = %e, "LISTEN failed; polling"),
            },
            Err(e) => tracing::warn!(error = %e, "LISTEN connection failed; polling"),
        }
    }

    /// Returns when a job may be waiting.
    pub async fn wait(&mut self) {
        match self.listener.as_mut() {
            Some(l) => match tokio::time::timeout(self.poll, l.recv()).await {
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                    self.listener = None;
                    self.listen().await;
                }
            },
            None => {
                tokio::time::sleep(self.poll).await;
                self.listen().await;
            }
        }
    }
}
