//! What workers report they run: the inventory in every `hello`, container events (exits,
//! restarts), and resource samples every 10 s, kept in the `containers` table.
//!
//! Workers are stateless and the control plane is the source of truth: after a reconnect the
//! control plane *adopts* each reported container whose deployment should run on that worker
//! (live, or still in progress) and tells the worker to stop the others (unknown deployment,
//! failed, cancelled, or superseded with no retire job left to stop it). Deleting an app stops
//! its containers at once (`api::apps::delete`); one whose deployment is gone anyway (its worker
//! was away then) is stopped at its next stats sample. [`ingest`] is the task that applies the
//! workers' container messages.

use crate::deployments::DeploymentState;
use crate::queue::{JobState, Kind};

pub mod ingest;
pub use ingest::stop_message;

use sqlx::PgPool;
use uuid::Uuid;
use wh_wsproto::job::JobKind;
use wh_wsproto::messages::{ContainerEvent, ContainerEventKind, ContainerInfo, ContainerStats};
use DeploymentState as S;

/// Records a worker's inventory; returns the ids of the containers it must stop.
///
/// Three statements whatever the inventory's size (a worker with a thousand containers
/// reconnects in one round of queries, not two thousand). A container reported twice counts once.
pub async fn adopt(
    pool: &PgPool,
    worker: Uuid,
    reported: &[ContainerInfo],
) -> Result<Vec<String>, sqlx::Error> {
    let mut seen = std::collections::HashSet::with_capacity(reported.len());
    let reported: Vec<&ContainerInfo> =
        reported.iter().filter(|c| seen.insert(c.container_id.as_str())).collect();
    let deployments: Vec<i64> = reported.iter().map(|c| c.deployment_id).collect();
    let slugs: Vec<&str> = reported.iter().map(|c| c.app.as_str()).collect();

    let mut tx = pool.begin().await?;
    // Per reported container (by position): app id, state, worker it went live on, and whether
    // a retire job is still to run; no row when the deployment is unknown or of another app.
    let rows: Vec<(i64, i64, DeploymentState, Option<Uuid>, bool, bool)> = sqlx::query_as(
        "SELECT r.ord - 1, d.app_id, d.state, d.worker_id,
                EXISTS (SELECT 1 FROM jobs j WHERE j.deployment_id = d.id AND j.kind = $4
                        AND j.state = ANY($6)),
                EXISTS (SELECT 1 FROM jobs j WHERE j.deployment_id = d.id AND j.kind = $5
                        AND j.claimed_by = $3)
         FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS r (deployment_id, slug, ord)
         JOIN deployments d ON d.id = r.deployment_id
         JOIN apps a ON a.id = d.app_id AND a.slug = r.slug",
    )
    .bind(&deployments)
    .bind(&slugs)
    .bind(worker.to_string())
    .bind(Kind(JobKind::Retire))
    .bind(Kind(JobKind::Deploy))
    .bind(JobState::OPEN)
    .fetch_all(&mut *tx)
    .await?;
    let mut app_of: Vec<Option<i64>> = vec![None; reported.len()];
    for (index, app, state, on, retiring, claimed_here) in rows {
        // Only what this worker runs or builds: another worker's deployment is not adopted here.
        let keep = match state {
            S::Queued | S::Building | S::Starting | S::Healthy => claimed_here,
            S::Live => on.map_or(claimed_here, |w| w == worker),
            S::Superseded => retiring && on == Some(worker),
            S::Failed | S::Cancelled => false,
        };
        if keep {
            app_of[index as usize] = Some(app);
        }
    }

    let mut stop = Vec::new();
    let (mut ids, mut apps, mut deps, mut states, mut restarts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (c, app) in reported.iter().zip(app_of) {
        match app {
            Some(app) => {
                ids.push(c.container_id.as_str());
                apps.push(app);
                deps.push(c.deployment_id);
                states.push(c.state.as_str());
                restarts.push(i32::try_from(c.restarts).unwrap_or(i32::MAX));
            }
            None => stop.push(c.container_id.clone()),
        }
    }
    sqlx::query(
        "INSERT INTO containers (container_id, worker_id, app_id, deployment_id, state, restarts)
         SELECT r.id, $1, r.app, r.dep, r.state, r.restarts
         FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::int4[])
              AS r (id, app, dep, state, restarts)
         ON CONFLICT (container_id) DO UPDATE
             SET state = excluded.state, restarts = excluded.restarts, updated_at = now()
             WHERE containers.worker_id = $1",
    )
    .bind(worker)
    .bind(&ids)
    .bind(&apps)
    .bind(&deps)
    .bind(&states)
    .bind(&restarts)
    .execute(&mut *tx)
    .await?;
    // Whatever this worker no longer reports is gone.
    sqlx::query("DELETE FROM containers WHERE worker_id = $1 AND container_id <> ALL($2)")
        .bind(worker)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(stop)
}

