//! Outbound webhooks and notifications on the real Postgres, delivered by the real dispatcher
//! and outbound client to stand-in servers on loopback: deploys, domains, crashes and alerts
//! produce events that reach a signed webhook and a channel; failures are retried on the
//! schedule with the same event id; `Retry-After`, 410 and long failure are honoured; an
//! attempt whose process died is made again; two dispatchers deliver each event once; the SSRF
//! guard refuses loopback, a name resolving to the mesh, IPv4-mapped metadata and redirects.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wh_control_plane::deployments::{self, DeploymentState};
use wh_control_plane::outbound::guard::{parse_cidrs, Guard, Refused};
use wh_control_plane::outbound::resolve::{Dns, Fixed, Resolve};
use wh_control_plane::outbound::{Client, OutboundError};
use wh_control_plane::secrets::{MasterKey, Purpose};
use wh_control_plane::testing::standin::{Reply, StandIn};
use wh_control_plane::testing::{fixtures, Options, Outbound, TestControlPlane};
use wh_control_plane::webhooks::dispatch::{Dispatcher, Settings};
use wh_control_plane::webhooks::signature;
use wh_control_plane::webhooks::targets::{self, Keys, NewTarget, TargetKind};
use wh_testkit::wait::eventually;

const HOOK_HOST: &str = "hooks.example.test";

struct Env {
    db: wh_testkit::postgres::TestDatabase,
    cp: TestControlPlane,
    bearer: String,
    user: i64,
    app: i64,
    hooks: StandIn,
}

async fn env() -> Env {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let (user, bearer) = fixtures::user_with_token(&db.pool, "hooks@example.test").await;
    let app = fixtures::app(&db.pool, user, "shop").insert().await;
    let hooks = StandIn::https(&[HOOK_HOST, "discord.com"]).await;
    let resolver = Fixed(HashMap::from([
        (HOOK_HOST.to_owned(), hooks.addr),
        ("discord.com".to_owned(), hooks.addr),
    ]));
    let outbound = Outbound::loopback(Arc::new(resolver), hooks.pem.as_deref());
    let cp =
        TestControlPlane::start(&db.pool, Options { outbound: Some(outbound), ..Options::bare() })
            .await;
    Env { db, cp, bearer, user, app, hooks }
}

