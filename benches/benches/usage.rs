//! Usage queries at the size the issue names: 1,000 apps × 288 buckets a day × 90 days
//! (25.9 million rows in 91 day partitions) in the testkit's throwaway Postgres; then a 30-day
//! per-app query at 1 h steps (720 points), and a 24-hour one at 5 minutes, each 50 times
//! over random apps. Prints figures; asserts nothing.
//! `cargo bench -p wh-benches --bench usage`.

use std::time::Instant;

use wh_control_plane::usage::{partitions, query};

const APPS: i64 = 1_000;
const DAYS: i64 = 90;
const RUNS: usize = 50;

fn main() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let db = wh_testkit::postgres::fresh_db().await.unwrap();
        let now = (wh_control_plane::now_ms() / 1000) as f64;
        for back in (0..=DAYS).rev() {
            partitions::maintain(&db.pool, now - back as f64 * 86_400.0).await.unwrap();
        }
        let started = Instant::now();
        // One day at a time, each day's buckets from its start up to the next day's first.
        for back in (0..DAYS).rev() {
            sqlx::query(
                "INSERT INTO usage_buckets (app_id, bucket, cpu_seconds, memory_byte_seconds, memory_peak, net_rx_bytes, net_tx_bytes, disk_peak, minutes)
                 SELECT a, b, random() * 300, random() * 3e10, 100000000, 1000, 2000, 4096, 31
                 FROM generate_series(1, $1) a,
                      generate_series(date_bin('5 minutes', to_timestamp($2) - make_interval(days => $3 + 1), TIMESTAMPTZ '2000-01-01'),
                                      date_bin('5 minutes', to_timestamp($2) - make_interval(days => $3), TIMESTAMPTZ '2000-01-01') - interval '1 second',
                                      interval '5 minutes') b",
            )
            .bind(APPS)
            .bind(now)
            .bind(back as i32)
            .execute(&db.pool)
            .await
            .unwrap();
        }
        sqlx::query("ANALYZE usage_buckets").execute(&db.pool).await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_buckets").fetch_one(&db.pool).await.unwrap();
        println!("usage/load: {rows} rows in {:.0} s", started.elapsed().as_secs_f64());
        for (name, span, step) in [("30 d at 1 h", 30 * 86_400, query::Step::Hour), ("24 h at 5 m", 86_400, query::Step::FiveMinutes)] {
            let mut times = Vec::with_capacity(RUNS);
            let mut points = 0;
            for i in 0..RUNS {
                let app = 1 + (i as i64 * 7919) % APPS;
                let t0 = Instant::now();
                let p = query::points(&db.pool, app, now as i64 - span, now as i64, step).await.unwrap();
                let totals = query::totals(&db.pool, app, now as i64 - span, now as i64).await.unwrap();
                times.push(t0.elapsed().as_secs_f64() * 1000.0);
                points = p.len();
                assert!(totals.vcpu_hours > 0.0);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "usage/query {name}: {points} points + totals, median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
                times[RUNS / 2],
                times[RUNS * 95 / 100],
                times[RUNS - 1]
            );
        }
    });
}