/// Applies a container event (state, exit code, restart count); false when the event is not
/// this worker's to report (its deployment neither runs there nor has its job held there, or the
/// container is another worker's), and nothing changed.
pub async fn event(pool: &PgPool, worker: Uuid, e: &ContainerEvent) -> Result<bool, sqlx::Error> {
    if e.event == ContainerEventKind::Removed {
        sqlx::query("DELETE FROM containers WHERE container_id = $1 AND worker_id = $2")
            .bind(&e.container_id)
            .bind(worker)
            .execute(pool)
            .await?;
        return Ok(true);
    }
    let state = match e.event {
        ContainerEventKind::Started | ContainerEventKind::Restarted => "running",
        _ => "exited",
    };
    let done = sqlx::query(
        "INSERT INTO containers (container_id, worker_id, app_id, deployment_id, state, restarts, exit_code)
         SELECT $1, $2, d.app_id, d.id, $4, $5, $6 FROM deployments d
         WHERE d.id = $3
           AND (d.worker_id = $2 OR EXISTS (SELECT 1 FROM jobs j WHERE j.deployment_id = d.id
                                            AND j.kind = $8 AND j.claimed_by = $7))
         ON CONFLICT (container_id) DO UPDATE
             SET state = $4, restarts = GREATEST(containers.restarts, $5), exit_code = coalesce($6, containers.exit_code), updated_at = now()
             WHERE containers.worker_id = $2",
    )
    .bind(&e.container_id)
    .bind(worker)
    .bind(e.deployment_id)
    .bind(state)
    .bind(e.restarts as i32)
    .bind(e.exit_code)
    .bind(worker.to_string())
    .bind(Kind(JobKind::Deploy))
    .execute(pool)
    .await?;
    if done.rows_affected() == 1 && e.event == ContainerEventKind::Restarted {
        // When each restart happened, for the crashloop alert.
        sqlx::query(
            "INSERT INTO container_restarts (app_id) SELECT app_id FROM deployments WHERE id = $1",
        )
        .bind(e.deployment_id)
        .execute(pool)
        .await?;
    }
    Ok(done.rows_affected() == 1)
}

/// Stores the latest resource sample of each container (only containers already known); returns
/// the sampled containers whose deployment no longer exists (their app was deleted), which the
/// worker must stop.
pub async fn stats(
    pool: &PgPool,
    worker: Uuid,
    s: &ContainerStats,
) -> Result<Vec<String>, sqlx::Error> {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let column = |f: fn(&wh_wsproto::messages::ContainerStat) -> u64| -> Vec<i64> {
        s.containers.iter().map(|c| clamp(f(c))).collect()
    };
    // One statement for the whole sample, not one per container.
    sqlx::query(
        "UPDATE containers c SET cpu_percent = s.cpu, memory_bytes = s.mem, memory_limit = s.lim,
                net_rx_bytes = s.rx, net_tx_bytes = s.tx, block_read = s.br, block_write = s.bw,
                disk_bytes = COALESCE(s.disk, c.disk_bytes), stats_at = now(), updated_at = now()
         FROM unnest($2::text[], $3::float8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[],
                     $8::int8[], $9::int8[], $10::int8[])
              AS s(id, cpu, mem, lim, rx, tx, br, bw, disk)
         WHERE c.container_id = s.id AND c.worker_id = $1",
    )
    .bind(worker)
    .bind(s.containers.iter().map(|c| c.container_id.clone()).collect::<Vec<_>>())
    .bind(
        s.containers
            .iter()
            .map(|c| if c.cpu_percent.is_finite() { c.cpu_percent } else { 0.0 })
            .collect::<Vec<_>>(),
    )
    .bind(column(|c| c.memory_bytes))
    .bind(column(|c| c.memory_limit))
    .bind(column(|c| c.net_rx_bytes))
    .bind(column(|c| c.net_tx_bytes))
    .bind(column(|c| c.block_read))
    .bind(column(|c| c.block_write))
    .bind(s.containers.iter().map(|c| c.disk_bytes.map(clamp)).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    let deployments: Vec<i64> = s.containers.iter().map(|c| c.deployment_id).collect();
    let existing: Vec<i64> = sqlx::query_scalar("SELECT id FROM deployments WHERE id = ANY($1)")
        .bind(&deployments)
        .fetch_all(pool)
        .await?;
    Ok(s.containers
        .iter()
        .filter(|c| !existing.contains(&c.deployment_id))
        .map(|c| c.container_id.clone())
        .collect())
}

/// A container of an app, as the API shows it.
#[derive(Debug, serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct Container {
    pub container_id: String,
    pub worker_id: Uuid,
    pub deployment_id: Option<i64>,
    pub state: String,
    pub restarts: i32,
    pub exit_code: Option<i32>,
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<i64>,
    pub memory_limit: Option<i64>,
    pub net_rx_bytes: Option<i64>,
    pub net_tx_bytes: Option<i64>,
    pub block_read: Option<i64>,
    pub block_write: Option<i64>,
    /// Bytes in the writable layer (sampled about once a minute).
    pub disk_bytes: Option<i64>,
    pub stats_at: Option<String>,
}

/// The containers of app `app_id`, newest deployment first.
pub async fn of_app(pool: &PgPool, app_id: i64) -> Result<Vec<Container>, sqlx::Error> {
    sqlx::query_as(
        "SELECT container_id, worker_id, deployment_id, state, restarts, exit_code, cpu_percent, memory_bytes,
                memory_limit, net_rx_bytes, net_tx_bytes, block_read, block_write, disk_bytes,
                to_char(stats_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS stats_at
         FROM containers WHERE app_id = $1 ORDER BY deployment_id DESC NULLS LAST, container_id",
    )
    .bind(app_id)
    .fetch_all(pool)
    .await
}
