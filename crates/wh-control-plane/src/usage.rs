//! Usage metering: every minute, the latest container stats become CPU core-seconds, memory
//! byte-seconds and peak, network bytes and peak disk in 5-minute buckets per app
//! ([`record`]: replaying a minute changes nothing); the buckets live in day partitions made a
//! week ahead and dropped once wholly older than 90 days ([`partitions`]); what the API and the
//! dashboard read ([`query`]: points at 5 min, 1 h or 1 d steps, at most 1,000, and totals).
//!
//! Usage of a deleted app stays (its buckets are not the app's row) until it ages out.

pub mod partitions;
pub mod query;
pub mod record;

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often usage is recorded.
pub const EVERY: Duration = Duration::from_secs(60);

/// Records every minute and keeps the partitions (at start and every hour) until `stop`.
/// Returns (to its supervisor, which restarts it) only when the database fails.
pub async fn run(pool: PgPool, stop: CancellationToken) {
    let mut last_maintenance = None::<tokio::time::Instant>;
    loop {
        let now = crate::now_ms() as f64 / 1000.0;
        let due = last_maintenance.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600));
        if due {
            match partitions::maintain(&pool, now).await {
                Ok(_) => last_maintenance = Some(tokio::time::Instant::now()),
                Err(e) => {
                    tracing::warn!(error = %e, "usage partitions not maintained");
                    return;
                }
            }
        }
        if let Err(e) = record::record(&pool, now).await {
            tracing::warn!(error = %e, "usage not recorded");
            return;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
