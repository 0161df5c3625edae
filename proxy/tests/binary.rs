//! The real `wh-proxy` binary: bad configuration exits 64, 100 MiB streams both ways in bounded
//! memory, SIGTERM drains an in-flight request.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use http_body_util::BodyExt;

const BIN: &str = env!("CARGO_BIN_EXE_wh-proxy");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap())
        })
        .unwrap()
}

async fn spawn_proxy(
    routes_json: &str,
    dir: &std::path::Path,
    extra: &[&str],
) -> (Proc, std::net::SocketAddr) {
    let routes = dir.join("routes.json");
    std::fs::write(&routes, routes_json).unwrap();
    let port = wh_testkit::net::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(BIN)
        .args([
            "--routes",
            routes.to_str().unwrap(),
            "--state-dir",
            dir.join("state").to_str().unwrap(),
        ])
        .args([
            "--http-addr",
            &addr.to_string(),
            "--admin-addr",
            "127.0.0.1:0",
            "--log-format",
            "off",
            "--threads",
            "2",
            "--https-addr",
            "off",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wh_testkit::net::wait_for_port(addr, "wh-proxy", Duration::from_secs(10)).unwrap();
    (Proc(child), addr)
}

#[test]
fn invalid_configuration_exits_64_with_a_clear_message() {
    for args in [
        &["--provider", "carrier-pigeon"][..],
        &["--routes", "/nonexistent/routes.json", "--state-dir", "/nonexistent"],
        &["--bogus-flag"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(64),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty());
    }
    let out = Command::new(BIN).args(["--provider", "carrier-pigeon"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--provider must be file, http or watch"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_up_and_down_in_bounded_memory() {
    let backend = Backend::start("big").await;
    let dir = tempfile::tempdir().unwrap();
    let (proc_, addr) =
        spawn_proxy(&routes(&[("big", "Host(`big.test`)", &[&backend.url()])]), dir.path(), &[])
            .await;
    let pid = proc_.0.id();
    assert_eq!(get(addr, "big.test", "/").await.0, 200);
    let before = rss_kib(pid);
    const SIZE: u64 = 100 * 1024 * 1024;

    // Download: streamed by the backend, counted here chunk by chunk.
    let req = hyper::Request::get(format!("http://{addr}/download?bytes={SIZE}"))
        .header("host", "big.test")
        .body(empty())
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = 0u64;
    let mut peak = before;
    while let Some(frame) = body.frame().await {
        got += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
        if got % (8 << 20) < 65536 {
            peak = peak.max(rss_kib(pid));
        }
    }
    assert_eq!(got, SIZE);

    // Upload: a streamed body the backend counts.
    let chunk = bytes::Bytes::from(vec![b'u'; 64 * 1024]);
    let stream = futures_util::stream::iter(
        (0..SIZE / chunk.len() as u64)
            .map(move |_| Ok::<_, std::io::Error>(hyper::body::Frame::data(chunk.clone()))),
    );
    let req = hyper::Request::post(format!("http://{addr}/upload"))
        .header("host", "big.test")
        .body(http_body_util::StreamBody::new(stream).boxed())
        .unwrap();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..200 {
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        peak
    });
    let resp = client().request(req).await.unwrap();
    let count =
        String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert_eq!(count, SIZE.to_string());
    peak = peak.max(sampler.await.unwrap()).max(rss_kib(pid));
    let growth_mib = (peak.saturating_sub(before)) as f64 / 1024.0;
    eprintln!("wh-proxy RSS before {before} KiB, peak {peak} KiB, growth {growth_mib:.1} MiB");
    assert!(growth_mib < 32.0, "RSS grew by {growth_mib:.1} MiB");
}

fn empty() -> TestBody {
    http_body_util::Empty::new().map_err(|never| match never {}).boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_request_then_exits() {
    let backend = Backend::start("slow").await;
    let dir = tempfile::tempdir().unwrap();
    let (mut proc_, addr) = spawn_proxy(
        &routes(&[("s", "Host(`slow.test`)", &[&backend.url()])]),
        dir.path(),
        &["--grace-period", "10s"],
    )
    .await;
    let in_flight = tokio::spawn(async move { get(addr, "slow.test", "/slow?ms=1500").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &proc_.0.id().to_string()]).status().unwrap();
    assert!(killed.success());
    // New connections are refused soon after the signal...
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still accepting after SIGTERM");
    // ...while the in-flight request completes.
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!((status, body.as_str()), (200, "slow slow"));
    let status = loop {
        if let Some(s) = proc_.0.try_wait().unwrap() {
            break s;
        }
        assert!(sent.elapsed() < Duration::from_secs(8), "did not exit after draining");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}
