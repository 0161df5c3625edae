//! Control-plane figures against a throwaway local Postgres (the testkit's): job queue
//! claim → complete throughput with 8 concurrent claimers, enqueue → claim latency over NOTIFY,
//! and rendering the proxy configuration for 10,000 live apps (and serving it from the cache).
//! Prints figures; asserts nothing.
//! `cargo bench -p wh-benches --bench control_plane`.

use std::time::{Duration, Instant};

use wh_control_plane::proxy_config;
use wh_control_plane::queue::{self, Waiter};

const JOBS: i64 = 20_000;
const CLAIMERS: usize = 8;
const LATENCY_SAMPLES: usize = 500;

fn main() {
    // Criterion-style filters are passed by `cargo bench`; this bench has a single case.
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let db = wh_testkit::postgres::fresh_db().await.unwrap();
        sqlx::query("INSERT INTO jobs (kind) SELECT 'retire' FROM generate_series(1, $1)").bind(JOBS).execute(&db.pool).await.unwrap();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..CLAIMERS {
            let pool = db.pool.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while let Some(job) = queue::claim(&pool, &format!("bench-{c}"), Duration::from_secs(60)).await.unwrap() {
                    queue::complete(&pool, job.id, job.attempt, &format!("bench-{c}"), Ok(())).await.unwrap();
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        println!("queue/claim+complete: {total} jobs, {CLAIMERS} claimers, {:.0} jobs/s", total as f64 / secs);

        // Latency: one claimer waiting on NOTIFY (1 s poll fallback), one enqueuer.
        let mut waiter = Waiter::new(&db.pool, Duration::from_secs(1)).await;
        let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
        for _ in 0..LATENCY_SAMPLES {
            let pool = db.pool.clone();
            let enq = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                let mut tx = pool.begin().await.unwrap();
                queue::enqueue(&mut tx, wh_wsproto::job::JobKind::Retire, &serde_json::json!({}), None).await.unwrap();
                let t0 = Instant::now();
                tx.commit().await.unwrap();
                t0
            });
            let job = loop {
                if let Some(job) = queue::claim(&db.pool, "latency", Duration::from_secs(60)).await.unwrap() {
                    break job;
                }
                waiter.wait().await;
            };
            let claimed = Instant::now();
            let t0 = enq.await.unwrap();
            samples.push(claimed.saturating_duration_since(t0));
            queue::complete(&db.pool, job.id, job.attempt, "latency", Ok(())).await.unwrap();
        }
        samples.sort();
        let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
        println!(
            "queue/enqueue->claim over NOTIFY: {LATENCY_SAMPLES} samples, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            samples.last().unwrap().as_secs_f64() * 1e3
        );

        // 10,000 live apps spread over 100 workers.
        sqlx::query("INSERT INTO users (email, password_hash) VALUES ('bench@example.test', 'x')").execute(&db.pool).await.unwrap();
        sqlx::query(
            "INSERT INTO workers (id, name, mesh_ip, api_key_hash)
             SELECT gen_random_uuid(), 'w' || i, ('10.50.0.' || i)::inet, md5(i::text) FROM generate_series(1, 100) i",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO apps (owner_id, slug, repo_url, plan_id, port, worker_id)
             SELECT (SELECT id FROM users LIMIT 1), 'app-' || i, 'https://git.example/x.git', (SELECT id FROM plans LIMIT 1), 8080,
                    (SELECT id FROM workers ORDER BY name OFFSET (i % 100) LIMIT 1)
             FROM generate_series(1, 10000) i",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO deployments (app_id, git_ref, state, worker_id, host_port) SELECT id, 'main', 'live', worker_id, 30000 + (id % 30000) FROM apps")
            .execute(&db.pool)
            .await
            .unwrap();
        // Every tenth app has a verified custom domain (joined into its router's rule).
        sqlx::query("INSERT INTO domains (app_id, hostname, token, status) SELECT id, 'www.' || slug || '.example', 't', 'verified' FROM apps WHERE id % 10 = 0")
            .execute(&db.pool)
            .await
            .unwrap();
        sqlx::query("ANALYZE").execute(&db.pool).await.unwrap();
        let _ = proxy_config::render(&db.pool, "route.example.com", true).await.unwrap();
        let runs = 20;
        let started = Instant::now();
        let mut size = 0;
        for _ in 0..runs {
            size = proxy_config::render(&db.pool, "route.example.com", true).await.unwrap().body.len();
        }
        println!(
            "proxy-config/render: 10,000 live apps, 1,000 custom domains, {:.1} ms per document ({} KiB)",
            started.elapsed().as_secs_f64() * 1e3 / runs as f64,
            size / 1024
        );
        // What a request costs once the document of the current change is rendered.
        let cache = proxy_config::Cache::default();
        let _ = cache.get(&db.pool, "route.example.com", true, 1).await.unwrap();
        let runs = 1000;
        let started = Instant::now();
        for _ in 0..runs {
            std::hint::black_box(cache.get(&db.pool, "route.example.com", true, 1).await.unwrap());
        }
        println!(
            "proxy-config/cached: {:.2} µs per request between changes ({} render)",
            started.elapsed().as_secs_f64() * 1e6 / runs as f64,
            cache.renders()
        );
    });
}
