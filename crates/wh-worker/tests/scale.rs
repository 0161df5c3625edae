//! 100 workers on one control plane, one heartbeat per second each for 30 s: none dropped.
//! A benchmark more than a test (it takes 30 s), so it is ignored by default:
//! `cargo test -p wh-worker --test scale -- --ignored --nocapture`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wh_control_plane::hub::{Hub, Inbound};
use wh_control_plane::jwt::JwtKeys;
use wh_control_plane::{api, workers, AppState};
use wh_worker::transport::{Endpoint, Transport, TransportConfig};
use wh_wsproto::messages::{Capacity, Heartbeat, Hello};
use wh_wsproto::Message;

const WORKERS: usize = 100;
const SECONDS: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "30 s benchmark; run with --ignored"]
async fn hundred_workers_heartbeating_for_thirty_seconds_lose_nothing() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let (tx, mut inbound) = mpsc::channel::<Inbound>(4096);
    let hub = Arc::new(Hub::new(tx));
    let state = AppState::new(
        db.pool.clone(),
        Arc::new(JwtKeys::new(&[3u8; 32], Duration::from_secs(900))),
        hub.clone(),
        Arc::new(wh_control_plane::Routing::follow(&db.pool, None, "route.test")),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, api::app(state)).await.unwrap() });

    let stop = CancellationToken::new();
    let mut transports = Vec::new();
    for i in 0..WORKERS {
        let (_, key) =
            workers::create(&db.pool, &format!("scale-{i}"), &format!("10.50.1.{}", i % 250 + 1))
                .await
                .unwrap();
        let cfg =
            TransportConfig::new(Endpoint::parse(&format!("http://{addr}"), None).unwrap(), key);
        let (t, _rx) = Transport::new(cfg);
        let hello = |id: &str| Hello {
            worker_id: id.into(),
            version: "scale".into(),
            capacity: Capacity::default(),
            containers: vec![],
            running_jobs: vec![],
        };
        tokio::spawn(t.clone().run(hello, stop.clone()));
        transports.push((t, _rx));
    }
    while hub.connected().len() < WORKERS {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counter = tokio::spawn(async move {
        let mut beats: HashMap<uuid::Uuid, u64> = HashMap::new();
        while let Some(msg) = inbound.recv().await {
            if matches!(msg.message, Message::Heartbeat(_)) {
                *beats.entry(msg.worker_id).or_default() += 1;
            }
            if beats.values().sum::<u64>() == WORKERS as u64 * SECONDS {
                break;
            }
        }
        beats
    });
    let started = Instant::now();
    for _ in 0..SECONDS {
        for (t, _) in &transports {
            t.send(Message::Heartbeat(Heartbeat::default()));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let beats = tokio::time::timeout(Duration::from_secs(10), counter)
        .await
        .expect("heartbeats missing")
        .unwrap();
    let total: u64 = beats.values().sum();
    eprintln!(
        "{WORKERS} workers x {SECONDS} heartbeats: received {total} of {} in {:.1?}; reconnects: {}",
        WORKERS as u64 * SECONDS,
        started.elapsed(),
        transports.iter().map(|(t, _)| t.stats.connects.load(std::sync::atomic::Ordering::Relaxed) - 1).sum::<u64>()
    );
    assert_eq!(beats.len(), WORKERS);
    assert!(beats.values().all(|&n| n == SECONDS), "{beats:?}");
    stop.cancel();
}
