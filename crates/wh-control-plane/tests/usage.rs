//! Usage metering on the real Postgres with a simulated clock: a minute of samples becomes the
//! bucket's core-seconds, byte-seconds, peaks and network deltas; replaying a minute changes no
//! bucket; a counter reset counts the new value; 91 simulated days leave no partition wholly
//! older than 90 days and none missing ahead; the API's points, totals and refusals, and the
//! app limit of an account.

use wh_control_plane::deployments::DeploymentState;
use wh_control_plane::testing::fixtures;
use wh_control_plane::usage::{partitions, query, record};

/// 2030-03-17 18:00:00 UTC (seconds since the epoch).
const T0: f64 = 1_900_000_800.0;

async fn setup() -> (wh_testkit::postgres::TestDatabase, i64) {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    partitions::maintain(&db.pool, T0).await.unwrap();
    let owner = fixtures::user(&db.pool, "usage@example.test").await;
    let (worker, _) = wh_control_plane::workers::create(&db.pool, "w1", "127.0.0.2").await.unwrap();
    let app = fixtures::app(&db.pool, owner, "metered").insert().await;
    let d = fixtures::deployment(&db.pool, app)
        .state(DeploymentState::Live)
        .worker(worker.id)
        .insert()
        .await;
    fixtures::running_container(&db.pool, "c1", worker.id, app, d).await;
    (db, app)
}

async fn sample(
    db: &wh_testkit::postgres::TestDatabase,
    at: f64,
    cpu: f64,
    memory: i64,
    rx: i64,
    tx: i64,
) {
    sqlx::query("UPDATE containers SET cpu_percent = $1, memory_bytes = $2, net_rx_bytes = $3, net_tx_bytes = $4, disk_bytes = 4096, stats_at = to_timestamp($5)")
        .bind(cpu)
        .bind(memory)
        .bind(rx)
        .bind(tx)
        .bind(at)
        .execute(&db.pool)
        .await
        .unwrap();
}

type Row = (f64, f64, i64, i64, i64, i64, i16);

async fn buckets(db: &wh_testkit::postgres::TestDatabase) -> Vec<Row> {
    sqlx::query_as(
        "SELECT cpu_seconds, memory_byte_seconds, memory_peak, net_rx_bytes, net_tx_bytes, disk_peak, minutes
         FROM usage_buckets ORDER BY bucket",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn minutes_become_buckets_and_replaying_one_changes_nothing() {
    let (db, app) = setup().await;
    // Three minutes of one bucket: half a core, 100 MB, the counters growing (then reset).
    sample(&db, T0 + 5.0, 50.0, 100_000_000, 1_000, 2_000).await;
    record::record(&db.pool, T0 + 10.0).await.unwrap();
    sample(&db, T0 + 65.0, 50.0, 200_000_000, 1_500, 2_600).await;
    record::record(&db.pool, T0 + 70.0).await.unwrap();
    let before = buckets(&db).await;
    // The same minute again (a replay, or a second control plane): nothing changes.
    record::record(&db.pool, T0 + 75.0).await.unwrap();
    record::record(&db.pool, T0 + 119.0).await.unwrap();
    assert_eq!(buckets(&db).await, before, "a replayed minute changed a bucket");
    // The container restarted: its counters start again; the new value is this minute's.
    sample(&db, T0 + 125.0, 25.0, 50_000_000, 300, 400).await;
    record::record(&db.pool, T0 + 130.0).await.unwrap();
    let rows = buckets(&db).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (cpu, mem, peak, rx, tx, disk, minutes) = rows[0];
    assert_eq!(cpu, 30.0 + 30.0 + 15.0, "core-seconds: 0.5 × 60 twice, then 0.25 × 60");
    assert_eq!(mem, 60.0 * (100e6 + 200e6 + 50e6));
    assert_eq!((peak, rx, tx, disk), (200_000_000, 500 + 300, 600 + 400, 4096));
    assert_eq!(minutes.count_ones(), 3);
    // Stale stats are not counted.
    record::record(&db.pool, T0 + 400.0).await.unwrap();
    assert_eq!(buckets(&db).await.len(), 1);
    // What the API reads.
    let totals =
        query::totals(&db.pool, app, (T0 - 3600.0) as i64, (T0 + 3600.0) as i64).await.unwrap();
    assert!((totals.vcpu_hours - 75.0 / 3600.0).abs() < 1e-9, "{totals:?}");
    assert!((totals.egress_gb - 1000.0 / 1e9).abs() < 1e-15, "{totals:?}");
    let points =
        query::points(&db.pool, app, (T0 - 3600.0) as i64, (T0 + 3600.0) as i64, query::Step::Hour)
            .await
            .unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].t, "2030-03-17T18:00:00Z", "T0 is 18:00 UTC");
}

