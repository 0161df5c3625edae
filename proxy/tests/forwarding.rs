//! The forwarding path over real sockets: routing, headers, bad input, upstream failures.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn routes_by_host_path_and_regexp() {
    let (a, b, c, w) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
        Backend::start("w").await,
    );
    let doc = routes(&[
        ("app-a", "Host(`a.test`) || Host(`www.customer.test`)", &[&a.url()]),
        ("app-b", "Host(`b.test`)", &[&b.url()]),
        ("app-b-api", "Host(`b.test`) && PathPrefix(`/api`)", &[&c.url()]),
        ("wild", r"HostRegexp(`^[a-z]+\.apps\.test$`)", &[&w.url()]),
    ]);
    let p = TestProxy::start(&doc, &[]).await;
    assert_eq!(get(p.addr, "a.test", "/").await.2, "a");
    assert_eq!(get(p.addr, "www.customer.test", "/").await.2, "a");
    assert_eq!(get(p.addr, "A.TEST:8080", "/").await.2, "a", "case and port in Host are ignored");
    assert_eq!(get(p.addr, "b.test", "/").await.2, "b");
    assert_eq!(get(p.addr, "b.test", "/api/users").await.2, "c", "longer PathPrefix rule wins");
    assert_eq!(get(p.addr, "xyz.apps.test", "/").await.2, "w");
    let (status, _, _) = get(p.addr, "unknown.test", "/").await;
    assert_eq!(status, 404);
    let (status, _, _) = get(p.addr, "x.y.apps.test", "/").await;
    assert_eq!(status, 404, "regexp label must not match dots");
}

#[tokio::test]
async fn forwarded_headers_set_spoofs_overwritten_hop_by_hop_stripped() {
    let a = Backend::start("a").await;
    let p = TestProxy::start(&routes(&[("app", "Host(`h.test`)", &[&a.url()])]), &[]).await;
    let reply = raw(
        p.addr,
        b"GET /headers HTTP/1.1\r\nHost: h.test\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\
          X-Forwarded-Host: evil.test\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n\
          TE: trailers\r\nProxy-Authorization: Basic x\r\nX-Keep: yes\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let body = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
    let json_start = body.find('{').unwrap();
    let headers: serde_json::Value =
        serde_json::from_str(&body[json_start..body.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-real-ip"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-host"], "h.test");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-port"], p.addr.port().to_string());
    assert_eq!(headers["host"], "h.test", "passHostHeader keeps the client's Host");
    assert_eq!(headers["x-keep"], "yes");
    for gone in ["x-secret", "keep-alive", "te", "proxy-authorization"] {
        assert!(headers.get(gone).is_none(), "{gone} was forwarded: {headers}");
    }
}

#[tokio::test]
async fn trusted_proxy_headers_are_extended() {
    let a = Backend::start("a").await;
    let p = TestProxy::start(
        &routes(&[("app", "Host(`h.test`)", &[&a.url()])]),
        &["--trusted-proxies", "127.0.0.0/8"],
    )
    .await;
    let reply = raw(p.addr, b"GET /headers HTTP/1.1\r\nHost: h.test\r\nX-Forwarded-For: 203.0.113.7\r\nConnection: close\r\n\r\n", Duration::from_secs(5)).await;
    assert!(reply.contains(r#""x-forwarded-for":"203.0.113.7, 127.0.0.1""#), "{reply}");
}

#[tokio::test]
async fn malformed_requests_are_refused() {
    let a = Backend::start("a").await;
    let p = TestProxy::start(&routes(&[("app", "Host(`h.test`)", &[&a.url()])]), &[]).await;
    let wait = Duration::from_secs(5);
    // Content-Length plus Transfer-Encoding (in either order): 400, the connection is closed and
    // nothing behind it is served.
    for head in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 5",
    ] {
        let req = format!("POST /upload HTTP/1.1\r\nHost: h.test\r\n{head}\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h.test\r\n\r\n");
        let (reply, closed) = raw_until_closed(p.addr, req.as_bytes(), wait).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "CL+TE: {reply}");
        assert_eq!(
            reply.matches("HTTP/1.1").count(),
            1,
            "the smuggled request was served: {reply}"
        );
        assert!(closed, "the connection was kept open after CL+TE");
    }
    let two_cl = raw(p.addr, b"POST /upload HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", wait).await;
    assert!(two_cl.starts_with("HTTP/1.1 400"), "conflicting CL: {two_cl}");
    let mut big = b"GET / HTTP/1.1\r\nHost: h.test\r\n".to_vec();
    for i in 0..1000 {
        big.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(100)).as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    let huge = raw(p.addr, &big, wait).await;
    assert!(
        huge.starts_with("HTTP/1.1 431"),
        "100 KiB of headers: {}",
        &huge[..huge.len().min(100)]
    );
    let no_host = raw(p.addr, b"GET / HTTP/1.1\r\n\r\n", wait).await;
    assert!(no_host.starts_with("HTTP/1.1 400"), "no Host: {no_host}");
    assert_eq!(
        a.hits.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a malformed request reached the backend"
    );
}

#[tokio::test]
async fn slowloris_is_cut_at_the_header_timeout_while_others_are_served() {
    let a = Backend::start("a").await;
    let p = TestProxy::start(
        &routes(&[("app", "Host(`h.test`)", &[&a.url()])]),
        &["--header-timeout", "2s"],
    )
    .await;
    let addr = p.addr;
    let slow = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        // A byte a second, 45 bytes: the head never completes before the proxy cuts it.
        for b in b"GET / HTTP/1.1\r\nHost: h.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if s.write_all(&[*b]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let mut probe = [0u8; 1];
            if let Ok(Ok(0)) =
                tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await
            {
                return true;
            }
        }
        false
    });
    // Meanwhile, normal clients are served.
    for _ in 0..20 {
        assert_eq!(get(addr, "h.test", "/").await.0, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(slow.await.unwrap(), "a head trickled in over 45 s was never cut");
}

#[tokio::test]
async fn backend_down_is_a_fast_502_and_one_of_two_down_is_invisible() {
    // Bound but never listening: connecting is refused, and no other test can take the port
    // while this socket holds it (a listener dropped early let a parallel test's backend bind
    // the same port, and this "dead" server answered 200).
    let dead = tokio::net::TcpSocket::new_v4().unwrap();
    dead.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    let live = Backend::start("live").await;
    let p = TestProxy::start(
        &routes(&[
            ("down", "Host(`down.test`)", &[&dead_url]),
            ("half", "Host(`half.test`)", &[&dead_url, &live.url()]),
        ]),
        &[],
    )
    .await;
    // A refused connect answers at once, not after the 5 s connect timeout.
    let (status, _, _) =
        tokio::time::timeout(Duration::from_secs(2), get(p.addr, "down.test", "/"))
            .await
            .expect("a refused connect waited for the connect timeout");
    assert_eq!(status, 502);
    // Now ejected: the next request sees no healthy server.
    let (status, headers, _) = get(p.addr, "down.test", "/").await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "5");
    for i in 0..50 {
        let (status, _, body) = get(p.addr, "half.test", "/").await;
        assert_eq!((status, body.as_str()), (200, "live"), "request {i}");
    }
}

