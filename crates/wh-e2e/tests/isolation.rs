//! The platform holds against its own tenants and workers (issue 12): hostile tenant output,
//! a panicking subsystem, and workers acting on what is not theirs. Real Postgres, the control
//! plane's real hub and scheduler, and the worker's real transport as the (possibly hostile)
//! worker.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wh_control_plane::scheduler::SchedulerSettings;
use wh_control_plane::{workers, AppState};
use wh_worker::transport::{Endpoint, Transport, TransportConfig};
use wh_wsproto::messages::{Capacity, Heartbeat, Hello, HostStats, JobAssign, LogLine, LogLines};
use wh_wsproto::messages::{JobRef, JobResult, Stream};
use wh_wsproto::Message;

struct Platform {
    addr: std::net::SocketAddr,
    state: AppState,
    pool: sqlx::PgPool,
    stop: CancellationToken,
    _db: wh_testkit::postgres::TestDatabase,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn platform(sched: SchedulerSettings) -> Platform {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let stop = CancellationToken::new();
    let (addr, state) = wh_e2e::control_plane(&db.pool, None, sched, &stop).await;
    Platform { addr, state, pool: db.pool.clone(), stop, _db: db }
}

/// A worker speaking the real protocol, whose every message the test chooses.
struct FakeWorker {
    id: uuid::Uuid,
    key: String,
    transport: Arc<Transport>,
    inbound: mpsc::Receiver<Message>,
    /// Ends this worker's connection (and its transport) for good.
    stop: CancellationToken,
}

impl FakeWorker {
    async fn connect(p: &Platform, name: &str) -> FakeWorker {
        let (_, key) = workers::create(&p.pool, name, "127.0.0.1").await.unwrap();
        Self::with_key(p, &key, name).await
    }

    /// A worker process with an existing key (a restart), running no jobs.
    async fn with_key(p: &Platform, key: &str, name: &str) -> FakeWorker {
        let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM workers WHERE name = $1")
            .bind(name)
            .fetch_one(&p.pool)
            .await
            .unwrap();
        let (transport, inbound) = Transport::new(TransportConfig::new(
            Endpoint::parse(&format!("http://{}", p.addr), None).unwrap(),
            key.to_owned(),
        ));
        let hello = |id: &str| Hello {
            worker_id: id.into(),
            version: "t".into(),
            capacity: Capacity::default(),
            containers: vec![],
            running_jobs: vec![],
        };
        let stop = p.stop.child_token();
        tokio::spawn(transport.clone().run(hello, stop.clone()));
        transport.send(Message::Heartbeat(Heartbeat {
            stats: HostStats { memory_total_mb: 100, ..Default::default() },
            running_jobs: vec![],
        }));
        let hub = p.state.hub.clone();
        let connected = wh_testkit::within(Duration::from_secs(10), async || {
            hub.health().get(&id).filter(|h| h.connected && h.last_heartbeat.is_some()).cloned()
        })
        .await;
        assert!(connected.is_some(), "worker {name} never connected");
        FakeWorker { id, key: key.to_owned(), transport, inbound, stop }
    }

    /// The next job assigned to this worker, within `limit`.
    async fn assigned(&mut self, limit: Duration) -> Option<JobAssign> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(until, self.inbound.recv()).await {
                Ok(Some(Message::JobAssign(a))) => return Some(a),
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return None,
            }
        }
    }

    fn finish(&self, job: &JobAssign, ok: bool) {
        self.transport.send(Message::JobResult(JobResult {
            job_id: job.job_id,
            attempt: job.attempt,
            ok,
            error: (!ok).then(|| "failed on purpose".into()),
            output: None,
        }));
    }
}

/// An app of a fresh user (`slug`) and a queued deployment of it: (app, deployment, job).
async fn deployment(pool: &sqlx::PgPool, slug: &str) -> (i64, i64, i64) {
    let user: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id",
    )
    .bind(format!("{slug}@example.test"))
    .fetch_one(pool)
    .await
    .unwrap();
    let repo = std::path::Path::new("/nonexistent/repo");
    let app = wh_e2e::insert_app(pool, user, slug, repo).await;
    let deployment = wh_e2e::queue_deploy(pool, app, slug, repo).await;
    let job = sqlx::query_scalar("SELECT id FROM jobs WHERE deployment_id = $1")
        .bind(deployment)
        .fetch_one(pool)
        .await
        .unwrap();
    (app, deployment, job)
}

