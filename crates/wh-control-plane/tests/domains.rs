//! Custom domains against real components: the API on a real Postgres; verification against
//! pebble-challtestsrv (Let's Encrypt's mock DNS) and against small DNS servers of our own on
//! loopback (several TXT strings; one that never answers); and end to end, a verified domain
//! routed by the real wh-proxy, certified by pebble over HTTP-01 and served over HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wh_control_plane::config::secret_bytes;
use wh_control_plane::deployments::DeploymentState;
use wh_control_plane::domains::{DnsSettings, Outcome, Verifier};
use wh_control_plane::testing::{fixtures, Options, TestControlPlane};
use wh_control_plane::{api, AppState, Routing};
use wh_testkit::pebble::{Pebble, PebbleOptions};

const TOKEN: &str = "proxy-token-for-domains";

struct Env {
    state: AppState,
    db: wh_testkit::postgres::TestDatabase,
    auth: String,
    cp: TestControlPlane,
}

async fn env(dns: Option<SocketAddr>) -> Env {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let options = Options {
        scheduler: None,
        proxy_token: Some(TOKEN.into()),
        dns: dns.map(|addr| DnsSettings { servers: vec![addr], ..Default::default() }),
        ..Options::default()
    };
    let cp = TestControlPlane::start(&db.pool, options).await;
    let (_, auth) = fixtures::user_with_token(&db.pool, "dom@example.test").await;
    Env { state: cp.state.clone(), db, auth, cp }
}

async fn call(
    env: &Env,
    method: &str,
    uri: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(uri).header("authorization", &env.auth);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
    let resp = api::app(env.state.clone()).oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

async fn create_app(env: &Env, name: &str) {
    let (status, body) =
        call(env, "POST", "/api/v1/apps", Some(serde_json::json!({"name": name, "port": 8000})))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn add(env: &Env, app: &str, hostname: &str) -> (StatusCode, serde_json::Value) {
    call(
        env,
        "POST",
        &format!("/api/v1/apps/{app}/domains"),
        Some(serde_json::json!({"hostname": hostname})),
    )
    .await
}

#[tokio::test]
async fn apex_names_are_offered_the_proxys_addresses_when_configured() {
    let mut env = env(None).await;
    let mut routing = Routing::follow(&env.db.pool, Some(secret_bytes(TOKEN)), "route.test");
    routing.proxy_addresses = vec!["192.0.2.10".parse().unwrap(), "2001:db8::10".parse().unwrap()];
    env.state.routing = Arc::new(routing);
    create_app(&env, "shop").await;
    let (status, d) = add(&env, "shop", "customer.example").await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    let records = d["records"].as_array().unwrap();
    let kinds: Vec<&str> = records.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["TXT", "CNAME", "A", "AAAA"]);
    assert_eq!(records[2]["value"], "192.0.2.10");
    assert_eq!(records[3]["value"], "2001:db8::10");
    assert_eq!(records[2]["name"], "customer.example");
    assert!(records[2]["note"].as_str().unwrap().contains("apex"), "{d}");
    assert!(records[1].get("note").is_none(), "{d}");
    // The list answers the same records.
    let (_, list) = call(&env, "GET", "/api/v1/apps/shop/domains", None).await;
    assert_eq!(list[0]["records"], d["records"]);
}

#[tokio::test]
async fn domains_are_normalised_validated_unique_listed_audited_and_removed() {
    let env = env(None).await;
    create_app(&env, "shop").await;
    create_app(&env, "blog").await;

    let (status, d) = add(&env, "shop", "WWW.Customer.Example.").await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    assert_eq!(d["hostname"], "www.customer.example");
    assert_eq!(d["status"], "pending");
    let token = d["token"].as_str().unwrap();
    assert_eq!(token.len(), 64, "32 random bytes, hex");
    assert_eq!(
        d["records"][0],
        serde_json::json!({"type": "TXT", "name": "_wisehosting.www.customer.example", "value": token})
    );
    assert_eq!(
        d["records"][1],
        serde_json::json!({"type": "CNAME", "name": "www.customer.example", "value": "shop.route.test"})
    );
    assert_eq!(d["records"].as_array().map(Vec::len), Some(2), "no proxy addresses configured");

    // Unicode is stored as punycode.
    let (status, d) = add(&env, "shop", "bücher.example").await;
    assert_eq!(
        (status, d["hostname"].as_str()),
        (StatusCode::CREATED, Some("xn--bcher-kva.example"))
    );

    // Each invalid name is refused with 422 naming the problem.
    for (name, why) in [
        ("10.0.0.1", "IP address"),
        ("localhost", "two labels"),
        (&format!("{}.example", "a".repeat(64)) as &str, "longer than 63"),
        ("my_shop.example", "`_`"),
        ("-shop.example", "starting or ending with -"),
        ("x.route.test", "platform's own domain"),
    ] {
        let (status, err) = add(&env, "shop", name).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {err}");
        assert_eq!(err["error"]["field"], "hostname");
        assert!(err["error"]["message"].as_str().unwrap().contains(why), "{name}: {err}");
    }
    // The same name again on the same app (in any spelling) is a conflict; on another app it
    // is a claim of its own, with its own token (the name goes to whoever proves it).
    let (status, err) = add(&env, "shop", "www.CUSTOMER.example").await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    let (status, other) = add(&env, "blog", "www.CUSTOMER.example").await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    assert_ne!(other["token"], token);

    let (status, list) = call(&env, "GET", "/api/v1/apps/shop/domains", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> =
        list.as_array().unwrap().iter().map(|d| d["hostname"].as_str().unwrap()).collect();
    assert_eq!(names, ["www.customer.example", "xn--bcher-kva.example"]);
    // Not on that app: not found.
    let (status, _) =
        call(&env, "DELETE", "/api/v1/apps/blog/domains/xn--bcher-kva.example", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&env, "DELETE", "/api/v1/apps/shop/domains/bücher.example", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE action LIKE 'domain.%' ORDER BY id",
    )
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(actions, ["domain.add", "domain.add", "domain.add", "domain.remove"]);
}

/// Issue 12, item A10: a claim that is never verified does not block the real owner (the first
/// to add a name used to keep it, 409 for everyone else, even after its claim had failed). The
/// one who proves the TXT record takes the name; after that it is "taken", naming no tenant.
#[tokio::test]
async fn a_pending_claim_never_blocks_the_owner_who_proves_the_name() {
    let mut env = env(None).await;
    create_app(&env, "squatter").await;
    create_app(&env, "owner").await;
    let (status, _) = add(&env, "squatter", "www.owned.example").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, claim) = add(&env, "owner", "www.owned.example").await;
    assert_eq!(status, StatusCode::CREATED, "a pending claim blocked the owner: {claim}");
    // The owner publishes its own token.
    let token = claim["token"].as_str().unwrap().to_owned();
    let dns = dns_server(Answer::Txt(vec![vec![token]])).await;
    env.state.dns =
        Arc::new(Verifier::new(&DnsSettings { servers: vec![dns], ..Default::default() }));
    // The squatter's claim cannot verify with the owner's record.
    let (_, v) =
        call(&env, "POST", "/api/v1/apps/squatter/domains/www.owned.example/verify", None).await;
    assert_eq!(v["status"], "pending", "{v}");
    let (status, v) =
        call(&env, "POST", "/api/v1/apps/owner/domains/www.owned.example/verify", None).await;
    assert_eq!((status, v["status"].as_str()), (StatusCode::OK, Some("verified")), "{v}");
    let (_, left) = call(&env, "GET", "/api/v1/apps/squatter/domains", None).await;
    assert_eq!(left, serde_json::json!([]), "the losing claim was kept");
    let (status, err) = add(&env, "squatter", "www.owned.example").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("taken") && !message.contains("owner"), "{message}");
}

