//! Everything that can go wrong while proxying a request, and the one function that turns it
//! into a response. Tagged by origin: the downstream client (4xx), the routing table (404/503),
//! the upstream (502/504), or the proxy itself (500). A request whose head carries both
//! `Content-Length` and `Transfer-Encoding` is answered from here too ([`ProxyError::BadRequest`]).
//!
//! [`ConnError`] is how a client connection ended badly (a failed TLS handshake, a broken
//! HTTP exchange): nothing is answered for those, they are logged at debug level.

use http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};

use crate::body::RespBody;

/// Why a request was not proxied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// Downstream: the request is malformed; the connection is closed after answering.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Downstream: the request body stopped arriving for the body idle timeout.
    #[error("request body timed out")]
    ClientTimeout,
    /// Downstream: too many requests with bodies in progress on one HTTP/2 connection.
    #[error("too many request bodies in progress on this connection")]
    TooManyBodies,
    /// Downstream: a method the proxy does not forward (CONNECT).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Routing: no router matches the host and path.
    #[error("no route")]
    NoRoute,
    /// Routing: the router's service has no server that is up.
    #[error("no healthy server")]
    NoHealthyServer,
    /// Upstream: connection refused, reset or closed before a response.
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(String),
    /// Upstream: no response headers (or no connection) in time.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// The proxy itself failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    /// True when the upstream is at fault (counted as an upstream error).
    pub fn is_upstream(&self) -> bool {
        matches!(self, ProxyError::UpstreamUnreachable(_) | ProxyError::UpstreamTimeout)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::TooManyBodies => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoHealthyServer => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The response for `err`. Bodies are short and say nothing about the upstream's address.
pub fn respond(err: &ProxyError) -> Response<RespBody> {
    let status = err.status();
    let text = match err {
        ProxyError::BadRequest(why) => why,
        ProxyError::MethodNotAllowed => "method not allowed",
        ProxyError::ClientTimeout => "request body timed out",
        ProxyError::TooManyBodies => "too many request bodies in progress on this connection",
        ProxyError::NoRoute => "404 page not found",
        ProxyError::NoHealthyServer => "no server is available for this app right now",
        ProxyError::UpstreamUnreachable(_) => "bad gateway",
        ProxyError::UpstreamTimeout => "gateway timeout",
        ProxyError::Internal(_) => "internal server error",
    };
    let mut resp = Response::new(RespBody::full(format!("{text}\n")));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    match err {
        ProxyError::NoHealthyServer => {
            h.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        // What follows a malformed request (or a CONNECT's tunnel bytes) is not a request.
        ProxyError::BadRequest(_) | ProxyError::MethodNotAllowed | ProxyError::ClientTimeout => {
            h.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
    resp
}

/// Why a client connection ended with an error (after which nothing can be answered).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    #[error("TLS handshake: {0}")]
    TlsHandshake(std::io::Error),
    #[error("TLS handshake timed out")]
    TlsTimeout,
    /// The HTTP/1 or HTTP/2 exchange broke (hyper-util's auto server boxes its errors).
    #[error("HTTP: {0}")]
    Http(#[from] Box<dyn std::error::Error + Send + Sync>),
}
