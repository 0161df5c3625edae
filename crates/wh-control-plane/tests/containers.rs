//! Adopting a reconnected worker's inventory against the real Postgres: which containers stay
//! (recorded in `containers`) and which the worker is told to stop.

use std::collections::BTreeSet;

use wh_control_plane::{containers, workers};
use wh_wsproto::messages::ContainerInfo;

fn info(id: &str, app: &str, deployment: i64, restarts: u32) -> ContainerInfo {
    ContainerInfo {
        container_id: id.into(),
        app: app.into(),
        deployment_id: deployment,
        host_port: Some(31000),
        state: "running".into(),
        restarts,
    }
}

#[tokio::test]
async fn adoption_keeps_what_should_run_here_and_stops_the_rest() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let pool = &db.pool;
    let (here, _) = workers::create(pool, "here", "127.0.0.2").await.unwrap();
    let (there, _) = workers::create(pool, "there", "127.0.0.3").await.unwrap();
    let user: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash) VALUES ('a@example.test', 'x') RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let app: i64 = sqlx::query_scalar(
        "INSERT INTO apps (owner_id, slug, repo_url, plan_id, port) VALUES ($1, 'shop', 'https://git.example/x.git', (SELECT id FROM plans LIMIT 1), 8080) RETURNING id",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap();
    let deployment = |state: &'static str, worker: Option<uuid::Uuid>| async move {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO deployments (app_id, git_ref, state, worker_id)
             VALUES ($1, 'main', $2::deployment_state, $3) RETURNING id",
        )
        .bind(app)
        .bind(state)
        .bind(worker)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let live_here = deployment("live", Some(here.id)).await;
    let live_there = deployment("live", Some(there.id)).await;
    let building = deployment("building", None).await;
    let building_there = deployment("building", None).await;
    for (d, on) in [(building, here.id), (building_there, there.id)] {
        sqlx::query("INSERT INTO jobs (kind, deployment_id, state, claimed_by) VALUES ('deploy', $1, 'claimed', $2)")
            .bind(d)
            .bind(on.to_string())
            .execute(pool)
            .await
            .unwrap();
    }
    let failed = deployment("failed", Some(here.id)).await;
    let retiring = deployment("superseded", Some(here.id)).await;
    let retired = deployment("superseded", Some(here.id)).await;
    sqlx::query("INSERT INTO jobs (kind, deployment_id) VALUES ('retire', $1)")
        .bind(retiring)
        .execute(pool)
        .await
        .unwrap();
    // Recorded before the reconnect; this worker no longer reports it.
    sqlx::query(
        "INSERT INTO containers (container_id, worker_id, app_id, deployment_id, state)
         VALUES ('vanished', $1, $2, $3, 'running')",
    )
    .bind(here.id)
    .bind(app)
    .bind(live_here)
    .execute(pool)
    .await
    .unwrap();

    let reported = [
        info("c-live", "shop", live_here, 2),
        info("c-live", "shop", live_here, 2), // reported twice: counts once
        info("c-other-worker", "shop", live_there, 0),
        info("c-building", "shop", building, 0),
        // Another worker's build: a worker adopts only what it runs or builds itself.
        info("c-building-there", "shop", building_there, 0),
        info("c-failed", "shop", failed, 0),
        info("c-retiring", "shop", retiring, 0),
        info("c-retired", "shop", retired, 0),
        info("c-unknown", "shop", 999_999, 0),
        info("c-wrong-app", "not-shop", live_here, 0),
    ];
    let stop: BTreeSet<String> =
        containers::adopt(pool, here.id, &reported).await.unwrap().into_iter().collect();
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        stop,
        names(&[
            "c-other-worker",
            "c-building-there",
            "c-failed",
            "c-retired",
            "c-unknown",
            "c-wrong-app"
        ])
    );
    let kept: Vec<(String, i64, String, i32)> = sqlx::query_as(
        "SELECT container_id, deployment_id, state, restarts FROM containers
         WHERE worker_id = $1 ORDER BY container_id",
    )
    .bind(here.id)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        kept,
        vec![
            ("c-building".into(), building, "running".into(), 0),
            ("c-live".into(), live_here, "running".into(), 2),
            ("c-retiring".into(), retiring, "running".into(), 0),
        ]
    );

    // A second report updates in place; an empty one forgets everything this worker had.
    let again = [info("c-live", "shop", live_here, 5)];
    assert!(containers::adopt(pool, here.id, &again).await.unwrap().is_empty());
    let restarts: i32 =
        sqlx::query_scalar("SELECT restarts FROM containers WHERE container_id = 'c-live'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(restarts, 5);
    assert!(containers::adopt(pool, here.id, &[]).await.unwrap().is_empty());
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM containers").fetch_one(pool).await.unwrap();
    assert_eq!(left, 0);
}
