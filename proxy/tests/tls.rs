//! HTTPS with certificates from a real ACME server: Debian's pebble, with pebble-challtestsrv as
//! its DNS (every name resolves to 127.0.0.1 unless told otherwise) and its HTTP-01 validations
//! pointed at the proxy's plain listener.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wh_testkit::pebble::{Pebble, PebbleOptions};

fn tls_routes(apps: &[(&str, &str, &str)]) -> String {
    let mut routers = serde_json::Map::new();
    let mut services = serde_json::Map::new();
    for (name, host, backend) in apps {
        routers.insert((*name).into(), serde_json::json!({"rule": format!("Host(`{host}`)"), "service": name, "tls": {"certResolver": "le"}}));
        services.insert(
            (*name).into(),
            serde_json::json!({"loadBalancer": {"servers": [{"url": backend}]}}),
        );
    }
    serde_json::json!({"http": {"routers": routers, "services": services}}).to_string()
}

async fn start(pebble: &Pebble, routes: &str, state: &std::path::Path) -> wh_proxy::run::Running {
    start_with(pebble, routes, state, &[]).await
}

async fn start_with(
    pebble: &Pebble,
    routes: &str,
    state: &std::path::Path,
    extra: &[&str],
) -> wh_proxy::run::Running {
    use clap::Parser;
    std::fs::write(state.join("routes.json"), routes).unwrap();
    let http = format!("127.0.0.1:{}", pebble.options().http01_port);
    let (routes_path, state_path, ca) = (
        state.join("routes.json").display().to_string(),
        state.join("state").display().to_string(),
        pebble.directory_cert_path().display().to_string(),
    );
    let args = [
        "wh-proxy",
        "--routes",
        &routes_path,
        "--state-dir",
        &state_path,
        "--http-addr",
        &http,
        "--https-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
        "--acme-directory",
        &pebble.directory_url(),
        "--acme-ca-bundle",
        &ca,
        "--acme-email",
        "ops@example.test",
        "--threads",
        "1",
        "--access-log",
        "off",
    ];
    let args: Vec<&str> = args.iter().chain(extra).copied().collect();
    let settings =
        wh_proxy::cli::Settings::from_args(wh_proxy::cli::Args::try_parse_from(args).unwrap())
            .unwrap();
    wh_proxy::run::start(settings).await.unwrap()
}

