//! 100 workers on one control plane, one heartbeat per second each for 30 s: none dropped.
//! A benchmark more than a test (it takes 30 s), so it is ignored by default:
//! `cargo test -p wh-e2e --test scale -- --ignored --nocapture`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wh_control_plane::testing::{Options, TestControlPlane};
use wh_control_plane::workers;
use wh_worker::transport::{Endpoint, Transport, TransportConfig};
use wh_wsproto::messages::{Capacity, Heartbeat, Hello};
use wh_wsproto::Message;

const WORKERS: usize = 100;
const SECONDS: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "30 s benchmark; run with --ignored"]
async fn hundred_workers_heartbeating_for_thirty_seconds_lose_nothing() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let options = Options { scheduler: None, enforce_enabled: None, ..Options::default() };
    let mut cp = TestControlPlane::start(&db.pool, options).await;
    let (addr, hub) = (cp.addr.unwrap(), cp.hub.clone());
    let mut inbound = cp.queues.take().unwrap().jobs;

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
    wh_testkit::eventually(Duration::from_secs(60), "every worker connecting", async || {
        (hub.connected().len() == WORKERS).then_some(())
    })
    .await;
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
