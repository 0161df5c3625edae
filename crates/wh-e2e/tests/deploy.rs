//! Deploys end to end: a local git repository goes in, an app comes out at a URL. Real Postgres,
//! control plane with scheduler, worker over the real channel, Podman, and wh-proxy following
//! the control plane's proxy-config.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wh_control_plane::scheduler::SchedulerSettings;
use wh_testkit::podman::LABEL;

use wh_e2e::{app_repo, control_plane, git, insert_app, queue_deploy, wait_state};

const PROXY_TOKEN: &str = "proxy-token-for-deploys";

/// GET `path` of the app `hello` through the proxy at `proxy`.
async fn get_hello(
    proxy: std::net::SocketAddr,
    path: &str,
) -> wh_testkit::Result<wh_testkit::http::Response> {
    let url = format!("http://{proxy}{path}");
    wh_testkit::http::request("GET", &url, None, &[], &[("host", "hello.route.test")]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_becomes_an_app_behind_the_proxy_and_a_broken_one_fails_with_its_reason() {
    let wh_e2e::Start { kit, base, db } = wh_e2e::start().await;
    let pool = db.pool.clone();

    // Control plane: API + hub + scheduler, env vars sealed with the state's key.
    let stop = CancellationToken::new();
    let sched = SchedulerSettings { drain: Duration::from_secs(2), ..SchedulerSettings::default() };
    let (cp, state) = control_plane(&pool, Some(PROXY_TOKEN), sched, &stop).await;
    let (logs, sealer, hub) = (state.logs.clone(), state.env.clone(), state.hub.clone());
    // The worker and the proxy reach the control plane through a cable the test can cut.
    let mut cable = wh_testkit::net::Cable::start(cp).await.unwrap();
    let via = cable.addr();

    // A worker on loopback with the real Podman runtime.
    let (health, stats) = (Duration::from_secs(10), Duration::from_secs(1));
    wh_e2e::local_worker(&pool, via, "local", health, stats, &stop).await;

    // wh-proxy following the control plane.
    let proxy_state = tempfile::tempdir().unwrap();
    let args = wh_proxy::cli::Args::following(
        format!("http://{via}/v1/traefik/proxy-config"),
        PROXY_TOKEN,
        proxy_state.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
    );
    let proxy =
        wh_proxy::run::start(wh_proxy::cli::Settings::from_args(args).unwrap()).await.unwrap();

    // The app and its secret env var.
    let user: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash) VALUES ('e2e@example.test', 'x') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let repo = app_repo(&base, "<h1>hello from wisehosting</h1>", true);
    let app = insert_app(&pool, user, "hello", repo.path()).await;
    sqlx::query("INSERT INTO env_vars (app_id, key, value_sealed) VALUES ($1, 'GREETING', $2)")
        .bind(app)
        .bind(sealer.seal(b"hi-from-env", app))
        .execute(&pool)
        .await
        .unwrap();
    let deployment = queue_deploy(&pool, app, "hello", repo.path()).await;

    let (state, error) =
        wait_state(&pool, deployment, &["live", "failed"], Duration::from_secs(90)).await;
    let jobs: Option<String> = sqlx::query_scalar(
        "SELECT string_agg(id || ':' || state::text || ':' || coalesce(error, ''), ', ') FROM jobs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        state,
        "live",
        "deployment ended {state}: {error:?}; jobs {jobs:?}; hub {:?}",
        hub.health().values().map(|h| h.connected).collect::<Vec<_>>()
    );

    // Through the proxy at <slug>.<route domain>.
    let page = wh_testkit::within(Duration::from_secs(5), async || {
        let r = get_hello(proxy.http_addr, "/").await.unwrap();
        (r.status == 200).then(|| r.text())
    })
    .await;
    assert_eq!(page.as_deref().map(str::trim), Some("<h1>hello from wisehosting</h1>"));
    let env = get_hello(proxy.http_addr, "/env.txt").await.unwrap();
    assert_eq!(env.text().trim(), "hi-from-env", "the env var did not reach the container");
    // The plan's memory limit is applied.
    let container = Command::new("podman")
        .args(["ps", "-q", "--filter", &format!("label=wh.deployment={deployment}")])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&container.stdout).trim().to_owned();
    let mem = Command::new("podman")
        .args(["inspect", "--format", "{{.HostConfig.Memory}}", &id])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&mem.stdout).trim(), (128u64 * 1024 * 1024).to_string());

    // The worker reports the container and samples it every second (stats_every), its disk
    // every sixth sample: the app wrote /www/env.txt into its writable layer.
    let sampled = async || -> Option<(String, i32, Option<i64>, Option<i64>)> {
        sqlx::query_as(
            "SELECT state, restarts, memory_bytes, memory_limit FROM containers
             WHERE deployment_id = $1 AND stats_at IS NOT NULL AND disk_bytes > 0",
        )
        .bind(deployment)
        .fetch_optional(&pool)
        .await
        .unwrap()
    };
    let (cstate, restarts, mem_used, mem_limit) = wh_testkit::eventually(
        Duration::from_secs(15),
        "container stats (with disk use) reaching the control plane",
        sampled,
    )
    .await;
    assert_eq!((cstate.as_str(), restarts), ("running", 0));
    assert!(mem_used.unwrap_or(0) > 0, "memory use sampled");
    assert_eq!(mem_limit, Some(128 << 20), "the limit podman stats sees is the plan's");

    // The app's own output reaches the control plane's log bus; the build output its deployment.
    let runtime_seen = wh_testkit::until(Duration::from_secs(5), async || {
        logs.recent(app, 100).iter().any(|e| e.line.contains("app-started-on-8000"))
    });
    assert!(
        runtime_seen.await,
        "runtime output never reached the log bus: {:?}",
        logs.recent(app, 100)
    );
    let build_log: String = sqlx::query_scalar("SELECT build_log FROM deployments WHERE id = $1")
        .bind(deployment)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(build_log.contains("COPY index.html"), "{build_log}");

    // Redeploy a change while a client keeps requesting through the proxy: no request fails,
    // the new page appears, and the old container is stopped after the drain delay.
    std::fs::write(repo.path().join("index.html"), "<h1>version two</h1>").unwrap();
    git(
        repo.path(),
        &["-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-qam", "v2"],
    );
    let looping = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (ok, failed, saw_v2) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = {
        let (looping, ok, failed, saw_v2, addr) =
            (looping.clone(), ok.clone(), failed.clone(), saw_v2.clone(), proxy.http_addr);
        tokio::spawn(async move {
            while looping.load(Relaxed) {
                match get_hello(addr, "/").await {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Relaxed);
                        if r.text().contains("version two") {
                            saw_v2.fetch_add(1, Relaxed);
                        }
                    }
                    _ => {
                        failed.fetch_add(1, Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let second = queue_deploy(&pool, app, "hello", repo.path()).await;
    let (state, error) =
        wait_state(&pool, second, &["live", "failed"], Duration::from_secs(90)).await;
    assert_eq!(state, "live", "{error:?}");
    let first_gone = wh_testkit::until(Duration::from_secs(20), async || {
        let out = Command::new("podman")
            .args(["ps", "-q", "--filter", &format!("label=wh.deployment={deployment}")])
            .output()
            .unwrap();
        out.stdout.iter().all(u8::is_ascii_whitespace) && saw_v2.load(Relaxed) > 0
    });
    assert!(first_gone.await, "the superseded container was not stopped, or v2 never appeared");
    tokio::time::sleep(Duration::from_millis(500)).await;
    looping.store(false, Relaxed);
    client.await.unwrap();
    assert_eq!(
        failed.load(Relaxed),
        0,
        "requests failed during the redeploy ({} succeeded)",
        ok.load(Relaxed)
    );
    assert!(ok.load(Relaxed) > 50);
    let old_state: String = sqlx::query_scalar("SELECT state::text FROM deployments WHERE id = $1")
        .bind(deployment)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(old_state, "superseded");

    // A repository whose container never listens: fails with the reason and its last lines.
    let broken = app_repo(&base, "x", false);
    let app2 = insert_app(&pool, user, "broken", broken.path()).await;
    let failing = queue_deploy(&pool, app2, "broken", broken.path()).await;
    let (state, error) =
        wait_state(&pool, failing, &["live", "failed"], Duration::from_secs(90)).await;
    assert_eq!(state, "failed");
    let error = error.unwrap_or_default();
    assert!(error.contains("health check failed") && error.contains("not listening"), "{error}");
    // The working app still serves.
    let r = get_hello(proxy.http_addr, "/").await.unwrap();
    assert_eq!(r.status, 200);

    // A control-plane outage: its network path is cut for 6 s. The app keeps serving (the
    // proxy keeps its table, the worker its container); once the path is back the worker
    // reconnects, reports the container, and it is adopted, not stopped.
    let running = || {
        let out = Command::new("podman")
            .args(["ps", "-q", "--filter", "label=wh.app=hello"])
            .args(["--filter", &format!("label={LABEL}={}", kit.run_id())])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let before = running();
    assert_eq!(before.len(), 1, "{before:?}");
    let serves = || async {
        get_hello(proxy.http_addr, "/")
            .await
            .is_ok_and(|r| r.status == 200 && r.text().contains("version two"))
    };
    cable.cut();
    let cut = wh_testkit::until(Duration::from_secs(10), async || hub.connected().is_empty());
    assert!(cut.await, "the cut did not reach the worker's connection");
    let (mut served, mut refused) = (0, 0);
    let outage = Instant::now() + Duration::from_secs(6);
    while Instant::now() < outage {
        if serves().await {
            served += 1
        } else {
            refused += 1
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refused, 0, "{refused} requests failed during the outage ({served} served)");
    assert_eq!(running(), before, "the outage stopped or replaced the app's container");
    cable.mend().await.unwrap();
    wh_testkit::until(Duration::from_secs(30), async || !hub.connected().is_empty()).await;
    assert_eq!(hub.connected().len(), 1, "the worker did not reconnect");
    // Adoption and a few stats samples later, the same container still runs and serves.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(running(), before, "the reconnect stopped the app's container");
    assert!(serves().await);
    // The proxy follows the control plane again: a routing change made now reaches it.
    sqlx::query(
        "INSERT INTO domains (app_id, hostname, token, status)
         VALUES ($1, 'www.hello.test', 't', 'verified')",
    )
    .bind(app)
    .execute(&pool)
    .await
    .unwrap();
    let url = format!("http://{}/", proxy.http_addr);
    let custom = wh_testkit::until(Duration::from_secs(10), async || {
        let r = wh_testkit::http::request("GET", &url, None, &[], &[("host", "www.hello.test")]);
        r.await.unwrap().status == 200
    });
    assert!(custom.await, "a change after the outage never reached the proxy");

    stop.cancel();
    proxy.shutdown().await;
    let _ = id;
}
