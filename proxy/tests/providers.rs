//! Providers and the apply gate: http polling with ETag, watch, errors keep the last good
//! table, the snapshot serves after a restart with the control plane down, mass removal refused.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wh_proxy::provider::{ApplyError, Outcome};

async fn http_proxy(
    cp: &FakeControlPlane,
    state: &std::path::Path,
    provider: &str,
) -> wh_proxy::run::Running {
    let s = {
        use clap::Parser;
        wh_proxy::cli::Settings::from_args(
            wh_proxy::cli::Args::try_parse_from([
                "wh-proxy",
                "--provider",
                provider,
                "--config-url",
                &cp.url(),
                "--config-token",
                "tok-123",
                "--poll-interval",
                "200ms",
                "--state-dir",
                &state.display().to_string(),
                "--http-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
                "--access-log",
                "off",
                "--threads",
                "1",
                "--https-addr",
                "off",
            ])
            .unwrap(),
        )
        .unwrap()
    };
    wh_proxy::run::start(s).await.unwrap()
}

#[tokio::test]
async fn http_provider_picks_up_changes_uses_etags_and_survives_errors() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let cp =
        FakeControlPlane::start(&routes(&[("app", "Host(`x.test`)", &[&a.url()])]), false).await;
    let dir = tempfile::tempdir().unwrap();
    let running = http_proxy(&cp, dir.path(), "http").await;
    let addr = running.http_addr;
    assert!(
        wh_testkit::until(Duration::from_secs(3), async || running.proxy.table.load().generation
            == 1)
        .await
    );
    assert_eq!(get(addr, "x.test", "/").await.2, "a");
    assert_eq!(cp.state.lock().unwrap().last_auth.as_deref(), Some("Bearer tok-123"));

    // Unchanged: answered 304 thanks to If-None-Match, nothing recompiled.
    assert!(
        wh_testkit::until(Duration::from_secs(3), async || cp.state.lock().unwrap().not_modified
            >= 2)
        .await,
        "no conditional requests"
    );
    assert_eq!(running.proxy.table.load().generation, 1);

    cp.set(&routes(&[("app", "Host(`x.test`)", &[&b.url()])]));
    assert!(
        wh_testkit::until(Duration::from_secs(3), async || running.proxy.table.load().generation
            == 2)
        .await
    );
    assert_eq!(get(addr, "x.test", "/").await.2, "b");

    // 500s and garbage keep the last good table.
    cp.state.lock().unwrap().fail_with = Some(500);
    tokio::time::sleep(Duration::from_millis(600)).await;
    cp.state.lock().unwrap().fail_with = None;
    cp.set("{this is not json");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(running.proxy.table.load().generation, 2);
    assert_eq!(get(addr, "x.test", "/").await.2, "b");
    let (_, _, metrics) = get(running.admin_addr, "admin", "/metrics").await;
    assert!(!metrics.contains("wh_proxy_config_errors_total 0"), "{metrics}");
    running.shutdown().await;
}

#[tokio::test]
async fn watch_applies_a_change_within_a_round_trip() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let cp =
        FakeControlPlane::start(&routes(&[("app", "Host(`w.test`)", &[&a.url()])]), true).await;
    let dir = tempfile::tempdir().unwrap();
    let running = http_proxy(&cp, dir.path(), "watch").await;
    assert!(
        wh_testkit::until(Duration::from_secs(3), async || running.proxy.table.load().generation
            == 1)
        .await
    );
    // Let the proxy's watch request be parked on the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests_before = cp.state.lock().unwrap().requests;
    let changed_at = Instant::now();
    cp.set(&routes(&[("app", "Host(`w.test`)", &[&b.url()])]));
    assert!(
        wh_testkit::until(Duration::from_secs(2), async || running.proxy.table.load().generation
            == 2)
        .await
    );
    let took = changed_at.elapsed();
    assert!(took < Duration::from_millis(500), "watch took {took:?}");
    assert_eq!(get(running.http_addr, "w.test", "/").await.2, "b");
    // Held, not hammered: a couple of requests, not one per 20 ms.
    assert!(cp.state.lock().unwrap().requests - requests_before <= 3);
    running.shutdown().await;
}

#[tokio::test]
async fn watch_against_a_server_ignoring_it_degrades_to_polling() {
    let a = Backend::start("a").await;
    let cp =
        FakeControlPlane::start(&routes(&[("app", "Host(`p.test`)", &[&a.url()])]), false).await;
    let dir = tempfile::tempdir().unwrap();
    let running = http_proxy(&cp, dir.path(), "watch").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let n = cp.state.lock().unwrap().requests;
    // 200 ms interval over ~1.1 s: about 6 requests, certainly not a busy loop.
    assert!((3..=10).contains(&n), "{n} requests in 1.1 s");
    running.shutdown().await;
}

