//! Hot swaps under load and long-lived upgraded connections across swaps.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_ten_times_a_second_under_load_fails_no_request() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let docs = [
        routes(&[
            ("app", "Host(`load.test`)", &[&a.url()]),
            ("other", "Host(`o.test`)", &[&b.url()]),
        ]),
        routes(&[
            ("app", "Host(`load.test`)", &[&b.url()]),
            ("other", "Host(`o.test`)", &[&a.url()]),
        ]),
    ];
    let p = TestProxy::start(&docs[0], &[]).await;
    let addr = p.addr;
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, _, body) = get(addr, "load.test", "/").await;
                if status == 200 && (body == "a" || body == "b") {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        p.apply(&docs[(i + 1) % 2]).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(p.generation(), 21);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "{} ok", ok.load(Ordering::Relaxed));
    assert!(ok.load(Ordering::Relaxed) > 100, "too few requests to mean anything");
}

#[tokio::test]
async fn websocket_upgrade_echoes_both_ways_and_outlives_swaps() {
    let a = Backend::start("a").await;
    let doc = |n: usize| {
        let names: Vec<(String, String)> =
            (0..n).map(|i| (format!("r{i}"), format!("Host(`r{i}.test`)"))).collect();
        let url = a.url();
        let servers = [url.as_str()];
        let mut apps: Vec<(&str, &str, &[&str])> = vec![("ws", "Host(`ws.test`)", &servers[..])];
        let owned: Vec<(&str, &str, &[&str])> =
            names.iter().map(|(r, h)| (r.as_str(), h.as_str(), &servers[..])).collect();
        apps.extend(owned);
        routes(&apps)
    };
    let p = TestProxy::start(&doc(0), &[]).await;
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for round in 0..5 {
        // Each swap adds a router; the tunnel must not notice.
        p.apply(&doc(round + 1)).unwrap();
        let msg = format!("hello {round}");
        s.write_all(msg.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf, msg.as_bytes());
    }
    assert_eq!(p.generation(), 6);
}