async fn job_state(pool: &sqlx::PgPool, job: i64) -> String {
    sqlx::query_scalar("SELECT state::text FROM jobs WHERE id = $1")
        .bind(job)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn deployment_state(pool: &sqlx::PgPool, deployment: i64) -> String {
    sqlx::query_scalar("SELECT state::text FROM deployments WHERE id = $1")
        .bind(deployment)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// `w` finishes `job` and the result is recorded.
async fn completes(p: &Platform, w: &FakeWorker, job: &JobAssign) {
    w.transport.send(Message::JobAck(JobRef { job_id: job.job_id, attempt: job.attempt }));
    w.finish(job, true);
    let done = wh_testkit::within(Duration::from_secs(10), async || {
        (job_state(&p.pool, job.job_id).await == "succeeded").then_some(())
    })
    .await;
    assert!(done.is_some(), "the job's result was not recorded");
}

/// A new deployment is placed on `w` and its result completes it: scheduling works.
async fn scheduling_works(p: &Platform, w: &mut FakeWorker, slug: &str) {
    let (_, _, job) = deployment(&p.pool, slug).await;
    let assign = w.assigned(Duration::from_secs(10)).await.expect("no job was placed");
    assert_eq!(assign.job_id, job);
    completes(p, w, &assign).await;
}

fn lines(app: &str, deployment: i64, lines: &[&str]) -> Message {
    Message::LogLines(LogLines {
        app: app.into(),
        deployment_id: Some(deployment),
        lines: lines
            .iter()
            .enumerate()
            .map(|(i, l)| LogLine { ts_ms: i as i64, stream: Stream::Build, line: (*l).into() })
            .collect(),
        dropped: 0,
    })
}

/// Item A1: a build line that `String::truncate` would cut inside a character used to panic the
/// scheduler; every worker's messages and all placement stopped with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_log_line_does_not_stop_scheduling() {
    let p = platform(SchedulerSettings::default()).await;
    let mut w = FakeWorker::connect(&p, "w1").await;
    let (app, deployment, _) = deployment(&p.pool, "victim").await;
    let job = w.assigned(Duration::from_secs(10)).await.expect("no job was placed");
    let hostile = format!("a{}", "é".repeat(9000));
    w.transport.send(lines("victim", deployment, &[&hostile, "nul \0 byte"]));
    let logs = p.state.logs.clone();
    let kept = wh_testkit::within(Duration::from_secs(10), async || {
        let l = logs.recent(app, 10);
        (l.len() == 2).then_some(l)
    })
    .await
    .expect("the lines never reached the log bus");
    assert!(hostile.starts_with(&kept[0].line) && kept[0].line.len() <= 16 * 1024);
    assert_eq!(kept[1].line, "nul \u{FFFD} byte");
    let build_log: String = sqlx::query_scalar("SELECT build_log FROM deployments WHERE id = $1")
        .bind(deployment)
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert!(build_log.ends_with("nul \u{FFFD} byte\n"), "the build log lost the lines");
    completes(&p, &w, &job).await;
    scheduling_works(&p, &mut w, "next").await;
}

/// Item A2: the scheduler is supervised; a panic inside it is logged and it starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_scheduler_is_survived() {
    let sched = SchedulerSettings::default();
    let inject = sched.inject_panic.clone();
    let p = platform(sched).await;
    let mut w = FakeWorker::connect(&p, "w1").await;
    let before = wh_cmd::restarts().get("scheduler").copied().unwrap_or(0);
    inject.store(true, SeqCst);
    let panicked = wh_testkit::within(Duration::from_secs(10), async || {
        (wh_cmd::restarts().get("scheduler").copied().unwrap_or(0) > before).then_some(())
    })
    .await;
    assert!(panicked.is_some() && !inject.load(SeqCst), "the injected panic never happened");
    scheduling_works(&p, &mut w, "after-panic").await;
}

