//! The day partitions of `usage_buckets`: one per UTC day, `usage_buckets_YYYYMMDD`, made from
//! yesterday to a week ahead, and dropped when the whole day is older than [`KEEP_DAYS`].
//! Idempotent: maintenance can run at every start and every hour, on several control planes.

use sqlx::PgPool;

/// Days of usage kept.
pub const KEEP_DAYS: i64 = 90;
/// Days made ahead of today.
pub const AHEAD_DAYS: i64 = 7;

const DAY: i64 = 86_400;

/// What [`maintain`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Maintained {
    pub created: usize,
    pub dropped: usize,
}

fn name(day: i64) -> String {
    // Days since the epoch to a date (proleptic Gregorian, UTC): Howard Hinnant's algorithm.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("usage_buckets_{y:04}{m:02}{d:02}")
}

/// Makes the missing partitions from yesterday to [`AHEAD_DAYS`] ahead of `now` (seconds since
/// the epoch) and drops those wholly older than [`KEEP_DAYS`].
pub async fn maintain(pool: &PgPool, now: f64) -> Result<Maintained, sqlx::Error> {
    let today = (now as i64).div_euclid(DAY);
    let mut done = Maintained::default();
    for day in today - 1..=today + AHEAD_DAYS {
        let table = name(day);
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&table)
            .fetch_one(pool)
            .await?;
        if exists {
            continue;
        }
        // Names and bounds are ours (digits), never input.
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {table} PARTITION OF usage_buckets
             FOR VALUES FROM (to_timestamp({})) TO (to_timestamp({}))",
            day * DAY,
            (day + 1) * DAY
        );
        sqlx::query(&sql).execute(pool).await?;
        done.created += 1;
    }
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_buckets'",
    )
    .fetch_all(pool)
    .await?;
    let oldest_kept = name(today - KEEP_DAYS);
    for table in partitions {
        // Same-length names order as their dates: a day before the oldest kept one ends before it.
        let dated = table.len() == oldest_kept.len() && table.starts_with("usage_buckets_");
        if dated && table < oldest_kept {
            sqlx::query(&format!("DROP TABLE IF EXISTS {table}")).execute(pool).await?;
            done.dropped += 1;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_by_their_utc_day() {
        assert_eq!(name(0), "usage_buckets_19700101");
        assert_eq!(name(20_454), "usage_buckets_20260101");
        assert_eq!(name(20_513), "usage_buckets_20260301", "2026 is not a leap year");
        assert_eq!(name(19_417), "usage_buckets_20230301");
        assert_eq!(name(19_782), "usage_buckets_20240229");
    }
}
