//! Rollbacks end to end: `POST /api/v1/apps/{slug}/deployments {"rollback_to": N}` runs
//! deployment N's image again when its worker still has it (no build), and rebuilds N's exact
//! commit when the image is gone. Real Postgres, control plane, worker with Podman, wh-proxy.

use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wh_control_plane::testing::fixtures;

use wh_e2e::{app_repo, git, insert_app, queue_deploy, wait_state};

async fn page(platform: &wh_e2e::Platform, want: &str) -> Option<String> {
    wh_testkit::within(Duration::from_secs(10), async || {
        let r = wh_e2e::through_proxy(platform, "roll", "/").await.ok()?;
        let text = r.text();
        (r.status == 200 && text.contains(want)).then_some(text)
    })
    .await
}

async fn build_log(pool: &sqlx::PgPool, id: i64) -> String {
    sqlx::query_scalar("SELECT build_log FROM deployments WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_reuses_the_image_it_still_has_and_rebuilds_the_commit_it_does_not() {
    let wh_e2e::Start { base, db, .. } = wh_e2e::start().await;
    let pool = db.pool.clone();
    let stop = CancellationToken::new();
    let platform = wh_e2e::platform(&pool, Duration::from_secs(5), &stop).await;
    let (user, bearer) = fixtures::user_with_token(&pool, "roll@example.test").await;
    let repo = app_repo(&base, "<h1>v1</h1>", true);
    let app = insert_app(&pool, user, "roll", repo.path()).await;
    let v1 = queue_deploy(&pool, app, "roll", repo.path()).await;
    assert_eq!(wait_state(&pool, v1, &["live", "failed"], Duration::from_secs(90)).await.0, "live");
    std::fs::write(repo.path().join("index.html"), "<h1>v2</h1>").unwrap();
    git(
        repo.path(),
        &["-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-qam", "v2"],
    );
    let v2 = queue_deploy(&pool, app, "roll", repo.path()).await;
    assert_eq!(wait_state(&pool, v2, &["live", "failed"], Duration::from_secs(90)).await.0, "live");
    assert!(page(&platform, "v2").await.is_some(), "v2 is served");
    let v2_commit: Option<String> =
        sqlx::query_scalar("SELECT commit_sha FROM deployments WHERE id = $1")
            .bind(v2)
            .fetch_one(&pool)
            .await
            .unwrap();
    let head = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(repo.path()).output();
    let head = String::from_utf8(head.unwrap().stdout).unwrap().trim().to_owned();
    assert_eq!(v2_commit.as_deref(), Some(head.as_str()), "the worker reports the commit it built");

    // The branch moves on; a rollback to v1 runs v1's image, not the branch.
    std::fs::write(repo.path().join("index.html"), "<h1>v3, never deployed</h1>").unwrap();
    git(
        repo.path(),
        &["-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-qam", "v3"],
    );
    let path = "/api/v1/apps/roll/deployments";
    let api = |body: serde_json::Value| platform.api(&bearer, "POST", path, body);
    let (status, back) = api(serde_json::json!({"rollback_to": v1})).await;
    assert_eq!(status, 201, "{back}");
    assert_eq!(back["rollback_of"], v1);
    let r1 = back["id"].as_i64().unwrap();
    let (state, error) = wait_state(&pool, r1, &["live", "failed"], Duration::from_secs(60)).await;
    assert_eq!(state, "live", "{error:?}");
    assert!(page(&platform, "v1").await.is_some(), "the rollback serves v1");
    let log = build_log(&pool, r1).await;
    assert!(log.contains(&format!("reusing the image of deployment {v1}")), "{log}");
    assert!(!log.contains("COPY index.html"), "nothing was built: {log}");

    // v2's image is gone (its container was retired after the rollback): rolling back to v2
    // rebuilds v2's commit, not the branch's head (v3).
    let gone = wh_testkit::until(Duration::from_secs(20), async || {
        Command::new("podman")
            .args(["rmi", &format!("localhost/wh-roll:{v2}")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .await;
    assert!(gone, "v2's image could not be removed");
    let (status, back) = api(serde_json::json!({"rollback_to": v2})).await;
    assert_eq!(status, 201, "{back}");
    let r2 = back["id"].as_i64().unwrap();
    let (state, error) = wait_state(&pool, r2, &["live", "failed"], Duration::from_secs(90)).await;
    assert_eq!(state, "live", "{error:?}");
    let served = page(&platform, "v2").await;
    assert!(served.is_some(), "the rebuilt rollback serves v2's commit");
    let log = build_log(&pool, r2).await;
    assert!(log.contains("building its commit again"), "{log}");

    // A rollback to a rollback runs the image that one ran (v1's); one to the rebuilt
    // rollback, the image it built.
    let (status, back) = api(serde_json::json!({"rollback_to": r1})).await;
    assert_eq!(status, 201, "{back}");
    let r3 = back["id"].as_i64().unwrap();
    assert_eq!(wait_state(&pool, r3, &["live", "failed"], Duration::from_secs(60)).await.0, "live");
    assert!(build_log(&pool, r3).await.contains(&format!("reusing the image of deployment {v1}")));
    assert!(page(&platform, "v1").await.is_some());
    let (status, back) = api(serde_json::json!({"rollback_to": r2})).await;
    assert_eq!(status, 201, "{back}");
    let r4 = back["id"].as_i64().unwrap();
    assert_eq!(wait_state(&pool, r4, &["live", "failed"], Duration::from_secs(60)).await.0, "live");
    assert!(build_log(&pool, r4).await.contains(&format!("reusing the image of deployment {r2}")));
    assert!(page(&platform, "v2").await.is_some());

    // Refused with a reason: what never went live, another app's deployment, both fields.
    let (status, err) = api(serde_json::json!({"rollback_to": 999_999})).await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("rollback_to")), "{err}");
    let (status, err) = api(serde_json::json!({"rollback_to": v1, "ref": "main"})).await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("rollback_to")), "{err}");
    stop.cancel();
}
