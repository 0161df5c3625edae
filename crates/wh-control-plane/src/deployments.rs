//! Deployments: a state machine with a hard deadline on every in-progress state.
//!
//! queued → building → starting → healthy → live, or failed / cancelled (and superseded when a
//! newer deployment goes live). Every transition into an in-progress state sets
//! `state_deadline`; [`expire`] fails whatever passed it, so no deployment stays in progress
//! forever.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

/// How long a deployment may stay in each in-progress state.
pub fn deadline(state: &str) -> Option<Duration> {
    match state {
        "queued" => Some(Duration::from_secs(10 * 60)),
        "building" => Some(Duration::from_secs(15 * 60)),
        "starting" => Some(Duration::from_secs(5 * 60)),
        "healthy" => Some(Duration::from_secs(5 * 60)),
        _ => None,
    }
}

/// Creates a queued deployment and its job in the caller's transaction; returns its id.
pub async fn create(
    tx: &mut PgConnection,
    app_id: i64,
    git_ref: &str,
    job_payload: serde_json::Value,
) -> Result<i64, sqlx::Error> {
    let secs = deadline("queued").map_or(0.0, |d| d.as_secs_f64());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO deployments (app_id, git_ref, state, state_deadline) VALUES ($1, $2, 'queued', now() + make_interval(secs => $3)) RETURNING id",
    )
    .bind(app_id)
    .bind(git_ref)
    .bind(secs)
    .fetch_one(&mut *tx)
    .await?;
    let mut payload = job_payload;
    payload["deployment_id"] = id.into();
    crate::queue::enqueue(tx, "deploy", &payload, Some(id)).await?;
    Ok(id)
}

/// Moves a deployment from `from` to `to`; false when it was not in `from` any more.
pub async fn transition(
    pool: &PgPool,
    id: i64,
    from: &str,
    to: &str,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let secs = deadline(to).map(|d| d.as_secs_f64());
    let done = sqlx::query(
        "UPDATE deployments SET state = $3::deployment_state, error = coalesce($4, error), updated_at = now(),
                state_deadline = CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $5::float8) END
         WHERE id = $1 AND state = $2::deployment_state",
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

/// Cancels a deployment still in progress, and its job; false when it had already ended.
pub async fn cancel(pool: &PgPool, id: i64) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE deployments SET state = 'cancelled', updated_at = now(), state_deadline = NULL
         WHERE id = $1 AND state IN ('queued', 'building', 'starting', 'healthy')",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 1 {
        sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE deployment_id = $1 AND state IN ('pending', 'claimed')")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Fails every deployment past its state's deadline, naming the state; returns their ids.
pub async fn expire(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE deployments SET error = 'timed out while ' || state::text, state = 'failed', state_deadline = NULL, updated_at = now()
         WHERE state IN ('queued', 'building', 'starting', 'healthy') AND state_deadline < now()
         RETURNING id",
    )
    .fetch_all(pool)
    .await
}
