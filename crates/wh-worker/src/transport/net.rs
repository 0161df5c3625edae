//! Dialling the control plane: TCP, optionally TLS (rustls, ALPN pinned to http/1.1 so a CDN
//! or proxy in front cannot negotiate h2 for the WebSocket), one-shot HTTP POSTs and the
//! WebSocket handshake. Every network wait has a timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;
pub use wh_http::client::Io;
use wh_http::client::{ConfigError, DialError, Target, Trust};

/// Timeout of connects, handshakes and HTTP exchanges.
pub const NET_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the control plane is and how to trust it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    target: Target,
}

/// Why a network call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The control plane answered, but not with 200 (the body's start, for the log).
    #[error("HTTP {0}")]
    Status(u16, String),
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("WebSocket: {0}")]
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The control plane's answer broke the protocol.
    #[error("{0}")]
    Protocol(&'static str),
}

impl Endpoint {
    /// Parses `http://host:port` or `https://host:port`; https trusts exactly `roots` when given,
    /// else the system's roots, and offers only http/1.1 (so a CDN or proxy in front cannot
    /// negotiate h2 for the WebSocket).
    pub fn parse(
        base: &str,
        roots: Option<rustls::RootCertStore>,
    ) -> Result<Endpoint, ConfigError> {
        let trust = roots.map_or(Trust::System, |r| Trust::Roots(Arc::new(r)));
        Ok(Endpoint { target: Target::parse(base, &trust, &[b"http/1.1"])? })
    }

    async fn dial(&self) -> Result<Box<dyn Io>, NetError> {
        Ok(self.target.dial(NET_TIMEOUT).await?)
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
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
            tokio::spawn(conn);
            let req = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("host", self.target.authority())
                .header("authorization", format!("Bearer {bearer}"))
                .body(Empty::<Bytes>::new())
                .map_err(|_| NetError::Protocol("the path or token is not valid in a request"))?;
            let resp = send.send_request(req).await?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|_| NetError::Protocol("the response body was cut or too long"))?
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
        tokio::time::timeout(timeout, exchange).await.map_err(|_| NetError::Timeout("request"))?
    }

    /// Opens the WebSocket at `path`; returns it with the connection nonce the control plane
    /// answered with (its `x-wh-connection` header), which every envelope is bound to.
    pub async fn websocket(
        &self,
        path: &str,
        bearer: &str,
    ) -> Result<(WebSocketStream<Box<dyn Io>>, String), NetError> {
        let scheme = if self.target.tls.is_some() { "wss" } else { "ws" };
        let mut req = format!("{scheme}://{}{path}", self.target.authority())
            .into_client_request()
            .map_err(|e| NetError::WebSocket(Box::new(e)))?;
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {bearer}")
                .parse()
                .map_err(|_| NetError::Protocol("the token is not a valid header value"))?,
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
            Err(_) => Err(NetError::Timeout("WebSocket handshake")),
            Ok(Ok((ws, response))) => {
                let connection = response
                    .headers()
                    .get("x-wh-connection")
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or(NetError::Protocol("no connection nonce in the upgrade"))?;
                Ok((ws, connection.to_owned()))
            }
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
                Err(NetError::Status(resp.status().as_u16(), String::new()))
            }
            Ok(Err(e)) => Err(NetError::WebSocket(Box::new(e))),
        }
    }
}
