//! A minimal HTTP/1.1 client for tests: plain TCP, or rustls trusting exactly the roots given.
//!
//! Tests use it to talk to pebble, to challtestsrv and to servers under test without dragging a
//! full client (and a second TLS stack) into the workspace. One request per connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use wh_http::client::{Target, Trust};

use crate::{Error, Result};

/// What came back.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses PEM certificates into DER.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    wh_http::client::certs_from_pem(pem).map_err(|e| Error::Other(e.to_string()))
}

/// GET `url` (http or https). For https, `roots` are the only trusted roots.
pub async fn get(url: &str, roots: &[CertificateDer<'static>]) -> Result<Response> {
    request("GET", url, None, roots, &[]).await
}

/// POST a JSON body to `url`.
pub async fn post_json(
    url: &str,
    body: &serde_json::Value,
    roots: &[CertificateDer<'static>],
) -> Result<Response> {
    request(
        "POST",
        url,
        Some(body.to_string().into()),
        roots,
        &[("content-type", "application/json")],
    )
    .await
}

/// One request with a 10 s overall timeout; `headers` are added as given.
pub async fn request(
    method: &str,
    url: &str,
    body: Option<Bytes>,
    roots: &[CertificateDer<'static>],
    headers: &[(&str, &str)],
) -> Result<Response> {
    tokio::time::timeout(Duration::from_secs(10), request_inner(method, url, body, roots, headers))
        .await
        .map_err(|_| Error::NotReady(format!("{method} {url}")))?
}

async fn request_inner(
    method: &str,
    url: &str,
    body: Option<Bytes>,
    roots: &[CertificateDer<'static>],
    headers: &[(&str, &str)],
) -> Result<Response> {
    let uri: hyper::Uri = url.parse().map_err(|e| Error::Other(format!("bad url {url}: {e}")))?;
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).map_err(|e| Error::Other(format!("bad root: {e}")))?;
    }
    let trust = Trust::Roots(Arc::new(store));
    let target = Target::parse(url, &trust, &[]).map_err(|e| Error::Other(e.to_string()))?;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = Request::builder().method(method).uri(path);
    // A caller-given Host replaces the one derived from the URL (routing tests need that).
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", target.authority());
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req =
        req.body(Full::new(body.unwrap_or_default())).map_err(|e| Error::Other(e.to_string()))?;
    let hyper_err = |e: hyper::Error| Error::Other(format!("http: {e}"));
    let io = target.dial(Duration::from_secs(10)).await.map_err(|e| Error::Other(e.to_string()))?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(hyper_err)?;
    tokio::spawn(conn);
    let resp = send.send_request(req).await.map_err(hyper_err)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.map_err(hyper_err)?.to_bytes();
    Ok(Response { status, headers, body })
}
