//! Applying a router's middlewares to a request and its response, in router order:
//! `redirectScheme` answers instead of forwarding, `headers` sets or removes headers, and
//! `stripPrefix` rewrites the path (with `X-Forwarded-Prefix`).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::uri::Uri;
use http::{Method, Request, Response, StatusCode};

use super::Middleware;
use crate::body::RespBody;
use crate::error::ProxyError;
use crate::headers;

/// Runs the request-side middlewares; `Some` is the response to send instead of forwarding (a
/// scheme redirect). `host` is the validated `Host` to redirect to; `https` is the listener's.
pub(crate) fn on_request(
    middlewares: &[Arc<Middleware>],
    req: &mut Request<()>,
    host: Option<&HeaderValue>,
    https: bool,
) -> Result<Option<Response<RespBody>>, ProxyError> {
    for mw in middlewares {
        match &**mw {
            Middleware::RedirectScheme { scheme, port, permanent } => {
                let current = if https { "https" } else { "http" };
                if **scheme != *current {
                    return redirect(req, host, scheme, port.as_deref(), *permanent, false)
                        .map(Some);
                }
            }
            Middleware::Headers { request, .. } => {
                for (name, value) in request.iter() {
                    match value {
                        Some(v) => req.headers_mut().insert(name.clone(), v.clone()),
                        None => req.headers_mut().remove(name),
                    };
                }
            }
            Middleware::StripPrefix { prefixes } => strip_prefix(req, prefixes)?,
        }
    }
    Ok(None)
}

/// Runs the response-side middlewares (custom response headers).
pub(crate) fn on_response(middlewares: &[Arc<Middleware>], headers: &mut http::HeaderMap) {
    for mw in middlewares {
        if let Middleware::Headers { response, .. } = &**mw {
            for (name, value) in response.iter() {
                match value {
                    Some(v) => headers.insert(name.clone(), v.clone()),
                    None => headers.remove(name),
                };
            }
        }
    }
}

/// A redirect to `scheme` on the same host and path. `host` is the validated one
/// ([`crate::target`]), never a raw `Host` that lost to the target's authority. `keep_method`
/// forces 307/308 (the HTTP → HTTPS redirect keeps POSTs POSTs); otherwise GET and HEAD get
/// 301/302, as in Traefik.
pub(crate) fn redirect<B>(
    req: &Request<B>,
    host: Option<&HeaderValue>,
    scheme: &str,
    port: Option<&str>,
    permanent: bool,
    keep_method: bool,
) -> Result<Response<RespBody>, ProxyError> {
    let host =
        host.and_then(|h| h.to_str().ok()).ok_or(ProxyError::BadRequest("missing Host header"))?;
    let bare = strip_port(host);
    let authority = match port {
        Some(p) if !(scheme == "https" && p == "443" || scheme == "http" && p == "80") => {
            format!("{bare}:{p}")
        }
        _ => bare.to_owned(),
    };
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = HeaderValue::from_str(&format!("{scheme}://{authority}{pq}"))
        .map_err(|_| ProxyError::BadRequest("invalid Host header"))?;
    let get_like = !keep_method && matches!(*req.method(), Method::GET | Method::HEAD);
    let status = match (permanent, get_like) {
        (true, true) => StatusCode::MOVED_PERMANENTLY,
        (true, false) => StatusCode::PERMANENT_REDIRECT,
        (false, true) => StatusCode::FOUND,
        (false, false) => StatusCode::TEMPORARY_REDIRECT,
    };
    let mut resp = Response::new(RespBody::empty());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(resp)
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i)
            if !host[i..].contains(']') && (host.starts_with('[') || !host[..i].contains(':')) =>
        {
            &host[..i]
        }
        _ => host,
    }
}

fn strip_prefix(req: &mut Request<()>, prefixes: &[Box<str>]) -> Result<(), ProxyError> {
    let path = req.uri().path();
    let Some(prefix) = prefixes.iter().find(|p| path.starts_with(&***p)) else {
        return Ok(());
    };
    let rest = &path[prefix.len()..];
    let new_path = if rest.starts_with('/') { rest.to_owned() } else { format!("/{rest}") };
    let pq = match req.uri().query() {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(pq.parse().map_err(|_| ProxyError::BadRequest("invalid path"))?);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| ProxyError::BadRequest("invalid path"))?;
    let prefix_value = HeaderValue::from_str(prefix.trim_end_matches('/'))
        .map_err(|e| ProxyError::Internal(e.to_string()))?;
    req.headers_mut().insert(headers::X_FORWARDED_PREFIX.clone(), prefix_value);
    Ok(())
}
