//! Helpers of the end-to-end tests (`tests/`): a control plane ([`control_plane`], on the
//! control plane's harness), a real worker in this process ([`local_worker`]), the whole
//! platform with wh-proxy ([`platform`], [`through_proxy`]), app
//! repositories, apps and their deployments in the database.
//!
//! The tests here run the components together, so that no component's own tests depend on
//! another component: wh-worker's tests never start a control plane or a proxy.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wh_control_plane::scheduler::SchedulerSettings;
use wh_control_plane::testing::{fixtures, Options, TestControlPlane};
use wh_control_plane::{deployments, AppState};

/// What the end-to-end tests start from: warnings logged to the test's output, the test kit's
/// Podman with its local busybox base image, and a fresh database.
pub struct Start {
    pub kit: &'static wh_testkit::podman::Podman,
    pub base: String,
    pub db: wh_testkit::postgres::TestDatabase,
}

/// See [`Start`].
pub async fn start() -> Start {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    let kit = wh_testkit::podman::Podman::get().expect("the test kit's Podman");
    let base = kit.base_image().expect("the local base image");
    let db = wh_testkit::postgres::fresh_db().await.expect("a fresh database");
    Start { kit, base, db }
}

/// A control plane in this process: API + hub + the scheduler's pipeline with `sched` (env
/// vars and logs wired from the state), serving on a free loopback port until `stop`.
pub async fn control_plane(
    pool: &sqlx::PgPool,
    proxy_token: Option<&str>,
    sched: SchedulerSettings,
    stop: &CancellationToken,
) -> (std::net::SocketAddr, AppState) {
    let options = Options {
        scheduler: Some(sched),
        proxy_token: proxy_token.map(str::to_owned),
        ..Options::default()
    };
    control_plane_with(pool, options, stop).await
}

/// [`control_plane`] with any options.
pub async fn control_plane_with(
    pool: &sqlx::PgPool,
    options: Options,
    stop: &CancellationToken,
) -> (std::net::SocketAddr, AppState) {
    let cp = TestControlPlane::start(pool, options).await;
    let (addr, state) = (cp.addr.expect("served"), cp.state.clone());
    // Lives until the test's `stop`.
    let stop = stop.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        drop(cp);
    });
    (addr, state)
}

/// A worker named `name` on loopback, in this process, with the real Podman: it labels what it
/// creates with the testkit's run label, clones local repositories, heartbeats every second,
/// samples stats every `stats_every` and health-checks for at most `health`. Runs until `stop`.
pub async fn local_worker(
    pool: &sqlx::PgPool,
    cp: std::net::SocketAddr,
    name: &str,
    health: Duration,
    stats_every: Duration,
    stop: &CancellationToken,
) {
    use wh_worker::agent::AgentSettings;
    use wh_worker::runtime::{Podman, PodmanSettings};
    let kit = wh_testkit::podman::Podman::get().unwrap();
    let (_, key) = wh_control_plane::workers::create(pool, name, "127.0.0.1").await.unwrap();
    let settings = wh_worker::worker::WorkerSettings {
        heartbeat: Duration::from_secs(1),
        stats_every,
        agent: AgentSettings {
            health_timeout: health,
            extra_labels: vec![(wh_testkit::podman::LABEL.to_owned(), kit.run_id().to_owned())],
            // The tests' repositories are local paths.
            repos: wh_worker::git::RepoPolicy { allow_private: true },
            ..AgentSettings::default()
        },
    };
    tokio::spawn(wh_worker::worker::run(
        wh_worker::transport::Endpoint::parse(&format!("http://{cp}"), None).unwrap(),
        key,
        Podman { settings: PodmanSettings::probe().await.unwrap() },
        settings,
        stop.clone(),
    ));
}

/// The whole platform on loopback: a control plane (scheduler with a 1 s drain), one worker
/// named `local` with the real Podman, and wh-proxy following the control plane's
/// proxy-config. Runs until `stop`.
pub struct Platform {
    pub cp: std::net::SocketAddr,
    pub state: AppState,
    pub proxy: wh_proxy::run::Running,
    _proxy_state: tempfile::TempDir,
}

/// See [`Platform`]; the worker samples stats every `stats_every`.
pub async fn platform(
    pool: &sqlx::PgPool,
    stats_every: Duration,
    stop: &CancellationToken,
) -> Platform {
    platform_with_forges(pool, stats_every, Vec::new(), stop).await
}

/// [`platform`] whose control plane can connect `git_providers` (a fake forge's).
pub async fn platform_with_forges(
    pool: &sqlx::PgPool,
    stats_every: Duration,
    git_providers: Vec<wh_control_plane::gitproviders::ForgeConfig>,
    stop: &CancellationToken,
) -> Platform {
    platform_with(pool, stats_every, git_providers, None, stop).await
}

