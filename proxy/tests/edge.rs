//! wh-proxy at the edge (issue 13): hostile requests from a raw-bytes client against the real
//! proxy, and a backend that records the exact bytes it receives.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that records every request head it gets, byte for byte, and answers each with
/// `reply` (by default a 200 `ok`).
struct Recorder {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

impl Recorder {
    async fn start(reply: &'static str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = heads.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { continue };
                let h = h.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(Ok(n @ 1..)) =
                            tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await
                        else {
                            return;
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        // Bodies of these tests are short and sent at once: one head a request.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = buf.drain(..end + 4).collect();
                            h.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                            let body_len = content_length(&head);
                            let take = body_len.min(buf.len());
                            buf.drain(..take);
                            if s.write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Recorder { addr, heads, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// The value of `name` in the last head received (lowercase name match).
    fn last(&self, name: &str) -> Option<String> {
        let heads = self.heads();
        let head = heads.last()?;
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    fn request_line(&self) -> Option<String> {
        self.heads().last().and_then(|h| h.lines().next().map(str::to_owned))
    }
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

fn status(reply: &str) -> u16 {
    reply.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

const WAIT: Duration = Duration::from_secs(3);

/// Item 1: a Host that is not `host[:port]` was routed on its prefix and forwarded verbatim.
#[tokio::test]
async fn a_host_that_is_not_host_and_port_is_refused_and_the_normalised_name_is_forwarded() {
    let b = Recorder::start(OK).await;
    let p = TestProxy::start(&routes(&[("app", "Host(`a.route.test`)", &[&b.url()])]), &[]).await;
    for host in [
        "a.route.test:80@evil.example",
        "a.route.test:/evil.example/x",
        "[a.route.test]@evil.example",
    ] {
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let reply = raw(p.addr, req.as_bytes(), WAIT).await;
        assert_eq!(status(&reply), 400, "{host}: {reply}");
    }
    assert!(b.heads().is_empty(), "a bad Host reached the backend: {:?}", b.heads());
    let reply = raw(
        p.addr,
        b"GET / HTTP/1.1\r\nHost: A.Route.Test.:8080\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(status(&reply), 200, "{reply}");
    assert_eq!(b.last("host").as_deref(), Some("a.route.test:8080"));
    assert_eq!(b.last("x-forwarded-host").as_deref(), Some("a.route.test:8080"));
}

/// Item 2: `Connection: close, X-Internal-Auth` removed the header the `headers` middleware set
/// (Traefik's CVE-2021-32813); the same for stripPrefix's X-Forwarded-Prefix and the proxy's own.
#[tokio::test]
async fn a_client_cannot_remove_a_header_the_proxy_or_a_middleware_sets() {
    let b = Recorder::start(OK).await;
    let doc = serde_json::json!({"http": {
        "routers": {"app": {"rule": "Host(`h.test`)", "service": "s", "middlewares": ["auth", "strip"]}},
        "services": {"s": {"loadBalancer": {"servers": [{"url": b.url()}]}}},
        "middlewares": {
            "auth": {"headers": {"customRequestHeaders": {"X-Internal-Auth": "secret-1"}}},
            "strip": {"stripPrefix": {"prefixes": ["/app"]}}}}});
    let p = TestProxy::start(&doc.to_string(), &[]).await;
    let reply = raw(
        p.addr,
        b"GET /app/x HTTP/1.1\r\nHost: h.test\r\n\
          Connection: close, X-Internal-Auth, X-Forwarded-Prefix, X-Forwarded-For, X-Real-IP, X-Forwarded-Proto\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(status(&reply), 200, "{reply}");
    assert_eq!(b.last("x-internal-auth").as_deref(), Some("secret-1"));
    assert_eq!(b.last("x-forwarded-prefix").as_deref(), Some("/app"));
    assert_eq!(b.last("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(b.last("x-real-ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(b.last("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(b.request_line().as_deref(), Some("GET /x HTTP/1.1"));
}

/// Item 6: a backend's Content-Length beside Transfer-Encoding reached the client, which then
/// read 5 of the 24 bytes.
#[tokio::test]
async fn a_backends_stale_content_length_beside_chunked_is_dropped() {
    const BOTH: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
                        18\r\nabcdefghijklmnopqrstuvwx\r\n0\r\n\r\n";
    let b = Recorder::start(BOTH).await;
    let p = TestProxy::start(&routes(&[("app", "Host(`h.test`)", &[&b.url()])]), &[]).await;
    let (status, headers, body) = get(p.addr, "h.test", "/").await;
    assert_eq!(status, 200);
    assert!(headers.get("content-length").is_none_or(|v| v == "24"), "{headers:?}");
    assert_eq!(body, "abcdefghijklmnopqrstuvwx");
}

/// Item 7: `/api/../admin` matched `PathPrefix(/api)` and reached it as /admin, while `/%61pi`
/// and `//api` missed it: a request could land on a router whose middlewares were not its own.
#[tokio::test]
async fn paths_are_cleaned_before_routing_and_forwarded_clean() {
    let (api, rest) = (Recorder::start(OK).await, Recorder::start(OK).await);
    let doc = routes(&[
        ("api", "Host(`h.test`) && PathPrefix(`/api`)", &[&api.url()]),
        ("rest", "Host(`h.test`)", &[&rest.url()]),
    ]);
    let p = TestProxy::start(&doc, &[]).await;
    let send = |path: &str| {
        let req = format!("GET {path} HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n");
        let addr = p.addr;
        async move { raw(addr, req.as_bytes(), WAIT).await }
    };
    assert_eq!(status(&send("/api/../admin").await), 200);
    assert_eq!(rest.request_line().as_deref(), Some("GET /admin HTTP/1.1"));
    assert!(api.heads().is_empty(), "`/api/../admin` reached the /api router");
    assert_eq!(status(&send("/%61pi/users?q=%2F").await), 200);
    assert_eq!(api.request_line().as_deref(), Some("GET /api/users?q=%2F HTTP/1.1"));
    assert_eq!(status(&send("//api//x/./y").await), 200);
    assert_eq!(api.request_line().as_deref(), Some("GET /api/x/y HTTP/1.1"));
    let before = (api.heads().len(), rest.heads().len());
    for refused in
        ["/api%2f..%2fadmin", "/a%5cb", "/a%00", "/a%3bx", "/a%25", "/a%3f", "/a%23", "/a%zz"]
    {
        assert_eq!(status(&send(refused).await), 400, "{refused}");
    }
    assert_eq!((api.heads().len(), rest.heads().len()), before, "a refused path was forwarded");

    // With the setting, an encoded slash is allowed and forwarded as it is.
    let p = TestProxy::start(&doc, &["--allow-encoded-chars", "slash"]).await;
    let req = "GET /api/a%2fb HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n";
    assert_eq!(status(&raw(p.addr, req.as_bytes(), WAIT).await), 200);
    assert_eq!(api.request_line().as_deref(), Some("GET /api/a%2Fb HTTP/1.1"));
}

/// Item 8: client framing errors were answered 502 and counted against the upstream.
#[tokio::test]
async fn a_clients_chunked_framing_errors_are_400_and_not_upstream_errors() {
    let b = Backend::start("b").await;
    let p = TestProxy::start(&routes(&[("app", "Host(`h.test`)", &[&b.url()])]), &[]).await;
    for body in [
        "+5\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "5\nhello\n0\n\n",
        "5\r\nhello, world\r\n0\r\n\r\n",
    ] {
        let req = format!(
            "POST /upload HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        );
        let reply = raw(p.addr, req.as_bytes(), WAIT).await;
        assert_eq!(status(&reply), 400, "{body:?}: {reply}");
    }
    let (_, _, metrics) = get(p.admin, "admin", "/metrics").await;
    let upstream_errors: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("wh_proxy_upstream_errors_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(upstream_errors, 0, "{metrics}");
}

/// Item 9: CONNECT was forwarded as `CONNECT /`; `*` went with any method; two Hosts were
/// accepted; an absolute-form target lost to Host.
#[tokio::test]
async fn request_target_rules() {
    let (a, b) = (Recorder::start(OK).await, Recorder::start(OK).await);
    let doc = routes(&[("a", "Host(`a.test`)", &[&a.url()]), ("b", "Host(`b.test`)", &[&b.url()])]);
    let p = TestProxy::start(&doc, &[]).await;
    let connect =
        raw(p.addr, b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n", WAIT).await;
    assert_eq!(status(&connect), 405, "{connect}");
    let star =
        raw(p.addr, b"GET * HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", WAIT).await;
    assert_eq!(status(&star), 400, "{star}");
    let two = raw(p.addr, b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", WAIT).await;
    assert_eq!(status(&two), 400, "{two}");
    assert!(a.heads().is_empty() && b.heads().is_empty(), "a refused target was forwarded");
    let options =
        raw(p.addr, b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", WAIT).await;
    assert_eq!(status(&options), 200, "{options}");
    assert_eq!(a.request_line().as_deref(), Some("OPTIONS * HTTP/1.1"));
    let absolute = raw(
        p.addr,
        b"GET http://b.test/x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(status(&absolute), 200, "{absolute}");
    assert_eq!(b.request_line().as_deref(), Some("GET /x HTTP/1.1"));
    assert_eq!(b.last("host").as_deref(), Some("b.test"), "the target's authority wins");
}

/// Item 9 over HTTP/2: `:authority` wins over `host`, and cookies are joined for HTTP/1.1.
#[tokio::test]
async fn h2_authority_wins_and_cookies_are_joined() {
    let (a, b) = (Recorder::start(OK).await, Recorder::start(OK).await);
    let doc = routes(&[("a", "Host(`a.test`)", &[&a.url()]), ("b", "Host(`b.test`)", &[&b.url()])]);
    let p = TestProxy::start(&doc, &[]).await;
    let mut send = h2_client(p.addr).await;
    let req = hyper::Request::get("http://b.test/c")
        .header("host", "a.test")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(a.heads().is_empty(), "routed by the host header");
    assert_eq!(b.last("host").as_deref(), Some("b.test"));
    assert_eq!(b.last("cookie").as_deref(), Some("a=1; b=2"));
}

/// Item 10: forwarding headers from a peer outside `--trusted-proxies` are removed.
#[tokio::test]
async fn forwarding_headers_from_untrusted_peers_are_removed() {
    let b = Recorder::start(OK).await;
    let p = TestProxy::start(&routes(&[("app", "Host(`h.test`)", &[&b.url()])]), &[]).await;
    let names = [
        "X-Forwarded-Prefix",
        "X-Forwarded-Server",
        "X-Forwarded-Uri",
        "X-Forwarded-Scheme",
        "X-Forwarded-Ssl",
        "X-Original-URL",
        "X-Rewrite-URL",
        "X-Client-IP",
        "Forwarded",
    ];
    let mut req = "GET / HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n".to_owned();
    for n in names {
        req.push_str(&format!("{n}: /admin\r\n"));
    }
    req.push_str("\r\n");
    assert_eq!(status(&raw(p.addr, req.as_bytes(), WAIT).await), 200);
    for n in names {
        assert_eq!(b.last(n), None, "{n} from an untrusted peer reached the backend");
    }
    // A trusted proxy's are kept.
    let p = TestProxy::start(
        &routes(&[("app", "Host(`h.test`)", &[&b.url()])]),
        &["--trusted-proxies", "127.0.0.1"],
    )
    .await;
    assert_eq!(status(&raw(p.addr, req.as_bytes(), WAIT).await), 200);
    assert_eq!(b.last("x-original-url").as_deref(), Some("/admin"));
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Item 3: connections that never sent a byte stayed open 90 s; an h2c client trickling its
/// preface, or one HEADERS frame, was held as long.
#[tokio::test]
async fn every_connection_has_a_first_byte_and_header_deadline_in_both_protocols() {
    let b = Backend::start("b").await;
    let p = TestProxy::start(
        &routes(&[("app", "Host(`h.test`)", &[&b.url()])]),
        &["--header-timeout", "1s", "--idle-timeout", "60s"],
    )
    .await;
    // Fifty silent connections.
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(p.addr).await.unwrap());
    }
    for (i, s) in silent.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(5)).await.is_some(),
            "silent connection {i} still open"
        );
    }

    // `PRI ` and then a byte every 200 ms: the preface is never complete in time.
    let mut trickle = TcpStream::connect(p.addr).await.unwrap();
    let dripper = tokio::spawn(async move {
        trickle.write_all(b"PRI ").await.unwrap();
        for &byte in &PREFACE[4..] {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if trickle.write_all(&[byte]).await.is_err() {
                return (trickle, true);
            }
        }
        (trickle, false)
    });
    let (mut trickle, cut) = dripper.await.unwrap();
    assert!(
        cut || closed_within(&mut trickle, Duration::from_secs(1)).await.is_some(),
        "a trickled preface was held"
    );

    // A good preface, then one HEADERS frame a byte at a time.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(PREFACE).await.unwrap();
    s.write_all(EMPTY_SETTINGS).await.unwrap();
    let mut frame = vec![0, 0, 40, 0x1, 0x4, 0, 0, 0, 1];
    frame.extend(std::iter::repeat_n(0x82u8, 40));
    let started = tokio::time::Instant::now();
    let mut cut = false;
    for byte in frame {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if s.write_all(&[byte]).await.is_err() {
            cut = true;
            break;
        }
    }
    assert!(
        cut || closed_within(&mut s, Duration::from_secs(1)).await.is_some(),
        "a trickled HEADERS frame was held for {:?}",
        started.elapsed()
    );
}

/// Records what a client reads, to look for frames in it afterwards.
struct Tap {
    inner: TcpStream,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl tokio::io::AsyncRead for Tap {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let new = buf.filled()[before..].to_vec();
        self.seen.lock().unwrap().extend_from_slice(&new);
        r
    }
}

impl tokio::io::AsyncWrite for Tap {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The types of the HTTP/2 frames in what a client read.
fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

/// Item 4: a busy HTTP/2 connection was closed 90 s after its first idle moment, with no
/// GOAWAY, while requests kept arriving. Idle is no open stream for the idle timeout, and the
/// close is a GOAWAY.
#[tokio::test]
async fn a_busy_h2_connection_stays_and_an_idle_one_gets_goaway() {
    let b = Backend::start("b").await;
    let p = TestProxy::start(
        &routes(&[("app", "Host(`h2.test`)", &[&b.url()])]),
        &["--idle-timeout", "2s"],
    )
    .await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tap = Tap { inner: TcpStream::connect(p.addr).await.unwrap(), seen: seen.clone() };
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tap),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    // Four seconds of a request every 500 ms: twice the idle timeout, never idle that long.
    for i in 0..8 {
        let req = hyper::Request::get("http://h2.test/")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(resp.status(), 200, "request {i}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Then idle: closed within the idle timeout and a little, with GOAWAY.
    let ended = tokio::time::timeout(Duration::from_secs(6), conn).await;
    assert!(ended.is_ok(), "an idle h2 connection was not closed");
    let types = frame_types(&seen.lock().unwrap());
    assert!(types.contains(&0x7), "closed without GOAWAY; frames: {types:?}");
}

/// Item 11: the Content-Length + Transfer-Encoding 400 applied only to the first head after
/// an idle pause, not to one pipelined behind another.
#[tokio::test]
async fn a_pipelined_head_with_both_lengths_is_refused() {
    let b = Recorder::start(OK).await;
    let p = TestProxy::start(&routes(&[("app", "Host(`h.test`)", &[&b.url()])]), &[]).await;
    let reply = raw(
        p.addr,
        b"POST /first HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\n\r\nhello\
          POST /second HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h.test\r\n\r\n",
        WAIT,
    )
    .await;
    let statuses: Vec<u16> = reply
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| reply[i + 9..i + 12].parse().ok())
        .collect();
    assert_eq!(statuses, [200, 400], "{reply}");
    let lines: Vec<String> =
        b.heads().iter().filter_map(|h| h.lines().next().map(str::to_owned)).collect();
    assert_eq!(lines, ["POST /first HTTP/1.1"], "the pipelined CL+TE request reached the backend");
}

/// Item 5: `--max-connections` was counted per accept thread, and an upgraded connection
/// left the count (and the shutdown drain) the moment it upgraded.
#[tokio::test]
async fn one_connection_limit_for_the_process_and_upgrades_count_and_are_drained() {
    let b = Backend::start("b").await;
    let doc = routes(&[("app", "Host(`h.test`)", &[&b.url()])]);
    let p = TestProxy::start(&doc, &["--threads", "2", "--max-connections", "3"]).await;
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(TcpStream::connect(p.addr).await.unwrap());
    }
    let mut open = 0;
    for s in held.iter_mut() {
        if closed_within(s, Duration::from_millis(500)).await.is_none() {
            open += 1;
        }
    }
    assert_eq!(open, 3, "a limit of 3 over 2 threads held {open}");
    drop(held);

    let mut p = TestProxy::start(&doc, &["--max-connections", "2", "--grace-period", "20s"]).await;
    let mut ws = TcpStream::connect(p.addr).await.unwrap();
    ws.write_all(
        b"GET /ws HTTP/1.1\r\nHost: h.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = [0u8; 12];
    ws.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    let mut rest = Vec::new();
    while !rest.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        ws.read_exact(&mut byte).await.unwrap();
        rest.push(byte[0]);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, _, metrics) = get(p.admin, "admin", "/metrics").await;
    assert!(
        metrics.contains("wh_proxy_open_connections 1"),
        "the tunnel is not counted: {metrics}"
    );
    let mut second = TcpStream::connect(p.addr).await.unwrap();
    let mut third = TcpStream::connect(p.addr).await.unwrap();
    assert!(closed_within(&mut second, Duration::from_millis(500)).await.is_none());
    assert!(
        closed_within(&mut third, Duration::from_secs(2)).await.is_some(),
        "a third connection beside the tunnel was let in"
    );
    drop((second, third));

    // The drain waits for the tunnel, which keeps working meanwhile, and ends when it closes.
    let running = p.running.take().unwrap();
    let drain = tokio::spawn(running.shutdown());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!drain.is_finished(), "the drain did not wait for the tunnel");
    ws.write_all(b"still here").await.unwrap();
    let mut echo = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(2), ws.read_exact(&mut echo)).await.unwrap().unwrap();
    assert_eq!(&echo, b"still here");
    drop(ws);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), drain).await.is_ok(),
        "the drain did not end when the tunnel closed"
    );
}

/// Item 12: with SO_REUSEPORT a second proxy on the same port started silently and took half
/// the connections.
#[tokio::test]
async fn a_second_process_on_the_same_port_fails_to_start() {
    let b = Backend::start("b").await;
    let doc = routes(&[("app", "Host(`h.test`)", &[&b.url()])]);
    let first = TestProxy::start(&doc, &["--threads", "2"]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("routes.json"), &doc).unwrap();
    let mut s =
        settings(&dir.path().join("routes.json"), &dir.path().join("state"), &["--threads", "2"]);
    s.http_addr = first.addr;
    match wh_proxy::run::start(s).await {
        Err(e @ wh_proxy::run::StartError::InUse { .. }) => {
            assert!(e.to_string().contains("in use"), "{e}");
        }
        Err(e) => panic!("not the in-use error: {e}"),
        Ok(_) => panic!("a second proxy started on a port in use"),
    }
    assert_eq!(get(first.addr, "h.test", "/").await.0, 200);
}

/// A request body that never sends anything.
struct Stalled;

impl http_body::Body for Stalled {
    type Data = bytes::Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        std::task::Poll::Pending
    }
}

/// Measured and bounded: one h2 connection held 256 upstream requests with bodies pending for
/// 60 s each. Now at most `MAX_BODIES_IN_PROGRESS` per connection (more answer 429), and a body
/// that sends nothing for the body idle timeout is cut (408).
#[tokio::test]
async fn an_h2_connection_cannot_hold_many_stalled_bodies_and_a_stalled_body_is_cut() {
    let b = Backend::start("b").await;
    let p = TestProxy::start(
        &routes(&[("app", "Host(`h2.test`)", &[&b.url()])]),
        &["--body-idle-timeout", "1s"],
    )
    .await;
    let send = h2_client(p.addr).await;
    let cap = wh_proxy::server::MAX_BODIES_IN_PROGRESS as usize;
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..cap * 2 {
        let mut send = send.clone();
        streams.spawn(async move {
            let req = hyper::Request::post("http://h2.test/upload").body(Stalled).unwrap();
            let started = tokio::time::Instant::now();
            let status = send.send_request(req).await.map(|r| r.status().as_u16()).unwrap_or(0);
            (status, started.elapsed())
        });
    }
    let mut statuses = std::collections::BTreeMap::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(20), streams.join_next())
        .await
        .expect("a stalled stream was held past the body idle timeout")
    {
        let (status, took) = r.unwrap();
        assert!(took < Duration::from_secs(10), "a stream took {took:?}");
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert_eq!(statuses.get(&429), Some(&cap), "{statuses:?}");
    assert_eq!(statuses.get(&408), Some(&cap), "{statuses:?}");
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::Relaxed), cap as u64);
}

/// Measured and bounded: an upstream response header block of 100 KiB was forwarded.
#[tokio::test]
async fn an_upstream_response_head_over_the_limit_is_a_502() {
    let big: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
            "b".repeat(100 * 1024)
        )
        .into_boxed_str(),
    );
    let b = Recorder::start(big).await;
    let p = TestProxy::start(&routes(&[("app", "Host(`h.test`)", &[&b.url()])]), &[]).await;
    let (status, headers, _) = get(p.addr, "h.test", "/").await;
    assert_eq!(status, 502);
    assert!(headers.get("x-big").is_none());
}

/// A redirect names the host the request was routed by, never a `Host` that lost to an
/// absolute-form target (an open redirect otherwise).
#[tokio::test]
async fn a_redirect_uses_the_validated_host() {
    let b = Recorder::start(OK).await;
    let doc = serde_json::json!({"http": {
        "routers": {"r": {"rule": "Host(`r.test`)", "service": "s", "middlewares": ["to-https"]}},
        "services": {"s": {"loadBalancer": {"servers": [{"url": b.url()}]}}},
        "middlewares": {"to-https": {"redirectScheme": {"scheme": "https", "permanent": true}}}}});
    let p = TestProxy::start(&doc.to_string(), &[]).await;
    let reply = raw(
        p.addr,
        b"GET http://R.test/x?y=1 HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(status(&reply), 301, "{reply}");
    assert!(reply.contains("location: https://r.test/x?y=1\r\n"), "{reply}");
}

// What passed before issue 13 keeps a test: rapid reset, CONTINUATION floods, 1xx, trailers,
// and truncation visible to the client.

/// An HTTP/2 frame.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK for `GET http://h2.test/`: indexed :method, :scheme, :path; literal :authority.
fn get_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x84, 0x01, 7];
    b.extend_from_slice(b"h2.test");
    b
}

/// [`read_until_closed`] in a task of its own (while the test writes).
fn read_all(
    mut r: tokio::net::tcp::OwnedReadHalf,
    limit: Duration,
) -> tokio::task::JoinHandle<(Vec<u8>, bool)> {
    tokio::spawn(async move { read_until_closed(&mut r, limit).await })
}

#[tokio::test]
async fn rapid_reset_and_continuation_floods_end_the_connection_and_others_are_served() {
    let b = Backend::start("b").await;
    let p = TestProxy::start(&routes(&[("app", "Host(`h2.test`)", &[&b.url()])]), &[]).await;

    // Rapid reset (CVE-2023-44487): 5000 requests, each cancelled at once.
    let (r, mut w) = TcpStream::connect(p.addr).await.unwrap().into_split();
    let reader = read_all(r, Duration::from_secs(10));
    w.write_all(PREFACE).await.unwrap();
    w.write_all(EMPTY_SETTINGS).await.unwrap();
    let block = get_block();
    let mut sent = 0;
    for i in 0..5000u32 {
        let stream = 2 * i + 1;
        let mut burst = h2_frame(0x1, 0x5, stream, &block);
        burst.extend(h2_frame(0x3, 0, stream, &8u32.to_be_bytes()));
        if w.write_all(&burst).await.is_err() {
            break;
        }
        sent += 1;
    }
    let (got, closed) = reader.await.unwrap();
    let types = frame_types(&got);
    assert!(
        closed && types.contains(&0x7),
        "a rapid-reset flood ({sent} sent) kept its connection: {types:?}"
    );
    let served = b.hits.load(std::sync::atomic::Ordering::Relaxed);
    assert!(served < 5000, "every reset request reached the backend ({served})");

    // CONTINUATION flood: one header block that never ends.
    let (r, mut w) = TcpStream::connect(p.addr).await.unwrap().into_split();
    let reader = read_all(r, Duration::from_secs(10));
    w.write_all(PREFACE).await.unwrap();
    w.write_all(EMPTY_SETTINGS).await.unwrap();
    w.write_all(&h2_frame(0x1, 0x0, 1, &block)).await.unwrap();
    let mut literal = vec![0x00, 0x7f, 0x81, 0x7f]; // a literal header, name length 255+
    literal.resize(16_000, b'a');
    let mut flooded = 0usize;
    for _ in 0..1000 {
        if w.write_all(&h2_frame(0x9, 0x0, 1, &literal)).await.is_err() {
            break;
        }
        flooded += literal.len();
    }
    let (got, closed) = reader.await.unwrap();
    assert!(closed && frame_types(&got).contains(&0x7), "a CONTINUATION flood kept its connection");
    assert!(flooded < 16_000_000, "the whole 16 MB CONTINUATION flood was read");

    // And the proxy serves a new connection as before.
    assert_eq!(get(p.addr, "h2.test", "/").await.0, 200);
}

/// 1xx: an informational answer from the backend never becomes the client's final answer, and
/// `Expect: 100-continue` gets its 100 before the body is sent.
#[tokio::test]
async fn informational_answers_and_expect_continue() {
    const HINTS: &str = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n\
                         HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let hints = Recorder::start(HINTS).await;
    let b = Backend::start("b").await;
    let doc = routes(&[
        ("h", "Host(`hints.test`)", &[&hints.url()]),
        ("b", "Host(`b.test`)", &[&b.url()]),
    ]);
    let p = TestProxy::start(&doc, &[]).await;
    let (status, _, body) = get(p.addr, "hints.test", "/").await;
    assert_eq!((status, body.as_str()), (200, "ok"));

    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: b.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut head)).await.unwrap().unwrap();
    assert!(head.starts_with(b"HTTP/1.1 100 Continue"), "{}", String::from_utf8_lossy(&head));
    s.write_all(b"hello").await.unwrap();
    let mut rest = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest)).await.unwrap().unwrap();
    let rest = String::from_utf8_lossy(&rest[..n]);
    assert!(rest.contains("200 OK") && rest.ends_with('5'), "{rest}");
}

