//! Shared test fixtures: real backends on loopback, a proxy started in-process or as the real
//! binary, and small clients. Everything listens on 127.0.0.1 port 0.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use wh_proxy::cli::{Args, Settings};
use wh_proxy::run::{self, Running};

pub type TestBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

pub fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A real HTTP backend:
/// - `/` answers its name; `/headers` the request headers as JSON;
/// - `/slow?ms=N` answers after N ms; `/download?bytes=N` streams N bytes;
/// - `POST /upload` counts the streamed body and answers the count;
/// - an `Upgrade` request gets 101 and then every byte echoed back.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    pub hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        Self::start_on("127.0.0.1:0".parse().unwrap(), name).await
    }

    pub async fn start_on(addr: SocketAddr, name: &str) -> Backend {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let (n, h) = (name.to_owned(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (n, h) = (n.clone(), h.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (n, h) = (n.clone(), h.clone());
                        async move { Ok::<_, Infallible>(backend_handle(req, &n, &h).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Backend { addr, name: name.to_owned(), hits, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn backend_handle(
    mut req: Request<Incoming>,
    name: &str,
    hits: &AtomicU64,
) -> Response<TestBody> {
    hits.fetch_add(1, Ordering::Relaxed);
    let query = req.uri().query().unwrap_or("").to_owned();
    let num = |key: &str| -> u64 {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .unwrap_or(0)
    };
    if req.headers().contains_key(hyper::header::UPGRADE) {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 4096];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if io.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        });
        return Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(full(""))
            .unwrap();
    }
    match req.uri().path() {
        "/headers" => {
            let map: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        serde_json::Value::String(v.to_str().unwrap_or("").to_owned()),
                    )
                })
                .collect();
            Response::new(full(serde_json::Value::Object(map).to_string()))
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(num("ms"))).await;
            Response::new(full(format!("{name} slow")))
        }
        "/download" => {
            let total = num("bytes");
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures_util::stream::unfold(0u64, move |sent| {
                let chunk = chunk.clone();
                async move {
                    if sent >= total {
                        return None;
                    }
                    let n = (total - sent).min(chunk.len() as u64) as usize;
                    Some((Ok::<_, std::io::Error>(Frame::data(chunk.slice(..n))), sent + n as u64))
                }
            });
            Response::new(StreamBody::new(stream).boxed())
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut total = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => total += f.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => break,
                }
            }
            Response::new(full(total.to_string()))
        }
        _ => {
            // What the request looked like when it arrived (for path-rewriting middlewares).
            let seen = |h: &str| {
                req.headers().get(h).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
            };
            let pq = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
            Response::builder()
                .header("x-seen-path", pq)
                .header("x-seen-prefix", seen("x-forwarded-prefix"))
                .header("x-seen-replaced", seen("x-replaced-path"))
                .header("x-seen-custom", seen("x-custom"))
                .body(full(name.to_owned()))
                .unwrap()
        }
    }
}

/// A routes document: each (router, host rule, servers).
pub fn routes(apps: &[(&str, &str, &[&str])]) -> String {
    let mut routers = serde_json::Map::new();
    let mut services = serde_json::Map::new();
    for (name, rule, servers) in apps {
        routers.insert(
            (*name).into(),
            serde_json::json!({"rule": rule, "service": name, "entryPoints": ["web"]}),
        );
        let servers: Vec<_> = servers.iter().map(|u| serde_json::json!({"url": u})).collect();
        services.insert(
            (*name).into(),
            serde_json::json!({"loadBalancer": {"servers": servers, "passHostHeader": true}}),
        );
    }
    serde_json::json!({"http": {"routers": routers, "services": services}}).to_string()
}

/// Settings for a proxy on loopback with a file provider.
pub fn settings(routes_file: &Path, state_dir: &Path, extra: &[&str]) -> Settings {
    let mut args = vec![
        "wh-proxy".to_owned(),
        "--routes".into(),
        routes_file.display().to_string(),
        "--state-dir".into(),
        state_dir.display().to_string(),
        "--http-addr".into(),
        "127.0.0.1:0".into(),
        "--admin-addr".into(),
        "127.0.0.1:0".into(),
        "--access-log".into(),
        "off".into(),
        "--https-addr".into(),
        "off".into(),
    ];
    if !extra.contains(&"--threads") {
        args.extend(["--threads".into(), "1".into()]);
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    use clap::Parser;
    Settings::from_args(Args::try_parse_from(args).unwrap()).unwrap()
}

/// An in-process proxy with a routes file it can rewrite.
pub struct TestProxy {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl TestProxy {
    pub async fn start(routes_json: &str, extra: &[&str]) -> TestProxy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("routes.json"), routes_json).unwrap();
        let s = settings(&dir.path().join("routes.json"), &dir.path().join("state"), extra);
        let running = run::start(s).await.unwrap();
        let (addr, admin) = (running.http_addr, running.admin_addr);
        TestProxy { running: Some(running), dir, addr, admin }
    }

    pub fn routes_path(&self) -> PathBuf {
        self.dir.path().join("routes.json")
    }

    /// Applies a new document directly (as a provider would).
    pub fn apply(
        &self,
        routes_json: &str,
    ) -> Result<wh_proxy::provider::Outcome, wh_proxy::provider::ApplyError> {
        self.running.as_ref().unwrap().applier.apply(
            routes_json.as_bytes(),
            wh_proxy::config::Format::Json,
            "test",
        )
    }

    pub fn generation(&self) -> u64 {
        self.running.as_ref().unwrap().proxy.table.load().generation
    }
}