async fn wait_for_cert(running: &wh_proxy::run::Running, host: &str, pebble: &Pebble) {
    let certs = running.proxy.certs.as_ref().unwrap();
    let ok =
        wh_testkit::until(Duration::from_secs(60), async || certs.store.get(host).is_some()).await;
    assert!(ok, "no certificate for {host}: {}\npebble log:\n{}", certs.report(), pebble.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_host_gets_a_certificate_and_serves_https_h1_h2_and_websockets() {
    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();
    let root = pebble.root_ca_pem().await.unwrap();
    let backend = Backend::start("secure-app").await;
    let dir = tempfile::tempdir().unwrap();
    let running =
        start(&pebble, &tls_routes(&[("app", "secure.test", &backend.url())]), dir.path()).await;
    let https = running.https_addr.unwrap();
    wait_for_cert(&running, "secure.test", &pebble).await;

    // HTTP/1.1 and HTTP/2, each negotiated by ALPN, with a client trusting only pebble's root.
    let h1 = https_get(https, "secure.test", "/", tls_client(&root, &[b"http/1.1"])).await.unwrap();
    assert_eq!(
        (h1.status, h1.body.as_str(), h1.alpn.as_deref()),
        (200, "secure-app", Some(&b"http/1.1"[..]))
    );
    let h2 = https_get(https, "secure.test", "/headers", tls_client(&root, &[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(h2.status, 200);
    assert!(h2.body.contains(r#""x-forwarded-proto":"https""#), "{}", h2.body);

    // Unknown SNI, and no SNI at all: no handshake, no certificate shown.
    assert!(tls_connect(https, "unknown.test", tls_client(&root, &[])).await.is_err());
    assert!(tls_connect(https, "127.0.0.1", tls_client(&root, &[])).await.is_err());

    // Plain HTTP redirects a tls router to https, path and query kept.
    let (status, headers, _) = get(running.http_addr, "secure.test", "/a/b?c=1").await;
    assert_eq!(status, 308);
    assert_eq!(headers["location"], format!("https://secure.test:{}/a/b?c=1", https.port()));
    // The challenge path is never forwarded, even for this https-only router.
    let (status, _, body) =
        get(running.http_addr, "secure.test", "/.well-known/acme-challenge/unknown").await;
    assert_eq!(status, 404);
    assert!(!body.contains("secure-app"));

    // A WebSocket over TLS.
    let mut tls =
        tls_connect(https, "secure.test", tls_client(&root, &[b"http/1.1"])).await.unwrap();
    tls.write_all(b"GET /ws HTTP/1.1\r\nHost: secure.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    tls.write_all(b"ping over tls").await.unwrap();
    let mut echo = [0u8; 13];
    tokio::time::timeout(Duration::from_secs(3), tls.read_exact(&mut echo)).await.unwrap().unwrap();
    assert_eq!(&echo, b"ping over tls");

    let (_, _, certs) = get(running.admin_addr, "admin", "/certs").await;
    assert!(certs.contains(r#""state":"valid""#), "{certs}");
    let orders = running.proxy.certs.as_ref().unwrap().metrics.orders_ok.load(Relaxed);
    assert_eq!(orders, 1);
    // The drain waits for upgraded connections (up to the grace period): close it first.
    drop(tls);
    running.shutdown().await;

    // A restart loads the certificate from disk before accepting and orders nothing.
    let again =
        start(&pebble, &tls_routes(&[("app", "secure.test", &backend.url())]), dir.path()).await;
    assert!(
        again.proxy.certs.as_ref().unwrap().store.get("secure.test").is_some(),
        "not loaded at start"
    );
    let reply = https_get(again.https_addr.unwrap(), "secure.test", "/", tls_client(&root, &[]))
        .await
        .unwrap();
    assert_eq!(reply.body, "secure-app");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = &again.proxy.certs.as_ref().unwrap().metrics;
    assert_eq!(
        m.orders_ok.load(Relaxed) + m.orders_failed.load(Relaxed),
        0,
        "a restart ordered again"
    );
    let key_mode = std::fs::metadata(dir.path().join("state/certs/secure.test/key.pem")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key_mode.permissions().mode() & 0o777, 0o600);
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_host_backs_off_without_delaying_another_and_renewal_runs_when_due() {
    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();
    // bad.test resolves to an address where nothing answers HTTP-01: its validation fails.
    pebble.add_a("bad.test", &["127.0.0.2"]).await.unwrap();
    let backend = Backend::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let routes =
        tls_routes(&[("bad", "bad.test", &backend.url()), ("good", "good.test", &backend.url())]);
    let running = start(&pebble, &routes, dir.path()).await;
    wait_for_cert(&running, "good.test", &pebble).await;
    let certs = running.proxy.certs.as_ref().unwrap();
    assert!(
        wh_testkit::until(Duration::from_secs(60), async || certs
            .host_state("bad.test")
            .is_some_and(|h| h.failures == 1))
        .await,
        "{}",
        certs.report()
    );
    let bad = certs.host_state("bad.test").unwrap();
    let now = certs.clock.now();
    assert!(
        bad.next_attempt > now + 30 && bad.next_attempt <= now + 60,
        "backoff {:?}",
        bad.next_attempt - now
    );
    assert!(bad.last_error.as_deref().unwrap_or("").contains("validation failed"), "{bad:?}");
    assert_eq!(bad.failed_validations.len(), 1, "failed validation not counted for the budget");
    assert!(certs.store.get("bad.test").is_none());
    // Persisted: a restart must not retry early.
    let persisted = std::fs::read_to_string(dir.path().join("state/acme/hosts.json")).unwrap();
    assert!(persisted.contains("bad.test") && persisted.contains("next_attempt"), "{persisted}");
    let report = certs.report().to_string();
    assert!(report.contains(r#""state":"backoff""#), "{report}");

    // Renewal: move the clock past two thirds of good.test's lifetime.
    let first = certs.store.get("good.test").unwrap();
    let lifetime = (first.not_after - first.not_before) as u64;
    certs.clock.advance(Duration::from_secs(lifetime * 7 / 10));
    certs.poke();
    assert!(
        wh_testkit::until(Duration::from_secs(60), async || certs.metrics.renewals.load(Relaxed)
            == 1)
        .await,
        "{}",
        certs.report()
    );
    let renewed = certs.store.get("good.test").unwrap();
    assert_ne!(renewed.leaf_der, first.leaf_der, "same certificate after renewal");
    let (_, _, metrics) = get(running.admin_addr, "admin", "/metrics").await;
    assert!(metrics.contains("wh_proxy_acme_renewals_total 1"), "{metrics}");
    assert!(metrics.contains("wh_proxy_acme_hosts_in_backoff"), "{metrics}");

    // good.test leaves the table: never renewed, and its files go once the certificate expired.
    running
        .applier
        .apply(
            tls_routes(&[("bad", "bad.test", &backend.url())]).as_bytes(),
            wh_proxy::config::Format::Json,
            "test",
        )
        .unwrap();
    let cert_dir = dir.path().join("state/certs/good.test");
    assert!(cert_dir.exists());
    certs.clock.advance(Duration::from_secs(lifetime));
    certs.poke();
    assert!(
        wh_testkit::until(Duration::from_secs(10), async || !cert_dir.exists()).await,
        "expired certificate of an unrouted host kept"
    );
    assert_eq!(certs.metrics.renewals.load(Relaxed), 1, "an unrouted host was renewed");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_wildcard_certificate_serves_its_hosts_and_nothing_is_ordered() {
    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();
    let backend = Backend::start("wild").await;
    let dir = tempfile::tempdir().unwrap();
    let wildcard = rcgen::generate_simple_self_signed(vec!["*.route.test".into()]).unwrap();
    let (cert, key) = (dir.path().join("wild.pem"), dir.path().join("wild.key"));
    std::fs::write(&cert, wildcard.cert.pem()).unwrap();
    std::fs::write(&key, wildcard.signing_key.serialize_pem()).unwrap();
    let routes =
        tls_routes(&[("a", "a.route.test", &backend.url()), ("b", "b.route.test", &backend.url())]);
    let running = start_with(
        &pebble,
        &routes,
        dir.path(),
        &[
            "--wildcard-cert",
            cert.to_str().unwrap(),
            "--wildcard-key",
            key.to_str().unwrap(),
            "--header-timeout",
            "1s",
        ],
    )
    .await;
    // Issue 13, item 3: a TLS connection that never sends its ClientHello is closed at the
    // header timeout (the handshake deadline).
    let mut silent = tokio::net::TcpStream::connect(running.https_addr.unwrap()).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a silent TLS connection was held: {closed:?}"
    );
    let reply = https_get(
        running.https_addr.unwrap(),
        "b.route.test",
        "/",
        tls_client(&wildcard.cert.pem(), &[]),
    )
    .await
    .unwrap();
    assert_eq!(reply.body, "wild");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let certs = running.proxy.certs.as_ref().unwrap();
    assert_eq!(
        certs.metrics.orders_ok.load(Relaxed) + certs.metrics.orders_failed.load(Relaxed),
        0
    );
    assert!(certs.report().to_string().contains(r#""state":"wildcard""#), "{}", certs.report());
    running.shutdown().await;
}

/// The routers, middlewares and service Coolify generates for an app with a domain, HTTPS,
/// basic auth and compression (its Docker labels, as Traefik's configuration): an `http`
/// router that redirects, an `https` router with `gzip` and basic auth, both matching the same
/// host. Served as Traefik serves it: plain HTTP is redirected, HTTPS asks for the password,
/// then answers compressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coolify_config_with_https_basic_auth_and_compression_is_served_as_traefik_would() {
    use base64::Engine as _;
    use http_body_util::BodyExt as _;
    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();
    let root = pebble.root_ca_pem().await.unwrap();
    let backend = Backend::start("coolify-app").await;
    let dir = tempfile::tempdir().unwrap();
    let rule = "Host(`app.coolify.test`) && PathPrefix(`/`)";
    let config = serde_json::json!({"http": {
        "routers": {
            "http-0-abc123-app": {"entryPoints": ["http"], "rule": rule, "middlewares": ["redirect-to-https"], "service": "http-0-abc123-app"},
            "https-0-abc123-app": {"entryPoints": ["https"], "rule": rule, "middlewares": ["gzip", "http-basic-auth-abc123"], "service": "http-0-abc123-app", "tls": {"certresolver": "letsencrypt"}},
        },
        "middlewares": {
            "redirect-to-https": {"redirectscheme": {"scheme": "https"}},
            "gzip": {"compress": true},
            // OpenBSD's bcrypt test vector: the password is U*U.
            "http-basic-auth-abc123": {"basicauth": {"users": ["admin:$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"]}},
        },
        "services": {"http-0-abc123-app": {"loadBalancer": {"servers": [{"url": backend.url()}]}}},
    }});
    let running = start(&pebble, &config.to_string(), dir.path()).await;
    assert!(
        running.proxy.table.load().warnings.is_empty(),
        "{:?}",
        running.proxy.table.load().warnings
    );
    let https = running.https_addr.unwrap();
    wait_for_cert(&running, "app.coolify.test", &pebble).await;

    let (status, headers, _) = get(running.http_addr, "app.coolify.test", "/page?x=1").await;
    assert_eq!(status, 302, "redirectScheme, not permanent: 302 for a GET");
    // No `port` in the redirectScheme: the standard port, as Traefik.
    assert_eq!(headers["location"], "https://app.coolify.test/page?x=1");

    let fetch = |auth: Option<&'static str>| {
        let root = root.clone();
        async move {
            let tls = tls_connect(https, "app.coolify.test", tls_client(&root, &[b"http/1.1"]))
                .await
                .unwrap();
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let mut req = hyper::Request::get("/download?bytes=50000")
                .header("host", "app.coolify.test")
                .header("accept-encoding", "gzip");
            if let Some(creds) = auth {
                req = req.header(
                    "authorization",
                    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(creds)),
                );
            }
            let resp = send
                .send_request(req.body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap())
                .await
                .unwrap();
            let (parts, body) = resp.into_parts();
            (parts.status.as_u16(), parts.headers, body.collect().await.unwrap().to_bytes())
        }
    };
    let (status, headers, _) = fetch(None).await;
    assert_eq!(
        (status, headers["www-authenticate"].to_str().unwrap()),
        (401, "Basic realm=\"traefik\"")
    );
    let (status, headers, body) = fetch(Some("admin:U*U")).await;
    assert_eq!((status, headers["content-encoding"].to_str().unwrap()), (200, "gzip"));
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain).unwrap();
    assert_eq!(plain, vec![b'x'; 50_000]);
    running.shutdown().await;
}