#[tokio::test]
async fn restart_with_the_control_plane_down_serves_the_snapshot() {
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    {
        let cp = FakeControlPlane::start(&routes(&[("app", "Host(`s.test`)", &[&a.url()])]), false)
            .await;
        let running = http_proxy(&cp, dir.path(), "http").await;
        assert!(
            wh_testkit::until(Duration::from_secs(3), async || running
                .proxy
                .table
                .load()
                .generation
                == 1)
            .await
        );
        running.shutdown().await;
    }
    // The control plane is gone (its port closed); a new proxy still routes.
    let cp_down = FakeControlPlane::start("{}", false).await;
    cp_down.state.lock().unwrap().fail_with = Some(503);
    let running = http_proxy(&cp_down, dir.path(), "http").await;
    assert_eq!(running.proxy.table.load().len(), 1, "snapshot not loaded at start");
    assert_eq!(get(running.http_addr, "s.test", "/").await.2, "a");
    running.shutdown().await;
}

#[tokio::test]
async fn mass_removal_is_refused_unless_allowed() {
    let a = Backend::start("a").await;
    let many: Vec<(String, String)> =
        (0..10).map(|i| (format!("app{i}"), format!("Host(`app{i}.test`)"))).collect();
    let url = a.url();
    let servers: &[&str] = &[&url];
    let doc = |n: usize| {
        routes(
            &many[..n].iter().map(|(r, h)| (r.as_str(), h.as_str(), servers)).collect::<Vec<_>>(),
        )
    };
    let p = TestProxy::start(&doc(10), &[]).await;
    assert!(matches!(p.apply("{\"http\":{}}"), Err(ApplyError::MassRemoval { removed: 10, .. })));
    assert!(matches!(p.apply(&doc(4)), Err(ApplyError::MassRemoval { removed: 6, .. })));
    assert_eq!(p.generation(), 1);
    assert_eq!(get(p.addr, "app9.test", "/").await.0, 200);
    assert!(
        matches!(p.apply(&doc(5)), Ok(Outcome::Applied { routes: 5, .. })),
        "removing half is allowed"
    );
    let (_, _, metrics) = get(p.admin, "admin", "/metrics").await;
    assert!(metrics.contains("wh_proxy_config_refusals_total 2"), "{metrics}");

    // A small table may shrink to nothing: deleting the last apps is not an outage.
    let small = TestProxy::start(&doc(3), &[]).await;
    assert!(matches!(small.apply(&doc(2)), Ok(Outcome::Applied { routes: 2, .. })));
    assert!(matches!(small.apply("{\"http\":{}}"), Ok(Outcome::Applied { routes: 0, .. })));
    let three = TestProxy::start(&doc(3), &[]).await;
    assert!(
        matches!(three.apply("{\"http\":{}}"), Err(ApplyError::MassRemoval { removed: 3, .. })),
        "but never more than {} routes past the fraction",
        wh_proxy::provider::apply::SMALL_REMOVAL
    );

    let forced = TestProxy::start(&doc(10), &["--allow-mass-removal", "true"]).await;
    assert!(matches!(forced.apply("{\"http\":{}}"), Ok(Outcome::Applied { routes: 0, .. })));
}

#[tokio::test]
async fn file_provider_reloads_on_change_and_bad_files_change_nothing() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let p = TestProxy::start(&routes(&[("app", "Host(`f.test`)", &[&a.url()])]), &[]).await;
    std::fs::write(p.routes_path(), routes(&[("app", "Host(`f.test`)", &[&b.url()])])).unwrap();
    assert!(
        wh_testkit::until(Duration::from_secs(4), async || p.generation() == 2).await,
        "file change not picked up"
    );
    assert_eq!(get(p.addr, "f.test", "/").await.2, "b");
    std::fs::write(p.routes_path(), "http: [oops").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(p.generation(), 2);
    assert_eq!(get(p.addr, "f.test", "/").await.2, "b");
}

#[tokio::test]
async fn routers_with_problems_are_skipped_and_the_rest_applies() {
    let a = Backend::start("a").await;
    let doc = serde_json::json!({"http": {
        "routers": {
            "ok": {"rule": "Host(`ok.test`)", "service": "s"},
            "broken": {"rule": "Host(`broken.test`", "service": "s"},
            "orphan": {"rule": "Host(`orphan.test`)", "service": "nope"}},
        "services": {"s": {"loadBalancer": {"servers": [{"url": a.url()}]}}}}});
    let p = TestProxy::start(&doc.to_string(), &[]).await;
    assert_eq!(get(p.addr, "ok.test", "/").await.0, 200);
    assert_eq!(get(p.addr, "orphan.test", "/").await.0, 404);
    let (_, _, routes) = get(p.admin, "admin", "/routes").await;
    assert!(
        routes.contains("router `broken` skipped") && routes.contains("router `orphan` skipped"),
        "{routes}"
    );
}
