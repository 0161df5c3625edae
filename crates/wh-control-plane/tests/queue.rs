//! The Postgres job queue against the real Postgres from the testkit.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use wh_control_plane::queue::{self, CompleteError, Waiter};
use wh_wsproto::job::JobKind;

async fn deployment(pool: &sqlx::PgPool) -> i64 {
    let user: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash) VALUES ('q@example.test', 'x') RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let app: i64 = sqlx::query_scalar(
        "INSERT INTO apps (owner_id, slug, repo_url, plan_id, port) VALUES ($1, 'queue-app', 'https://git.example/x.git', (SELECT id FROM plans LIMIT 1), 8080) RETURNING id",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query_scalar("INSERT INTO deployments (app_id, git_ref, state) VALUES ($1, 'main', 'building') RETURNING id").bind(app).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_across_eight_claimers_each_processed_exactly_once() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    sqlx::query("INSERT INTO jobs (kind) SELECT 'retire' FROM generate_series(1, 10000)")
        .execute(&db.pool)
        .await
        .unwrap();
    let mut claimers = Vec::new();
    for c in 0..8 {
        let pool = db.pool.clone();
        claimers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            while let Some(job) =
                queue::claim(&pool, &format!("claimer-{c}"), Duration::from_secs(60)).await.unwrap()
            {
                queue::complete(&pool, job.id, job.attempt, &format!("claimer-{c}"), Ok(()))
                    .await
                    .unwrap();
                done.push(job.id);
            }
            done
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 10_000, "some job was processed twice or not at all");
    assert_eq!(unique.len(), 10_000);
    let (succeeded, attempts): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'succeeded'), max(attempt)::bigint FROM jobs",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((succeeded, attempts), (10_000, 1));
}

#[tokio::test]
async fn a_vanished_claimer_fails_the_job_and_the_deployment_visibly_and_its_late_result_is_refused(
) {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let deployment = deployment(&db.pool).await;
    let mut tx = db.pool.begin().await.unwrap();
    let job = queue::enqueue(
        &mut tx,
        JobKind::Deploy,
        &serde_json::json!({"ref": "main"}),
        Some(deployment),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let claimed =
        queue::claim(&db.pool, "worker-w1", Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!((claimed.id, claimed.attempt), (job, 1));
    assert!(queue::expire_leases(&db.pool).await.unwrap().is_empty(), "expired too early");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(queue::expire_leases(&db.pool).await.unwrap(), vec![job]);
    let (state, error): (String, String) =
        sqlx::query_as("SELECT state::text, error FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(state, "failed");
    assert!(error.contains("lease expired") && error.contains("worker-w1"), "{error}");
    let (dstate, derror): (String, String) =
        sqlx::query_as("SELECT state::text, error FROM deployments WHERE id = $1")
            .bind(deployment)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(dstate, "failed");
    assert!(derror.contains("stopped reporting"), "{derror}");
    // The worker comes back with its result: refused, nothing changes.
    assert!(matches!(
        queue::complete(&db.pool, job, 1, "worker-w1", Ok(())).await,
        Err(CompleteError::Stale { .. })
    ));
    assert!(matches!(
        queue::extend(&db.pool, job, 1, "worker-w1", Duration::from_secs(5)).await,
        Err(CompleteError::Stale { .. })
    ));
    let state: String = sqlx::query_scalar("SELECT state::text FROM jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(state, "failed");
}

#[tokio::test]
async fn an_older_attempt_cannot_complete_a_newer_claim() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let job = queue::enqueue(&mut tx, JobKind::Retire, &serde_json::json!({}), None).await.unwrap();
    tx.commit().await.unwrap();
    let first = queue::claim(&db.pool, "a", Duration::from_secs(60)).await.unwrap().unwrap();
    // An operator requeues it (the only way a job is retried: explicitly).
    sqlx::query("UPDATE jobs SET state = 'pending' WHERE id = $1")
        .bind(job)
        .execute(&db.pool)
        .await
        .unwrap();
    let second = queue::claim(&db.pool, "b", Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(second.attempt, first.attempt + 1);
    assert!(matches!(
        queue::complete(&db.pool, job, first.attempt, "b", Err("late")).await,
        Err(CompleteError::Stale { .. })
    ));
    // Nor can another claimer complete it, whatever attempt it names.
    assert!(matches!(
        queue::complete(&db.pool, job, second.attempt, "a", Err("mine now")).await,
        Err(CompleteError::NotClaimant { .. })
    ));
    assert!(matches!(
        queue::extend(&db.pool, job, second.attempt, "a", Duration::from_secs(5)).await,
        Err(CompleteError::NotClaimant { .. })
    ));
    queue::complete(&db.pool, job, second.attempt, "b", Ok(())).await.unwrap();
}

#[tokio::test]
async fn a_rolled_back_enqueue_leaves_nothing_and_notify_wakes_a_waiter_at_once() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    queue::enqueue(&mut tx, JobKind::Deploy, &serde_json::json!({}), None).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(queue::claim(&db.pool, "c", Duration::from_secs(1)).await.unwrap().is_none());

    // Polling is set to 10 s: only the NOTIFY can wake the waiter quickly.
    let mut waiter = Waiter::new(&db.pool, Duration::from_secs(10)).await;
    let pool = db.pool.clone();
    let enqueued_at = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut tx = pool.begin().await.unwrap();
        queue::enqueue(&mut tx, JobKind::Deploy, &serde_json::json!({}), None).await.unwrap();
        tx.commit().await.unwrap();
        Instant::now()
    });
    waiter.wait().await;
    let woke = Instant::now();
    let enqueued = enqueued_at.await.unwrap();
    assert!(
        woke.saturating_duration_since(enqueued) < Duration::from_secs(2),
        "woken by polling, not by NOTIFY"
    );
    assert!(queue::claim(&db.pool, "c", Duration::from_secs(1)).await.unwrap().is_some());
}

#[tokio::test]
async fn deploy_progress_and_results_move_the_deployment() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let d0 = deployment(&db.pool).await;
    let app: i64 = sqlx::query_scalar("SELECT app_id FROM deployments WHERE id = $1")
        .bind(d0)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let (worker, _) = wh_control_plane::workers::create(&db.pool, "wq", "127.0.0.1").await.unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let deploy = wh_wsproto::job::DeployJob {
        app: "queue-app".into(),
        deployment_id: 0,
        port: 8080,
        limits: Default::default(),
        source: wh_wsproto::job::Source::Upload,
        root_dir: String::new(),
        env: Default::default(),
    };
    let d = wh_control_plane::deployments::create(&mut tx, app, "main", deploy).await.unwrap();
    tx.commit().await.unwrap();
    let job = queue::claim(&db.pool, &worker.id.to_string(), Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.deployment_id, Some(d));
    wh_control_plane::deployments::progress(&db.pool, job.id, wh_wsproto::job::Stage::Building)
        .await
        .unwrap();
    let state: String = sqlx::query_scalar("SELECT state::text FROM deployments WHERE id = $1")
        .bind(d)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(state, "building");
    queue::complete(&db.pool, job.id, job.attempt, &worker.id.to_string(), Ok(())).await.unwrap();
    wh_control_plane::deployments::finish(
        &db.pool,
        job.id,
        worker.id,
        true,
        None,
        Some(&wh_wsproto::job::JobOutput::Deploy(wh_wsproto::job::DeployOutput::started(
            31555,
            "c-test".into(),
        ))),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let (state, port): (String, Option<i32>) =
        sqlx::query_as("SELECT state::text, host_port FROM deployments WHERE id = $1")
            .bind(d)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), port), ("live", Some(31555)));
}