/// A keep-alive client that sends every request to `proxy` with the given Host.
pub fn client(
) -> hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, TestBody>
{
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// GET `path` on `addr` with `Host: host`; returns status, headers and body text.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> (u16, hyper::HeaderMap, String) {
    let req =
        Request::get(format!("http://{addr}{path}")).header("host", host).body(full("")).unwrap();
    let resp = client().request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// An h2c (prior knowledge) client connection to `addr`, its connection task spawned.
pub async fn h2_client<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

/// Sends raw bytes, returns whatever comes back until the server closes or `wait` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads until the peer closes (or errors), for at most `limit`: what came, and whether it
/// closed.
pub async fn read_until_closed<R: AsyncReadExt + Unpin>(
    r: &mut R,
    limit: Duration,
) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, r.read(&mut buf)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// What came before the peer closed; `None` if it is still open after `limit`.
pub async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let (got, closed) = read_until_closed(s, limit).await;
    closed.then_some(got)
}

/// Sends `bytes` on a new connection; what came back, and whether the proxy closed the
/// connection within `limit`.
pub async fn raw_until_closed(addr: SocketAddr, bytes: &[u8], limit: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let (got, closed) = read_until_closed(&mut s, limit).await;
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// A fake control plane serving a mutable document with ETags, optionally holding `?watch=1`.
pub struct FakeControlPlane {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<CpState>>,
    pub changed: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
pub struct CpState {
    pub body: String,
    pub version: u64,
    /// Answer every request with this status instead (e.g. 500).
    pub fail_with: Option<u16>,
    pub requests: u64,
    pub not_modified: u64,
    pub honour_watch: bool,
    pub last_auth: Option<String>,
}

impl Drop for FakeControlPlane {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeControlPlane {
    pub async fn start(body: &str, honour_watch: bool) -> FakeControlPlane {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(CpState {
            body: body.into(),
            version: 1,
            honour_watch,
            ..Default::default()
        }));
        let changed = Arc::new(tokio::sync::Notify::new());
        let (st, ch) = (state.clone(), changed.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (st, ch) = (st.clone(), ch.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (st, ch) = (st.clone(), ch.clone());
                        async move { Ok::<_, Infallible>(cp_handle(req, &st, &ch).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeControlPlane { addr, state, changed, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/traefik/proxy-config", self.addr)
    }

    pub fn set(&self, body: &str) {
        {
            let mut s = self.state.lock().unwrap();
            s.body = body.into();
            s.version += 1;
        }
        self.changed.notify_waiters();
    }
}

async fn cp_handle(
    req: Request<Incoming>,
    st: &Mutex<CpState>,
    changed: &tokio::sync::Notify,
) -> Response<TestBody> {
    let watch = req.uri().query().is_some_and(|q| q.contains("watch=1"));
    let inm = req.headers().get("if-none-match").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let honour = {
        let mut s = st.lock().unwrap();
        s.requests += 1;
        s.last_auth =
            req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        if let Some(code) = s.fail_with {
            return Response::builder().status(code).body(full("boom")).unwrap();
        }
        s.honour_watch
    };
    let etag = || format!("\"v{}\"", st.lock().unwrap().version);
    if watch && honour && inm.as_deref() == Some(etag().as_str()) {
        let _ = tokio::time::timeout(Duration::from_secs(30), changed.notified()).await;
    }
    let tag = etag();
    if inm.as_deref() == Some(tag.as_str()) {
        st.lock().unwrap().not_modified += 1;
        return Response::builder().status(304).header("etag", tag).body(full("")).unwrap();
    }
    let body = st.lock().unwrap().body.clone();
    Response::builder()
        .status(200)
        .header("etag", tag)
        .header("content-type", "application/json")
        .body(full(body))
        .unwrap()
}

/// What an HTTPS request saw.
#[derive(Debug)]
pub struct TlsReply {
    pub status: u16,
    pub body: String,
    pub alpn: Option<Vec<u8>>,
}

/// A TLS client config trusting only `root_pem`, offering `alpn`.
pub fn tls_client(root_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let trust = wh_http::client::Trust::from_pem(root_pem.as_bytes()).unwrap();
    wh_http::client::client_config(&trust, alpn)
}

/// Connects to `addr` over TLS presenting `sni` (an IP address sends no SNI).
pub async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// GET `path` over TLS with `Host`/SNI `host`, HTTP/2 when ALPN picks it.
pub async fn https_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsReply> {
    let tls = tls_connect(addr, host, config).await?;
    let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
    let io = TokioIo::new(tls);
    let resp = if alpn.as_deref() == Some(b"h2") {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        let req = Request::get(format!("https://{host}{path}")).body(full("")).unwrap();
        send.send_request(req).await.map_err(std::io::Error::other)?
    } else {
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(io).await.map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        let req = Request::get(path).header("host", host).body(full("")).unwrap();
        send.send_request(req).await.map_err(std::io::Error::other)?
    };
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes();
    Ok(TlsReply { status, body: String::from_utf8_lossy(&body).into_owned(), alpn })
}
