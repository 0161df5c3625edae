//! The HTTP provider: the control plane's `/v1/traefik/proxy-config`.
//!
//! Poll mode: `GET <url>` every interval with `Authorization: Bearer <token>` and
//! `If-None-Match`, a 5 s timeout, and the body skipped when it is byte-identical to the live one.
//! Watch mode: the same with `?watch=1`; a server that supports it holds the request until the
//! configuration changes (or ~30 s, then 304), so a change is live within one round trip. A server
//! that ignores the parameter answers at once, and the loop then waits out the poll interval:
//! watch degrades to polling by itself. Errors (non-200, timeouts, invalid documents) keep the
//! current table and back off exponentially up to a minute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use crate::config::Format;
use crate::provider::{Applier, Outcome};
use crate::upstream::ReqBody;

/// Largest configuration document accepted (10,000 apps is about 3 MB).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How long a watch request may be held by the server before we give up on it.
const WATCH_TIMEOUT: Duration = Duration::from_secs(45);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Settings of the HTTP provider.
#[derive(Clone)]
pub struct HttpProvider {
    pub url: Uri,
    /// `Bearer <token>`, marked sensitive so it is never logged.
    pub authorization: Option<HeaderValue>,
    pub interval: Duration,
    pub timeout: Duration,
    pub watch: bool,
}

impl std::fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProvider")
            .field("url", &self.url)
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

/// Why `--config-url` or its token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpProviderError {
    #[error("invalid --config-url `{0}`")]
    Url(String),
    #[error("--config-url must be an http:// URL (the control plane over the mesh), got `{0}`")]
    NotHttp(String),
    #[error("the config token contains characters not allowed in a header")]
    Token,
}

/// Why one poll of the control plane failed (the current table stays).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("bad request: {0}")]
    Request(http::Error),
    #[error("request failed: {0}")]
    Send(hyper_util::client::legacy::Error),
    #[error("reading the body failed: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
    #[error("unexpected status {0}")]
    Status(StatusCode),
    #[error("timed out")]
    Timeout,
}

impl HttpProvider {
    /// Validates the URL and token.
    pub fn new(
        url: &str,
        token: Option<&str>,
        interval: Duration,
        watch: bool,
    ) -> Result<HttpProvider, HttpProviderError> {
        let url: Uri = url.parse().map_err(|_| HttpProviderError::Url(url.to_owned()))?;
        if url.scheme_str() != Some("http") || url.host().is_none() {
            return Err(HttpProviderError::NotHttp(url.to_string()));
        }
        let authorization = match token {
            Some(t) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", t.trim()))
                    .map_err(|_| HttpProviderError::Token)?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(HttpProvider { url, authorization, interval, timeout: Duration::from_secs(5), watch })
    }

    fn request_uri(&self) -> Uri {
        if !self.watch {
            return self.url.clone();
        }
        let pq = match self.url.query() {
            Some(q) => format!("{}?{q}&watch=1", self.url.path()),
            None => format!("{}?watch=1", self.url.path()),
        };
        let mut parts = self.url.clone().into_parts();
        parts.path_and_query = pq.parse().ok();
        Uri::from_parts(parts).unwrap_or_else(|_| self.url.clone())
    }
}

enum Fetched {
    NotModified,
    Body { bytes: Bytes, etag: Option<HeaderValue>, format: Format },
}

/// Runs the provider until `stop`.
pub async fn run(applier: Arc<Applier>, provider: HttpProvider, stop: CancellationToken) {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(provider.timeout));
    let client: Client<HttpConnector, ReqBody> =
        Client::builder(TokioExecutor::new()).build(connector);
    let uri = provider.request_uri();
    let mut etag: Option<HeaderValue> = None;
    let mut failures: u32 = 0;
    loop {
        let started = Instant::now();
        let timeout = if provider.watch { WATCH_TIMEOUT } else { provider.timeout };
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = tokio::time::timeout(timeout, fetch(&client, &uri, &provider, etag.as_ref())) => r,
        };
        let result = result.unwrap_or(Err(FetchError::Timeout));
        let elapsed = started.elapsed();
        let rest_of_interval = provider.interval.saturating_sub(elapsed);
        // A watch answer that took a while means the server held it: ask again at once.
        let held = provider.watch && elapsed >= Duration::from_millis(500);
        let wait = match result {
            Ok(Fetched::NotModified) => {
                failures = 0;
                if held {
                    Duration::ZERO
                } else {
                    rest_of_interval
                }
            }
            Ok(Fetched::Body { bytes, etag: new_etag, format }) => {
                match applier.apply_blocking(bytes, format, "http").await {
                    Ok(outcome) => {
                        failures = 0;
                        etag = new_etag;
                        if held || (provider.watch && matches!(outcome, Outcome::Applied { .. })) {
                            Duration::ZERO
                        } else {
                            rest_of_interval
                        }
                    }
                    Err(_) => {
                        // Already logged and counted by the applier; keep asking, slowly.
                        failures += 1;
                        backoff(provider.interval, failures)
                    }
                }
            }
            Err(e) => {
                failures += 1;
                let wait = backoff(provider.interval, failures);
                tracing::warn!(error = %e, retry_in = ?wait, "config provider: fetch failed; keeping the current configuration");
                applier_error(&applier);
                wait
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn applier_error(applier: &Applier) {
    applier.count_fetch_error();
}

fn backoff(interval: Duration, failures: u32) -> Duration {
    interval.saturating_mul(1 << failures.min(6)).min(MAX_BACKOFF).max(interval)
}

async fn fetch(
    client: &Client<HttpConnector, ReqBody>,
    uri: &Uri,
    provider: &HttpProvider,
    etag: Option<&HeaderValue>,
) -> Result<Fetched, FetchError> {
    let mut req = Request::get(uri.clone()).body(ReqBody::Empty).map_err(FetchError::Request)?;
    if let Some(auth) = &provider.authorization {
        req.headers_mut().insert(AUTHORIZATION, auth.clone());
    }
    if let Some(tag) = etag {
        req.headers_mut().insert(IF_NONE_MATCH, tag.clone());
    }
    let resp = client.request(req).await.map_err(FetchError::Send)?;
    match resp.status() {
        StatusCode::NOT_MODIFIED => Ok(Fetched::NotModified),
        StatusCode::OK => {
            let new_etag = resp.headers().get(ETAG).cloned();
            let format = Format::detect(
                resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or(""),
            );
            let bytes = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(FetchError::Body)?
                .to_bytes();
            Ok(Fetched::Body { bytes, etag: new_etag, format })
        }
        other => Err(FetchError::Status(other)),
    }
}