/// [`platform_with_forges`] whose webhook dispatcher delivers as `outbound` says.
pub async fn platform_with(
    pool: &sqlx::PgPool,
    stats_every: Duration,
    git_providers: Vec<wh_control_plane::gitproviders::ForgeConfig>,
    outbound: Option<wh_control_plane::testing::Outbound>,
    stop: &CancellationToken,
) -> Platform {
    const PROXY_TOKEN: &str = "proxy-token-of-the-e2e-platform";
    let sched = SchedulerSettings { drain: Duration::from_secs(1), ..SchedulerSettings::default() };
    let options = Options {
        scheduler: Some(sched),
        proxy_token: Some(PROXY_TOKEN.to_owned()),
        git_providers,
        outbound,
        ..Options::default()
    };
    let (cp, state) = control_plane_with(pool, options, stop).await;
    local_worker(pool, cp, "local", Duration::from_secs(10), stats_every, stop).await;
    let proxy_state = tempfile::tempdir().expect("a state directory");
    let args = wh_proxy::cli::Args::following(
        format!("http://{cp}/v1/traefik/proxy-config"),
        PROXY_TOKEN,
        proxy_state.path().to_owned(),
        "127.0.0.1:0".parse().expect("an address"),
    );
    let settings = wh_proxy::cli::Settings::from_args(args).expect("valid proxy settings");
    let proxy = wh_proxy::run::start(settings).await.expect("wh-proxy starts");
    Platform { cp, state, proxy, _proxy_state: proxy_state }
}

impl Platform {
    /// `method path` on the control plane's API with `bearer` (an `Authorization` value) and
    /// a JSON `body`: the status and the answer's JSON (Null when it is none).
    pub async fn api(
        &self,
        bearer: &str,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let url = format!("http://{}{path}", self.cp);
        let headers = [("authorization", bearer), ("content-type", "application/json")];
        let body = Some(body.to_string().into());
        let r = wh_testkit::http::request(method, &url, body, &[], &headers)
            .await
            .expect("the control plane answers");
        (r.status, serde_json::from_slice(&r.body).unwrap_or_default())
    }
}

/// GET `path` of app `slug` through the platform's proxy (`<slug>.route.test`).
pub async fn through_proxy(
    platform: &Platform,
    slug: &str,
    path: &str,
) -> wh_testkit::Result<wh_testkit::http::Response> {
    let url = format!("http://{}{path}", platform.proxy.http_addr);
    let host = format!("{slug}.route.test");
    wh_testkit::http::request("GET", &url, None, &[], &[("host", host.as_str())]).await
}

pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A repository serving `page` with busybox httpd on $PORT, writing $GREETING to /www/env.txt.
pub fn app_repo(base: &str, page: &str, listen: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cmd = if listen {
        "echo $GREETING > /www/env.txt; echo app-started-on-$PORT; exec httpd -f -p $PORT -h /www"
    } else {
        "echo not listening; sleep 300"
    };
    std::fs::write(
        dir.path().join("Containerfile"),
        format!("FROM {base}\nCOPY index.html /www/index.html\nCMD [\"sh\", \"-c\", \"{cmd}\"]\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("index.html"), page).unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["-c", "user.email=t@example.test", "-c", "user.name=t", "add", "."]);
    git(
        dir.path(),
        &["-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-q", "-m", "app"],
    );
    dir
}

/// An app on the hobby plan listening on 8000, built from `repo`.
pub async fn insert_app(pool: &sqlx::PgPool, owner: i64, slug: &str, repo: &Path) -> i64 {
    let repo = repo.to_str().expect("a UTF-8 path");
    fixtures::app(pool, owner, slug).repo(repo).plan("hobby").port(8000).insert().await
}

/// Queues a deployment of `repo`'s main branch for the app `id`/`slug` (as the API does).
pub async fn queue_deploy(pool: &sqlx::PgPool, id: i64, slug: &str, repo: &Path) -> i64 {
    use wh_wsproto::job::{DeployJob, Limits, Source};
    let job = DeployJob {
        app: slug.to_owned(),
        deployment_id: 0,
        port: 8000,
        limits: Limits { memory_mb: 128, cpu_millis: 500, disk_mb: None },
        source: Source::Git {
            repo_url: repo.to_str().unwrap().to_owned(),
            git_ref: "main".into(),
            repo_auth: None,
        },
        root_dir: String::new(),
        env: Default::default(),
    };
    let mut txn = pool.begin().await.unwrap();
    let deployment = deployments::create(&mut txn, id, "main", job).await.unwrap();
    txn.commit().await.unwrap();
    deployment
}

/// Waits (at most `limit`) until deployment `id` is in one of the `want` states; returns its
/// state and error then, or as they were when the time ran out.
pub async fn wait_state(
    pool: &sqlx::PgPool,
    id: i64,
    want: &[&str],
    limit: Duration,
) -> (String, Option<String>) {
    let read = async || -> (String, Option<String>) {
        sqlx::query_as("SELECT state::text, error FROM deployments WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .expect("the deployment exists")
    };
    match wh_testkit::within(limit, async || {
        Some(read().await).filter(|(s, _)| want.contains(&s.as_str()))
    })
    .await
    {
        Some(reached) => reached,
        None => read().await,
    }
}
