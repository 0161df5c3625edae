//! Dialling the control plane: TCP, optionally TLS (rustls, ALPN pinned to http/1.1 so a CDN
//! or proxy in front cannot negotiate h2 for the WebSocket), one-shot HTTP POSTs and the
//! WebSocket handshake. Every network wait has a timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

/// Timeout of connects, handshakes and HTTP exchanges.
pub const NET_TIMEOUT: Duration = Duration::from_secs(10);

/// A byte stream to the control plane.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where the control plane is and how to trust it.
#[derive(Clone)]
pub struct Endpoint {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub host: String,
    pub port: u16,
}

/// Why a network call failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("HTTP {0}")]
    Status(u16, String),
    #[error("{0}")]
    Other(String),
}

impl Endpoint {
    /// Parses `http://host:port` or `https://host:port`; `roots` are used for https.
    pub fn parse(base: &str, roots: Option<rustls::RootCertStore>) -> Result<Endpoint, String> {
        let uri: hyper::Uri =
            base.parse().map_err(|e| format!("invalid control plane URL `{base}`: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!("control plane URL must be http:// or https://, got `{base}`"))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("no host in `{base}`"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tls = tls.then(|| {
            let roots = roots.unwrap_or_else(native_roots);
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        });
        Ok(Endpoint { tls, host, port })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    async fn dial(&self) -> Result<Box<dyn Io>, NetError> {
        let tcp =
            tokio::time::timeout(NET_TIMEOUT, TcpStream::connect((self.host.as_str(), self.port)))
                .await
                .map_err(|_| NetError::Other("connect timed out".into()))?
                .map_err(|e| NetError::Other(format!("connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| NetError::Other(e.to_string()))?;
                let tls = tokio::time::timeout(
                    NET_TIMEOUT,
                    tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp),
                )
                .await
                .map_err(|_| NetError::Other("TLS handshake timed out".into()))?
                .map_err(|e| NetError::Other(format!("TLS: {e}")))?;
                Ok(Box::new(tls))
            }
        }
    }

    /// `POST path` with a bearer token; returns the body of a 200 (at most 1 MiB).
    pub async fn post(&self, path: &str, bearer: &str) -> Result<Bytes, NetError> {
        self.request(hyper::Method::POST, path, bearer, 1 << 20, NET_TIMEOUT).await
    }

    /// `GET path` with a bearer token; returns the body of a 200 (at most `limit` bytes), all
    /// within `timeout`.
    pub async fn get(
        &self,
        path: &str,
        bearer: &str,
        limit: usize,
        timeout: Duration,
    ) -> Result<Bytes, NetError> {
        self.request(hyper::Method::GET, path, bearer, limit, timeout).await
    }

    async fn request(
        &self,
        method: hyper::Method,
        path: &str,
        bearer: &str,
        limit: usize,
        timeout: Duration,
    ) -> Result<Bytes, NetError> {
        let exchange = async {
            let io = self.dial().await?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(|e| NetError::Other(e.to_string()))?;
            tokio::spawn(conn);
            let req = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("host", self.authority())
                .header("authorization", format!("Bearer {bearer}"))
                .body(Empty::<Bytes>::new())
                .map_err(|e| NetError::Other(e.to_string()))?;
            let resp = send.send_request(req).await.map_err(|e| NetError::Other(e.to_string()))?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|e| NetError::Other(e.to_string()))?
                .to_bytes();
            if status == 200 {
                Ok(body)
            } else {
                Err(NetError::Status(
                    status,
                    String::from_utf8_lossy(&body).chars().take(200).collect(),
                ))
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| NetError::Other("request timed out".into()))?
    }

    /// Opens the WebSocket at `path` with a bearer token.
    /// Opens the WebSocket at `path`; returns it with the connection nonce the control plane
    /// answered with (its `x-wh-connection` header), which every envelope is bound to.
    pub async fn websocket(
        &self,
        path: &str,
        bearer: &str,
    ) -> Result<(WebSocketStream<Box<dyn Io>>, String), NetError> {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let mut req = format!("{scheme}://{}{path}", self.authority())
            .into_client_request()
            .map_err(|e| NetError::Other(e.to_string()))?;
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {bearer}").parse().map_err(|_| NetError::Other("bad token".into()))?,
        );
        let io = self.dial().await?;
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(1 << 20));
        match tokio::time::timeout(
            NET_TIMEOUT,
            tokio_tungstenite::client_async_with_config(req, io, Some(config)),
        )
        .await
        {
            Err(_) => Err(NetError::Other("WebSocket handshake timed out".into())),
            Ok(Ok((ws, response))) => {
                let connection = response
                    .headers()
                    .get("x-wh-connection")
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or_else(|| NetError::Other("no connection nonce in the upgrade".into()))?;
                Ok((ws, connection.to_owned()))
            }
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
                Err(NetError::Status(resp.status().as_u16(), String::new()))
            }
            Ok(Err(e)) => Err(NetError::Other(e.to_string())),
        }
    }
}

fn native_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    roots
}

/// Reads PEM roots from a file.
pub fn roots_from_pem(path: &std::path::Path) -> Result<rustls::RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    Ok(roots)
}