/// A backend that answers the first request with `reply` and closes the connection.
async fn one_shot(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(reply).await;
        }
    });
    addr
}

/// Trailers reach an HTTP/2 client; a body the backend cuts short is cut short for the client
/// too (never completed as if whole).
#[tokio::test]
async fn trailers_are_forwarded_and_truncation_is_visible() {
    let trailers = one_shot(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
          2\r\nok\r\n0\r\nX-Checksum: abc\r\n\r\n",
    )
    .await;
    let short_cl = one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b").await;
    let short_chunked =
        one_shot(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nonly ten b").await;
    let doc = routes(&[
        ("t", "Host(`t.test`)", &[&format!("http://{trailers}")]),
        ("cl", "Host(`cl.test`)", &[&format!("http://{short_cl}")]),
        ("ch", "Host(`ch.test`)", &[&format!("http://{short_chunked}")]),
    ]);
    let p = TestProxy::start(&doc, &[]).await;

    let mut send = h2_client(p.addr).await;
    let req = hyper::Request::get("http://t.test/")
        .header("te", "trailers")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    use http_body_util::BodyExt;
    let collected = resp.into_body().collect().await.unwrap();
    assert_eq!(
        collected.trailers().and_then(|t| t.get("x-checksum")).map(|v| v.as_bytes()),
        Some(&b"abc"[..])
    );
    assert_eq!(collected.to_bytes(), "ok");

    // HTTP/1: a Content-Length answer cut short ends the connection before its length.
    let reply = raw(p.addr, b"GET / HTTP/1.1\r\nHost: cl.test\r\n\r\n", WAIT).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let body = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.len() < 100, "a truncated body was padded: {body:?}");
    // A chunked answer cut short never gets its last chunk.
    let reply = raw(p.addr, b"GET / HTTP/1.1\r\nHost: ch.test\r\n\r\n", WAIT).await;
    assert!(reply.starts_with("HTTP/1.1 200") && reply.contains("only ten b"), "{reply:?}");
    assert!(!reply.ends_with("0\r\n\r\n"), "a truncated chunked body was completed: {reply:?}");
}

/// HTTP/1.0 needs no Host: such a request is routed by the rules without a host condition
/// (Traefik does the same); HTTP/1.1 without Host stays a 400.
#[tokio::test]
async fn http10_without_host_is_routed_by_host_less_rules() {
    let (a, any) = (Backend::start("a").await, Backend::start("any").await);
    let doc = routes(&[
        ("a", "Host(`a.test`)", &[&a.url()]),
        ("any", "PathPrefix(`/public`)", &[&any.url()]),
    ]);
    let p = TestProxy::start(&doc, &[]).await;
    let reply = raw(p.addr, b"GET /public/x HTTP/1.0\r\n\r\n", Duration::from_secs(2)).await;
    assert!(reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("any"), "{reply}");
    let reply = raw(p.addr, b"GET / HTTP/1.0\r\n\r\n", Duration::from_secs(2)).await;
    assert!(reply.contains(" 404 "), "a host rule never matches a request without one: {reply}");
    let reply = raw(p.addr, b"GET /public/x HTTP/1.1\r\n\r\n", Duration::from_secs(2)).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    // An absolute-form target's host still wins over Host.
    let reply = raw(
        p.addr,
        b"GET http://a.test/ HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(reply.ends_with('a'), "{reply}");
}
