//! Push to deploy end to end: a signed GitHub push delivery to the app's webhook deploys
//! exactly the pushed commit (not the branch's newer head), live through wh-proxy. Real
//! Postgres, control plane, worker with Podman, a git repository on disk, wh-proxy.

use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wh_control_plane::githooks::{verify, Provider};
use wh_control_plane::testing::fixtures;

use wh_e2e::{app_repo, git, insert_app, wait_state};

fn commit(repo: &std::path::Path, page: &str) -> String {
    std::fs::write(repo.join("index.html"), page).unwrap();
    git(repo, &["-c", "user.email=t@example.test", "-c", "user.name=Tess", "commit", "-qam", page]);
    let out = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(repo).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_deploys_exactly_its_commit_behind_the_proxy() {
    let wh_e2e::Start { base, db, .. } = wh_e2e::start().await;
    let pool = db.pool.clone();
    let stop = CancellationToken::new();
    let platform = wh_e2e::platform(&pool, Duration::from_secs(5), &stop).await;
    let cp = platform.cp;
    let (user, bearer) = fixtures::user_with_token(&pool, "push@example.test").await;
    let repo = app_repo(&base, "<h1>v1</h1>", true);
    insert_app(&pool, user, "pushed", repo.path()).await;
    let (status, hook) = platform
        .api(
            &bearer,
            "POST",
            "/api/v1/apps/pushed/hooks",
            serde_json::json!({"provider": "github"}),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let (path, secret) = (hook["path"].as_str().unwrap(), hook["secret"].as_str().unwrap());

    // Two commits land; the push delivery names the first. The second must not be deployed.
    let pushed = commit(repo.path(), "<h1>v2, pushed</h1>");
    let newer = commit(repo.path(), "<h1>v3, not pushed yet</h1>");
    assert_ne!(pushed, newer);
    let delivery = serde_json::json!({
        "ref": "refs/heads/main", "after": pushed, "deleted": false,
        "head_commit": {"id": pushed, "message": "v2, pushed", "author": {"name": "Tess", "email": "t@example.test"}}
    })
    .to_string();
    let signature = verify::sign(Provider::Github, secret.as_bytes(), delivery.as_bytes());
    let signature = String::from_utf8(signature).unwrap();
    let hook_headers = [
        ("content-type", "application/json"),
        ("x-github-event", "push"),
        ("x-github-delivery", "e2e-1"),
        ("x-hub-signature-256", signature.as_str()),
    ];
    let url = format!("http://{cp}{path}");
    let answer =
        wh_testkit::http::request("POST", &url, Some(delivery.clone().into()), &[], &hook_headers)
            .await
            .unwrap();
    assert_eq!(answer.status, 202, "{}", answer.text());
    let out: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let deployment = out["deployments"][0].as_i64().unwrap();

    let (state, error) =
        wait_state(&pool, deployment, &["live", "failed"], Duration::from_secs(90)).await;
    assert_eq!(state, "live", "{error:?}");
    let page = wh_testkit::within(Duration::from_secs(10), async || {
        let r = wh_e2e::through_proxy(&platform, "pushed", "/").await.ok()?;
        (r.status == 200 && r.text().contains("v2")).then(|| r.text())
    })
    .await;
    assert_eq!(
        page.as_deref().map(str::trim),
        Some("<h1>v2, pushed</h1>"),
        "the pushed commit is served"
    );
    let (commit_sha, message): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT commit_sha, commit_message FROM deployments WHERE id = $1")
            .bind(deployment)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (commit_sha.as_deref(), message.as_deref()),
        (Some(pushed.as_str()), Some("v2, pushed"))
    );

    // The same delivery again: refused, nothing new queued.
    let again = wh_testkit::http::request("POST", &url, Some(delivery.into()), &[], &hook_headers)
        .await
        .unwrap();
    assert_eq!(again.status, 409, "{}", again.text());
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deployments").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 1);
    stop.cancel();
}

/// A monorepo: the app builds `site/` (its own Containerfile and page), not the repository's
/// root, which has neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monorepo_app_builds_its_root_directory() {
    let wh_e2e::Start { base, db, .. } = wh_e2e::start().await;
    let pool = db.pool.clone();
    let stop = CancellationToken::new();
    let platform = wh_e2e::platform(&pool, Duration::from_secs(5), &stop).await;
    let (user, bearer) = fixtures::user_with_token(&pool, "mono@example.test").await;
    let repo = tempfile::tempdir().unwrap();
    let site = repo.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        site.join("Containerfile"),
        format!("FROM {base}\nCOPY index.html /www/index.html\nCMD [\"sh\", \"-c\", \"exec httpd -f -p $PORT -h /www\"]\n"),
    )
    .unwrap();
    std::fs::write(site.join("index.html"), "<h1>from site/</h1>").unwrap();
    std::fs::write(repo.path().join("README.md"), "a monorepo").unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "."]);
    git(
        repo.path(),
        &["-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-qm", "mono"],
    );
    insert_app(&pool, user, "mono", repo.path()).await;

    let (status, app) = platform
        .api(&bearer, "PATCH", "/api/v1/apps/mono", serde_json::json!({"root_dir": "site"}))
        .await;
    assert_eq!(status, 200, "{app}");
    let (status, d) =
        platform.api(&bearer, "POST", "/api/v1/apps/mono/deployments", serde_json::json!({})).await;
    assert_eq!(status, 201, "{d}");
    let id = d["id"].as_i64().unwrap();
    let (state, error) = wait_state(&pool, id, &["live", "failed"], Duration::from_secs(90)).await;
    assert_eq!(state, "live", "{error:?}");
    let page = wh_testkit::within(Duration::from_secs(10), async || {
        let r = wh_e2e::through_proxy(&platform, "mono", "/").await.ok()?;
        (r.status == 200).then(|| r.text())
    })
    .await;
    assert_eq!(page.as_deref(), Some("<h1>from site/</h1>"));

    // A root directory that leads out of the repository fails the deploy with the reason.
    std::os::unix::fs::symlink("/etc", repo.path().join("out")).unwrap();
    git(repo.path(), &["add", "out"]);
    git(
        repo.path(),
        &["-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-qm", "out"],
    );
    let (status, _) = platform
        .api(&bearer, "PATCH", "/api/v1/apps/mono", serde_json::json!({"root_dir": "out"}))
        .await;
    assert_eq!(status, 200);
    let (_, d) =
        platform.api(&bearer, "POST", "/api/v1/apps/mono/deployments", serde_json::json!({})).await;
    let (state, error) =
        wait_state(&pool, d["id"].as_i64().unwrap(), &["live", "failed"], Duration::from_secs(90))
            .await;
    assert_eq!(state, "failed");
    assert!(error.unwrap_or_default().contains("leads out of the repository"));
    stop.cancel();
}