#[tokio::test]
async fn upstream_timeout_is_504_and_per_service() {
    let slow = Backend::start("slow").await;
    let doc = serde_json::json!({"http": {
        "routers": {"r": {"rule": "Host(`t.test`)", "service": "s"}},
        "services": {"s": {"loadBalancer": {"servers": [{"url": slow.url()}], "responseHeaderTimeout": "300ms"}}}}});
    let p = TestProxy::start(&doc.to_string(), &[]).await;
    assert_eq!(get(p.addr, "t.test", "/slow?ms=50").await.0, 200);
    // The backend would answer after 2 s; the service's 300 ms header timeout answers first.
    assert_eq!(get(p.addr, "t.test", "/slow?ms=2000").await.0, 504);
}

#[tokio::test]
async fn middlewares_redirect_headers_strip_prefix() {
    let a = Backend::start("a").await;
    let doc = serde_json::json!({"http": {
        "routers": {
            "redir": {"rule": "Host(`r.test`)", "service": "s", "middlewares": ["to-https@file"]},
            "strip": {"rule": "Host(`s.test`) && PathPrefix(`/app`)", "service": "s", "middlewares": ["strip", "hdrs"]}},
        "services": {"s": {"loadBalancer": {"servers": [{"url": a.url()}]}}},
        "middlewares": {
            "to-https": {"redirectScheme": {"scheme": "https", "permanent": true}},
            "strip": {"stripPrefix": {"prefixes": ["/app"]}},
            "hdrs": {"headers": {"customRequestHeaders": {"X-Added": "1"}, "customResponseHeaders": {"X-Resp": "2"}}}}}});
    let p = TestProxy::start(&doc.to_string(), &[]).await;
    let (status, headers, _) = get(p.addr, "r.test:8080", "/x?y=1").await;
    assert_eq!(status, 301);
    assert_eq!(headers["location"], "https://r.test/x?y=1");
    let (status, headers, body) = get(p.addr, "s.test", "/app/headers").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-resp"], "2");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["x-added"], "1");
    assert_eq!(h["x-forwarded-prefix"], "/app");
}

