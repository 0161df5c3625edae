//! Jobs flow end to end: the control plane's scheduler places a queued job on the least-loaded
//! healthy worker over the real channel, the worker's ack and result complete it in Postgres.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wh_control_plane::scheduler::SchedulerSettings;
use wh_control_plane::testing::{Options, TestControlPlane};
use wh_control_plane::{queue, workers};
use wh_worker::transport::{Endpoint, Transport, TransportConfig};
use wh_wsproto::messages::{Capacity, Heartbeat, Hello, HostStats, JobRef, JobResult};
use wh_wsproto::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_goes_to_the_least_loaded_worker_and_its_result_completes_it() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let stop = CancellationToken::new();
    let settings = SchedulerSettings {
        lease: Duration::from_secs(30),
        heartbeat_interval: Duration::from_secs(10),
        drain: Duration::from_secs(30),
        ..SchedulerSettings::default()
    };
    let options = Options { scheduler: Some(settings), ..Options::default() };
    let cp = TestControlPlane::start(&db.pool, options).await;
    let (addr, hub) = (cp.addr.unwrap(), cp.hub.clone());

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
    let both = wh_testkit::until(Duration::from_secs(20), async || {
        let h = hub.health();
        h.len() == 2 && h.values().all(|w| w.connected && w.last_heartbeat.is_some())
    });
    assert!(both.await, "the workers never both heartbeated: {:?}", hub.health());
    let mut tx = db.pool.begin().await.unwrap();
    // A typed job (a stored payload that is not one fails at once instead of being sent).
    let deploy = wh_wsproto::job::Job::Deploy(wh_wsproto::job::DeployJob {
        app: "placed".into(),
        deployment_id: 0,
        port: 8080,
        limits: Default::default(),
        source: wh_wsproto::job::Source::Upload,
        root_dir: String::new(),
        env: Default::default(),
    });
    let job = queue::enqueue(&mut tx, deploy.kind(), &deploy.payload(), None).await.unwrap();
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
    let state = async || -> String {
        sqlx::query_scalar("SELECT state::text FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    wh_testkit::until(Duration::from_secs(3), async || state().await == "succeeded").await;
    let state = state().await;
    assert_eq!(state, "succeeded");
    let (_, _, busy_rx) = workers_rx.iter_mut().find(|(n, _, _)| *n == "busy").unwrap();
    assert!(busy_rx.try_recv().is_err(), "the busy worker was given the job too");
    stop.cancel();
}