/// Item B14: worker B reports on worker A's job (progress, result with B's port, log lines,
/// a container event): all refused and counted; A's own reports still apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cannot_report_on_another_workers_job() {
    let p = platform(SchedulerSettings::default()).await;
    let mut a = FakeWorker::connect(&p, "a").await;
    let (app, deployment, _) = deployment(&p.pool, "owned").await;
    let job = a.assigned(Duration::from_secs(10)).await.expect("no job was placed on a");
    let b = FakeWorker::connect(&p, "b").await;
    b.transport.send(Message::JobProgress(wh_wsproto::messages::JobProgress {
        job_id: job.job_id,
        attempt: job.attempt,
        stage: wh_wsproto::job::Stage::Healthy,
        message: String::new(),
    }));
    b.transport.send(Message::JobResult(JobResult {
        job_id: job.job_id,
        attempt: job.attempt,
        ok: true,
        error: None,
        output: Some(wh_wsproto::job::JobOutput::Deploy(wh_wsproto::job::DeployOutput::started(
            31999,
            "c-test".into(),
        ))),
    }));
    b.transport.send(lines("owned", deployment, &["forged by b"]));
    b.transport.send(Message::ContainerEvent(wh_wsproto::messages::ContainerEvent {
        container_id: "forged".into(),
        app: "owned".into(),
        deployment_id: deployment,
        event: wh_wsproto::messages::ContainerEventKind::Started,
        exit_code: None,
        restarts: 0,
    }));
    let hub = p.state.hub.clone();
    let counted = wh_testkit::within(Duration::from_secs(10), async || {
        (hub.rejections().get("not_yours").copied().unwrap_or(0) >= 4).then_some(())
    })
    .await;
    assert!(counted.is_some(), "refusals: {:?}", hub.rejections());
    assert_eq!(job_state(&p.pool, job.job_id).await, "claimed");
    assert_eq!(deployment_state(&p.pool, deployment).await, "queued");
    assert!(p.state.logs.recent(app, 10).is_empty(), "b's lines reached a's app");
    let containers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM containers").fetch_one(&p.pool).await.unwrap();
    assert_eq!(containers, 0, "b's container event was recorded");
    // The job is still a's: its result makes the deployment live on a, not on b.
    a.transport.send(Message::JobResult(JobResult {
        job_id: job.job_id,
        attempt: job.attempt,
        ok: true,
        error: None,
        output: Some(wh_wsproto::job::JobOutput::Deploy(wh_wsproto::job::DeployOutput::started(
            31001,
            "c-test".into(),
        ))),
    }));
    let live = wh_testkit::within(Duration::from_secs(10), async || {
        let row: (String, Option<uuid::Uuid>, Option<i32>) = sqlx::query_as(
            "SELECT state::text, worker_id, host_port FROM deployments WHERE id = $1",
        )
        .bind(deployment)
        .fetch_one(&p.pool)
        .await
        .unwrap();
        (row.0 == "live").then_some(row)
    })
    .await
    .expect("a's result did not make the deployment live");
    assert_eq!((live.1, live.2), (Some(a.id), Some(31001)));
}

