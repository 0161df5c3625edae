//! A small HTTP/1.1 client for the WiseHosting API: JSON requests, uploads, and streamed
//! responses (server-sent events), over plain TCP or TLS (the system's roots). Every request has
//! a connect timeout and, except streams, an overall one; error bodies become [`CliError::Api`].

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use wh_http::client::{Io, Target, Trust};

use crate::error::CliError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Uploads of large sources may take a while; JSON calls should not.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The API at one base URL, optionally with a bearer token.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    target: Target,
    token: Option<String>,
}

impl Api {
    /// `base` is `http(s)://host[:port]`; https trusts the system's roots.
    pub fn new(base: &str, token: Option<String>) -> Result<Api, CliError> {
        let base = base.trim_end_matches('/').to_owned();
        let target = Target::parse(&base, &Trust::System, &[])
            .map_err(|e| CliError::Usage(e.to_string()))?;
        Ok(Api { base, target, token })
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> CliError {
        CliError::Unreachable { url: self.base.clone(), why: why.to_string() }
    }

    async fn dial(&self) -> Result<Box<dyn Io>, CliError> {
        self.target.dial(CONNECT_TIMEOUT).await.map_err(|e| self.unreachable(e))
    }

    /// Sends one request; returns the response with its body still to read.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
        extra: &[(&str, &str)],
    ) -> Result<hyper::Response<Incoming>, CliError> {
        let io = self.dial().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| self.unreachable(e))?;
        tokio::spawn(conn);
        let authority = self.target.authority();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", authority)
            .header("user-agent", concat!("wh/", env!("CARGO_PKG_VERSION")));
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).map_err(|e| CliError::Local(e.to_string()))?;
        sender.send_request(req).await.map_err(|e| self.unreachable(e))
    }

    /// A request whose answer is read whole (at most 16 MiB); a non-2xx answer is an error.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
        extra: &[(&str, &str)],
    ) -> Result<(hyper::HeaderMap, Bytes), CliError> {
        let exchange = async {
            let resp = self.send(method, path, content_type, body, extra).await?;
            let (parts, body) = resp.into_parts();
            let bytes = Limited::new(body, 16 << 20)
                .collect()
                .await
                .map_err(|e| self.unreachable(e))?
                .to_bytes();
            if !parts.status.is_success() {
                return Err(api_error(parts.status.as_u16(), &bytes));
            }
            Ok((parts.headers, bytes))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| self.unreachable("the request timed out"))?
    }

    /// JSON in (optional), JSON out (`null` for an empty answer).
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, CliError> {
        let (ct, bytes) = match body {
            Some(v) => (Some("application/json"), Bytes::from(v.to_string())),
            None => (None, Bytes::new()),
        };
        let (_, out) = self.call(method, path, ct, bytes, &[]).await?;
        if out.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&out).map_err(|e| self.unreachable(format!("invalid JSON: {e}")))
    }
}

/// The API's `{"error": {code, message, field}}` as a [`CliError`].
fn api_error(status: u16, body: &[u8]) -> CliError {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let e = &v["error"];
    let message = e["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP {status}: {}", String::from_utf8_lossy(body).trim()));
    if status == 401 {
        return CliError::Auth(format!("{message}: sign in again with `wh login`"));
    }
    CliError::Api {
        status,
        code: e["code"].as_str().unwrap_or("error").to_owned(),
        message,
        field: e["field"].as_str().map(str::to_owned),
    }
}
