//! The API's HTTP server over real sockets (issue 12, items A11 and C23): half-sent requests,
//! idle and stalled connections are closed on time, one address cannot take every connection,
//! and shutdown is bounded even with a stream that never ends (`wh logs -f`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use wh_control_plane::httpserve::{self, HttpLimits};

fn limits() -> HttpLimits {
    HttpLimits {
        header_read: Duration::from_secs(1),
        idle: Duration::from_secs(1),
        body_idle: Duration::from_secs(1),
        max_connections: 64,
        per_ip: 4,
        drain: Duration::from_secs(1),
    }
}

async fn start() -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<std::io::Result<()>>) {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/echo",
            post(|body: axum::body::Body| async move {
                match axum::body::to_bytes(body, 1 << 20).await {
                    Ok(b) => (axum::http::StatusCode::OK, b.len().to_string()),
                    Err(_) => (axum::http::StatusCode::BAD_REQUEST, "stalled".into()),
                }
            }),
        )
        .route(
            "/forever",
            get(|| async {
                let s = futures_util::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"tick\n")), ()))
                });
                axum::body::Body::from_stream(s)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(httpserve::serve(listener, router, limits(), stop.clone()));
    (addr, stop, server)
}

/// Reads until the peer closes (Some(elapsed)) or `limit` passes (None).
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

async fn get_from(local: &str, addr: SocketAddr, path: &str) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_idle_and_stalled_connections_are_closed_and_one_address_cannot_take_all() {
    let (addr, stop, server) = start().await;

    // A request whose header never ends is closed after the header deadline.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    assert!(closed_within(&mut half, Duration::from_secs(5)).await.is_some(), "half-sent kept");

    // A keep-alive connection with nothing in flight is closed after the idle deadline.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await.is_some(), "idle kept");

    // A body that stops moving fails the request.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut answer))
        .await
        .expect("no answer to a stalled body")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 400"));

    // Four held connections from 127.0.0.1 (the per-address limit): a fifth is closed at once,
    // while another address is served.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fifth = TcpStream::connect(addr).await.unwrap();
    let _ = fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        closed_within(&mut fifth, Duration::from_secs(2)).await.is_some(),
        "a fifth connection from one address was served"
    );
    let other = get_from("127.0.0.2", addr, "/healthz").await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");

    // Shutdown with four never-ending responses in flight: bounded by the drain.
    let stopping = Instant::now();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("shutdown waited on a never-ending response")
        .unwrap()
        .unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(10));
    for mut s in held {
        assert!(closed_within(&mut s, Duration::from_secs(5)).await.is_some());
    }
}