#[tokio::test]
async fn admin_endpoints() {
    let a = Backend::start("a").await;
    let p = TestProxy::start(&routes(&[("app", "Host(`h.test`)", &[&a.url()])]), &[]).await;
    assert_eq!(get(p.addr, "h.test", "/").await.0, 200);
    assert_eq!(get(p.addr, "nope.test", "/").await.0, 404);
    let (status, _, metrics) = get(p.admin, "admin", "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"wh_proxy_requests_total{router="app",service="app",code="2xx"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("wh_proxy_config_generation 1"), "{metrics}");
    assert!(metrics.contains("wh_proxy_request_duration_seconds_bucket"), "{metrics}");
    assert_eq!(get(p.admin, "admin", "/healthz").await.2, "ok\n");
    let (_, _, routes) = get(p.admin, "admin", "/routes").await;
    let v: serde_json::Value = serde_json::from_str(&routes).unwrap();
    assert_eq!(v["routes"][0]["name"], "app");
    assert_eq!(v["routes"][0]["servers"][0]["url"], a.url());
}

#[tokio::test]
async fn active_health_check_takes_a_server_out_and_back() {
    let good = Backend::start("good").await;
    let flaky_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let flaky_addr = flaky_listener.local_addr().unwrap();
    drop(flaky_listener);
    let doc = serde_json::json!({"http": {
        "routers": {"r": {"rule": "Host(`hc.test`)", "service": "s"}},
        "services": {"s": {"loadBalancer": {
            "servers": [{"url": good.url()}, {"url": format!("http://{flaky_addr}")}],
            "healthCheck": {"path": "/", "interval": "100ms", "timeout": "100ms"}}}}}});
    let p = TestProxy::start(&doc.to_string(), &[]).await;
    let running = p.running.as_ref().unwrap();
    let flaky_down = || {
        let t = running.proxy.table.load();
        !t.routes()[0].service.servers[1].health.is_available(u64::MAX) // far future: passive ejection ignored, active state only
    };
    assert!(
        wh_testkit::until(Duration::from_secs(3), async || flaky_down()).await,
        "dead server never marked down"
    );
    let flaky = Backend::start_on(flaky_addr, "flaky").await;
    assert!(
        wh_testkit::until(Duration::from_secs(3), async || !flaky_down()).await,
        "recovered server never marked up"
    );
    let mut seen_flaky = false;
    for _ in 0..10 {
        seen_flaky |= get(p.addr, "hc.test", "/").await.2 == "flaky";
    }
    assert!(seen_flaky);
    drop(flaky);
}

#[tokio::test]
async fn idle_keep_alive_outlives_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = Backend::start("a").await;
    let p = TestProxy::start(
        &routes(&[("app", "Host(`h.test`)", &[&a.url()])]),
        &["--header-timeout", "1s"],
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    for round in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: h.test\r\n\r\n").await.unwrap();
        let n =
            tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "round {round}: {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        // Idle for longer than the header timeout, which must not count idle time.
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
}

#[tokio::test]
async fn an_http10_backend_does_not_downgrade_the_client_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
            });
        }
    });
    let p = TestProxy::start(&routes(&[("old", "Host(`old.test`)", &[&backend])]), &[]).await;
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    for round in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: old.test\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n =
            tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "round {round}: {text}");
        assert!(text.ends_with("ok"), "round {round}: {text}");
    }
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_and_counted() {
    use tokio::io::AsyncReadExt;
    let a = Backend::start("a").await;
    let p = TestProxy::start(
        &routes(&[("app", "Host(`h.test`)", &[&a.url()])]),
        &["--max-connections", "1"],
    )
    .await;
    let _held = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), second.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the connection over the limit was not closed");
    let (_, _, metrics) = get(p.admin, "admin", "/metrics").await;
    assert!(metrics.contains("wh_proxy_rejected_connections_total 1"), "{metrics}");
}

#[tokio::test]
async fn h2c_prior_knowledge_is_proxied() {
    let a = Backend::start("a").await;
    let p = TestProxy::start(&routes(&[("app", "Host(`h2.test`)", &[&a.url()])]), &[]).await;
    let mut send = h2_client(p.addr).await;
    let req = hyper::Request::get("http://h2.test/")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    use http_body_util::BodyExt;
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "a");
}
