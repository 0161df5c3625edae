//! The proxy-config endpoints against the real Postgres, and the real wh-proxy following them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wh_control_plane::deployments::DeploymentState;
use wh_control_plane::testing::{fixtures, Options, TestControlPlane};
use wh_control_plane::{workers, Routing};
use wh_testkit::http;

const TOKEN: &str = "proxy-token-0123456789";

struct Cp {
    addr: std::net::SocketAddr,
    pool: sqlx::PgPool,
    user: i64,
    routing: Arc<Routing>,
    _cp: TestControlPlane,
    _db: wh_testkit::postgres::TestDatabase,
}

async fn start() -> Cp {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let options =
        Options { scheduler: None, proxy_token: Some(TOKEN.into()), ..Options::default() };
    let cp = TestControlPlane::start(&db.pool, options).await;
    let user = fixtures::user(&db.pool, "p@example.test").await;
    Cp {
        addr: cp.addr.unwrap(),
        pool: db.pool.clone(),
        user,
        routing: cp.state.routing.clone(),
        _cp: cp,
        _db: db,
    }
}

/// An app with a live deployment on `worker` at `port`; returns the deployment id.
async fn live_app(cp: &Cp, slug: &str, worker: uuid::Uuid, port: u16) -> i64 {
    let app = fixtures::app(&cp.pool, cp.user, slug).worker(worker).insert().await;
    fixtures::deployment(&cp.pool, app)
        .state(DeploymentState::Live)
        .worker(worker)
        .host_port(port)
        .insert()
        .await
}