/// How a test DNS server answers.
enum Answer {
    /// Every TXT query with these records (each a list of character-strings).
    Txt(Vec<Vec<String>>),
    /// NXDOMAIN for every name.
    NxDomain,
    /// SERVFAIL.
    ServFail,
    /// Never (UDP and TCP).
    Silent,
}

/// A DNS server on loopback answering as `answer` says.
async fn dns_server(answer: Answer) -> SocketAddr {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::rdata::TXT;
    use hickory_proto::rr::{RData, Record};
    // The same port for UDP and TCP (retried until both are free).
    let (udp, tcp, addr) = loop {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
            break (udp, tcp, addr);
        }
    };
    tokio::spawn(async move {
        let mut held = Vec::new();
        // Over TCP it never answers: accept and hold.
        while let Ok((s, _)) = tcp.accept().await {
            held.push(s);
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = udp.recv_from(&mut buf).await else { return };
            if matches!(answer, Answer::Silent) {
                continue;
            }
            let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
            let mut reply = Message::new();
            reply.set_id(query.id());
            reply.set_message_type(MessageType::Response);
            reply.set_recursion_desired(query.recursion_desired());
            reply.set_recursion_available(true);
            reply.set_response_code(match &answer {
                Answer::NxDomain => ResponseCode::NXDomain,
                Answer::ServFail => ResponseCode::ServFail,
                _ => ResponseCode::NoError,
            });
            for q in query.queries() {
                reply.add_query(q.clone());
                if let Answer::Txt(records) = &answer {
                    for strings in records {
                        reply.add_answer(Record::from_rdata(
                            q.name().clone(),
                            60,
                            RData::TXT(TXT::new(strings.clone())),
                        ));
                    }
                }
            }
            let _ = udp.send_to(&reply.to_vec().unwrap(), from).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_outcomes_against_real_dns_servers() {
    // pebble-challtestsrv: one TXT value per name.
    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();
    let env = env(Some(pebble.dns_addr())).await;
    create_app(&env, "shop").await;
    let (_, d) = add(&env, "shop", "shop.customer.test").await;
    let token = d["token"].as_str().unwrap().to_owned();
    let verify = |host: &'static str| {
        let env = &env;
        async move { call(env, "POST", &format!("/api/v1/apps/shop/domains/{host}/verify"), None).await }
    };

    // No record at all. challtestsrv answers NOERROR without records for any name it does not
    // know (it never says NXDOMAIN), so this is "no matching TXT"; NXDOMAIN is tested below.
    let (status, v) = verify("shop.customer.test").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["outcome"].as_str(), v["status"].as_str()),
        (Some("no_matching_txt"), Some("pending")),
        "{v}"
    );
    // The wrong token: no matching TXT, with the reason kept on the domain.
    pebble.set_txt("_wisehosting.shop.customer.test", "not-the-token").await.unwrap();
    let (_, v) = verify("shop.customer.test").await;
    assert_eq!(v["outcome"], "no_matching_txt", "{v}");
    let (_, list) = call(&env, "GET", "/api/v1/apps/shop/domains", None).await;
    assert_eq!(list[0]["last_outcome"], "no_matching_txt");
    assert!(list[0]["reason"].as_str().unwrap().contains("carries the token"), "{list}");
    assert!(list[0]["last_checked_at"].is_string());
    // The right one: verified.
    pebble.set_txt("_wisehosting.shop.customer.test", &token).await.unwrap();
    let (_, v) = verify("shop.customer.test").await;
    assert_eq!(
        (v["outcome"].as_str(), v["status"].as_str()),
        (Some("verified"), Some("verified")),
        "{v}"
    );

    // The daily recheck of a verified domain whose record vanished: flagged, still verified.
    pebble.clear_txt("_wisehosting.shop.customer.test").await.unwrap();
    sqlx::query("UPDATE domains SET next_check_at = now() - interval '1 second'")
        .execute(&env.db.pool)
        .await
        .unwrap();
    let checked =
        wh_control_plane::domains::recheck_due(&env.db.pool, &env.state.dns).await.unwrap();
    assert_eq!(checked, 1);
    let (_, list) = call(&env, "GET", "/api/v1/apps/shop/domains", None).await;
    assert_eq!(
        (list[0]["status"].as_str(), list[0]["record_missing"].as_bool()),
        (Some("verified"), Some(true)),
        "{list}"
    );
    // A pending domain older than 72 hours fails at its recheck.
    let (_, d) = add(&env, "shop", "late.customer.test").await;
    assert_eq!(d["status"], "pending");
    sqlx::query("UPDATE domains SET created_at = now() - interval '73 hours' WHERE hostname = 'late.customer.test'")
        .execute(&env.db.pool)
        .await
        .unwrap();
    wh_control_plane::domains::recheck_due(&env.db.pool, &env.state.dns).await.unwrap();
    let (_, list) = call(&env, "GET", "/api/v1/apps/shop/domains", None).await;
    let late =
        list.as_array().unwrap().iter().find(|d| d["hostname"] == "late.customer.test").unwrap();
    assert_eq!(late["status"], "failed", "{late}");

    // Several TXT records and strings: one whose strings join to the token verifies.
    let (half1, half2) = token.split_at(20);
    let several =
        dns_server(Answer::Txt(vec![vec!["v=spf1 -all".into()], vec![half1.into(), half2.into()]]))
            .await;
    let verifier = Verifier::new(&DnsSettings { servers: vec![several], ..Default::default() });
    assert_eq!(verifier.check("shop.customer.test", &token).await, Outcome::Verified);
    assert_eq!(verifier.check("shop.customer.test", "other").await, Outcome::NoMatchingTxt);

    // A server that never answers: a timeout after about 8 s, not later.
    let nx = Verifier::new(&DnsSettings {
        servers: vec![dns_server(Answer::NxDomain).await],
        ..Default::default()
    });
    assert_eq!(nx.check("gone.customer.test", &token).await, Outcome::NoSuchName);
    let broken = Verifier::new(&DnsSettings {
        servers: vec![dns_server(Answer::ServFail).await],
        ..Default::default()
    });
    let failed = broken.check("shop.customer.test", &token).await;
    assert!(matches!(failed, Outcome::ServerFailure(_)), "{failed:?}");

    let silent = dns_server(Answer::Silent).await;
    let verifier = Verifier::new(&DnsSettings { servers: vec![silent], ..Default::default() });
    let started = Instant::now();
    assert_eq!(verifier.check("shop.customer.test", &token).await, Outcome::Timeout);
    let took = started.elapsed();
    assert!(took <= Duration::from_secs(9), "gave up after {took:?}");
    assert!(took >= Duration::from_secs(7), "gave up early, after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_domain_is_routed_certified_and_served_over_https_and_removing_it_unroutes() {
    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();
    let root = pebble.root_ca_pem().await.unwrap();
    pebble.add_a("www.shop.test", &["127.0.0.1"]).await.unwrap();
    let env = env(Some(pebble.dns_addr())).await;
    let cp = env.cp.addr.unwrap();

    // The app, live on a loopback "worker".
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_port = backend.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(backend, axum::Router::new().fallback(|| async { "the shop" })).await.unwrap()
    });
    create_app(&env, "shop").await;
    let (worker, _) =
        wh_control_plane::workers::create(&env.db.pool, "w", "127.0.0.1").await.unwrap();
    let shop: i64 = sqlx::query_scalar("SELECT id FROM apps WHERE slug = 'shop'")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    fixtures::deployment(&env.db.pool, shop)
        .git_ref("upload:x")
        .state(DeploymentState::Live)
        .worker(worker.id)
        .host_port(backend_port)
        .insert()
        .await;

    // The custom domain, verified through challtestsrv.
    let (_, d) = add(&env, "shop", "www.shop.test").await;
    pebble.set_txt("_wisehosting.www.shop.test", d["token"].as_str().unwrap()).await.unwrap();
    let (_, v) = call(&env, "POST", "/api/v1/apps/shop/domains/www.shop.test/verify", None).await;
    assert_eq!(v["status"], "verified", "{v}");
    let config =
        wh_control_plane::proxy_config::render(&env.db.pool, "route.test", true).await.unwrap();
    let config = String::from_utf8_lossy(&config.body);
    assert!(
        config.contains(r#""rule":"Host(`shop.route.test`) || Host(`www.shop.test`)""#),
        "one router, both hosts: {config}"
    );

    // wh-proxy following the control plane, with pebble as its ACME CA.
    let dir = tempfile::tempdir().unwrap();
    let args = wh_proxy::cli::Args {
        https_addr: Some("127.0.0.1:0".into()),
        acme_directory: Some(pebble.directory_url()),
        acme_ca_bundle: Some(pebble.directory_cert_path()),
        ..wh_proxy::cli::Args::following(
            format!("http://{cp}/v1/traefik/proxy-config"),
            TOKEN,
            dir.path().to_owned(),
            SocketAddr::from(([127, 0, 0, 1], pebble.options().http01_port)),
        )
    };
    let proxy =
        wh_proxy::run::start(wh_proxy::cli::Settings::from_args(args).unwrap()).await.unwrap();
    let https = proxy.https_addr.unwrap();
    let certs = proxy.proxy.certs.as_ref().unwrap();
    let issued = wh_testkit::until(Duration::from_secs(60), async || {
        certs.store.get("www.shop.test").is_some()
    });
    assert!(issued.await, "no certificate: {}\n{}", certs.report(), pebble.log());
    // The proxy told the control plane, which made it the app's certificate.issued event.
    let told = wh_testkit::until(Duration::from_secs(20), async || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM event_outbox WHERE event_type = 'certificate.issued' AND payload->>'hostname' = 'www.shop.test' AND payload->>'app' = 'shop'",
        )
        .fetch_one(&env.db.pool)
        .await
        .unwrap()
            == 1
    });
    assert!(told.await, "no certificate.issued event for www.shop.test");

    // HTTPS to the custom domain, trusting only pebble's root.
    let body = https_get(https, "www.shop.test", &root).await.expect("HTTPS to the custom domain");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("the shop"), "{body}");

    // Removing the domain removes its route (the certificate is then never renewed).
    let (status, _) = call(&env, "DELETE", "/api/v1/apps/shop/domains/www.shop.test", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let unrouted = wh_testkit::until(Duration::from_secs(20), async || {
        !proxy.proxy.table.load().tls_hosts().any(|h| h == "www.shop.test")
    });
    assert!(unrouted.await, "the removed domain is still routed");
    // Its certificate stays on disk until it expires (never renewed); the host answers 404.
    let after = https_get(https, "www.shop.test", &root).await.unwrap_or_default();
    assert!(after.starts_with("HTTP/1.1 404"), "the removed domain is still served: {after}");
    proxy.shutdown().await;
}

/// `GET /` over TLS with SNI `host`, trusting only `root_pem`; the whole response as text.
async fn https_get(addr: SocketAddr, host: &str, root_pem: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wh_http::client::{client_config, Trust};
    let trust = Trust::from_pem(root_pem.as_bytes()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(client_config(&trust, &[])).connect(name, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    tls.write_all(
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
