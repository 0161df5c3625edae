//! A worker process killed with SIGKILL in the middle of a build: its job fails within one
//! lease (the deployment says why), and the restarted worker reconnects, reports the containers
//! it runs (adopted by the control plane), has an unaccounted-for container stopped, and
//! reports a crash-looping container's restarts. Real Postgres, Podman and the `wh-worker`
//! binary; the control plane in-process with a short lease.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wh_control_plane::scheduler::SchedulerSettings;
use wh_control_plane::workers;
use wh_e2e::{app_repo, control_plane, git, insert_app, queue_deploy, wait_state};
use wh_testkit::podman::{Podman as TestPodman, LABEL};

/// The worker process, killed (SIGKILL) when dropped, so a failed assertion leaves none behind.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The worker's own label besides the testkit's: containers without it are not its business.
const SCOPE: &str = "wh.test.worker=crash";

fn spawn_worker(cp: std::net::SocketAddr, key: &str, run_id: &str) -> WorkerProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_e2e-worker"))
        .env("WH_CONTROL_PLANE_URL", format!("http://{cp}"))
        .env("WH_WORKER_KEY", key)
        .env("WH_HEARTBEAT_SECS", "1")
        // Stats rarely: deleting an app must stop its containers without waiting for a sample.
        .env("WH_STATS_SECS", "600")
        .env("WH_CONTAINER_LABELS", format!("{LABEL}={run_id},{SCOPE}"))
        .env("WH_LOG", "warn")
        // The test's repositories are local paths.
        .env("WH_ALLOW_PRIVATE_REPOS", "true")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    WorkerProcess(child)
}

