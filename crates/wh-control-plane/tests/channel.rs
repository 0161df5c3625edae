//! The secure channel over real sockets, with the real Postgres from the testkit: register,
//! JWT refresh, the WebSocket hub, and every kind of rejection.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wh_control_plane::hub::{Hub, Inbound};
use wh_control_plane::jwt::JwtKeys;
use wh_control_plane::{api, workers, AppState};
use wh_testkit::http;
use wh_wsproto::messages::{Capacity, Heartbeat, Hello, HostStats};
use wh_wsproto::{Key, Message, Signer, Verifier};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";

struct Cp {
    addr: std::net::SocketAddr,
    hub: Arc<Hub>,
    inbound: mpsc::Receiver<Inbound>,
    pool: sqlx::PgPool,
    _db: wh_testkit::postgres::TestDatabase,
}

async fn start() -> Cp {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let (tx, inbound) = mpsc::channel(1024);
    let hub = Arc::new(Hub::with_timing(tx, Duration::from_millis(300), Duration::from_secs(3)));
    tokio::spawn(hub.clone().enforce_enabled(
        db.pool.clone(),
        Duration::from_millis(100),
        tokio_util::sync::CancellationToken::new(),
    ));
    let state = AppState::new(
        db.pool.clone(),
        Arc::new(JwtKeys::new(SECRET, Duration::from_secs(900))),
        hub.clone(),
        Arc::new(wh_control_plane::Routing::follow(&db.pool, None, "route.test")),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, api::app(state)).await.unwrap() });
    Cp { addr, hub, inbound, pool: db.pool.clone(), _db: db }
}

