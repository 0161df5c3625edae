//! Periodic sweeps: expired job leases fail their jobs (and deployments) visibly, deployments
//! past their state's deadline fail, and the uploaded sources of finished deployments are
//! dropped.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::queue;

/// Sweeps every `every` until `stop`; how late each sweep starts is the scheduler's loop lag.
pub(super) async fn run(
    pool: PgPool,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            due = tick.tick() => {
                metrics.sweep_lag(due.elapsed());
                sweep(&pool).await;
            }
        }
    }
}

/// One sweep; each step's failure is logged and the next still runs.
pub async fn sweep(pool: &PgPool) {
    match queue::expire_leases(pool).await {
        Ok(ids) if !ids.is_empty() => {
            tracing::warn!(jobs = ?ids, "job leases expired; jobs failed")
        }
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
