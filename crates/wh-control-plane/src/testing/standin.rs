//! Servers on loopback standing in for the services the control plane calls for users (a
//! webhook receiver, Discord, an SMTP relay, …): they record every request exactly as it
//! arrived and answer as the test queued.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Lower-cased names, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An answer to queue.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply { status, headers: vec![], body: String::new() }
    }

    pub fn json(body: serde_json::Value) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.into();
        self
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    replies: Mutex<VecDeque<Reply>>,
    connections: AtomicUsize,
}

/// An HTTP(S) stand-in; answers 200 `ok` when nothing is queued.
#[derive(Clone)]
pub struct StandIn {
    pub addr: SocketAddr,
    /// The certificate clients must trust (https stand-ins).
    pub pem: Option<String>,
    shared: Arc<Shared>,
}

impl StandIn {
    /// Plain HTTP on `ip` (any port).
    pub async fn http(ip: [u8; 4]) -> StandIn {
        StandIn::start(ip, None).await
    }

    /// HTTPS on 127.0.0.1 with a self-signed certificate for `names`.
    pub async fn https(names: &[&str]) -> StandIn {
        let (config, pem) = wh_testkit::tls::self_signed(names);
        let mut s = StandIn::start([127, 0, 0, 1], Some(config)).await;
        s.pem = Some(pem);
        s
    }

    async fn start(ip: [u8; 4], tls: Option<Arc<rustls::ServerConfig>>) -> StandIn {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((ip, 0)))
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::SeqCst);
                let (s, tls) = (s.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(config) => {
                            let Ok(io) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                            else {
                                return;
                            };
                            serve(TokioIo::new(io), s).await;
                        }
                        None => serve(TokioIo::new(tcp), s).await,
                    }
                });
            }
        });
        StandIn { addr, pem: None, shared }
    }

    /// Queues the answer to the next request.
    pub fn reply(&self, reply: Reply) {
        self.shared.replies.lock().expect("not poisoned").push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("not poisoned").clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

async fn serve<I>(io: I, s: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let s = s.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
            s.requests.lock().expect("not poisoned").push(Recorded {
                method: parts.method.to_string(),
                target: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())
                    })
                    .collect(),
                body,
            });
            let reply = s.replies.lock().expect("not poisoned").pop_front();
            let reply = reply.unwrap_or(Reply { status: 200, headers: vec![], body: "ok".into() });
            let mut resp = hyper::Response::builder().status(reply.status);
            for (n, v) in &reply.headers {
                resp = resp.header(n, v);
            }
            Ok::<_, std::convert::Infallible>(
                resp.body(Full::new(bytes::Bytes::from(reply.body))).expect("a response"),
            )
        }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
}

/// An SMTP relay stand-in: STARTTLS (or TLS from the start), AUTH PLAIN, and the transcript
/// of every command and message it took.
#[derive(Clone)]
pub struct SmtpStandIn {
    pub addr: SocketAddr,
    pub pem: String,
    transcript: Arc<Mutex<Vec<String>>>,
}

impl SmtpStandIn {
    /// `implicit`: TLS from the first byte (port 465's way); else STARTTLS is offered.
    pub async fn start(name: &str, implicit: bool) -> SmtpStandIn {
        let (config, pem) = wh_testkit::tls::self_signed(&[name]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let t = transcript.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (t, config) = (t.clone(), config.clone());
                tokio::spawn(async move {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    if implicit {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ = smtp_session(Box::new(tls), &t, true).await;
                        }
                        return;
                    }
                    let Ok(Some(tcp)) = smtp_plain(tcp, &t).await else { return };
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = smtp_session(Box::new(tls), &t, false).await;
                    }
                });
            }
        });
        SmtpStandIn { addr, pem, transcript }
    }

    /// Every line received, commands and message alike.
    pub fn transcript(&self) -> Vec<String> {
        self.transcript.lock().expect("not poisoned").clone()
    }
}

/// Up to STARTTLS; the socket to upgrade.
async fn smtp_plain(
    tcp: tokio::net::TcpStream,
    t: &Mutex<Vec<String>>,
) -> std::io::Result<Option<tokio::net::TcpStream>> {
    let mut io = BufReader::new(tcp);
    io.get_mut().write_all(b"220 standin ESMTP\r\n").await?;
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end().to_owned();
        t.lock().expect("not poisoned").push(format!("plain: {line}"));
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            io.get_mut().write_all(b"250-standin\r\n250-STARTTLS\r\n250 8BITMIME\r\n").await?;
        } else if upper == "STARTTLS" {
            io.get_mut().write_all(b"220 go ahead\r\n").await?;
            return Ok(Some(io.into_inner()));
        } else {
            io.get_mut().write_all(b"530 STARTTLS first\r\n").await?;
        }
    }
}

async fn smtp_session(
    io: Box<dyn wh_http::client::Io>,
    t: &Mutex<Vec<String>>,
    greet: bool,
) -> std::io::Result<()> {
    let mut io = BufReader::new(io);
    if greet {
        io.get_mut().write_all(b"220 standin ESMTP\r\n").await?;
    }
    let mut data = false;
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        t.lock().expect("not poisoned").push(line.clone());
        if data {
            if line == "." {
                data = false;
                io.get_mut().write_all(b"250 2.0.0 queued as 42\r\n").await?;
            }
            continue;
        }
        let upper = line.to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("EHLO") {
            b"250-standin\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("AUTH PLAIN") {
            b"235 2.7.0 ok\r\n"
        } else if upper.starts_with("MAIL FROM") || upper.starts_with("RCPT TO") {
            b"250 ok\r\n"
        } else if upper == "DATA" {
            data = true;
            b"354 go on\r\n"
        } else if upper == "QUIT" {
            io.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 no\r\n"
        };
        io.get_mut().write_all(answer).await?;
    }
}
