//! Jobs flow end to end: the control plane's scheduler places a queued job on the least-loaded
//! healthy worker over the real channel, the worker's ack and result complete it in Postgres.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wh_control_plane::hub::Hub;
use wh_control_plane::jwt::JwtKeys;
use wh_control_plane::scheduler::{self, SchedulerSettings};
use wh_control_plane::{api, queue, workers, AppState, Routing};
use wh_worker::transport::{Endpoint, Transport, TransportConfig};
use wh_wsproto::messages::{Capacity, Heartbeat, Hello, HostStats, JobRef, JobResult};
use wh_wsproto::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_goes_to_the_least_loaded_worker_and_its_result_completes_it() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let (tx, inbound) = mpsc::channel(1024);
    let hub = Arc::new(Hub::new(tx));
    let state = AppState::new(
        db.pool.clone(),
        Arc::new(JwtKeys::new(&[5u8; 32], Duration::from_secs(900))),
        hub.clone(),
        Arc::new(Routing::follow(&db.pool, None, "route.test")),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, api::app(state)).await.unwrap() });
    let stop = CancellationToken::new();
    let settings = SchedulerSettings {
        lease: Duration::from_secs(30),
        heartbeat_interval: Duration::from_secs(10),
        env: None,
        drain: Duration::from_secs(30),
        ..SchedulerSettings::default()
    };
    tokio::spawn(scheduler::run(db.pool.clone(), hub.clone(), settings, inbound, stop.clone()));

    let mut workers_rx = Vec::new();
    for (name, cpu) in [("busy", 0.9), ("idle", 0.1)] {
        let (_, key) = workers::create(&db.pool, name, "10.50.0.40").await.unwrap();
        let (t, rx) = Transport::new(TransportConfig::new(
            Endpoint::parse(&format!("http://{addr}"), None).unwrap(),
            key,
        ));
        let hello = |id: &str| Hello {
            worker_id: id.into(),
            version: "t".into(),
            capacity: Capacity::default(),
            containers: vec![],
            running_jobs: vec![],
        };
        tokio::spawn(t.clone().run(hello, stop.clone()));
        t.send(Message::Heartbeat(Heartbeat {
            stats: HostStats { cpu, memory_used_mb: 1, memory_total_mb: 100, ..Default::default() },
            running_jobs: vec![],
        }));
        workers_rx.push((name, t, rx));
    }
    // Both connected and heartbeating before the job arrives (a worker with no heartbeat yet
    // scores as idle, and would win the job). Bounded, and loud when it does not happen.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let h = hub.health();
        if h.len() == 2 && h.values().all(|w| w.connected && w.last_heartbeat.is_some()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workers never both heartbeated: {h:?}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut tx = db.pool.begin().await.unwrap();
    // A typed job (a stored payload that is not one fails at once instead of being sent).
    let deploy = wh_wsproto::job::Job::Deploy(wh_wsproto::job::DeployJob {
        app: "placed".into(),
        deployment_id: 0,
        port: 8080,
        limits: Default::default(),
        source: wh_wsproto::job::Source::Upload,
        env: Default::default(),
    });
    let job =
        queue::enqueue(&mut tx, deploy.kind().as_str(), &deploy.payload(), None).await.unwrap();
    tx.commit().await.unwrap();

    let (_, idle, idle_rx) = workers_rx.iter_mut().find(|(n, _, _)| *n == "idle").unwrap();
    let assign = tokio::time::timeout(Duration::from_secs(5), idle_rx.recv())
        .await
        .expect("the idle worker got no job")
        .unwrap();
    let Message::JobAssign(assign) = assign else { panic!("{assign:?}") };
    assert_eq!(assign.job_id, job);
    idle.send(Message::JobAck(JobRef { job_id: job, attempt: assign.attempt }));
    idle.send(Message::JobResult(JobResult {
        job_id: job,
        attempt: assign.attempt,
        ok: true,
        error: None,
        output: None,
    }));
    let mut state = String::new();
    for _ in 0..100 {
        state = sqlx::query_scalar("SELECT state::text FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if state == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(state, "succeeded");
    let (_, _, busy_rx) = workers_rx.iter_mut().find(|(n, _, _)| *n == "busy").unwrap();
    assert!(busy_rx.try_recv().is_err(), "the busy worker was given the job too");
    stop.cancel();
}
