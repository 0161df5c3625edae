//! Outbound HTTP: the one client the control plane calls other services with (the git
//! providers' APIs, webhooks, notification channels). One request per connection, a bounded
//! wait for each step (5 s to connect and handshake, 15 s for the whole exchange), at most
//! 4 MiB of answer read, redirects never followed, no proxy from the environment. Calls to
//! addresses a tenant chose go through [`Client::send_for_user`], which adds the SSRF guard.
//!
//! It never logs a request's headers or body: they carry tokens.
//!
//! - [`guard`]: the SSRF guard (schemes, ports, resolved addresses, pinning).
//! - [`resolve`]: name resolution for the guard (hickory; fixed names in tests).

pub mod guard;
pub mod resolve;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use wh_http::client::{DialError, Target, Trust};

/// How long to connect (and finish TLS), and how long the whole exchange may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);
/// The most of an answer's body read.
pub const MAX_ANSWER: usize = 4 << 20;

/// Why a call failed before an answer was read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    #[error("invalid URL: {0}")]
    Url(String),
    #[error("{0}")]
    Dial(#[from] DialError),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("no answer within {}s", EXCHANGE_TIMEOUT.as_secs())]
    Timeout,
    #[error("the answer is larger than {MAX_ANSWER} bytes, or broke off")]
    Body,
    #[error("refused: {0}")]
    Refused(#[from] guard::Refused),
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The client: which roots TLS trusts (built once).
#[derive(Clone)]
pub struct Client {
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(trust: &Trust) -> Client {
        Client { tls: wh_http::client::client_config(trust, &[b"http/1.1"]) }
    }

    /// Sends `method url` with `headers` and `body`; the answer whatever its status.
    pub async fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, OutboundError> {
        tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange(None, method, url, headers, body))
            .await
            .map_err(|_| OutboundError::Timeout)?
    }

    /// [`Client::send`] for a URL a user chose: the scheme, the port and every address the host
    /// resolves to pass `guard` first, and the checked address is the one dialled.
    pub async fn send_for_user(
        &self,
        guard: &guard::Guard,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, OutboundError> {
        tokio::time::timeout(
            EXCHANGE_TIMEOUT,
            self.exchange(Some(guard), method, url, headers, body),
        )
        .await
        .map_err(|_| OutboundError::Timeout)?
    }

    /// The TLS configuration user calls use (SMTP's STARTTLS too).
    pub fn tls(&self) -> &Arc<rustls::ClientConfig> {
        &self.tls
    }

    async fn exchange(
        &self,
        guard: Option<&guard::Guard>,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, OutboundError> {
        let uri: http::Uri = url.parse().map_err(|e| OutboundError::Url(format!("{e}")))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(OutboundError::Url("must be http:// or https://".into())),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| OutboundError::Url("no host".into()))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let target = Target { host, port, tls: tls.then(|| self.tls.clone()) };
        let io = match guard {
            None => target.dial(CONNECT_TIMEOUT).await?,
            Some(guard) => {
                guard.check_scheme(tls)?;
                let tcp =
                    guard.connect(&target.host, port, guard::Use::Http, CONNECT_TIMEOUT).await?;
                match &target.tls {
                    None => Box::new(tcp),
                    Some(config) => {
                        wh_http::client::tls_over(tcp, config, &target.host, CONNECT_TIMEOUT)
                            .await?
                    }
                }
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        // Ends with the exchange: the connection is dropped with `sender` when this returns.
        let driver = tokio::spawn(conn);
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, target.authority())
            .header(http::header::USER_AGENT, concat!("WiseHosting/", env!("CARGO_PKG_VERSION")));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request =
            request.body(Full::new(body)).map_err(|e| OutboundError::Url(e.to_string()))?;
        let answer = sender.send_request(request).await;
        let result = async {
            let (parts, body) = answer?.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|_| OutboundError::Body)?
                .to_bytes();
            Ok(Answer { status: parts.status.as_u16(), headers: parts.headers, body })
        }
        .await;
        driver.abort();
        result
    }
}