/// Items A6 and C20: a deploy job's secrets (env vars, repository credentials) travel only in
/// its assignment, never in the stored job; a secret that does not open fails the deployment at
/// once with the reason (it used to wait 10 minutes and time out "while queued").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_ride_only_in_the_assignment_and_a_broken_one_fails_the_deploy_at_once() {
    let p = platform(SchedulerSettings::default()).await;
    let mut w = FakeWorker::connect(&p, "w1").await;
    let sealer = p.state.env.clone();
    // Sealed before the deployment exists, so the job is placed with them.
    let user: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash) VALUES ('s@example.test', 'x') RETURNING id",
    )
    .fetch_one(&p.pool)
    .await
    .unwrap();
    let repo = std::path::Path::new("/nonexistent/repo");
    let app = wh_e2e::insert_app(&p.pool, user, "secretive", repo).await;
    sqlx::query("UPDATE apps SET repo_auth_sealed = $2 WHERE id = $1")
        .bind(app)
        .bind(sealer.seal(b"me:repo-token", app))
        .execute(&p.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO env_vars (app_id, key, value_sealed) VALUES ($1, 'GREETING', $2)")
        .bind(app)
        .bind(sealer.seal(b"env-secret", app))
        .execute(&p.pool)
        .await
        .unwrap();
    let deployment = wh_e2e::queue_deploy(&p.pool, app, "secretive", repo).await;
    let job = w.assigned(Duration::from_secs(10)).await.expect("no job was placed");
    let payload = job.job.payload();
    assert_eq!(payload["repo_auth"], "me:repo-token");
    assert_eq!(payload["env"]["GREETING"], "env-secret");
    let stored: serde_json::Value = sqlx::query_scalar("SELECT payload FROM jobs WHERE id = $1")
        .bind(job.job_id)
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert!(stored.get("repo_auth").is_none() && stored.get("env").is_none(), "{stored}");
    completes(&p, &w, &job).await;
    // The deployment is finished just after the job (a transaction of its own).
    let live = wh_testkit::within(Duration::from_secs(10), async || {
        (deployment_state(&p.pool, deployment).await == "live").then_some(())
    })
    .await;
    assert!(
        live.is_some(),
        "the deployment did not go live: {}",
        deployment_state(&p.pool, deployment).await
    );

    // An env var sealed for another app does not open here.
    let (broken, broken_deployment, broken_job) = {
        let app2 = wh_e2e::insert_app(&p.pool, user, "broken-secret", repo).await;
        sqlx::query("INSERT INTO env_vars (app_id, key, value_sealed) VALUES ($1, 'K', $2)")
            .bind(app2)
            .bind(sealer.seal(b"v", app2 + 1000))
            .execute(&p.pool)
            .await
            .unwrap();
        let d = wh_e2e::queue_deploy(&p.pool, app2, "broken-secret", repo).await;
        let j: i64 = sqlx::query_scalar("SELECT id FROM jobs WHERE deployment_id = $1")
            .bind(d)
            .fetch_one(&p.pool)
            .await
            .unwrap();
        (app2, d, j)
    };
    let _ = broken;
    let failed = wh_testkit::within(Duration::from_secs(10), async || {
        let (state, error): (String, Option<String>) =
            sqlx::query_as("SELECT state::text, error FROM deployments WHERE id = $1")
                .bind(broken_deployment)
                .fetch_one(&p.pool)
                .await
                .unwrap();
        (state == "failed").then_some(error)
    })
    .await
    .expect("the deployment did not fail at once");
    assert!(failed.unwrap_or_default().contains("cannot open the app's env var K"));
    assert_eq!(job_state(&p.pool, broken_job).await, "failed");
    assert!(w.assigned(Duration::from_millis(500)).await.is_none(), "the broken job was sent");
}

/// Item B18: at `WH_LOG=trace` the real `wh-worker` binary logs nothing secret. The WebSocket
/// library logged every frame at trace (`job.assign` with its decrypted env vars) and the
/// upgrade request with the bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_level_prints_a_secret() {
    const SECRET: &str = "env-secret-never-logged";
    let p = platform(SchedulerSettings::default()).await;
    let (_, key) = workers::create(&p.pool, "traced", "127.0.0.1").await.unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_e2e-worker"))
        .env("WH_CONTROL_PLANE_URL", format!("http://{}", p.addr))
        .env("WH_WORKER_KEY", &key)
        .env("WH_HEARTBEAT_SECS", "1")
        .env("WH_ALLOW_PRIVATE_REPOS", "true")
        .env("WH_CONTAINER_LABELS", "wh.test.isolation=b18")
        .env("WH_LOG", "trace")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all).await;
        all
    });
    let (app, deployment, job) = deployment(&p.pool, "traced-app").await;
    sqlx::query("INSERT INTO env_vars (app_id, key, value_sealed) VALUES ($1, 'TOKEN', $2)")
        .bind(app)
        .bind(p.state.env.seal(SECRET.as_bytes(), app))
        .execute(&p.pool)
        .await
        .unwrap();
    // The clone of a missing repository fails: the job went there and back.
    let ended = wh_testkit::within(Duration::from_secs(60), async || {
        (job_state(&p.pool, job).await == "failed").then_some(())
    })
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let text = String::from_utf8_lossy(&log.await.unwrap()).into_owned();
    assert!(
        ended.is_some(),
        "the worker never finished the job: {}",
        &text[text.len().saturating_sub(2000)..]
    );
    let failed = wh_testkit::within(Duration::from_secs(10), async || {
        (deployment_state(&p.pool, deployment).await == "failed").then_some(())
    })
    .await;
    assert!(
        failed.is_some(),
        "the deployment did not fail: {}",
        deployment_state(&p.pool, deployment).await
    );
    assert!(
        text.contains("TRACE") && text.contains("job.assign"),
        "the worker did not log at trace at all: {text}"
    );
    assert!(!text.contains(SECRET), "a decrypted env var is in the worker's trace log");
    assert!(!text.contains(&key), "the worker's API key is in its trace log");
    assert!(!text.to_ascii_lowercase().contains("bearer ey"), "a JWT is in the worker's trace log");
}

