//! One minute of usage from the latest container stats: for each running container with stats
//! from the last 90 s, CPU core-seconds (its share of a core × 60), memory byte-seconds (bytes ×
//! 60) and peak, network bytes (the counters' growth since the container was last recorded;
//! after a reset, the new value) and peak disk, summed per app into the 5-minute bucket the
//! minute falls in. The minute's bit in the bucket guards the upsert: a minute recorded twice
//! (a replay, a second control plane) adds nothing.

use std::collections::BTreeMap;

use sqlx::PgPool;

/// Stats older than this are not counted.
pub const FRESH_SECS: f64 = 90.0;

#[derive(sqlx::FromRow)]
struct Sample {
    container_id: String,
    app_id: i64,
    cpu_percent: Option<f64>,
    memory_bytes: Option<i64>,
    net_rx_bytes: Option<i64>,
    net_tx_bytes: Option<i64>,
    disk_bytes: Option<i64>,
    last_rx: Option<i64>,
    last_tx: Option<i64>,
}

#[derive(Default)]
struct Minute {
    cpu_seconds: f64,
    memory_byte_seconds: f64,
    memory_peak: i64,
    rx: i64,
    tx: i64,
    disk_peak: i64,
}

/// A counter's growth: the difference, or after a reset (it went down) the new value.
pub fn delta(last: Option<i64>, now: i64) -> i64 {
    match last {
        Some(l) if now >= l => now - l,
        Some(_) => now,
        // First sight of the container: its counters so far belong to earlier minutes.
        None => 0,
    }
}

/// Records the minute `now` (seconds since the epoch) falls in; how many apps it counted.
pub async fn record(pool: &PgPool, now: f64) -> Result<usize, sqlx::Error> {
    let minute = (now / 60.0).floor() * 60.0;
    let samples: Vec<Sample> = sqlx::query_as(
        "SELECT c.container_id, c.app_id, c.cpu_percent, c.memory_bytes, c.net_rx_bytes, c.net_tx_bytes,
                c.disk_bytes, u.net_rx_bytes AS last_rx, u.net_tx_bytes AS last_tx
         FROM containers c LEFT JOIN usage_counters u ON u.container_id = c.container_id
         WHERE c.state = 'running' AND c.app_id IS NOT NULL
           AND c.stats_at >= to_timestamp($1) - make_interval(secs => $2)",
    )
    .bind(now)
    .bind(FRESH_SECS)
    .fetch_all(pool)
    .await?;
    let mut apps: BTreeMap<i64, Minute> = BTreeMap::new();
    for s in &samples {
        let m = apps.entry(s.app_id).or_default();
        let cpu = s.cpu_percent.filter(|c| c.is_finite() && *c >= 0.0).unwrap_or(0.0);
        m.cpu_seconds += cpu / 100.0 * 60.0;
        let memory = s.memory_bytes.unwrap_or(0).max(0);
        m.memory_byte_seconds += memory as f64 * 60.0;
        m.memory_peak = m.memory_peak.max(memory);
        m.rx += delta(s.last_rx, s.net_rx_bytes.unwrap_or(0).max(0));
        m.tx += delta(s.last_tx, s.net_tx_bytes.unwrap_or(0).max(0));
        m.disk_peak = m.disk_peak.max(s.disk_bytes.unwrap_or(0).max(0));
    }
    let mut tx = pool.begin().await?;
    for (app, m) in &apps {
        sqlx::query(
            "INSERT INTO usage_buckets AS b (app_id, bucket, cpu_seconds, memory_byte_seconds, memory_peak,
                                             net_rx_bytes, net_tx_bytes, disk_peak, minutes)
             VALUES ($1, date_bin('5 minutes', to_timestamp($2), TIMESTAMPTZ '2000-01-01 00:00:00+00'),
                     $3, $4, $5, $6, $7, $8,
                     (1 << (extract(minute FROM to_timestamp($2))::int % 5))::smallint)
             ON CONFLICT (app_id, bucket) DO UPDATE SET
                 cpu_seconds = b.cpu_seconds + excluded.cpu_seconds,
                 memory_byte_seconds = b.memory_byte_seconds + excluded.memory_byte_seconds,
                 memory_peak = greatest(b.memory_peak, excluded.memory_peak),
                 net_rx_bytes = b.net_rx_bytes + excluded.net_rx_bytes,
                 net_tx_bytes = b.net_tx_bytes + excluded.net_tx_bytes,
                 disk_peak = greatest(b.disk_peak, excluded.disk_peak),
                 minutes = b.minutes | excluded.minutes
             WHERE b.minutes & excluded.minutes = 0",
        )
        .bind(app)
        .bind(minute)
        .bind(m.cpu_seconds)
        .bind(m.memory_byte_seconds)
        .bind(m.memory_peak)
        .bind(m.rx)
        .bind(m.tx)
        .bind(m.disk_peak)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO usage_counters (container_id, net_rx_bytes, net_tx_bytes, recorded_at)
         SELECT id, rx, tx, to_timestamp($4) FROM unnest($1::text[], $2::int8[], $3::int8[]) AS s(id, rx, tx)
         ON CONFLICT (container_id) DO UPDATE SET net_rx_bytes = excluded.net_rx_bytes,
             net_tx_bytes = excluded.net_tx_bytes, recorded_at = excluded.recorded_at",
    )
    .bind(samples.iter().map(|s| s.container_id.clone()).collect::<Vec<_>>())
    .bind(samples.iter().map(|s| s.net_rx_bytes.unwrap_or(0).max(0)).collect::<Vec<_>>())
    .bind(samples.iter().map(|s| s.net_tx_bytes.unwrap_or(0).max(0)).collect::<Vec<_>>())
    .bind(minute)
    .execute(&mut *tx)
    .await?;
    // Counters of containers gone for a day are not needed again.
    sqlx::query(
        "DELETE FROM usage_counters WHERE recorded_at < to_timestamp($1) - interval '1 day'",
    )
    .bind(minute)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(apps.len())
}

#[cfg(test)]
mod tests {
    use super::delta;

    #[test]
    fn counters_grow_reset_and_start() {
        assert_eq!(delta(Some(100), 250), 150);
        assert_eq!(delta(Some(500), 40), 40, "a reset counts the new value");
        assert_eq!(delta(None, 9_999), 0, "a new container's past is not this minute's");
    }
}