async fn post(cp: &Cp, path: &str, bearer: &str) -> http::Response {
    let auth = format!("Bearer {bearer}");
    http::request(
        "POST",
        &format!("http://{}{path}", cp.addr),
        None,
        &[],
        &[("authorization", &auth)],
    )
    .await
    .unwrap()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(cp: &Cp, jwt: &str) -> Result<Ws, u16> {
    let mut req = format!("ws://{}/v1/workers/ws", cp.addr).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {jwt}").parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(cp.addr).await.unwrap();
    match tokio_tungstenite::client_async(req, tcp).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

fn now_ms() -> i64 {
    wh_control_plane::now_ms()
}

fn hello(worker_id: &str) -> Message {
    Message::Hello(Hello {
        worker_id: worker_id.into(),
        version: "test".into(),
        capacity: Capacity { cpus: 2.0, memory_mb: 1024, disk_mb: 1, ..Default::default() },
        containers: vec![],
        running_jobs: vec![],
    })
}

fn heartbeat(cpu: f64) -> Message {
    Message::Heartbeat(Heartbeat {
        stats: HostStats { cpu, ..Default::default() },
        running_jobs: vec![],
    })
}

async fn next_inbound(cp: &mut Cp) -> Inbound {
    tokio::time::timeout(Duration::from_secs(3), cp.inbound.recv())
        .await
        .expect("no inbound message")
        .unwrap()
}

async fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_connect_hello_heartbeat_ping_and_refresh() {
    let mut cp = start().await;
    let (worker, key) = workers::create(&cp.pool, "w1", "10.50.0.11").await.unwrap();
    let stored: String = sqlx::query_scalar("SELECT api_key_hash FROM workers WHERE id = $1")
        .bind(worker.id)
        .fetch_one(&cp.pool)
        .await
        .unwrap();
    assert_ne!(stored, key, "the raw key must not be stored");
    assert_eq!(stored, Key::from_api_key(&key).hash_hex());

    let reg = post(&cp, "/v1/workers/register", &key).await;
    assert_eq!(reg.status, 200, "{}", reg.text());
    let body: serde_json::Value = serde_json::from_slice(&reg.body).unwrap();
    assert_eq!(body["worker_id"], worker.id.to_string());
    assert_eq!(body["settings"]["mesh_ip"], "10.50.0.11");
    let jwt = body["token"].as_str().unwrap().to_owned();

    let mut ws = connect(&cp, &jwt).await.unwrap();
    let mut signer = Signer::new(Key::from_api_key(&key), 1);
    ws.send(WsMessage::Text(signer.seal(&hello(&worker.id.to_string()), now_ms()).into()))
        .await
        .unwrap();
    ws.send(WsMessage::Text(signer.seal(&heartbeat(0.42), now_ms()).into())).await.unwrap();
    assert!(matches!(next_inbound(&mut cp).await.message, Message::Hello(_)));
    let hb = next_inbound(&mut cp).await;
    assert_eq!(hb.worker_id, worker.id);
    assert!(matches!(hb.message, Message::Heartbeat(h) if h.stats.cpu == 0.42));
    let health = cp.hub.health();
    assert!(health[&worker.id].connected);
    assert_eq!(health[&worker.id].last_heartbeat.as_ref().unwrap().stats.cpu, 0.42);

    // The hub pings, signed with the same key, and the worker can verify it.
    let mut verifier = Verifier::new(Key::from_api_key(&key));
    let frame =
        tokio::time::timeout(Duration::from_secs(3), ws.next()).await.unwrap().unwrap().unwrap();
    let opened = verifier.open(frame.into_text().unwrap().as_bytes(), now_ms()).unwrap();
    assert!(matches!(opened.message().unwrap(), Message::Ping(_)));

    // Refresh while connected: a new token, and the socket stays up.
    let refreshed = post(&cp, "/v1/workers/refresh-token", &jwt).await;
    assert_eq!(refreshed.status, 200);
    let new_jwt: serde_json::Value = serde_json::from_slice(&refreshed.body).unwrap();
    assert_ne!(new_jwt["token"], body["token"]);
    ws.send(WsMessage::Text(signer.seal(&heartbeat(0.5), now_ms()).into())).await.unwrap();
    assert!(matches!(next_inbound(&mut cp).await.message, Message::Heartbeat(_)));
    assert!(cp.hub.rejections().is_empty(), "{:?}", cp.hub.rejections());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_is_observed() {
    let mut cp = start().await;
    let (worker, key) = workers::create(&cp.pool, "w2", "10.50.0.12").await.unwrap();
    assert_eq!(post(&cp, "/v1/workers/register", "whk_wrong").await.status, 401, "wrong key");
    let reg: serde_json::Value =
        serde_json::from_slice(&post(&cp, "/v1/workers/register", &key).await.body).unwrap();
    let jwt = reg["token"].as_str().unwrap().to_owned();

    // An expired JWT (same secret, issued long ago) and a forged one.
    let (expired, _) = JwtKeys::new(SECRET, Duration::from_secs(60))
        .issue(&worker.id.to_string(), now_ms() / 1000 - 3600);
    assert_eq!(connect(&cp, &expired).await.err(), Some(401));
    assert_eq!(post(&cp, "/v1/workers/refresh-token", &expired).await.status, 401);
    let (forged, _) =
        JwtKeys::new(b"another secret that is long enough!!", Duration::from_secs(60))
            .issue(&worker.id.to_string(), now_ms() / 1000);
    assert_eq!(connect(&cp, &forged).await.err(), Some(401));

    let mut ws = connect(&cp, &jwt).await.unwrap();
    let mut signer = Signer::new(Key::from_api_key(&key), 1);
    // Tampered: payload changed after signing.
    let good = signer.seal(&heartbeat(0.1), now_ms());
    ws.send(WsMessage::Text(good.replace("0.1", "0.9").into())).await.unwrap();
    // Replayed: the same envelope twice (the first is accepted).
    let once = signer.seal(&heartbeat(0.2), now_ms());
    ws.send(WsMessage::Text(once.clone().into())).await.unwrap();
    ws.send(WsMessage::Text(once.into())).await.unwrap();
    // Skewed clock: ten minutes behind.
    ws.send(WsMessage::Text(signer.seal(&heartbeat(0.3), now_ms() - 600_000).into()))
        .await
        .unwrap();
    // Signed with another key.
    let mut stranger = Signer::new(Key::from_api_key("whk_someone_else"), 100);
    ws.send(WsMessage::Text(stranger.seal(&heartbeat(0.4), now_ms()).into())).await.unwrap();
    // A hello claiming to be another worker.
    ws.send(WsMessage::Text(
        signer.seal(&hello("00000000-0000-0000-0000-000000000000"), now_ms()).into(),
    ))
    .await
    .unwrap();

    let accepted = next_inbound(&mut cp).await;
    assert!(matches!(accepted.message, Message::Heartbeat(h) if h.stats.cpu == 0.2));
    let hub = cp.hub.clone();
    assert!(
        wait_until(|| {
            let r = hub.rejections();
            ["bad_mac", "replay", "skew", "wrong_worker"].iter().all(|k| r.contains_key(*k))
        })
        .await,
        "{:?}",
        cp.hub.rejections()
    );
    assert_eq!(cp.hub.rejections()["bad_mac"], 2, "tampered + wrong key");

    // Disabling the worker closes its open socket and refuses it from then on.
    assert!(workers::set_enabled(&cp.pool, "w2", false).await.unwrap());
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(frame)) = ws.next().await {
            if frame.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "socket of a disabled worker stayed open");
    assert!(wait_until(|| !hub.health()[&worker.id].connected).await);
    assert_eq!(post(&cp, "/v1/workers/register", &key).await.status, 401);
    assert_eq!(connect(&cp, &jwt).await.err(), Some(401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_connection_replaces_the_older_and_silence_disconnects() {
    let mut cp = start().await;
    let (worker, key) = workers::create(&cp.pool, "w3", "10.50.0.13").await.unwrap();
    let reg: serde_json::Value =
        serde_json::from_slice(&post(&cp, "/v1/workers/register", &key).await.body).unwrap();
    let jwt = reg["token"].as_str().unwrap().to_owned();
    let mut first = connect(&cp, &jwt).await.unwrap();
    let mut second = connect(&cp, &jwt).await.unwrap();
    // The first socket is closed by the hub.
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(f)) = first.next().await {
            if f.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the older connection was not closed");
    let mut signer = Signer::new(Key::from_api_key(&key), 1);
    second.send(WsMessage::Text(signer.seal(&heartbeat(0.7), now_ms()).into())).await.unwrap();
    assert!(matches!(next_inbound(&mut cp).await.message, Message::Heartbeat(_)));
    assert_eq!(cp.hub.connected(), vec![worker.id]);
    // Silence: no message for longer than the dead-after window (3 s here).
    let hub = cp.hub.clone();
    let gone = async {
        for _ in 0..60 {
            if !hub.health()[&worker.id].connected {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(gone.await, "a silent worker was kept");
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliable_messages_are_acked_and_a_resend_is_delivered_once() {
    use wh_wsproto::messages::JobResult;
    let mut cp = start().await;
    let (_, key) = workers::create(&cp.pool, "w4", "10.50.0.14").await.unwrap();
    let reg: serde_json::Value =
        serde_json::from_slice(&post(&cp, "/v1/workers/register", &key).await.body).unwrap();
    let mut ws = connect(&cp, reg["token"].as_str().unwrap()).await.unwrap();
    let mut signer = Signer::new(Key::from_api_key(&key), 1);
    let result = Message::JobResult(JobResult {
        job_id: 9,
        attempt: 1,
        ok: true,
        error: None,
        output: serde_json::Value::Null,
    });
    let id = Signer::new_id();
    // Sent twice under one id (as after a reconnect), with fresh sequence numbers.
    ws.send(WsMessage::Text(signer.seal_with_id(&result, &id, now_ms()).into())).await.unwrap();
    ws.send(WsMessage::Text(signer.seal_with_id(&result, &id, now_ms()).into())).await.unwrap();
    assert!(matches!(next_inbound(&mut cp).await.message, Message::JobResult(_)));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), cp.inbound.recv()).await.is_err(),
        "delivered twice"
    );
    let mut verifier = Verifier::new(Key::from_api_key(&key));
    let mut acks = 0;
    while acks < 2 {
        let frame = tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .expect("missing ack")
            .unwrap()
            .unwrap();
        if let Message::Ack(a) = verifier
            .open(frame.into_text().unwrap().as_bytes(), now_ms())
            .unwrap()
            .message()
            .unwrap()
        {
            assert_eq!(a.ids, vec![id.clone()]);
            acks += 1;
        }
    }
    assert_eq!(cp.hub.rejections()["duplicate"], 1);
}