/// Item C19: one `retire` job for an offline worker used to stop the placement of every deploy
/// (`claim_for` looked only at the oldest runnable job). Now it is settled without its worker,
/// and the deploys behind it are placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_for_an_offline_worker_blocks_nothing() {
    let p = platform(SchedulerSettings::default()).await;
    let (gone, _) = workers::create(&p.pool, "decommissioned", "127.0.0.9").await.unwrap();
    let (app, old, _) = deployment(&p.pool, "drained").await;
    sqlx::query("UPDATE jobs SET state = 'succeeded' WHERE deployment_id = $1")
        .bind(old)
        .execute(&p.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE deployments SET state = 'superseded', worker_id = $2 WHERE id = $1")
        .bind(old)
        .bind(gone.id)
        .execute(&p.pool)
        .await
        .unwrap();
    let _ = app;
    let mut tx = p.pool.begin().await.unwrap();
    let retire = wh_control_plane::queue::enqueue(
        &mut tx,
        wh_wsproto::job::JobKind::Retire,
        &serde_json::json!({"deployment_id": old}),
        Some(old),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // Only now does a worker come: the retire job is the oldest runnable one.
    let mut w = FakeWorker::connect(&p, "online").await;
    scheduling_works(&p, &mut w, "behind-it").await;
    let (state, error): (String, Option<String>) =
        sqlx::query_as("SELECT state::text, error FROM jobs WHERE id = $1")
            .bind(retire)
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert_eq!(state, "cancelled");
    assert!(error.unwrap_or_default().contains("is away"));
}

/// Item C21: a worker that comes back without a job it held (it restarted) fails that job at
/// once; `wh deploy` used to wait out the whole 2-minute lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_back_without_its_job_fails_the_job_at_once() {
    let p = platform(SchedulerSettings::default()).await;
    let mut w = FakeWorker::connect(&p, "restarts").await;
    let (_, deployment, job) = deployment(&p.pool, "orphaned").await;
    let assign = w.assigned(Duration::from_secs(10)).await.expect("no job was placed");
    assert_eq!(assign.job_id, job);
    w.transport.send(Message::JobAck(JobRef { job_id: job, attempt: assign.attempt }));
    // The worker "restarts": the same key, a new process that runs no jobs.
    w.stop.cancel();
    let key = w.key.clone();
    let started = std::time::Instant::now();
    let mut again = FakeWorker::with_key(&p, &key, "restarts").await;
    let failed = wh_testkit::within(Duration::from_secs(10), async || {
        (job_state(&p.pool, job).await == "failed").then_some(())
    })
    .await;
    assert!(failed.is_some(), "the job was not failed when its worker came back without it");
    assert!(started.elapsed() < Duration::from_secs(10));
    let error: String = sqlx::query_scalar("SELECT error FROM deployments WHERE id = $1")
        .bind(deployment)
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert!(error.contains("restarted"), "{error}");
    // And the worker is given work again.
    scheduling_works(&p, &mut again, "after-restart").await;
}