async fn get(cp: &Cp, path: &str, headers: &[(&str, &str)]) -> http::Response {
    http::request("GET", &format!("http://{}{path}", cp.addr), None, &[], headers).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_apps_etag_watch_and_auth() {
    let cp = start().await;
    let (w1, _) = workers::create(&cp.pool, "w1", "10.50.0.12").await.unwrap();
    let (w2, _) = workers::create(&cp.pool, "w2", "10.50.0.13").await.unwrap();
    live_app(&cp, "foo", w1.id, 31001).await;
    live_app(&cp, "bar", w2.id, 31002).await;
    let auth = format!("Bearer {TOKEN}");

    assert_eq!(get(&cp, "/v1/traefik/proxy-config", &[]).await.status, 401);
    assert_eq!(
        get(&cp, "/v1/traefik/proxy-config", &[("authorization", "Bearer wrong-token-000000")])
            .await
            .status,
        401
    );

    let r = get(&cp, "/v1/traefik/proxy-config", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let foo = &doc["http"]["routers"]["app-foo"];
    assert_eq!(foo["rule"], "Host(`foo.route.test`)");
    assert_eq!(foo["tls"]["certResolver"], "le");
    assert_eq!(
        doc["http"]["services"]["app-foo"]["loadBalancer"]["servers"][0]["url"],
        "http://10.50.0.12:31001"
    );
    assert_eq!(
        doc["http"]["services"]["app-bar"]["loadBalancer"]["servers"][0]["url"],
        "http://10.50.0.13:31002"
    );
    let etag = r.headers["etag"].to_str().unwrap().to_owned();

    let same =
        get(&cp, "/v1/traefik/proxy-config", &[("authorization", &auth), ("if-none-match", &etag)])
            .await;
    assert_eq!(same.status, 304);

    // Watch: held until a change, which arrives well under 100 ms after it commits.
    let url = "/v1/traefik/proxy-config?watch=1";
    let (auth2, etag2, cp_addr) = (auth.clone(), etag.clone(), cp.addr);
    let watcher = tokio::spawn(async move {
        let r = http::request(
            "GET",
            &format!("http://{cp_addr}{url}"),
            None,
            &[],
            &[("authorization", &auth2), ("if-none-match", &etag2)],
        )
        .await
        .unwrap();
        (r, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!watcher.is_finished(), "the watch request was not held");
    let changed_at = Instant::now();
    sqlx::query("UPDATE deployments SET host_port = 31009 WHERE host_port = 31002")
        .execute(&cp.pool)
        .await
        .unwrap();
    let (r, answered_at) = watcher.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(
        answered_at.duration_since(changed_at) < Duration::from_millis(100),
        "watch answered after {:?}",
        answered_at.duration_since(changed_at)
    );
    assert!(r.text().contains("31009"));

    // Legacy per-worker form: that worker's apps on localhost ports.
    let legacy =
        get(&cp, &format!("/v1/traefik/config?worker={}", w1.id), &[("authorization", &auth)])
            .await;
    assert_eq!(legacy.status, 200);
    assert!(
        legacy.text().contains("http://127.0.0.1:31001") && !legacy.text().contains("bar"),
        "{}",
        legacy.text()
    );
    assert_eq!(
        get(&cp, "/v1/traefik/config?worker=nope", &[("authorization", &auth)]).await.status,
        422
    );
}

/// Waits until the control plane has seen a routing change after `generation`.
async fn changed_after(cp: &Cp, generation: u64) -> u64 {
    let mut changes = cp.routing.changes.clone();
    let seen = tokio::time::timeout(Duration::from_secs(10), changes.wait_for(|g| *g > generation))
        .await
        .expect("no routing change was noticed")
        .unwrap();
    *seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_render_serves_every_request_until_routing_changes() {
    let cp = start().await;
    let (w1, _) = workers::create(&cp.pool, "w1", "10.50.0.12").await.unwrap();
    live_app(&cp, "foo", w1.id, 31001).await;
    // The follower is listening once it has counted its first change; the inserts' own
    // notifications may still be on their way, so wait for the count to settle.
    changed_after(&cp, 0).await;
    let mut generation = *cp.routing.changes.borrow();
    wh_testkit::eventually(Duration::from_secs(10), "the routing changes to settle", async || {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = *cp.routing.changes.borrow();
        let settled = now == generation;
        generation = now;
        settled.then_some(())
    })
    .await;
    let auth = format!("Bearer {TOKEN}");
    let burst = |n: usize| {
        let (addr, auth) = (cp.addr, auth.clone());
        async move {
            let requests = (0..n).map(|_| {
                let (url, auth) = (format!("http://{addr}/v1/traefik/proxy-config"), auth.clone());
                tokio::spawn(async move {
                    http::request("GET", &url, None, &[], &[("authorization", &auth)])
                        .await
                        .unwrap()
                })
            });
            let mut answers = Vec::new();
            for r in requests.collect::<Vec<_>>() {
                answers.push(r.await.unwrap());
            }
            answers
        }
    };

    let before = cp.routing.documents.renders();
    let first = burst(10).await;
    assert!(first.iter().all(|r| r.status == 200 && r.text().contains("31001")));
    let etag = first[0].headers["etag"].clone();
    assert!(first.iter().all(|r| r.headers["etag"] == etag));
    assert_eq!(cp.routing.documents.renders(), before + 1, "ten requests, one render");

    // A change is rendered once more, and every request after it sees it.
    sqlx::query("UPDATE deployments SET host_port = 31005").execute(&cp.pool).await.unwrap();
    changed_after(&cp, generation).await;
    let second = burst(10).await;
    assert!(second.iter().all(|r| r.status == 200 && r.text().contains("31005")));
    assert_ne!(second[0].headers["etag"], etag);
    assert_eq!(cp.routing.documents.renders(), before + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wh_proxy_watching_the_control_plane_routes_to_the_live_deployment() {
    let cp = start().await;
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_port = backend.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(backend, axum::Router::new().fallback(|| async { "hello from foo" }))
            .await
            .unwrap()
    });
    let (worker, _) = workers::create(&cp.pool, "local", "127.0.0.1").await.unwrap();
    live_app(&cp, "foo", worker.id, backend_port).await;

    let state = tempfile_dir();
    let args = wh_proxy::cli::Args::following(
        format!("http://{}/v1/traefik/proxy-config", cp.addr),
        TOKEN,
        state.clone(),
        "127.0.0.1:0".parse().unwrap(),
    );
    let proxy =
        wh_proxy::run::start(wh_proxy::cli::Settings::from_args(args).unwrap()).await.unwrap();
    let through = |host: &'static str| {
        let addr = proxy.http_addr;
        async move {
            http::request("GET", &format!("http://{addr}/"), None, &[], &[("host", host)])
                .await
                .unwrap()
        }
    };
    let routed =
        wh_testkit::eventually(Duration::from_secs(5), "wh-proxy routing foo", async || {
            let r = through("foo.route.test").await;
            (r.status == 200).then_some(r)
        })
        .await;
    assert_eq!(routed.text(), "hello from foo");
    // A second app going live reaches the proxy through the watch.
    let (w2, _) = workers::create(&cp.pool, "local2", "127.0.0.1").await.unwrap();
    live_app(&cp, "bar", w2.id, backend_port).await;
    let bar = wh_testkit::until(Duration::from_secs(5), async || {
        through("bar.route.test").await.status == 200
    });
    assert!(bar.await, "a new live app did not reach the proxy");
    proxy.shutdown().await;
    let _ = std::fs::remove_dir_all(state);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wh-cp-proxy-{}-{}",
        std::process::id(),
        wh_control_plane::now_ms()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
