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
use wh_control_plane::testing::{Options, TestControlPlane};
use wh_control_plane::workers;
use wh_testkit::http;
use wh_wsproto::messages::{Capacity, Heartbeat, Hello, HostStats};
use wh_wsproto::{Binding, Key, Message, Signer, Verifier};

const SECRET: &[u8] = &wh_control_plane::testing::JWT_SECRET;

struct Cp {
    addr: std::net::SocketAddr,
    hub: Arc<Hub>,
    /// Everything workers send (no pipeline consumes it here).
    inbound: mpsc::Receiver<Inbound>,
    pool: sqlx::PgPool,
    _cp: TestControlPlane,
    _db: wh_testkit::postgres::TestDatabase,
}

async fn start() -> Cp {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let options = Options {
        scheduler: None,
        hub_timing: (Duration::from_millis(300), Duration::from_secs(3)),
        ..Options::default()
    };
    let mut cp = TestControlPlane::start(&db.pool, options).await;
    let inbound = cp.queues.take().expect("no pipeline consumes the queues").merged();
    Cp {
        addr: cp.addr.unwrap(),
        hub: cp.hub.clone(),
        inbound,
        pool: db.pool.clone(),
        _cp: cp,
        _db: db,
    }
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

/// Opens the worker WebSocket; returns it with the connection's nonce.
async fn connect(cp: &Cp, jwt: &str) -> Result<(Ws, String), u16> {
    let mut req = format!("ws://{}/v1/workers/ws", cp.addr).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {jwt}").parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(cp.addr).await.unwrap();
    match tokio_tungstenite::client_async(req, tcp).await {
        Ok((ws, resp)) => {
            let conn = resp.headers()["x-wh-connection"].to_str().unwrap().to_owned();
            Ok((ws, conn))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// The channel key a register (or refresh) answer carries.
fn channel_key(body: &serde_json::Value) -> Key {
    Key::from_hex(body["channel_key"].as_str().unwrap()).unwrap()
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
    wh_testkit::until(Duration::from_secs(3), async || cond()).await
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
    assert_eq!(stored, wh_wsproto::key::lookup_hash(&key));

    let reg = post(&cp, "/v1/workers/register", &key).await;
    assert_eq!(reg.status, 200, "{}", reg.text());
    let body: serde_json::Value = serde_json::from_slice(&reg.body).unwrap();
    assert_eq!(body["worker_id"], worker.id.to_string());
    assert_eq!(body["settings"]["mesh_ip"], "10.50.0.11");
    let jwt = body["token"].as_str().unwrap().to_owned();

    assert_ne!(body["channel_key"].as_str().unwrap(), stored, "the stored hash is no signing key");
    let (mut ws, conn) = connect(&cp, &jwt).await.unwrap();
    let mut signer = Signer::new(channel_key(&body), Binding::to_control_plane(&conn), 1);
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
    let mut verifier = Verifier::new(channel_key(&body), Binding::to_worker(&conn));
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
    let (expired, _) = JwtKeys::new(SECRET, Duration::from_secs(60)).issue(
        &worker.id.to_string(),
        1,
        now_ms() / 1000 - 3600,
    );
    assert_eq!(connect(&cp, &expired).await.err(), Some(401));
    assert_eq!(post(&cp, "/v1/workers/refresh-token", &expired).await.status, 401);
    let (forged, _) = JwtKeys::new(
        b"another secret that is long enough!!",
        Duration::from_secs(60),
    )
    .issue(&worker.id.to_string(), 1, now_ms() / 1000);
    assert_eq!(connect(&cp, &forged).await.err(), Some(401));

    let (mut ws, conn) = connect(&cp, &jwt).await.unwrap();
    let mut signer = Signer::new(channel_key(&reg), Binding::to_control_plane(&conn), 1);
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
    let mut stranger =
        Signer::new(Key::from_secret("whk_someone_else"), Binding::to_control_plane(&conn), 100);
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
    let (mut first, _) = connect(&cp, &jwt).await.unwrap();
    let (mut second, conn) = connect(&cp, &jwt).await.unwrap();
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
    let mut signer = Signer::new(channel_key(&reg), Binding::to_control_plane(&conn), 1);
    second.send(WsMessage::Text(signer.seal(&heartbeat(0.7), now_ms()).into())).await.unwrap();
    assert!(matches!(next_inbound(&mut cp).await.message, Message::Heartbeat(_)));
    assert_eq!(cp.hub.connected(), vec![worker.id]);
    // Silence: no message for longer than the dead-after window (3 s here).
    let hub = cp.hub.clone();
    let gone =
        wh_testkit::until(Duration::from_secs(6), async || !hub.health()[&worker.id].connected);
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
    let (mut ws, conn) = connect(&cp, reg["token"].as_str().unwrap()).await.unwrap();
    let mut signer = Signer::new(channel_key(&reg), Binding::to_control_plane(&conn), 1);
    let result = Message::JobResult(JobResult {
        job_id: 9,
        attempt: 1,
        ok: true,
        error: None,
        output: None,
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
    let mut verifier = Verifier::new(channel_key(&reg), Binding::to_worker(&conn));
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

/// Issue 12, item B15: rotating a key revokes what the old key got: refresh, the WebSocket and
/// source downloads refuse its tokens, and its open socket closes within seconds. (A token
/// issued before the rotation used to refresh forever and still receive decrypted env vars.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_key_revokes_its_tokens_and_closes_its_socket() {
    let cp = start().await;
    let (worker, old_key) = workers::create(&cp.pool, "w-rot", "10.50.0.15").await.unwrap();
    let reg: serde_json::Value =
        serde_json::from_slice(&post(&cp, "/v1/workers/register", &old_key).await.body).unwrap();
    let jwt = reg["token"].as_str().unwrap().to_owned();
    let (mut ws, _) = connect(&cp, &jwt).await.unwrap();
    assert!(wait_until(|| cp.hub.connected() == vec![worker.id]).await);

    let new_key = workers::rotate_key(&cp.pool, "w-rot").await.unwrap().unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(frame)) = ws.next().await {
            if frame.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the socket opened with the old key stayed open");
    assert_eq!(post(&cp, "/v1/workers/refresh-token", &jwt).await.status, 401);
    assert_eq!(connect(&cp, &jwt).await.err(), Some(401));
    let source = http::request(
        "GET",
        &format!("http://{}/v1/workers/sources/1", cp.addr),
        None,
        &[],
        &[("authorization", &format!("Bearer {jwt}"))],
    )
    .await
    .unwrap();
    assert_eq!(source.status, 401, "a download with the old token");
    assert_eq!(post(&cp, "/v1/workers/register", &old_key).await.status, 401);
    let fresh: serde_json::Value =
        serde_json::from_slice(&post(&cp, "/v1/workers/register", &new_key).await.body).unwrap();
    assert_ne!(fresh["channel_key"], reg["channel_key"], "the channel key changes with the key");
    assert!(connect(&cp, fresh["token"].as_str().unwrap()).await.is_ok());
}

/// Item B16: what the database holds cannot sign envelopes (`api_key_hash` used to be exactly
/// the channel's HMAC key), and a row still holding that legacy hash is rewritten at register.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dump_cannot_sign_envelopes() {
    let mut cp = start().await;
    let (worker, key) = workers::create(&cp.pool, "w-dump", "10.50.0.16").await.unwrap();
    let reg: serde_json::Value =
        serde_json::from_slice(&post(&cp, "/v1/workers/register", &key).await.body).unwrap();
    let row: String =
        sqlx::query_scalar("SELECT row_to_json(w)::text FROM workers w WHERE id = $1")
            .bind(worker.id)
            .fetch_one(&cp.pool)
            .await
            .unwrap();
    let channel = reg["channel_key"].as_str().unwrap();
    assert!(!row.contains(channel), "the channel key is in the database");
    assert!(!row.contains(&wh_wsproto::key::legacy_hash(&key)));
    // Signing with what the row holds (as a dump reader would) is refused.
    let stored: String = sqlx::query_scalar("SELECT api_key_hash FROM workers WHERE id = $1")
        .bind(worker.id)
        .fetch_one(&cp.pool)
        .await
        .unwrap();
    let (mut ws, conn) = connect(&cp, reg["token"].as_str().unwrap()).await.unwrap();
    let mut forger =
        Signer::new(Key::from_hex(&stored).unwrap(), Binding::to_control_plane(&conn), 1);
    ws.send(WsMessage::Text(forger.seal(&heartbeat(0.9), now_ms()).into())).await.unwrap();
    let hub = cp.hub.clone();
    assert!(wait_until(|| hub.rejections().get("bad_mac") == Some(&1)).await);
    assert!(tokio::time::timeout(Duration::from_millis(300), cp.inbound.recv()).await.is_err());

    // A worker registered by an older version: its row holds SHA-256(key), the old signing key.
    let (old, old_key) = workers::create(&cp.pool, "w-legacy", "10.50.0.17").await.unwrap();
    sqlx::query("UPDATE workers SET api_key_hash = $2 WHERE id = $1")
        .bind(old.id)
        .bind(wh_wsproto::key::legacy_hash(&old_key))
        .execute(&cp.pool)
        .await
        .unwrap();
    assert_eq!(post(&cp, "/v1/workers/register", &old_key).await.status, 200);
    let now: String = sqlx::query_scalar("SELECT api_key_hash FROM workers WHERE id = $1")
        .bind(old.id)
        .fetch_one(&cp.pool)
        .await
        .unwrap();
    assert_eq!(now, wh_wsproto::key::lookup_hash(&old_key), "the legacy hash was kept");
}

/// Item B17: the MAC binds direction and connection: an envelope replayed on the next
/// connection, or one of the control plane's reflected back to it, is refused. (A `log.lines`
/// envelope resent on the next connection used to be delivered twice.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_replayed_on_a_new_connection_or_reflected_are_refused() {
    use wh_wsproto::messages::{LogLine, LogLines, Stream};
    let mut cp = start().await;
    let (_, key) = workers::create(&cp.pool, "w-bind", "10.50.0.18").await.unwrap();
    let reg: serde_json::Value =
        serde_json::from_slice(&post(&cp, "/v1/workers/register", &key).await.body).unwrap();
    let jwt = reg["token"].as_str().unwrap().to_owned();
    let lines = Message::LogLines(LogLines {
        app: "a".into(),
        deployment_id: Some(1),
        lines: vec![LogLine { ts_ms: 1, stream: Stream::Stdout, line: "once".into() }],
        dropped: 0,
    });
    let (mut first, conn) = connect(&cp, &jwt).await.unwrap();
    let mut signer = Signer::new(channel_key(&reg), Binding::to_control_plane(&conn), 1);
    let captured = signer.seal(&lines, now_ms());
    first.send(WsMessage::Text(captured.clone().into())).await.unwrap();
    assert!(matches!(next_inbound(&mut cp).await.message, Message::LogLines(_)));
    drop(first);

    let (mut second, _) = connect(&cp, &jwt).await.unwrap();
    second.send(WsMessage::Text(captured.into())).await.unwrap();
    // The hub's own ping, sent straight back.
    let ping = tokio::time::timeout(Duration::from_secs(3), second.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .into_text()
        .unwrap();
    second.send(WsMessage::Text(ping)).await.unwrap();
    let hub = cp.hub.clone();
    assert!(
        wait_until(|| hub.rejections().get("bad_mac") == Some(&2)).await,
        "{:?}",
        hub.rejections()
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), cp.inbound.recv()).await.is_err(),
        "a replayed or reflected envelope was delivered"
    );
}
