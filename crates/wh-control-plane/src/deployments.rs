//! Deployments: a state machine with a hard deadline on every in-progress state.
//!
//! queued → building → starting → healthy → live, or failed / cancelled (and superseded when a
//! newer deployment goes live). Every transition into an in-progress state sets
//! `state_deadline`; [`expire`] fails whatever passed it, so no deployment stays in progress
//! forever. The states are [`DeploymentState`] (`deployments/state.rs`), bound in SQL, never
//! spelled in it.

use std::time::Duration;
use wh_wsproto::job::{Job, JobKind, JobOutput, RetireJob, Stage};

use sqlx::{PgConnection, PgPool};

use crate::queue::{JobState, Kind};

mod state;
pub use state::DeploymentState;

use DeploymentState as S;

/// Creates a queued deployment and its deploy job (`job`, whose `deployment_id` is set here)
/// in the caller's transaction; returns its id.
pub async fn create(
    tx: &mut PgConnection,
    app_id: i64,
    git_ref: &str,
    mut job: wh_wsproto::job::DeployJob,
) -> Result<i64, sqlx::Error> {
    let secs = S::Queued.deadline().map_or(0.0, |d| d.as_secs_f64());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO deployments (app_id, git_ref, state, state_deadline) VALUES ($1, $2, $4, now() + make_interval(secs => $3)) RETURNING id",
    )
    .bind(app_id)
    .bind(git_ref)
    .bind(secs)
    .bind(S::Queued)
    .fetch_one(&mut *tx)
    .await?;
    job.deployment_id = id;
    crate::queue::enqueue_job(tx, &Job::Deploy(job)).await?;
    Ok(id)
}

/// Moves a deployment from `from` to `to`; false when it was not in `from` any more.
pub async fn transition(
    pool: &PgPool,
    id: i64,
    from: DeploymentState,
    to: DeploymentState,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let secs = to.deadline().map(|d| d.as_secs_f64());
    let done = sqlx::query(
        "UPDATE deployments SET state = $3, error = coalesce($4, error), updated_at = now(),
                state_deadline = CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $5::float8) END
         WHERE id = $1 AND state = $2",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(error)
    .bind(secs)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A job a worker held when its deployment ended early: the worker is told to stop it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Held {
    pub job_id: i64,
    pub attempt: i32,
    pub claimed_by: String,
}

/// Cancels a deployment still in progress, and its job; `None` when it had already ended, else
/// the job a worker held (to be told to stop it), if any.
pub async fn cancel(pool: &PgPool, id: i64) -> Result<Option<Vec<Held>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE deployments SET state = $2, updated_at = now(), state_deadline = NULL
         WHERE id = $1 AND state = ANY($3)",
    )
    .bind(id)
    .bind(S::Cancelled)
    .bind(&S::IN_PROGRESS[..])
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    let held = end_jobs(&mut tx, &[id], "the deployment was cancelled").await?;
    tx.commit().await?;
    Ok(Some(held))
}

/// Cancels the unfinished jobs of `deployments` (with `why`); returns those a worker held.
async fn end_jobs(
    tx: &mut PgConnection,
    deployments: &[i64],
    why: &str,
) -> Result<Vec<Held>, sqlx::Error> {
    let ended: Vec<(i64, i32, Option<String>, bool)> = sqlx::query_as(
        "UPDATE jobs j SET state = $3, finished_at = now(), lease_expires_at = NULL, error = $2
         FROM (SELECT id, state = $4 AS held FROM jobs
               WHERE deployment_id = ANY($1) AND state = ANY($5) FOR UPDATE) old
         WHERE j.id = old.id
         RETURNING j.id, j.attempt, j.claimed_by, old.held",
    )
    .bind(deployments)
    .bind(why)
    .bind(JobState::Cancelled)
    .bind(JobState::Claimed)
    .bind(JobState::OPEN)
    .fetch_all(&mut *tx)
    .await?;
    Ok(ended
        .into_iter()
        .filter_map(|(job_id, attempt, by, held)| {
            by.filter(|_| held).map(|claimed_by| Held { job_id, attempt, claimed_by })
        })
        .collect())
}

/// Fails every deployment past its state's deadline, naming the state, and cancels its job (a
/// worker still at it is told to stop at its next heartbeat); returns the deployments' ids.
pub async fn expire(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let expired: Vec<i64> = sqlx::query_scalar(
        "UPDATE deployments SET error = 'timed out while ' || state::text, state = $1, state_deadline = NULL, updated_at = now()
         WHERE state = ANY($2) AND state_deadline < now()
         RETURNING id",
    )
    .bind(S::Failed)
    .bind(&S::IN_PROGRESS[..])
    .fetch_all(&mut *tx)
    .await?;
    if !expired.is_empty() {
        end_jobs(&mut tx, &expired, "the deployment timed out").await?;
    }
    tx.commit().await?;
    Ok(expired)
}