/// Ids of this test run's containers matching `filter` (others on the host are not ours).
fn podman_ids(filter: &str) -> Vec<String> {
    let run = format!("label={LABEL}={}", TestPodman::get().unwrap().run_id());
    let out = Command::new("podman")
        .args(["ps", "-aq", "--no-trunc", "--filter", filter, "--filter", &run])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_fails_its_job_within_the_lease_and_reports_its_containers_on_return() {
    let wh_e2e::Start { kit, base, db } = wh_e2e::start().await;
    let pool = db.pool.clone();

    let stop = CancellationToken::new();
    let lease = Duration::from_secs(4);
    let sched = SchedulerSettings {
        lease,
        heartbeat_interval: Duration::from_secs(1),
        drain: Duration::from_secs(1),
        ..SchedulerSettings::default()
    };
    let (cp, cp_state) = control_plane(&pool, None, sched, &stop).await;

    let (worker, key) = workers::create(&pool, "crashy", "127.0.0.1").await.unwrap();
    let mut child = spawn_worker(cp, &key, kit.run_id());

    let user: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash) VALUES ('crash@example.test', 'x') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // The app serves and prints a line with the time every second.
    let repo = app_repo(&base, "<h1>first</h1>", true);
    std::fs::write(
        repo.path().join("Containerfile"),
        format!(
            "FROM {base}\nCOPY index.html /www/index.html\n\
             CMD [\"sh\", \"-c\", \"httpd -p $PORT -h /www; while true; do echo tick-$(date +%s); sleep 1; done\"]\n"
        ),
    )
    .unwrap();
    git(
        repo.path(),
        &["-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-qam", "ticks"],
    );
    let app = insert_app(&pool, user, "crashy", repo.path()).await;
    let first = queue_deploy(&pool, app, "crashy", repo.path()).await;
    let (state, error) =
        wait_state(&pool, first, &["live", "failed"], Duration::from_secs(90)).await;
    assert_eq!(state, "live", "{error:?}");
    let live_container = podman_ids(&format!("label=wh.deployment={first}"));
    assert_eq!(live_container.len(), 1);

    // A build that takes a while: the heartbeats keep its 4 s lease alive...
    // (a sleep of a length no other process uses, to find it among the host's processes)
    let step_secs = format!("{}", 800_000 + std::process::id() % 100_000);
    let step = ["sleep", step_secs.as_str()];
    // From a base of its own, to find its working container.
    let slow_base = kit.base_alias("wh-crash-slow").unwrap();
    std::fs::write(
        repo.path().join("Containerfile"),
        // Unique per run, so no earlier run's layer cache skips the sleep.
        format!(
            "FROM {slow_base}\nRUN echo slow-build-started {} && sleep {step_secs}\nCMD [\"sleep\", \"300\"]\n",
            kit.run_id()
        ),
    )
    .unwrap();
    git(
        repo.path(),
        &["-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-qam", "slow"],
    );
    let slow = queue_deploy(&pool, app, "crashy", repo.path()).await;
    let started = wh_testkit::within(Duration::from_secs(60), async || {
        let log: String = sqlx::query_scalar("SELECT build_log FROM deployments WHERE id = $1")
            .bind(slow)
            .fetch_one(&pool)
            .await
            .unwrap();
        log.contains("slow-build-started").then_some(())
    })
    .await;
    assert!(started.is_some(), "the slow build never started");
    tokio::time::sleep(lease + Duration::from_secs(1)).await;
    let (state, error) = wait_state(&pool, slow, &["failed"], Duration::ZERO).await;
    let log: String = sqlx::query_scalar("SELECT build_log FROM deployments WHERE id = $1")
        .bind(slow)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        state, "building",
        "a live worker's heartbeats keep a long build's lease: {error:?}\n{log}"
    );

    // ...until the worker dies mid-build.
    child.kill(); // SIGKILL
    let killed = Instant::now();
    let (state, error) = wait_state(&pool, slow, &["failed"], Duration::from_secs(30)).await;
    let took = killed.elapsed();
    assert_eq!(state, "failed");
    let error = error.unwrap_or_default();
    assert!(error.contains("stopped reporting"), "{error}");
    assert!(took <= lease + Duration::from_secs(3), "failed after {took:?}, lease {lease:?}");
    // Its build did not die with it: the RUN step still runs, unsupervised.
    assert!(
        !wh_testkit::procs::with_argv(&step).is_empty(),
        "the orphaned build's step is not running"
    );

    // While it is away: a container no deployment accounts for appears on its host.
    // ...and one of another worker's on the same Podman (without this worker's label).
    let outsider_name = format!("wh-outsider-{}", kit.run_id());
    let outsider = kit
        .run_detached(
            &[
                "--name",
                &outsider_name,
                "--label",
                "wh.app=crashy",
                "--label",
                "wh.deployment=999998",
            ],
            &base,
            &["sleep", "300"],
        )
        .unwrap();
    let ghost_name = format!("wh-ghost-{}", kit.run_id());
    let ghost = kit
        .run_detached(
            &[
                "--name",
                &ghost_name,
                "--label",
                "wh.app=crashy",
                "--label",
                "wh.deployment=999999",
                "--label",
                SCOPE,
            ],
            &base,
            &["sleep", "300"],
        )
        .unwrap();

    // The worker comes back: reconnects, reports its containers; the live one is adopted and
    // the ghost stopped.
    let restarted_at = wh_control_plane::now_ms() / 1000;
    let mut child = spawn_worker(cp, &key, kit.run_id());
    let adopted = wh_testkit::within(Duration::from_secs(30), async || {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT container_id, state FROM containers WHERE worker_id = $1 AND deployment_id = $2",
        )
        .bind(worker.id)
        .bind(first)
        .fetch_all(&pool)
        .await
        .unwrap();
        (!rows.is_empty()).then_some(rows)
    })
    .await
    .expect("the restarted worker never reported its live container");
    assert_eq!(adopted, vec![(live_container[0].clone(), "running".to_owned())]);
    let ghost_gone = wh_testkit::within(Duration::from_secs(30), async || {
        podman_ids(&format!("name={ghost_name}")).is_empty().then_some(())
    })
    .await;
    assert!(ghost_gone.is_some(), "the unaccounted-for container {} still exists", ghost.id);
    assert_eq!(
        podman_ids(&format!("name={outsider_name}")).len(),
        1,
        "another worker's container was touched"
    );
    drop(outsider);
    // ...and the build the killed worker left running is gone.
    let orphan_gone = wh_testkit::within(Duration::from_secs(10), async || {
        wh_testkit::procs::with_argv(&step).is_empty().then_some(())
    })
    .await;
    assert!(orphan_gone.is_some(), "the dead worker's build still runs");
    // Issue 12, item C24: and so is the working container Podman kept for it.
    let working = kit.working_containers(&slow_base).unwrap();
    assert!(working.is_empty(), "the dead worker's build left working containers {working:?}");
    assert_eq!(
        podman_ids(&format!("label=wh.deployment={first}")),
        live_container,
        "the live app keeps running through the worker's restart"
    );
    // The restarted worker follows the adopted container's output again (new lines only).
    let followed = wh_testkit::within(Duration::from_secs(20), async || {
        cp_state
            .logs
            .recent(app, 200)
            .iter()
            .filter_map(|e| e.line.strip_prefix("tick-")?.trim().parse::<i64>().ok())
            .any(|t| t > restarted_at + 1)
            .then_some(())
    })
    .await;
    assert!(followed.is_some(), "no output of the adopted container after the restart");

    // A crash-looping container of the live deployment: its exits and restarts reach the
    // control plane with the count.
    let looping = kit
        .run_detached(
            &[
                "--restart",
                "on-failure:3",
                "--label",
                "wh.app=crashy",
                "--label",
                &format!("wh.deployment={first}"),
                "--label",
                SCOPE,
            ],
            &base,
            &["sh", "-c", "sleep 1; exit 3"],
        )
        .unwrap();
    let restarts = wh_testkit::within(Duration::from_secs(30), async || {
        let row: Option<(i32, Option<i32>)> = sqlx::query_as(
            "SELECT restarts, exit_code FROM containers WHERE container_id = $1 AND restarts >= 2",
        )
        .bind(&looping.id)
        .fetch_optional(&pool)
        .await
        .unwrap();
        row
    })
    .await;
    assert_eq!(restarts.map(|r| r.1), Some(Some(3)), "restart events not recorded");

    // Deleting the app stops its containers at once (the next stats sample is ten minutes away;
    // the app's `sh` ignores SIGTERM, so removal takes the 10 s grace).
    let token = wh_control_plane::auth::create_api_token(&pool, user, "t").await.unwrap();
    let resp = wh_testkit::http::request(
        "DELETE",
        &format!("http://{cp}/api/v1/apps/crashy"),
        None,
        &[],
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 204, "{}", resp.text());
    let stopped = wh_testkit::within(Duration::from_secs(30), async || {
        podman_ids("label=wh.app=crashy").is_empty().then_some(())
    })
    .await;
    assert!(
        stopped.is_some(),
        "the deleted app's containers still run: {:?}",
        podman_ids("label=wh.app=crashy")
    );

    child.kill();
    stop.cancel();
}
