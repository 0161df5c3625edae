//! The worker transport against the real control plane (in-process) and the testkit's Postgres.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wh_control_plane::hub::Inbound;
use wh_control_plane::testing::{Options, TestControlPlane};
use wh_control_plane::workers;
use wh_worker::transport::{Endpoint, Transport, TransportConfig, TransportError};
use wh_wsproto::messages::{Capacity, Heartbeat, Hello, JobResult};
use wh_wsproto::Message;

struct Cp {
    cp: TestControlPlane,
    /// Everything workers send (no pipeline consumes it here).
    inbound: mpsc::Receiver<Inbound>,
}

impl Cp {
    /// Stops accepting and drops every worker connection, as a control-plane restart would.
    fn kill(self) {
        self.cp.kill();
    }
}

/// A control plane on `addr` (again, after a kill) whose worker tokens live `ttl`.
async fn start_cp(pool: &sqlx::PgPool, addr: SocketAddr, ttl: Duration) -> Cp {
    let options =
        Options { scheduler: None, listen: Some(addr), jwt_ttl: ttl, ..Options::default() };
    let mut cp = TestControlPlane::start(pool, options).await;
    let inbound = cp.queues.take().expect("no pipeline consumes the queues").merged();
    Cp { cp, inbound }
}

fn config(addr: SocketAddr, key: &str) -> TransportConfig {
    let mut c = TransportConfig::new(
        Endpoint::parse(&format!("http://{addr}"), None).unwrap(),
        key.to_owned(),
    );
    c.backoff_min = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(500);
    c
}

fn hello(worker_id: &str) -> Hello {
    Hello {
        worker_id: worker_id.into(),
        version: "test".into(),
        capacity: Capacity::default(),
        containers: vec![],
        running_jobs: vec![],
    }
}

async fn expect(cp: &mut Cp, what: &str, pred: impl Fn(&Message) -> bool) -> Inbound {
    loop {
        let got = tokio::time::timeout(Duration::from_secs(10), cp.inbound.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what}"))
            .unwrap();
        if pred(&got.message) {
            return got;
        }
    }
}

fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", wh_testkit::net::free_port()).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_says_hello_sends_heartbeats_and_refreshes_its_token() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let addr = free_addr();
    let mut cp = start_cp(&db.pool, addr, Duration::from_secs(60)).await;
    let (worker, key) = workers::create(&db.pool, "t1", "10.50.0.21").await.unwrap();
    let mut cfg = config(addr, &key);
    cfg.refresh_margin = Duration::from_secs(58); // refresh ~2 s after registering
    let (transport, _inbound) = Transport::new(cfg);
    let stop = CancellationToken::new();
    let run = tokio::spawn(transport.clone().run(hello, stop.clone()));
    let h = expect(&mut cp, "hello", |m| matches!(m, Message::Hello(_))).await;
    assert_eq!(h.worker_id, worker.id);
    assert!(matches!(h.message, Message::Hello(ref h) if h.worker_id == worker.id.to_string()));
    transport.send(Message::Heartbeat(Heartbeat::default()));
    expect(&mut cp, "heartbeat", |m| matches!(m, Message::Heartbeat(_))).await;
    let refreshed = wh_testkit::until(Duration::from_secs(10), async || {
        transport.stats.refreshes.load(Relaxed) >= 1
    });
    assert!(refreshed.await, "the token was never refreshed");
    assert_eq!(transport.stats.connects.load(Relaxed), 1, "refreshing must not reconnect");
    assert!(transport.is_connected());
    stop.cancel();
    assert!(run.await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_terminal_instead_of_a_loop() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let addr = free_addr();
    let _cp = start_cp(&db.pool, addr, Duration::from_secs(900)).await;
    let (transport, _inbound) = Transport::new(config(addr, "whk_not_a_real_key"));
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        transport.run(hello, CancellationToken::new()),
    )
    .await;
    assert!(
        matches!(result, Ok(Err(TransportError::Unauthorized(_)))),
        "{:?}",
        result.map(|r| r.err().map(|e| e.to_string()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_queued_across_a_control_plane_restart_arrives_exactly_once() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let addr = free_addr();
    let mut cp = start_cp(&db.pool, addr, Duration::from_secs(900)).await;
    let (_, key) = workers::create(&db.pool, "t3", "10.50.0.23").await.unwrap();
    let (transport, _inbound) = Transport::new(config(addr, &key));
    tokio::spawn(transport.clone().run(hello, CancellationToken::new()));
    expect(&mut cp, "hello", |m| matches!(m, Message::Hello(_))).await;

    cp.kill();
    let dropped = wh_testkit::until(Duration::from_secs(2), async || !transport.is_connected());
    assert!(dropped.await, "the killed control plane's connection stayed up");
    let result = JobResult {
        job_id: 77,
        attempt: 3,
        ok: true,
        error: None,
        output: Some(wh_wsproto::job::JobOutput::Deploy(wh_wsproto::job::DeployOutput::started(
            31001,
            "c-test".into(),
        ))),
    };
    transport.send(Message::JobResult(result.clone()));
    assert_eq!(transport.pending_reliable(), 1);

    let mut cp2 = start_cp(&db.pool, addr, Duration::from_secs(900)).await;
    let got = expect(&mut cp2, "job result", |m| matches!(m, Message::JobResult(_))).await;
    assert!(matches!(got.message, Message::JobResult(ref r) if *r == result));
    // Exactly once: nothing more of it, and the worker got its ack.
    let more = tokio::time::timeout(Duration::from_millis(800), async {
        loop {
            match cp2.inbound.recv().await {
                Some(Inbound { message: Message::JobResult(_), .. }) => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    })
    .await;
    assert!(!matches!(more, Ok(true)), "the result arrived twice");
    let acked =
        wh_testkit::until(Duration::from_secs(2), async || transport.pending_reliable() == 0);
    assert!(acked.await, "never acknowledged");
    assert!(transport.stats.connects.load(Relaxed) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_worker_is_disconnected_and_stops_trying() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let addr = free_addr();
    let mut cp = start_cp(&db.pool, addr, Duration::from_secs(900)).await;
    let (_, key) = workers::create(&db.pool, "t4", "10.50.0.24").await.unwrap();
    let (transport, _inbound) = Transport::new(config(addr, &key));
    let run = tokio::spawn(transport.clone().run(hello, CancellationToken::new()));
    expect(&mut cp, "hello", |m| matches!(m, Message::Hello(_))).await;
    workers::set_enabled(&db.pool, "t4", false).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the worker kept retrying")
        .unwrap();
    assert!(matches!(ended, Err(TransportError::Unauthorized(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dials_an_https_control_plane_trusting_a_given_root() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let cp_addr = free_addr();
    let mut cp = start_cp(&db.pool, cp_addr, Duration::from_secs(900)).await;
    let (_, key) = workers::create(&db.pool, "t5", "10.50.0.25").await.unwrap();
    // A TLS front for the control plane (as a reverse proxy on the mesh would be).
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let chain = vec![cert.cert.der().clone()];
    let key_der =
        rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front_port = front.local_addr().unwrap().port();
    let alpn_seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = alpn_seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = front.accept().await.unwrap();
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                seen.lock().unwrap().push(tls.get_ref().1.alpn_protocol().map(|p| p.to_vec()));
                let mut upstream = tokio::net::TcpStream::connect(cp_addr).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let endpoint =
        Endpoint::parse(&format!("https://localhost:{front_port}"), Some(roots)).unwrap();
    let (transport, _inbound) = Transport::new(TransportConfig::new(endpoint, key));
    tokio::spawn(transport.clone().run(hello, CancellationToken::new()));
    expect(&mut cp, "hello over TLS", |m| matches!(m, Message::Hello(_))).await;
    // The server offered no ALPN here; the client's offer is pinned to http/1.1 (see net.rs).
    assert!(!alpn_seen.lock().unwrap().is_empty());

    // The same front with a root we do not trust: no connection.
    let (untrusting, _rx) = Transport::new(TransportConfig::new(
        Endpoint::parse(
            &format!("https://localhost:{front_port}"),
            Some(rustls::RootCertStore::empty()),
        )
        .unwrap(),
        "whk_irrelevant".into(),
    ));
    let stop = CancellationToken::new();
    let run = tokio::spawn(untrusting.clone().run(hello, stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!untrusting.is_connected());
    assert!(untrusting.worker_id().is_none(), "registered through an untrusted TLS server");
    stop.cancel();
    let _ = run.await;
}

/// Issue 12, item C22: a control plane gone silent behind a half-open connection is noticed
/// within the silence limit, although the worker keeps sending (its own heartbeats used to
/// restart its silence timer, so it waited forever); then it reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_control_plane_is_noticed_although_the_worker_keeps_talking() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let addr = free_addr();
    let mut cp = start_cp(&db.pool, addr, Duration::from_secs(900)).await;
    let mut cable = wh_testkit::net::Cable::start(addr).await.unwrap();
    let (_, key) = workers::create(&db.pool, "t-silent", "10.50.0.26").await.unwrap();
    let mut cfg = config(cable.addr(), &key);
    cfg.silence_limit = Duration::from_secs(3);
    let (transport, _inbound) = Transport::new(cfg);
    let stop = CancellationToken::new();
    let run = tokio::spawn(transport.clone().run(hello, stop.clone()));
    expect(&mut cp, "hello", |m| matches!(m, Message::Hello(_))).await;
    // The worker talks every 200 ms. Heartbeats get no answer and the hub pings only every
    // 20 s, so from the freeze on only the worker talks.
    let talker = {
        let t = transport.clone();
        tokio::spawn(async move {
            loop {
                t.send(Message::Heartbeat(Heartbeat::default()));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(transport.is_connected());
    cable.freeze();
    // Within its silence limit (a few seconds here), with room for a slow machine.
    let noticed = wh_testkit::until(Duration::from_secs(10), async || !transport.is_connected());
    assert!(noticed.await, "the worker never noticed the silent control plane");
    // The path comes back: the worker connects again.
    cable.cut();
    cable.mend().await.unwrap();
    let back = wh_testkit::until(Duration::from_secs(10), async || {
        transport.is_connected() && transport.stats.connects.load(Relaxed) >= 2
    });
    assert!(back.await, "the worker did not reconnect");
    talker.abort();
    stop.cancel();
    let _ = run.await;
}