/// Deletes the uploaded sources of deployments that have ended (built or not, they are no
/// longer needed); returns how many.
pub async fn drop_finished_sources(pool: &PgPool) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "DELETE FROM deployment_sources s USING deployments d
         WHERE d.id = s.deployment_id AND d.state = ANY($1)",
    )
    .bind(&S::ENDED[..])
    .execute(pool)
    .await
    .map(|r| r.rows_affected())
}

/// A worker reported a stage (`building`, `starting`, `healthy`) of the deployment `job` is for.
pub async fn progress(pool: &PgPool, job: i64, stage: Stage) -> Result<(), sqlx::Error> {
    let state = S::of_stage(stage);
    let Some(secs) = state.deadline().map(|d| d.as_secs_f64()) else { return Ok(()) };
    sqlx::query(
        "UPDATE deployments SET state = $2, updated_at = now(), state_deadline = now() + make_interval(secs => $3)
         WHERE id = (SELECT deployment_id FROM jobs WHERE id = $1)
           AND state = ANY($4) AND state <> $2",
    )
    .bind(job)
    .bind(state)
    .bind(secs)
    .bind(&S::IN_PROGRESS[..])
    .execute(pool)
    .await
    .map(drop)
}

/// The deploy job `job` ended. On success the deployment goes live on `worker` at the reported
/// host port, the app points there, and the previous live deployment is superseded (the proxy
/// follows through proxy-config) and retired after `drain`; on failure the deployment fails with
/// the worker's reason and whatever was live keeps serving.
#[allow(clippy::too_many_arguments)]
pub async fn finish(
    pool: &PgPool,
    job: i64,
    worker: uuid::Uuid,
    ok: bool,
    error: Option<&str>,
    output: Option<&JobOutput>,
    drain: Duration,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row: Option<(Option<i64>, Kind)> =
        sqlx::query_as("SELECT deployment_id, kind FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((Some(deployment), Kind(kind))) = row else { return Ok(()) };
    if kind != JobKind::Deploy {
        return Ok(());
    }
    if !ok {
        sqlx::query(
            "UPDATE deployments SET state = $3, error = $2, state_deadline = NULL, updated_at = now()
             WHERE id = $1 AND state = ANY($4)",
        )
        .bind(deployment)
        .bind(error.unwrap_or("the worker reported a failure"))
        .bind(S::Failed)
        .bind(&S::IN_PROGRESS[..])
        .execute(&mut *tx)
        .await?;
        return tx.commit().await;
    }
    let (host_port, commit, image_of) = match output {
        Some(JobOutput::Deploy(out)) => {
            (Some(i32::from(out.host_port)), out.commit.as_deref(), out.image_of)
        }
        _ => (None, None, None),
    };
    // Whatever a worker says is checked: a commit id is hex, or it is not kept.
    let commit =
        commit.filter(|c| (7..=64).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_hexdigit()));
    let app: Option<i64> = sqlx::query_scalar(
        "UPDATE deployments SET state = $4, worker_id = $2, host_port = $3, state_deadline = NULL, updated_at = now(),
                commit_sha = COALESCE($6, commit_sha),
                -- Only an image of this app's own deployments counts.
                image_of = (SELECT o.id FROM deployments o WHERE o.id = $7 AND o.app_id = deployments.app_id)
         WHERE id = $1 AND state = ANY($5) RETURNING app_id",
    )
    .bind(deployment)
    .bind(worker)
    .bind(host_port)
    .bind(S::Live)
    .bind(&S::IN_PROGRESS[..])
    .bind(commit)
    .bind(image_of)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(app) = app {
        let superseded: Vec<i64> = sqlx::query_scalar(
            "UPDATE deployments SET state = $3, updated_at = now() WHERE app_id = $1 AND state = $4 AND id <> $2 RETURNING id",
        )
        .bind(app)
        .bind(deployment)
        .bind(S::Superseded)
        .bind(S::Live)
        .fetch_all(&mut *tx)
        .await?;
        // Zero downtime: the old container keeps serving until the proxy has the new route and
        // in-flight requests are done; then its worker stops it.
        for old in superseded {
            let retire = Job::Retire(RetireJob { deployment_id: old });
            crate::queue::enqueue_job_after(&mut tx, &retire, drain).await?;
        }
        sqlx::query("UPDATE apps SET worker_id = $2, updated_at = now() WHERE id = $1")
            .bind(app)
            .bind(worker)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}
