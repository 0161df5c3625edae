//! Deploys that end early end on the worker too (issue 12, item C20): cancelling through the
//! API stops a running build (its RUN step included) and removes a container still being
//! health-checked; a deployment that times out while queued has its job cancelled, so no
//! container is built for it later. Real Postgres, control plane, worker and Podman.

use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wh_control_plane::scheduler::SchedulerSettings;
use wh_testkit::podman::LABEL;

use wh_e2e::{control_plane, git, insert_app, queue_deploy, wait_state};

/// A repository whose build runs `build` and whose container runs `cmd`.
fn repo(base: &str, build: &str, cmd: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Containerfile"),
        format!("FROM {base}\nRUN {build}\nCMD [\"sh\", \"-c\", \"{cmd}\"]\n"),
    )
    .unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    let who = ["-c", "user.email=t@example.test", "-c", "user.name=t"];
    git(dir.path(), &[&who[..], &["add", "."]].concat());
    git(dir.path(), &[&who[..], &["commit", "-q", "-m", "app"]].concat());
    dir
}

/// Whether a host process's command line contains `marker`.
fn process_running(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()).any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(marker))
            .unwrap_or(false)
    })
}

fn containers_of(deployment: i64, run_id: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args(["ps", "-aq", "--filter", &format!("label=wh.deployment={deployment}")])
        .args(["--filter", &format!("label={LABEL}={run_id}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
}

/// `POST /api/v1/deployments/{id}/cancel` with `token`; the status.
async fn cancel(cp: std::net::SocketAddr, token: &str, deployment: i64) -> u16 {
    let url = format!("http://{cp}/api/v1/deployments/{deployment}/cancel");
    let auth = format!("Bearer {token}");
    wh_testkit::http::request("POST", &url, None, &[], &[("authorization", &auth)])
        .await
        .unwrap()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_the_build_and_the_container_and_an_expired_job_never_runs() {
    let wh_e2e::Start { kit, base, db } = wh_e2e::start().await;
    let pool = db.pool.clone();
    let stop = CancellationToken::new();
    let (cp, _) = control_plane(&pool, None, SchedulerSettings::default(), &stop).await;
    let user: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash) VALUES ('c@example.test', 'x') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let token = wh_control_plane::auth::create_api_token(&pool, user, "t").await.unwrap();

    // Item C20 (expiry): a deployment that timed out while queued (no worker yet) has its job
    // cancelled, so the worker that connects later never builds it.
    let never = repo(&base, "true", "sleep 300");
    let late_app = insert_app(&pool, user, "too-late", never.path()).await;
    let late = queue_deploy(&pool, late_app, "too-late", never.path()).await;
    sqlx::query(
        "UPDATE deployments SET state_deadline = now() - interval '1 second' WHERE id = $1",
    )
    .bind(late)
    .execute(&pool)
    .await
    .unwrap();
    let (state, _) = wait_state(&pool, late, &["failed"], Duration::from_secs(10)).await;
    assert_eq!(state, "failed");
    let job_state: String =
        sqlx::query_scalar("SELECT state::text FROM jobs WHERE deployment_id = $1")
            .bind(late)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(job_state, "cancelled", "the expired deployment's job would still run");

    let (health, stats) = (Duration::from_secs(120), Duration::from_secs(60));
    wh_e2e::local_worker(&pool, cp, "canceller", health, stats, &stop).await;

    // A build whose RUN step would take five minutes: cancelled while it runs.
    let marker = format!("sleep 2{}", std::process::id() % 1000);
    // From a base of its own, to find its working container.
    let slow_base = kit.base_alias("wh-cancel-slow").unwrap();
    let slow = repo(&slow_base, &format!("echo building; {marker}"), "sleep 300");
    let app = insert_app(&pool, user, "slow-build", slow.path()).await;
    let building = queue_deploy(&pool, app, "slow-build", slow.path()).await;
    assert!(
        wh_testkit::until(Duration::from_secs(90), async || process_running(&marker)).await,
        "the build's RUN step never started"
    );
    assert_eq!(cancel(cp, &token, building).await, 200);
    assert!(
        wh_testkit::until(Duration::from_secs(20), async || !process_running(&marker)).await,
        "the cancelled build's RUN step is still running"
    );
    let (state, _) = wait_state(&pool, building, &["cancelled"], Duration::from_secs(1)).await;
    assert_eq!(state, "cancelled");
    // Issue 12, item C24: the killed build's working container goes with it.
    assert!(
        wh_testkit::until(Duration::from_secs(10), async || kit
            .working_containers(&slow_base)
            .unwrap()
            .is_empty())
        .await,
        "the cancelled build left its working container"
    );

    // A container that never answers its health check: cancelled while starting.
    let deaf = repo(&base, "true", "echo up; sleep 300");
    let app = insert_app(&pool, user, "deaf", deaf.path()).await;
    let starting = queue_deploy(&pool, app, "deaf", deaf.path()).await;
    let (state, error) = wait_state(&pool, starting, &["starting"], Duration::from_secs(90)).await;
    assert_eq!(state, "starting", "{error:?}");
    assert!(
        wh_testkit::until(Duration::from_secs(30), async || !containers_of(starting, kit.run_id())
            .is_empty())
        .await,
        "the container never started"
    );
    assert_eq!(cancel(cp, &token, starting).await, 200);
    assert!(
        wh_testkit::until(Duration::from_secs(20), async || containers_of(starting, kit.run_id())
            .is_empty())
        .await,
        "the cancelled deployment's container is still there"
    );
    assert!(containers_of(late, kit.run_id()).is_empty(), "the expired deployment was built");
    stop.cancel();
}
