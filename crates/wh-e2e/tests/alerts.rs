//! A crash loop from real container restarts: an app that serves for a few seconds and exits
//! with an error, restarted by Podman's restart policy; the worker reports each restart, and the
//! alert evaluator (at the real time) fires the app's crashloop rule. Real Postgres, control
//! plane, worker with Podman.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wh_control_plane::testing::fixtures;
use wh_e2e::{git, insert_app, queue_deploy, wait_state};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_reported_by_the_worker_fire_the_crashloop_alert() {
    let wh_e2e::Start { base, db, .. } = wh_e2e::start().await;
    let pool = db.pool.clone();
    let stop = CancellationToken::new();
    let _platform = wh_e2e::platform(&pool, Duration::from_secs(2), &stop).await;
    let user = fixtures::user(&pool, "crash@example.test").await;

    // busybox httpd without -f goes to the background; the main process exits 3 after 4 s.
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("Containerfile"),
        format!("FROM {base}\nCOPY index.html /www/index.html\nCMD [\"sh\", \"-c\", \"httpd -p $PORT -h /www; sleep 4; exit 3\"]\n"),
    )
    .unwrap();
    std::fs::write(repo.path().join("index.html"), "<h1>crashy</h1>").unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["-c", "user.email=t@example.test", "-c", "user.name=t", "add", "."]);
    git(
        repo.path(),
        &["-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-qm", "crashy"],
    );
    let app = insert_app(&pool, user, "crashy", repo.path()).await;
    let deployment = queue_deploy(&pool, app, "crashy", repo.path()).await;
    let (state, error) =
        wait_state(&pool, deployment, &["live", "failed"], Duration::from_secs(180)).await;
    assert_eq!(state, "live", "{error:?}");

    let fired = wh_testkit::within(Duration::from_secs(120), async || {
        let now = wh_control_plane::now_ms() as f64 / 1000.0;
        wh_control_plane::alerts::evaluate::evaluate(&pool, now).await.unwrap();
        let fired: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM event_outbox WHERE event_type = 'alert.fired' AND payload->>'kind' = 'crashloop' AND app_id = $1",
        )
        .bind(app)
        .fetch_optional(&pool)
        .await
        .unwrap();
        if fired.is_none() {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        fired
    })
    .await;
    let restarts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM container_restarts WHERE app_id = $1")
            .bind(app)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        fired.is_some(),
        "the crashloop alert did not fire within 120 s ({restarts} restarts reported)"
    );
    assert!(restarts >= 3, "{restarts} restarts");
    stop.cancel();
}