#[tokio::test]
async fn ninety_one_simulated_days_keep_ninety_and_make_the_week_ahead() {
    let (db, _) = setup().await;
    let day = 86_400.0;
    for d in 0..=91 {
        let now = T0 + f64::from(d) * day;
        partitions::maintain(&db.pool, now).await.unwrap();
        sample(&db, now, 10.0, 1_000, 0, 0).await;
        record::record(&db.pool, now).await.unwrap();
    }
    let now = T0 + 91.0 * day;
    let (oldest, newest, days): (f64, f64, i64) = sqlx::query_as(
        "SELECT extract(epoch FROM min(bucket))::float8, extract(epoch FROM max(bucket))::float8, count(DISTINCT date_trunc('day', bucket)) FROM usage_buckets",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    // The oldest bucket left lies in a day that ends less than 90 days ago.
    let oldest_day_end = ((oldest / day).floor() + 1.0) * day;
    assert!(now - oldest_day_end < 90.0 * day, "a partition wholly older than 90 days is left");
    assert!(now - oldest > 89.0 * day, "too much was dropped");
    assert_eq!(newest, (now / 300.0).floor() * 300.0);
    assert_eq!(days, 91, "ninety days and today");
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_buckets' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    // From 90 days back to a week ahead, one a day, none missing.
    assert_eq!(partitions.len(), 90 + 1 + 7, "{partitions:?}");
    // A write a week ahead lands in its partition.
    sample(&db, now + 7.0 * day, 10.0, 1_000, 0, 0).await;
    record::record(&db.pool, now + 7.0 * day).await.unwrap();
}

#[tokio::test]
async fn the_api_answers_points_totals_and_refuses_what_it_cannot() {
    let (db, _) = setup().await;
    let cp = wh_control_plane::testing::TestControlPlane::start(
        &db.pool,
        wh_control_plane::testing::Options::bare(),
    )
    .await;
    let (_, bearer) = fixtures::user_with_token(&db.pool, "reader@example.test").await;
    sqlx::query(
        "UPDATE apps SET owner_id = (SELECT id FROM users WHERE email = 'reader@example.test')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    for m in 0..3 {
        sample(&db, T0 + 60.0 * f64::from(m), 100.0, 1_000_000_000, 0, 1_000_000 * i64::from(m))
            .await;
        record::record(&db.pool, T0 + 60.0 * f64::from(m)).await.unwrap();
    }
    let get = |uri: String| {
        let (cp, bearer) = (&cp, bearer.clone());
        async move { cp.call(&bearer, "GET", &uri, None).await }
    };
    let (from, to) = (T0 as i64 - 3600, T0 as i64 + 3600);
    let (status, usage) =
        get(format!("/api/v1/apps/metered/usage?from={from}&to={to}&step=5m")).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["points"].as_array().map(Vec::len), Some(1), "{usage}");
    let vcpu = usage["totals"]["vcpu_hours"].as_f64().unwrap();
    assert!((vcpu - 180.0 / 3600.0).abs() < 1e-9, "three minutes of one core: {usage}");
    assert!((usage["totals"]["egress_gb"].as_f64().unwrap() - 0.002).abs() < 1e-12, "{usage}");
    let (status, mine) = get(format!("/api/v1/usage?from={from}&to={to}")).await;
    assert_eq!(status, 200);
    assert_eq!(mine["apps"][0]["app"], "metered", "{mine}");
    let (status, _) = get(format!("/api/v1/apps/metered/usage?from={to}&to={from}")).await;
    assert_eq!(status, 400, "from after to");
    let (status, e) =
        get(format!("/api/v1/apps/metered/usage?from={}&to={to}&step=5m", to - 90 * 86_400)).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("1000 points"), "{e}");
    let (status, _) = get("/api/v1/apps/metered/usage?step=2m".into()).await;
    assert_eq!(status, 400, "an unknown step");

    // The plan's limits: an account at its app limit is refused, with the reason.
    sqlx::query("UPDATE users SET max_apps = 1").execute(&db.pool).await.unwrap();
    let (status, e) = cp
        .call(
            &bearer,
            "POST",
            "/api/v1/apps",
            Some(serde_json::json!({"name": "second", "port": 80})),
        )
        .await;
    assert_eq!(status, 409, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("the most your account may have"),
        "{e}"
    );
}