impl Env {
    /// A webhook for `events` via the API; its id and secret.
    async fn webhook(&self, path: &str, events: Value) -> (i64, String) {
        let (status, body) = self
            .cp
            .call(
                &self.bearer,
                "POST",
                "/api/v1/webhooks",
                Some(json!({"url": format!("https://{HOOK_HOST}{path}"), "events": events})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (body["target"]["id"].as_i64().unwrap(), body["secret"].as_str().unwrap().to_owned())
    }

    async fn requests_to(
        &self,
        path: &str,
        n: usize,
    ) -> Vec<wh_control_plane::testing::standin::Recorded> {
        eventually(Duration::from_secs(20), &format!("{n} requests to {path}"), || async {
            let found: Vec<_> =
                self.hooks.requests().into_iter().filter(|r| r.target == path).collect();
            (found.len() >= n).then_some(found)
        })
        .await
    }

    async fn deliveries(&self, target: i64) -> Value {
        let (status, body) = self
            .cp
            .call(&self.bearer, "GET", &format!("/api/v1/webhooks/{target}/deliveries"), None)
            .await;
        assert_eq!(status, 200);
        body
    }
}

/// Verifies a delivery's Standard Webhooks signature with `secret`; its body.
fn verified(r: &wh_control_plane::testing::standin::Recorded, secret: &str) -> Value {
    let key = signature::key(secret).unwrap();
    signature::verify(
        &key,
        r.header("webhook-id").unwrap(),
        r.header("webhook-timestamp").unwrap(),
        r.header("webhook-signature").unwrap(),
        &r.body,
        wh_control_plane::now_ms() / 1000,
    )
    .expect("the signature verifies");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-wisehosting-signature").unwrap().starts_with("t="));
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_domains_and_crashes_reach_a_signed_webhook() {
    let env = env().await;
    let (id, secret) = env.webhook("/all", json!([])).await;
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = env.cp.call(&env.bearer, "GET", "/api/v1/webhooks", None).await;
    assert_eq!(listed[0]["display"], format!("https://{HOOK_HOST}"));
    assert!(!listed.to_string().contains("whsec_"), "the secret is shown once");
    let pool = &env.db.pool;
    let d = fixtures::deployment(pool, env.app).git_ref("main").insert().await;
    assert!(deployments::transition(
        pool,
        d,
        DeploymentState::Queued,
        DeploymentState::Building,
        None
    )
    .await
    .unwrap());
    assert!(deployments::transition(
        pool,
        d,
        DeploymentState::Building,
        DeploymentState::Failed,
        Some("build exited 2")
    )
    .await
    .unwrap());
    sqlx::query("INSERT INTO domains (app_id, hostname, token, status) VALUES ($1, 'shop.example.com', 't', 'verified')")
        .bind(env.app)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO container_restarts (app_id) VALUES ($1)")
        .bind(env.app)
        .execute(pool)
        .await
        .unwrap();
    let got = env.requests_to("/all", 4).await;
    // Deliveries go out concurrently: in no particular order.
    let bodies: HashMap<String, Value> = got
        .iter()
        .map(|r| verified(r, &secret))
        .map(|b| (b["type"].as_str().unwrap().to_owned(), b))
        .collect();
    let mut types: Vec<&str> = bodies.keys().map(String::as_str).collect();
    types.sort();
    assert_eq!(
        types,
        ["app.crashed", "deployment.failed", "deployment.started", "domain.verified"]
    );
    let failed = &bodies["deployment.failed"];
    assert_eq!(failed["data"]["error"], "build exited 2");
    assert_eq!(failed["data"]["app"], "shop");
    assert_eq!(failed["data"]["deployment_id"], d);
    assert_eq!(bodies["domain.verified"]["data"]["hostname"], "shop.example.com");
    assert!(failed["timestamp"].as_str().unwrap().ends_with('Z'));
    for r in &got {
        assert_eq!(r.header("x-wisehosting-event"), verified(r, &secret)["type"].as_str());
        assert!(r.body.len() <= 20 * 1024);
    }
    let deliveries = eventually(Duration::from_secs(10), "four recorded", || async {
        let d = env.deliveries(id).await;
        d.as_array().unwrap().iter().all(|x| x["state"] == "succeeded").then_some(d)
    })
    .await;
    assert_eq!(deliveries.as_array().unwrap().len(), 4);
    assert_eq!(deliveries[0]["tries"][0]["status"], 200);
    assert_eq!(deliveries[0]["tries"][0]["response"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_choose_their_events_and_their_app() {
    let env = env().await;
    let (_, _) = env.webhook("/failed-only", json!(["deployment.failed"])).await;
    let other = fixtures::app(&env.db.pool, env.user, "blog").insert().await;
    let (status, body) = env
        .cp
        .call(
            &env.bearer,
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": format!("https://{HOOK_HOST}/blog"), "app": "blog"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let pool = &env.db.pool;
    for app in [env.app, other] {
        let d = fixtures::deployment(pool, app).insert().await;
        deployments::transition(pool, d, DeploymentState::Queued, DeploymentState::Building, None)
            .await
            .unwrap();
        deployments::transition(
            pool,
            d,
            DeploymentState::Building,
            DeploymentState::Failed,
            Some("x"),
        )
        .await
        .unwrap();
    }
    let failed = env.requests_to("/failed-only", 2).await;
    let blog = env.requests_to("/blog", 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.hooks.requests().iter().filter(|r| r.target == "/failed-only").count(), 2);
    assert!(failed.iter().all(|r| r.json()["type"] == "deployment.failed"));
    assert_eq!(env.hooks.requests().iter().filter(|r| r.target == "/blog").count(), 2);
    assert!(blog.iter().all(|r| r.json()["data"]["app"] == "blog"));
    // Names that are no event are refused, naming the field.
    let (status, body) = env
        .cp
        .call(
            &env.bearer,
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": format!("https://{HOOK_HOST}/x"), "events": ["deploy.everything"]})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["field"], "events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_with_the_same_event_id_and_retry_after_is_honoured() {
    let env = env().await;
    let (id, secret) = env.webhook("/flaky", json!(["app.crashed"])).await;
    env.hooks.reply(Reply::status(500).body("try later"));
    let pool = &env.db.pool;
    sqlx::query("INSERT INTO container_restarts (app_id) VALUES ($1)")
        .bind(env.app)
        .execute(pool)
        .await
        .unwrap();
    // The first attempt fails; the second comes about 5 s (±10 %) later and succeeds.
    let got = env.requests_to("/flaky", 2).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    verified(&got[1], &secret);
    let deliveries = eventually(Duration::from_secs(10), "the retry recorded", || async {
        let d = env.deliveries(id).await;
        (d[0]["state"] == "succeeded").then_some(d)
    })
    .await;
    let tries = &deliveries[0]["tries"];
    assert_eq!(
        (tries[0]["status"].as_i64(), tries[0]["response"].as_str()),
        (Some(500), Some("try later"))
    );
    assert_eq!(tries[1]["status"], 200);
    let gap: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(started_at) - min(started_at))::float8 FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.target_id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert!((4.4..7.0).contains(&gap), "the retry came {gap} s later");
    assert_eq!(deliveries[0]["state"], "succeeded");

    // 503 with Retry-After: 120 puts the next attempt two minutes out, not 5 s.
    env.hooks.reply(Reply::status(503).header("retry-after", "120"));
    sqlx::query("INSERT INTO container_restarts (app_id) VALUES ($1)")
        .bind(env.app)
        .execute(pool)
        .await
        .unwrap();
    env.requests_to("/flaky", 3).await;
    // Recorded: the lease is given back (while claimed, the row still holds its old due time).
    let wait: f64 = eventually(Duration::from_secs(10), "the 503 recorded", || async {
        sqlx::query_scalar::<_, f64>(
            "SELECT extract(epoch FROM next_attempt_at - now())::float8 FROM deliveries WHERE target_id = $1 AND state = 'pending' AND attempts = 1 AND lease_until IS NULL",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap()
    })
    .await;
    assert!((100.0..=121.0).contains(&wait), "next attempt in {wait} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_target_and_the_owner_is_told_on_their_channels() {
    let env = env().await;
    let (id, _) = env.webhook("/gone", json!(["app.crashed"])).await;
    let (status, body) = env
        .cp
        .call(
            &env.bearer,
            "POST",
            "/api/v1/notifications",
            Some(json!({"url": "discord://tok@42", "events": ["deployment.failed"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["target"]["display"], "discord://42");
    assert_eq!(body["secret"], Value::Null);
    env.hooks.reply(Reply::status(410));
    sqlx::query("INSERT INTO container_restarts (app_id) VALUES ($1)")
        .bind(env.app)
        .execute(&env.db.pool)
        .await
        .unwrap();
    let told = env.requests_to("/api/webhooks/42/tok", 1).await;
    let embed = &told[0].json()["embeds"][0];
    assert_eq!(embed["title"], "Notifications disabled");
    assert!(embed["description"].as_str().unwrap().contains("410 Gone"), "{embed}");
    let (_, view) = env.cp.call(&env.bearer, "GET", &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(view["enabled"], false);
    assert_eq!(view["disabled_reason"], "the endpoint answered 410 Gone");
    assert_eq!(env.deliveries(id).await[0]["state"], "failed");
    // A disabled target gets nothing more, and is re-enabled by its owner.
    sqlx::query("INSERT INTO container_restarts (app_id) VALUES ($1)")
        .bind(env.app)
        .execute(&env.db.pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.hooks.requests().iter().filter(|r| r.target == "/gone").count(), 1);
    let (status, view) = env
        .cp
        .call(
            &env.bearer,
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(
        (status, &view["enabled"], &view["disabled_reason"]),
        (200, &json!(true), &Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_failures_in_a_row_or_five_days_of_them_disable_a_target() {
    let env = env().await;
    let (a, _) = env.webhook("/a", json!(["app.crashed"])).await;
    let (b, _) = env.webhook("/b", json!(["app.crashed"])).await;
    let pool = &env.db.pool;
    sqlx::query(
        "UPDATE notify_targets SET consecutive_failures = 99, failing_since = now() WHERE id = $1",
    )
    .bind(a)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE notify_targets SET consecutive_failures = 3, failing_since = now() - interval '5 days 1 minute' WHERE id = $1").bind(b).execute(pool).await.unwrap();
    env.hooks.reply(Reply::status(500));
    env.hooks.reply(Reply::status(500));
    sqlx::query("INSERT INTO container_restarts (app_id) VALUES ($1)")
        .bind(env.app)
        .execute(pool)
        .await
        .unwrap();
    let reasons: Vec<Option<String>> =
        eventually(Duration::from_secs(20), "both disabled", || async {
            let r: Vec<(bool, Option<String>)> =
                sqlx::query_as("SELECT enabled, disabled_reason FROM notify_targets ORDER BY id")
                    .fetch_all(pool)
                    .await
                    .unwrap();
            r.iter().all(|(e, _)| !e).then(|| r.into_iter().map(|(_, why)| why).collect())
        })
        .await;
    assert_eq!(
        reasons,
        [
            Some("100 deliveries in a row failed".into()),
            Some("deliveries failed for 5 days".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_uses_the_delivery_path_and_rotation_signs_with_both_secrets() {
    let env = env().await;
    let (id, old) = env.webhook("/t", json!(["deployment.failed"])).await;
    let (status, d) =
        env.cp.call(&env.bearer, "POST", &format!("/api/v1/webhooks/{id}/test"), None).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (&d["event_type"], &d["state"], &d["tries"][0]["status"]),
        (&json!("webhook.test"), &json!("succeeded"), &json!(200))
    );
    let got = env.requests_to("/t", 1).await;
    assert_eq!(verified(&got[0], &old)["type"], "webhook.test");
    let (status, rotated) =
        env.cp.call(&env.bearer, "POST", &format!("/api/v1/webhooks/{id}/rotate"), None).await;
    assert_eq!(status, 200);
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previous_valid_until"].is_string());
    env.cp.call(&env.bearer, "POST", &format!("/api/v1/webhooks/{id}/test"), None).await;
    let got = env.requests_to("/t", 2).await;
    assert_eq!(got[1].header("webhook-signature").unwrap().split(' ').count(), 2);
    verified(&got[1], &new);
    verified(&got[1], &old);
    // Someone else's webhook is not found.
    let (_, stranger) = fixtures::user_with_token(&env.db.pool, "stranger@example.test").await;
    let (status, _) =
        env.cp.call(&stranger, "POST", &format!("/api/v1/webhooks/{id}/test"), None).await;
    assert_eq!(status, 404);
    let (status, _) =
        env.cp.call(&stranger, "DELETE", &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) =
        env.cp.call(&env.bearer, "DELETE", &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_first_64_kib_of_an_answer_is_kept() {
    let env = env().await;
    let (id, _) = env.webhook("/big", json!([])).await;
    env.hooks.reply(Reply::status(200).body(&"x".repeat(100 * 1024)));
    let (_, d) =
        env.cp.call(&env.bearer, "POST", &format!("/api/v1/webhooks/{id}/test"), None).await;
    assert_eq!(d["tries"][0]["response"].as_str().unwrap().len(), 64 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_and_secrets_are_sealed_and_bad_urls_refused() {
    let env = env().await;
    let (_, secret) = env.webhook("/sealed?token=hunter2", json!([])).await;
    env.cp
        .call(
            &env.bearer,
            "POST",
            "/api/v1/notifications",
            Some(json!({"url": "discord://t0p-s3cret@42"})),
        )
        .await;
    let dump: Vec<String> = sqlx::query_scalar("SELECT row_to_json(t)::text FROM notify_targets t")
        .fetch_all(&env.db.pool)
        .await
        .unwrap();
    let audit: Vec<String> = sqlx::query_scalar("SELECT row_to_json(a)::text FROM audit_events a")
        .fetch_all(&env.db.pool)
        .await
        .unwrap();
    for row in dump.iter().chain(&audit) {
        for s in ["hunter2", "t0p-s3cret", &secret[6..]] {
            assert!(!row.contains(s), "{s} in {row}");
        }
    }
    for (path, url, says) in [
        ("/api/v1/webhooks", "http://hooks.example.test/x", "only https"),
        ("/api/v1/webhooks", "https://10.50.0.1/x", "10.50.0.1 is private"),
        ("/api/v1/webhooks", "https://[::ffff:169.254.169.254]/latest", "link-local"),
        ("/api/v1/webhooks", "https://hooks.example.test:22/x", "port 22"),
        ("/api/v1/webhooks", "https://localhost/x", "loopback"),
        ("/api/v1/webhooks", "ftp://x", "https"),
        ("/api/v1/notifications", "slack://hook:bad@webhook", "three parts"),
        ("/api/v1/notifications", "whatsapp://x", "not a supported service"),
    ] {
        let (status, body) =
            env.cp.call(&env.bearer, "POST", path, Some(json!({"url": url}))).await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["field"], "url");
        assert!(body["error"]["message"].as_str().unwrap().contains(says), "{url}: {body}");
    }
}

fn keys() -> Arc<Keys> {
    let master = MasterKey::from_bytes([9u8; 32]);
    Arc::new(Keys {
        urls: master.sealer(Purpose::TargetUrl),
        secrets: master.sealer(Purpose::Webhook),
    })
}

fn dispatcher(
    pool: &sqlx::PgPool,
    keys: Arc<Keys>,
    standin: &StandIn,
    lease: Duration,
) -> Dispatcher {
    Dispatcher::new(
        pool.clone(),
        Settings {
            client: Client::new(
                &wh_http::client::Trust::from_pem(standin.pem.as_ref().unwrap().as_bytes())
                    .unwrap(),
            ),
            guard: Guard {
                allow_http: false,
                allow: parse_cidrs("127.0.0.0/8").unwrap(),
                resolver: Arc::new(Fixed(HashMap::from([(HOOK_HOST.to_owned(), standin.addr)]))),
            },
            keys,
            dashboard: String::new(),
            lease,
        },
    )
}

async fn manual_env() -> (wh_testkit::postgres::TestDatabase, i64, StandIn, Arc<Keys>, i64) {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let user = fixtures::user(&db.pool, "manual@example.test").await;
    let app = fixtures::app(&db.pool, user, "shop").insert().await;
    let standin = StandIn::https(&[HOOK_HOST]).await;
    let keys = keys();
    let guard = Guard { allow_http: false, allow: vec![], resolver: Arc::new(Fixed::default()) };
    let mut tx = db.pool.begin().await.unwrap();
    let t = targets::create(
        &mut tx,
        &keys,
        &guard,
        user,
        NewTarget {
            kind: TargetKind::Webhook,
            url: format!("https://{HOOK_HOST}/m"),
            app_id: None,
            events: vec![],
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (db, app, standin, keys, t.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_process_died_is_made_again_with_the_same_event_id() {
    let (db, app, standin, keys, target) = manual_env().await;
    sqlx::query("INSERT INTO container_restarts (app_id) VALUES ($1)")
        .bind(app)
        .execute(&db.pool)
        .await
        .unwrap();
    let first = dispatcher(&db.pool, keys.clone(), &standin, Duration::from_secs(1));
    wh_control_plane::webhooks::fanout::events(&db.pool).await.unwrap();
    let claimed = first.claim().await.unwrap();
    assert_eq!(claimed.len(), 1);
    let event = claimed[0].event_id;
    // The process dies here: claimed, never sent, never recorded.
    drop(first);
    let second = dispatcher(&db.pool, keys, &standin, Duration::from_secs(60));
    assert_eq!(second.tick().await.unwrap(), 0, "held by the dead dispatcher's lease");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(second.tick().await.unwrap(), 1);
    let got = standin.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("webhook-id"), Some(event.to_string().as_str()));
    let (state, attempts): (String, i32) =
        sqlx::query_as("SELECT state::text, attempts FROM deliveries WHERE target_id = $1")
            .bind(target)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), attempts), ("succeeded", 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_deliver_each_event_once() {
    let (db, app, standin, keys, _) = manual_env().await;
    for _ in 0..40 {
        sqlx::query("INSERT INTO container_restarts (app_id) VALUES ($1)")
            .bind(app)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let a = dispatcher(&db.pool, keys.clone(), &standin, Duration::from_secs(60));
    let b = dispatcher(&db.pool, keys, &standin, Duration::from_secs(60));
    let (x, y) = tokio::join!(a.tick(), b.tick());
    assert_eq!(x.unwrap() + y.unwrap(), 40);
    let ids: std::collections::HashSet<String> =
        standin.requests().iter().map(|r| r.header("webhook-id").unwrap().to_owned()).collect();
    assert_eq!((standin.requests().len(), ids.len()), (40, 40));
}

/// A DNS server on loopback answering every A question with `ip`.
async fn dns_answering(ip: std::net::Ipv4Addr) -> SocketAddr {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = udp.recv_from(&mut buf).await else { return };
            let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
            let mut reply = Message::new();
            reply.set_id(query.id());
            reply.set_message_type(MessageType::Response);
            reply.set_recursion_desired(query.recursion_desired());
            reply.set_recursion_available(true);
            reply.set_response_code(ResponseCode::NoError);
            for q in query.queries() {
                reply.add_query(q.clone());
                if q.query_type() == RecordType::A {
                    reply.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(A(ip))));
                }
            }
            let _ = udp.send_to(&reply.to_vec().unwrap(), from).await;
        }
    });
    addr
}

fn refused(r: Result<wh_control_plane::outbound::Answer, OutboundError>) -> Refused {
    match r {
        Err(OutboundError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_refuses_before_a_byte_is_sent() {
    let local = StandIn::http([127, 0, 0, 1]).await;
    let client = Client::new(&wh_http::client::Trust::System);
    let send = |guard: Guard, url: String| {
        let client = client.clone();
        async move {
            client.send_for_user(&guard, http::Method::POST, &url, &[], bytes::Bytes::new()).await
        }
    };
    let none = || Guard { allow_http: true, allow: vec![], resolver: Arc::new(Fixed::default()) };
    // Loopback by literal.
    let why = refused(send(none(), format!("http://127.0.0.1:{}/", local.addr.port())).await);
    assert!(matches!(why, Refused::Address { why: "loopback", .. }), "{why}");
    // http:// when the operator did not allow it.
    let strict = Guard { allow_http: false, ..none() };
    assert_eq!(
        refused(send(strict, format!("http://127.0.0.1:{}/", local.addr.port())).await),
        Refused::Scheme
    );
    // The metadata address hidden in an IPv4-mapped IPv6 literal.
    let why =
        refused(send(none(), "http://[::ffff:169.254.169.254]/latest/meta-data".into()).await);
    assert!(matches!(why, Refused::Address { why: "link-local (cloud metadata)", .. }), "{why}");
    // A name whose DNS answer (from a real DNS server on loopback) is the mesh.
    let dns = dns_answering("10.50.0.1".parse().unwrap()).await;
    let resolver: Arc<dyn Resolve> = Arc::new(Dns::new(&[dns]).unwrap());
    let mesh = Guard { allow_http: true, allow: vec![], resolver: resolver.clone() };
    let why = refused(send(mesh, "https://internal.example.test/hook".into()).await);
    assert_eq!(why.to_string(), "internal.example.test resolves to 10.50.0.1, which is private (the mesh and the build network)");
    assert_eq!(local.connections(), 0, "nothing was dialled");
    // The same resolver delivers to a name the operator's allow-list admits.
    let dns = dns_answering("127.0.0.1".parse().unwrap()).await;
    let allowed = Guard {
        allow_http: true,
        allow: parse_cidrs("127.0.0.1/32").unwrap(),
        resolver: Arc::new(Dns::new(&[dns]).unwrap()),
    };
    let answer = send(allowed, format!("http://receiver.example.test:{}/in", local.addr.port()))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(
        local.requests()[0].header("host"),
        Some(format!("receiver.example.test:{}", local.addr.port()).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_loopback_is_never_followed() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let (user, bearer) = fixtures::user_with_token(&db.pool, "redirect@example.test").await;
    fixtures::app(&db.pool, user, "shop").insert().await;
    // The target (allowed: 127.0.0.2) answers 302 to a server on 127.0.0.1 (not allowed).
    let inner = StandIn::http([127, 0, 0, 1]).await;
    let outer = StandIn::http([127, 0, 0, 2]).await;
    outer.reply(
        Reply::status(302)
            .header("location", &format!("http://127.0.0.1:{}/metadata", inner.addr.port())),
    );
    let resolver = Fixed(HashMap::from([("redirector.example.test".to_owned(), outer.addr)]));
    let outbound = Outbound {
        allow: parse_cidrs("127.0.0.2/32").unwrap(),
        allow_http: true,
        ..Outbound::loopback(Arc::new(resolver), None)
    };
    let cp =
        TestControlPlane::start(&db.pool, Options { outbound: Some(outbound), ..Options::bare() })
            .await;
    let (status, body) = cp
        .call(&bearer, "POST", "/api/v1/webhooks", Some(json!({"url": format!("http://redirector.example.test:{}/hook", outer.addr.port())})))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["target"]["id"].as_i64().unwrap();
    let (status, d) = cp.call(&bearer, "POST", &format!("/api/v1/webhooks/{id}/test"), None).await;
    assert_eq!(status, 200);
    assert_eq!(d["tries"][0]["status"], 302);
    assert_eq!(d["state"], "pending", "a 3xx is a failure, retried later");
    assert_eq!(outer.requests().len(), 1);
    assert_eq!(inner.connections(), 0, "the redirect was not followed");
}

/// Every service's URL, the host it calls, and the path its stand-in sees first.
const CHANNELS: [(&str, &str, &str); 21] = [
    ("bark://:devkey@bark.example.com", "bark.example.com", "/push"),
    ("discord://tok@4242", "discord.com", "/api/webhooks/4242/tok"),
    ("generic://generic.example.com/in?template=json", "generic.example.com", "/in"),
    (
        "googlechat://chat.googleapis.com/v1/spaces/S/messages?key=k&token=t",
        "chat.googleapis.com",
        "/v1/spaces/S/messages?key=k&token=t",
    ),
    ("gotify://gotify.example.com/AppToken1", "gotify.example.com", "/message"),
    ("ifttt://ikey/?events=wh", "maker.ifttt.com", "/trigger/wh/with/key/ikey"),
    (
        "join://shoutrrr:jkey@join/?devices=d1",
        "joinjoaomgcd.appspot.com",
        "/_ah/api/messaging/v1/sendPush",
    ),
    ("lark://open.feishu.cn/ltoken", "open.feishu.cn", "/open-apis/bot/v2/hook/ltoken"),
    (
        "matrix://:syt@matrix.example.org/?rooms=!r:example.org",
        "matrix.example.org",
        "/_matrix/client/v3/rooms/%21r%3Aexample.org/send/m.room.message/",
    ),
    ("mattermost://mm.example.com/mmtoken", "mm.example.com", "/hooks/mmtoken"),
    ("ntfy://ntfy.sh/wh-topic", "ntfy.sh", "/wh-topic"),
    ("opsgenie://api.opsgenie.com/ogkey", "api.opsgenie.com", "/v2/alerts"),
    (
        "pagerduty://events.pagerduty.com/eb243592faa24ba2a5511afdf565c889",
        "events.pagerduty.com",
        "/v2/enqueue",
    ),
    ("pushbullet://pbtoken", "api.pushbullet.com", "/v2/pushes"),
    ("pushover://shoutrrr:potoken@pouser", "api.pushover.net", "/1/messages.json"),
    ("rocketchat://rc.example.com/a/b", "rc.example.com", "/hooks/a/b"),
    ("slack://hook:AAA-BBB-CCC@webhook", "hooks.slack.com", "/services/AAA/BBB/CCC"),
    (
        "teams://x.westeurope.logic.azure.com/workflows/w/triggers/manual/paths/invoke?sig=s",
        "x.westeurope.logic.azure.com",
        "/workflows/w/triggers/manual/paths/invoke?sig=s",
    ),
    ("telegram://1:tgtoken@telegram?chats=@c", "api.telegram.org", "/bot1:tgtoken/sendMessage"),
    ("wecom://wkey", "qyapi.weixin.qq.com", "/cgi-bin/webhook/send?key=wkey"),
    (
        "zulip://bot@z.example.com:zkey@z.example.com/?stream=ops",
        "z.example.com",
        "/api/v1/messages",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deploy_and_its_alert_reach_every_channel_and_the_webhook() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let (user, bearer) = fixtures::user_with_token(&db.pool, "channels@example.test").await;
    let app = fixtures::app(&db.pool, user, "shop").insert().await;
    let hosts: Vec<&str> = CHANNELS.iter().map(|c| c.1).chain([HOOK_HOST]).collect();
    let standin = StandIn::https(&hosts).await;
    let relay =
        wh_control_plane::testing::standin::SmtpStandIn::start("mail.example.com", false).await;
    let mut map: HashMap<String, SocketAddr> =
        hosts.iter().map(|h| (h.to_string(), standin.addr)).collect();
    map.insert("mail.example.com".into(), relay.addr);
    let pems = format!("{}{}", standin.pem.as_ref().unwrap(), relay.pem);
    let cp = TestControlPlane::start(
        &db.pool,
        Options {
            outbound: Some(Outbound::loopback(Arc::new(Fixed(map)), Some(&pems))),
            ..Options::bare()
        },
    )
    .await;
    let events = json!(["deployment.failed", "alert.fired"]);
    let smtp = "smtp://mail.example.com:587/?from=wh@example.com&to=ops@example.com";
    for url in CHANNELS.iter().map(|c| c.0).chain([smtp]) {
        let (status, body) = cp
            .call(
                &bearer,
                "POST",
                "/api/v1/notifications",
                Some(json!({"url": url, "events": events})),
            )
            .await;
        assert_eq!(status, 201, "{url}: {body}");
    }
    let (status, body) = cp
        .call(
            &bearer,
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": format!("https://{HOOK_HOST}/wh"), "events": events})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();

    let d = fixtures::deployment(&db.pool, app).insert().await;
    deployments::transition(&db.pool, d, DeploymentState::Queued, DeploymentState::Building, None)
        .await
        .unwrap();
    deployments::transition(
        &db.pool,
        d,
        DeploymentState::Building,
        DeploymentState::Failed,
        Some("exit 2"),
    )
    .await
    .unwrap();
    // The failed deployment fires its alert at the next evaluation; the notice is sent once
    // its 30 s grouping window has passed (moved to now here).
    wh_control_plane::alerts::evaluate::evaluate(
        &db.pool,
        wh_control_plane::now_ms() as f64 / 1000.0,
    )
    .await
    .unwrap();
    sqlx::query("UPDATE alert_notices SET send_after = now()").execute(&db.pool).await.unwrap();

    let seen = |path: &str, text: &str| {
        let path = path.to_owned();
        let text = text.to_owned();
        let standin = standin.clone();
        move || {
            standin.requests().iter().any(|r| {
                // Query strings and form bodies are read decoded.
                let decoded = |b: &[u8]| -> String {
                    form_urlencoded::parse(b).map(|(_, v)| v.into_owned()).collect()
                };
                let query = decoded(r.target.split('?').nth(1).unwrap_or("").as_bytes())
                    + &decoded(&r.body);
                r.target.starts_with(&path)
                    && (r.text().contains(&text)
                        || query.contains(&text)
                        || r.headers.iter().any(|(_, v)| v.contains(&text)))
            })
        }
    };
    for (url, _, path) in CHANNELS {
        for text in ["Deploy failed: shop", "Alert firing: shop"] {
            let found = seen(path, text);
            eventually(Duration::from_secs(20), &format!("{url}: {text}"), || {
                let found = found.clone();
                async move { found().then_some(()) }
            })
            .await;
        }
    }
    eventually(Duration::from_secs(20), "two mails", || async {
        (relay.transcript().iter().filter(|l| l.starts_with("Subject: ")).count() == 2)
            .then_some(())
    })
    .await;
    let subjects: Vec<String> =
        relay.transcript().into_iter().filter(|l| l.starts_with("Subject: ")).collect();
    assert!(subjects.contains(&"Subject: Deploy failed: shop".to_owned()), "{subjects:?}");
    assert!(subjects.contains(&"Subject: Alert firing: shop".to_owned()), "{subjects:?}");
    // The webhook got both events, signed; the alert as its own event.
    let hooks: Vec<Value> =
        eventually(Duration::from_secs(20), "two webhook deliveries", || async {
            let got: Vec<_> =
                standin.requests().into_iter().filter(|r| r.target == "/wh").collect();
            (got.len() == 2).then(|| got.iter().map(|r| verified(r, &secret)).collect())
        })
        .await;
    let mut types: Vec<&str> = hooks.iter().map(|h| h["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(types, ["alert.fired", "deployment.failed"]);
    let alert = hooks.iter().find(|h| h["type"] == "alert.fired").unwrap();
    assert_eq!(
        (&alert["data"]["kind"], &alert["data"]["app"]),
        (&json!("deployment_failed"), &json!("shop"))
    );
}
