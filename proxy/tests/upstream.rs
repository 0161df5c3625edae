//! Pooled upstream connections over real sockets: reuse, a body the client abandoned, and
//! connections the server closes between requests.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A hand-written HTTP/1.1 backend that counts the connections it accepts. `/big` answers
/// 64 MiB; anything else `ok`. With `close_after_each` it closes every connection shortly after
/// its first response, without saying so (as a keep-alive timeout would).
async fn counting_backend(close_after_each: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            count.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request head (these requests have no body).
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    if head.starts_with("GET /big ") {
                        let size = 64 << 20;
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
                        if s.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let zeros = vec![0u8; 64 * 1024];
                        for _ in 0..size / zeros.len() {
                            if s.write_all(&zeros).await.is_err() {
                                return;
                            }
                        }
                    } else if s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if close_after_each {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// A proxy routing `h.test` to `backend`.
async fn proxy_to(backend: SocketAddr) -> TestProxy {
    TestProxy::start(&routes(&[("app", "Host(`h.test`)", &[&format!("http://{backend}")])]), &[])
        .await
}

#[tokio::test]
async fn upstream_connections_are_reused_and_one_with_an_abandoned_body_is_not() {
    let (backend, accepted) = counting_backend(false).await;
    let p = proxy_to(backend).await;
    for _ in 0..20 {
        let (status, _, body) = get(p.addr, "h.test", "/").await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }
    assert_eq!(accepted.load(Relaxed), 1, "twenty requests in a row share one upstream connection");

    // A client that leaves in the middle of a large body: that connection is closed, not pooled
    // (its unread rest would be taken for the next response).
    let mut c = TcpStream::connect(p.addr).await.unwrap();
    c.write_all(b"GET /big HTTP/1.1\r\nHost: h.test\r\n\r\n").await.unwrap();
    let mut got = vec![0u8; 256 * 1024];
    let mut read = 0;
    while read < got.len() {
        let n = c.read(&mut got[read..]).await.unwrap();
        assert!(n > 0, "the proxy ended the large body after {read} bytes");
        read += n;
    }
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let (status, _, body) = get(p.addr, "h.test", "/").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "ok"),
            "a response from the abandoned body's connection"
        );
    }
    assert_eq!(accepted.load(Relaxed), 2, "one new connection after the abandoned one");
}

#[tokio::test]
async fn connections_the_server_closes_between_requests_cost_no_errors() {
    let (backend, accepted) = counting_backend(true).await;
    let p = proxy_to(backend).await;
    for i in 0..20 {
        let (status, _, body) = get(p.addr, "h.test", "/").await;
        assert_eq!((status, body.as_str()), (200, "ok"), "request {i}");
        // Sometimes before the server's close arrives, sometimes after.
        tokio::time::sleep(Duration::from_millis(if i % 2 == 0 { 5 } else { 60 })).await;
    }
    assert!(accepted.load(Relaxed) >= 20, "every response was on a new connection");
}
